import Foundation
import StokeStore

/// Which of N shards this process packs: `--shard I/N`, or the launcher's environment.
public struct ShardSpec: Sendable, Equatable, CustomStringConvertible {
    /// 0-based shard number, below `count`.
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    /// Parses `I/N` (0 <= I < N); nil when malformed.
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]), count > 0, index >= 0, index < count else {
            return nil
        }
        self.init(index: index, count: count)
    }

    public var description: String { "\(index)/\(count)" }

    /// Where the launcher's variables came from, for messages.
    public enum Launcher: String, Sendable { case openMPI = "Open MPI", mpich = "MPICH/Hydra (PMI)", srun = "Slurm srun", slurmArray = "Slurm job array" }

    /// The shard the environment gives: Open MPI (`OMPI_COMM_WORLD_RANK/SIZE`), MPICH/Hydra
    /// (`PMI_RANK/SIZE`), Slurm under srun (`SLURM_PROCID/NTASKS`, only with more than one task) and a
    /// Slurm job array (`SLURM_ARRAY_TASK_ID/COUNT`, the IDs numbered from `SLURM_ARRAY_TASK_MIN`, 0 by
    /// default). Nil when none applies. Throws when a launcher's variables are present but inconsistent.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(SourceError) -> (ShardSpec, Launcher)? {
        func pair(_ rankName: String, _ sizeName: String, _ launcher: Launcher, offset: Int = 0) throws(SourceError) -> (ShardSpec, Launcher)? {
            guard let rankText = environment[rankName], let sizeText = environment[sizeName] else { return nil }
            guard let rank = Int(rankText), let size = Int(sizeText), size > 0, rank - offset >= 0, rank - offset < size else {
                throw SourceError(path: "environment", reason: "\(launcher.rawValue): \(rankName)=\(rankText) and \(sizeName)=\(sizeText) are not a rank below the size")
            }
            return (ShardSpec(index: rank - offset, count: size), launcher)
        }
        if let found = try pair("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", .openMPI) { return found }
        if let found = try pair("PMI_RANK", "PMI_SIZE", .mpich) { return found }
        if let found = try pair("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", .slurmArray,
                                offset: Int(environment["SLURM_ARRAY_TASK_MIN"] ?? "0") ?? 0) {
            return found
        }
        // SLURM_PROCID is set in every Slurm step, also a one-task batch script: only several tasks shard.
        if let found = try pair("SLURM_PROCID", "SLURM_NTASKS", .srun), found.0.count > 1 { return found }
        return nil
    }
}

/// Cutting sources into shards and naming the shard stores.
public enum Sharding {
    /// The placeholder an output path takes for the shard's name.
    public static let placeholder = "{shard}"

    /// The global sample range of shard `shard.index` of `shard.count` over `total` samples: contiguous,
    /// cut at multiples of `alignment` (the samples per chunk, so each shard's chunks are the joined
    /// store's chunks) and balanced to within one alignment unit.
    public static func range(of shard: ShardSpec, total: Int, alignment: Int) throws(SourceError) -> Range<Int> {
        let unit = max(1, alignment)
        let units = (total + unit - 1) / unit
        guard units >= shard.count else {
            throw SourceError(
                path: "--shard \(shard)",
                reason: "\(total) samples make \(units) chunk(s) of \(unit); \(shard.count) shards would leave some empty (use fewer shards or --chunk-samples)")
        }
        let first = shard.index * units / shard.count
        let last = (shard.index + 1) * units / shard.count
        return min(total, first * unit)..<min(total, last * unit)
    }

    /// The shard's name in a path: `00003-of-00008` (five digits, more when N needs them).
    public static func name(of shard: ShardSpec) -> String {
        let width = max(5, String(shard.count - 1).count)
        func padded(_ value: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(padded(shard.index))-of-\(padded(shard.count))"
    }

    /// The shard's store path: `{shard}` in `template` replaced by the shard's name, or, without the
    /// placeholder, the name inserted before the extension (`data.h5` -> `data-00000-of-00002.h5`).
    public static func path(_ template: String, shard: ShardSpec) -> String {
        if template.contains(placeholder) { return template.replacingOccurrences(of: placeholder, with: name(of: shard)) }
        let url = URL(fileURLWithPath: template)
        let ext = url.pathExtension
        let stem = ext.isEmpty ? template : String(template.dropLast(ext.count + 1))
        return stem + "-" + name(of: shard) + (ext.isEmpty ? "" : "." + ext)
    }

    /// Where the joined store of a sharded pack goes: `template` without the placeholder and a
    /// separator before it (`data-{shard}.h5` -> `data.h5`), or `template` itself.
    public static func joinedPath(_ template: String) -> String {
        guard template.contains(placeholder) else { return template }
        for separator in ["-", "_", "."] where template.contains(separator + placeholder) {
            return template.replacingOccurrences(of: separator + placeholder, with: "")
        }
        return template.replacingOccurrences(of: placeholder, with: "joined")
    }

    /// SHA-256 of a source list (each entry's text and label, in order): the same in every shard of one pack.
    public static func listHash(_ entries: [String]) -> String {
        var hash = SHA256()
        for entry in entries {
            var bytes = Array(entry.utf8)
            bytes.append(0)
            hash.update(bytes)
        }
        return hash.finalizeHex()
    }
}

extension ImageList {
    /// The images of `range`, keeping the whole list's classes (so every shard records the same recipe).
    public func slice(_ range: Range<Int>) -> ImageList {
        ImageList(root: root, paths: Array(paths[range]), labels: Array(labels[range]), classes: classes)
    }

    /// The list's hash for `ShardPlace`: each path relative to the root, with its label.
    public var listHash: String {
        let prefix = root.hasSuffix("/") ? root : root + "/"
        return Sharding.listHash(zip(paths, labels).map { path, label in
            (path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path) + "\t" + String(label)
        })
    }
}

/// Rows `range` of another array source, as an array source of its own (a shard's slice).
public struct RowSlice: ArraySource {
    public let base: any ArraySource
    public let range: Range<Int>

    public init(_ base: any ArraySource, rows range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= base.count, "slice outside the source")
        self.base = base
        self.range = range
    }

    public var path: String { base.path }
    public var dtype: DType { base.dtype }
    public var shape: [Int] { [range.count] + base.sampleShape }

    public func forEachBatch(batchRows: Int, _ body: (Range<Int>, UnsafeRawBufferPointer) throws -> Void) throws {
        let sampleBytes = base.sampleBytes
        try unsafe base.forEachBatch(batchRows: batchRows) { rows, bytes in
            let wanted = max(rows.lowerBound, range.lowerBound)..<min(rows.upperBound, range.upperBound)
            guard !wanted.isEmpty else { return }
            let from = (wanted.lowerBound - rows.lowerBound) * sampleBytes
            try unsafe body(
                (wanted.lowerBound - range.lowerBound)..<(wanted.upperBound - range.lowerBound),
                UnsafeRawBufferPointer(rebasing: bytes[from..<(from + wanted.count * sampleBytes)]))
        }
    }
}
