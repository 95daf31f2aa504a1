import Foundation
import StokeStore

/// A memory limit for one `stoke bench io` run, so a store larger than the limit is measured as it
/// will run in production: a cgroup v2 `memory.max` on this process where the cgroup tree is writable
/// (page cache counts against it, so the kernel evicts the store as the run reads it), else the loader
/// drops each chunk from the page cache once decoded (`posix_fadvise(DONTNEED)`), which bounds the
/// store's resident pages by the I/O prefetch window and the chunks in flight.
public final class MemoryLimit {
    public enum Mode: String, Sendable { case cgroup = "cgroup v2 memory.max", dropConsumed = "fadvise(DONTNEED) of consumed chunks" }

    public let bytes: Int
    public let mode: Mode
    /// Why the cgroup could not be used (empty when it was).
    public let cgroupReason: String
    private let cgroupDirectory: String?
    private let parentProcs: String?

    /// Applies the limit to this process; `release()` undoes the cgroup move.
    public init(bytes: Int) {
        self.bytes = bytes
        var reason = ""
        var directory: String? = nil
        var parent: String? = nil
        do {
            let membership = try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
            guard let line = membership.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else {
                throw StoreError.unsupported(path: "/proc/self/cgroup", reason: "no cgroup v2 membership")
            }
            let current = "/sys/fs/cgroup" + (line.dropFirst(3) == "/" ? "" : line.dropFirst(3))
            // Only a real cgroup2 mount will do: on a hybrid (v1) host /sys/fs/cgroup is a tmpfs where
            // these paths would be plain files. The kernel makes `cgroup.controllers` in every cgroup2
            // directory, and `memory.max` in a child when the memory controller is delegated to it.
            let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
            let cgroup2 = mounts.split(separator: "\n").contains { line in
                let parts = line.split(separator: " ")
                return parts.count > 2 && parts[1] == "/sys/fs/cgroup" && parts[2] == "cgroup2"
            }
            guard cgroup2, FileManager.default.fileExists(atPath: current + "/cgroup.controllers") else {
                throw StoreError.unsupported(path: "/sys/fs/cgroup", reason: "not a cgroup v2 mount")
            }
            let child = current + "/stoke-bench-\(getpid())"
            try FileManager.default.createDirectory(atPath: child, withIntermediateDirectories: false)
            do {
                guard FileManager.default.fileExists(atPath: child + "/memory.max") else {
                    throw StoreError.unsupported(path: child, reason: "the memory controller is not delegated here")
                }
                try "\(bytes)".write(toFile: child + "/memory.max", atomically: false, encoding: .utf8)
                try "\(getpid())".write(toFile: child + "/cgroup.procs", atomically: false, encoding: .utf8)
            } catch {
                _ = unsafe rmdir(child)
                throw error
            }
            directory = child
            parent = current + "/cgroup.procs"
        } catch {
            reason = "no writable cgroup v2 (\(error))"
        }
        cgroupDirectory = directory
        parentProcs = parent
        cgroupReason = reason
        mode = directory == nil ? .dropConsumed : .cgroup
    }

    /// Moves the process back to its cgroup and removes the one made for the run.
    public func release() {
        guard let cgroupDirectory, let parentProcs else { return }
        try? "\(getpid())".write(toFile: parentProcs, atomically: false, encoding: .utf8)
        _ = unsafe rmdir(cgroupDirectory)
    }
}
