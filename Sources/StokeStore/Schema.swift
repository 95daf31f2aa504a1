import Foundation

/// One field of a store: a dataset at the root whose axis 0 is the sample axis.
public struct FieldSpec: Sendable, Equatable, Codable {
    /// Dataset name (no `/`).
    public var name: String
    public var dtype: DType
    /// Shape of one sample (e.g. `[1, 28, 28]`); empty for a scalar per sample such as a label.
    public var sampleShape: [Int]

    public init(name: String, dtype: DType, sampleShape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.sampleShape = sampleShape
    }

    /// Bytes per sample.
    public var sampleBytes: Int { sampleShape.reduce(dtype.size, *) }
}

/// How many samples go in one chunk.
public enum Chunking: Sendable, Equatable {
    /// About this many bytes per chunk (whole samples, at least one).
    case bytes(Int)
    /// Exactly this many samples per chunk.
    case samples(Int)

    /// Samples per chunk for a field.
    public func samplesPerChunk(sampleBytes: Int) -> Int {
        switch self {
        case .samples(let count): max(1, count)
        case .bytes(let bytes): max(1, bytes / max(1, sampleBytes))
        }
    }
}

/// The schema Stoke records in every store's root attribute `stoke` (JSON).
struct StoreSchema: Codable, Equatable {
    static let attributeName = "stoke"
    static let currentVersion = 1

    struct Field: Codable, Equatable {
        var name: String
        var dtype: DType
        var shape: [Int]
        var codec: String
        var chunk_samples: Int
        var checksum: String
    }

    var format: String = "stoke-store"
    var format_version: Int = StoreSchema.currentVersion
    var samples: Int
    var fields: [Field]
    var chunk_index: String = ChunkIndexFile.groupName
    var created: String
    var stoke_version: String

    func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    static func parse(_ text: String) -> StoreSchema? {
        try? JSONDecoder().decode(StoreSchema.self, from: Data(text.utf8))
    }
}

/// Stoke's version, recorded in stores it writes.
public enum StokeVersion {
    public static let string = "0.1.0"
}

/// Where the persisted chunk address index lives: one contiguous `uint64 [chunks, 3]` dataset per field
/// (file offset, stored bytes, filter mask) in the group `_stoke_index`.
enum ChunkIndexFile {
    static let groupName = "_stoke_index"
    static let columns = 3
}
