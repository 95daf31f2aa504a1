import CStokeKernels
import Foundation

/// The CPU kernel set Stoke's C kernels run on: the features this CPU (and its OS) supports, as
/// restricted by `STOKE_CPU=portable|avx2|avx-vnni|avx512|avx512-vnni` for the whole process.
/// Kernels ask for features, never compare levels; this is what reports and benchmarks print.
public struct KernelSet: Sendable, Equatable, CustomStringConvertible {
    /// The best named set the usable features cover ("portable", "avx2", "avx-vnni", "avx512", "avx512-vnni").
    public let name: String
    /// The usable features, in probe order ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
    /// "avx512vnni", "avx-vnni").
    public let features: [String]

    /// Every kernel set name `STOKE_CPU` accepts, in the order of `stoke_cpu_level`.
    public static let names: [String] = (0..<Int32(STOKE_CPU_LEVEL_COUNT)).map { unsafe String(cString: stoke_cpu_level_name($0)) }

    static let featureNames: [(UInt32, String)] = [
        (UInt32(STOKE_CPU_FEATURE_AVX2), "avx2"), (UInt32(STOKE_CPU_FEATURE_FMA), "fma"),
        (UInt32(STOKE_CPU_FEATURE_F16C), "f16c"), (UInt32(STOKE_CPU_FEATURE_AVX512F), "avx512f"),
        (UInt32(STOKE_CPU_FEATURE_AVX512BW), "avx512bw"), (UInt32(STOKE_CPU_FEATURE_AVX512VL), "avx512vl"),
        (UInt32(STOKE_CPU_FEATURE_AVX512VNNI), "avx512vnni"), (UInt32(STOKE_CPU_FEATURE_AVXVNNI), "avx-vnni"),
    ]

    /// The set kernels called from this thread use now (the process's set unless a test forced one).
    public static var current: KernelSet {
        let bits = stoke_cpu_features()
        return KernelSet(name: unsafe String(cString: stoke_cpu_level_name(Int32(stoke_cpu_active().rawValue))),
                         features: featureNames.filter { bits & $0.0 != 0 }.map(\.1))
    }

    /// The set `STOKE_CPU=name` gives on this machine (its features that the named set allows), or nil
    /// when `name` is not a kernel set. Computes only: nothing is restricted.
    public static func restricted(to name: String) -> KernelSet? {
        let level = unsafe stoke_cpu_parse_level(name)
        guard level >= 0 else { return nil }
        let bits = stoke_cpu_probed_features() & stoke_cpu_level_features(level)
        // The best named set these features cover (as stoke_cpu_active does): avx512-vnni needs the
        // avx512 set and AVX512VNNI, every other set all of its features.
        let best = (0..<Int32(STOKE_CPU_LEVEL_COUNT)).reversed().first { candidate in
            let need = candidate == Int32(STOKE_CPU_AVX512_VNNI.rawValue)
                ? stoke_cpu_level_features(Int32(STOKE_CPU_AVX512.rawValue)) | UInt32(STOKE_CPU_FEATURE_AVX512VNNI)
                : stoke_cpu_level_features(candidate)
            return bits & need == need
        } ?? 0
        return KernelSet(name: unsafe String(cString: stoke_cpu_level_name(best)), features: featureNames.filter { bits & $0.0 != 0 }.map(\.1))
    }

    /// The features this machine has, before any restriction.
    public static var machineFeatures: [String] {
        let bits = stoke_cpu_probed_features()
        return featureNames.filter { bits & $0.0 != 0 }.map(\.1)
    }

    /// Restricts the process to the set `STOKE_CPU` names (nothing when unset or empty). Call once at
    /// start-up, before any kernel runs. Returns a message naming the variable and the accepted
    /// values when the value is not a kernel set (the CLI prints it and exits with status 2).
    public static func applyEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        guard let value = environment["STOKE_CPU"], !value.isEmpty else { return nil }
        return apply(value)
    }

    /// Restricts the process to kernel set `name` (as `STOKE_CPU` does). Returns a message when `name`
    /// is not a kernel set, else nil. A set above the machine's gives the machine's features.
    public static func apply(_ name: String) -> String? {
        let level = unsafe stoke_cpu_parse_level(name)
        guard level >= 0 else {
            return "STOKE_CPU=\(name) is not a kernel set; use one of \(names.joined(separator: ", "))"
        }
        stoke_cpu_set_process_level(level)
        return nil
    }

    /// Restricts the whole process's C kernels to this set (what `STOKE_CPU` does). Call once at
    /// start-up, before any kernel runs: the restriction is process-wide.
    public func restrictProcess() {
        let level = unsafe stoke_cpu_parse_level(name)
        if level >= 0 { stoke_cpu_set_process_level(level) }
    }

    public var description: String { "\(name) [\(features.joined(separator: ","))]" }

    /// `{"name": ..., "features": [...]}` for JSON reports.
    public var jsonObject: [String: Any] { ["name": name, "features": features] }
}
