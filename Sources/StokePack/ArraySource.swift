import StokeStore

/// A source of fixed-shape samples along axis 0 (NPY, an NPZ member, IDX, CSV columns).
public protocol ArraySource: Sendable {
    /// Named in errors and recorded in provenance.
    var path: String { get }
    var dtype: DType { get }
    /// Full shape; axis 0 is the sample axis.
    var shape: [Int] { get }
    /// Calls `body` with rows `[start, start + n)` as little-endian C-order bytes, `batchRows` at a time.
    func forEachBatch(batchRows: Int, _ body: (Range<Int>, UnsafeRawBufferPointer) throws -> Void) throws
}

extension ArraySource {
    /// Samples (length of axis 0).
    public var count: Int { shape[0] }
    /// Shape of one sample.
    public var sampleShape: [Int] { Array(shape.dropFirst()) }
    /// Bytes per sample.
    public var sampleBytes: Int { sampleShape.reduce(dtype.size, *) }
}

/// An array held in memory in its final form (little-endian, C order): converted IDX labels, CSV columns.
public struct MemoryArray: ArraySource {
    public let path: String
    public let dtype: DType
    public let shape: [Int]
    /// Little-endian C-order element bytes, `shape.reduce(1, *) * dtype.size` of them.
    public let storage: [UInt8]

    public init(path: String, dtype: DType, shape: [Int], storage: [UInt8]) {
        precondition(storage.count == shape.reduce(dtype.size, *), "storage does not match shape")
        self.path = path
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
    }

    /// Packs typed values (their byte layout is little-endian on every platform Stoke runs on).
    public init<T: BitwiseCopyable>(path: String, dtype: DType, shape: [Int], values: [T]) {
        precondition(MemoryLayout<T>.size == dtype.size, "element type does not match dtype")
        self.init(path: path, dtype: dtype, shape: shape, storage: unsafe values.withUnsafeBytes { unsafe Array($0) })
    }

    public func forEachBatch(batchRows: Int, _ body: (Range<Int>, UnsafeRawBufferPointer) throws -> Void) throws {
        let step = max(1, batchRows)
        try unsafe storage.withUnsafeBytes { all in
            var start = 0
            while start < count {
                let rows = start..<min(count, start + step)
                try unsafe body(rows, UnsafeRawBufferPointer(rebasing: all[(rows.lowerBound * sampleBytes)..<(rows.upperBound * sampleBytes)]))
                start = rows.upperBound
            }
        }
    }
}
