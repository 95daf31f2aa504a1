import Foundation
import StokeEngine
import StokeStore

/// What a result table needs to say about the machine that produced it, so two users can compare
/// their tables: the kernel set, the core count, the load while it ran and the Stoke version.
public enum Machine {
    /// The kernel set Stoke's C kernels dispatch to (`KernelSet.current`: the CPU's best, or the set
    /// `STOKE_CPU` forced), e.g. "avx512-vnni", "avx2" or "portable": what the table footers and
    /// `report.json` name.
    public static func kernelSet() -> String { KernelSet.current.name }

    /// Cores this process may run on.
    public static var cores: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// The 1-, 5- and 15-minute load averages (runnable threads, from /proc/loadavg), or nil where the
    /// system does not say.
    public static func loadAverage() -> (one: Double, five: Double, fifteen: Double)? {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ").prefix(3).compactMap { Double($0) }
        guard fields.count == 3 else { return nil }
        return (fields[0], fields[1], fields[2])
    }

    /// The CPU's model name (from /proc/cpuinfo), or "unknown CPU".
    public static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return "unknown CPU" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }

    /// One line for a table's footer: kernel set, cores, load average, CPU and Stoke version.
    public static func summary() -> String {
        let load = loadAverage().map { String(format: "load average %.2f %.2f %.2f", $0.one, $0.five, $0.fifteen) } ?? "load average unknown"
        return "kernel set \(kernelSet()), \(cores) cores, \(load), \(cpuModel()), Stoke \(StokeVersion.string)"
    }

    /// The same facts for `report.json`.
    public static var json: [String: Any] {
        var document: [String: Any] = ["kernel_set": kernelSet(), "cores": cores, "cpu": cpuModel(), "stoke_version": StokeVersion.string]
        if let load = loadAverage() { document["load_average"] = [load.one, load.five, load.fifteen] }
        return document
    }
}
