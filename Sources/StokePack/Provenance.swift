import Foundation
import StokeStore

/// One source as recorded in a store's provenance: its path as given, its size in bytes and the SHA-256
/// of its content. An image folder is one record for all its files (`files` > 0) whose hash covers every
/// file's relative path, size and hash, so the attribute stays small whatever the number of files.
public struct SourceRecord: Codable, Equatable, Sendable {
    public var path: String
    public var bytes: Int
    public var sha256: String
    public var files: Int?

    public init(path: String, bytes: Int, sha256: String, files: Int? = nil) {
        self.path = path
        self.bytes = bytes
        self.sha256 = sha256
        self.files = files
    }

    /// Hashes one file's content as it is on disk (a `.gz` is hashed compressed).
    public static func file(_ path: String) throws(SourceError) -> SourceRecord {
        let source = try SourceBytes(mapping: path)
        let digest = unsafe SHA256.hex(source.bytes(at: 0, count: source.count)!)
        return SourceRecord(path: path, bytes: source.count, sha256: digest)
    }

    /// One record for many files under `root` (paths relative to it are part of the hash, in the given
    /// order). Unreadable files are hashed as their error text, so a later fix changes the digest.
    public static func folder(_ root: String, files: [String], hashOf: (String) -> (bytes: Int, sha256: String)) -> SourceRecord {
        var combined = SHA256()
        var total = 0
        for file in files {
            let (bytes, digest) = hashOf(file)
            total += bytes
            combined.update(Array("\(file)\t\(bytes)\t\(digest)\n".utf8))
        }
        return SourceRecord(path: root, bytes: total, sha256: combined.finalizeHex(), files: files.count)
    }
}

/// A file left out by `--skip-bad`, and why.
public struct SkippedFile: Codable, Equatable, Sendable {
    public var path: String
    public var reason: String
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// The root attribute `provenance` (JSON): what made the store, so a rerun can tell whether it is up to
/// date and a reader can tell where the samples came from.
public struct ProvenanceDocument: Codable, Equatable, Sendable {
    /// The command line without the executable path (stable across debug/release builds), and without
    /// the options that do not change the store's content (`--force`, `--json`, `--workers N`).
    public var arguments: [String]
    /// The full command line as typed, executable included.
    public var command: String
    public var stoke_version: String
    /// ISO 8601, UTC.
    public var created: String
    public var sources: [SourceRecord]
    /// Files left out by `--skip-bad` (at most `skippedRecordLimit` entries and `skippedByteLimit` bytes;
    /// `skipped_count` counts them all).
    public var skipped: [SkippedFile]
    public var skipped_count: Int

    /// HDF5 1.10 keeps attributes in the object header, at most 64 KiB each, so the list is capped.
    public static let skippedRecordLimit = 200
    /// Bytes of path and reason text kept in `skipped`.
    public static let skippedByteLimit = 32 << 10

    public init(arguments: [String], command: String, sources: [SourceRecord], skipped: [SkippedFile] = []) {
        self.arguments = ProvenanceDocument.contentArguments(arguments)
        self.command = command
        stoke_version = StokeVersion.string
        created = ISO8601DateFormatter().string(from: Date())
        self.sources = sources
        var kept: [SkippedFile] = []
        var bytes = 0
        for file in skipped.prefix(ProvenanceDocument.skippedRecordLimit) {
            bytes += file.path.utf8.count + file.reason.utf8.count + 32
            if bytes > ProvenanceDocument.skippedByteLimit { break }
            kept.append(file)
        }
        self.skipped = kept
        skipped_count = skipped.count
    }

    /// The arguments that decide the store's content: without `--force`, `--json` and `--workers N`
    /// (threads change the speed, never the bytes).
    public static func contentArguments(_ arguments: [String]) -> [String] {
        var kept: [String] = []
        var skipValue = false
        for argument in arguments {
            if skipValue {
                skipValue = false
            } else if argument == "--workers" {
                skipValue = true
            } else if argument != "--force" && argument != "--json" && !argument.hasPrefix("--workers=") {
                kept.append(argument)
            }
        }
        return kept
    }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    public static func parse(_ text: String) -> ProvenanceDocument? {
        try? JSONDecoder().decode(ProvenanceDocument.self, from: Data(text.utf8))
    }
}

/// What to do about a store already at the output path.
public enum ExistingStore: Equatable, Sendable {
    /// Nothing there: write it.
    case absent
    /// Made by the same arguments from sources with the same hashes, by this Stoke version, and every
    /// chunk reads back (checksums checked where the store has them): do nothing.
    case upToDate
    /// Made by the same arguments, but a source changed or the store is damaged (named in the reason): rebuild it.
    case stale(String)
    /// Something else is there (another command's store, or not a store): refuse without `--force`. The
    /// reason does not repeat the path.
    case different(String)

    /// Compares the store at `path` with what this run would write.
    public static func check(path: String, arguments: [String], sources: [SourceRecord]) -> ExistingStore {
        guard FileManager.default.fileExists(atPath: path) else { return .absent }
        guard let store = try? Store(path: path, options: StoreReadOptions(verifyChecksums: true)), let text = store.attributes["provenance"],
              let recorded = ProvenanceDocument.parse(text) else {
            return .different("already exists and has no Stoke provenance")
        }
        guard recorded.arguments == ProvenanceDocument.contentArguments(arguments) else {
            return .different("already exists, made by another command: stoke \(recorded.arguments.joined(separator: " "))")
        }
        if recorded.stoke_version != StokeVersion.string {
            return .stale("it was made by Stoke \(recorded.stoke_version)")
        }
        for source in sources where !recorded.sources.contains(source) {
            return .stale("\(source.path) changed since the store was made")
        }
        if recorded.sources.count != sources.count { return .stale("the set of sources changed") }
        // Same command and sources: the store itself must still be whole (one pass over its chunks,
        // checksums on), or a damaged store would be kept as "up to date".
        for field in store.fields {
            do throws(StoreError) {
                _ = try field.check()
            } catch {
                return .stale("its data is damaged (\(error))")
            }
        }
        return .upToDate
    }
}
