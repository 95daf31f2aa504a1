import CStokeKernels
import Foundation
import Testing

/// Kernel sets this machine supports (within STOKE_CPU).
let supportedKernelSets: [Int32] = (0..<Int32(STOKE_CPU_LEVEL_COUNT)).filter { stoke_cpu_level_supported($0) != 0 }

@Suite("CPU features and kernel sets", .serialized)
struct CPUFeatureTests {
    @Test("kernel set names parse back; other names are refused")
    func names() {
        for level in 0..<Int32(STOKE_CPU_LEVEL_COUNT) {
            #expect(stoke_cpu_parse_level(stoke_cpu_level_name(level)) == level)
        }
        #expect(String(cString: stoke_cpu_level_name(4)) == "avx512-vnni")
        for bad in ["", "AVX2", "avx", "sse4", "avx512vnni"] { #expect(stoke_cpu_parse_level(bad) == -1, "\(bad)") }
    }

    @Test("the probe agrees with /proc/cpuinfo (Linux x86-64)",
          .enabled(if: FileManager.default.fileExists(atPath: "/proc/cpuinfo"), "skipped: no /proc/cpuinfo"))
    func probeMatchesCpuinfo() throws {
        let text = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return }
        let flags = Set(line.split(separator: " ").map(String.init))
        let probed = stoke_cpu_probed_features()
        let avx2 = flags.contains("avx2") && flags.contains("fma")
        #expect((probed & UInt32(STOKE_CPU_FEATURE_AVX2) != 0) == avx2)
        if avx2 {
            #expect((probed & UInt32(STOKE_CPU_FEATURE_F16C) != 0) == flags.contains("f16c"))
            let avx512 = ["avx512f", "avx512bw", "avx512vl"].allSatisfy(flags.contains)
            #expect((probed & UInt32(STOKE_CPU_FEATURE_AVX512F) != 0) == avx512)
            #expect((probed & UInt32(STOKE_CPU_FEATURE_AVX512VNNI) != 0) == (avx512 && flags.contains("avx512_vnni")))
            #expect((probed & UInt32(STOKE_CPU_FEATURE_AVXVNNI) != 0) == flags.contains("avx_vnni"))
        }
    }

    @Test("forcing a set on this thread turns off every feature outside it, and -1 undoes it")
    func forcing() {
        let process = stoke_cpu_features()
        for level in 0..<Int32(STOKE_CPU_LEVEL_COUNT) {
            stoke_cpu_force(level)
            let features = stoke_cpu_features()
            #expect(features & ~stoke_cpu_level_features(level) == 0, "set \(level)")
            #expect(features == process & stoke_cpu_level_features(level))
            if stoke_cpu_level_supported(level) != 0 { #expect(stoke_cpu_active().rawValue == UInt32(level)) }
        }
        stoke_cpu_force(Int32(STOKE_CPU_AVX2.rawValue))
        #expect(stoke_cpu_has(UInt32(STOKE_CPU_FEATURE_AVX512F)) == 0)
        stoke_cpu_force(-1)
        #expect(stoke_cpu_features() == process)
        #expect(stoke_cpu_active() == stoke_cpu_probe())
    }

    @Test("forcing on one thread leaves other threads on the process's set")
    func forcingIsPerThread() {
        let process = stoke_cpu_features()
        stoke_cpu_force(Int32(STOKE_CPU_PORTABLE.rawValue))
        defer { stoke_cpu_force(-1) }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var other: UInt32 = 0
        let thread = Thread {
            other = stoke_cpu_features()
            done.signal()
        }
        thread.start()
        done.wait()
        #expect(other == process)
        #expect(stoke_cpu_features() == 0)
    }
}
