import StokeStore

/// An IDX file (the MNIST / Fashion-MNIST format), raw or gzip-compressed: 2 zero bytes, a type code, the
/// number of dimensions, then each dimension as a big-endian UInt32 and the big-endian elements in C order.
public struct IDXArray: ArraySource {
    public let path: String
    public let dtype: DType
    public let shape: [Int]
    private let bytes: SourceBytes
    private let dataOffset: Int

    /// Reads the header; the elements stay where they are (mapped, or in the gunzipped buffer).
    public init(path: String) throws(SourceError) {
        self.path = path
        bytes = try SourceBytes.openMaybeGzip(path)
        guard let magic = bytes.array(at: 0, count: 4), magic[0] == 0, magic[1] == 0 else {
            throw SourceError(path: path, reason: "not an IDX file (the first two bytes must be zero)")
        }
        switch magic[2] {
        case 0x08: dtype = .u8
        case 0x09: dtype = .i8
        case 0x0B: dtype = .i16
        case 0x0C: dtype = .i32
        case 0x0D: dtype = .f32
        case 0x0E: dtype = .f64
        default: throw SourceError(path: path, reason: "IDX type code 0x\(String(magic[2], radix: 16)) is not one of 08 09 0B 0C 0D 0E")
        }
        let rank = Int(magic[3])
        guard rank >= 1 else { throw SourceError(path: path, reason: "IDX header declares 0 dimensions; there is no sample axis") }
        guard let dims = bytes.array(at: 4, count: 4 * rank) else {
            throw SourceError(path: path, reason: "IDX header of \(rank) dimensions runs past the end of the file")
        }
        shape = (0..<rank).map { axis in (0..<4).reduce(0) { $0 << 8 | Int(dims[4 * axis + $1]) } }
        dataOffset = 4 + 4 * rank
        var elements = 1
        for dimension in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw SourceError(path: path, reason: "IDX shape \(shape) overflows") }
            elements = product
        }
        // Zero elements with samples declared: a 16-byte file could name 2^32 - 1 empty samples and
        // keep a reader looping over them.
        guard elements > 0 || shape[0] == 0 else {
            throw SourceError(path: path, reason: "IDX shape \(shape) has \(shape[0]) samples of 0 elements each")
        }
        let (needed, overflow) = elements.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, needed == bytes.count - dataOffset else {
            throw SourceError(
                path: path,
                reason: "IDX shape \(shape) of \(dtype.rawValue) needs \(needed) bytes after the header, the file has \(bytes.count - dataOffset)")
        }
    }

    public func forEachBatch(batchRows: Int, _ body: (Range<Int>, UnsafeRawBufferPointer) throws -> Void) throws {
        let step = max(1, batchRows)
        let size = dtype.size
        var swapped: [UInt8] = []
        var start = 0
        while start < count {
            let rows = start..<min(count, start + step)
            guard let raw = unsafe bytes.bytes(at: dataOffset + rows.lowerBound * sampleBytes, count: rows.count * sampleBytes) else {
                throw SourceError(path: path, reason: "rows \(rows) lie past the end of the file")
            }
            if size == 1 {
                try unsafe body(rows, raw)
            } else {
                // IDX is big-endian; stores are little-endian.
                swapped.removeAll(keepingCapacity: true)
                swapped.reserveCapacity(raw.count)
                for element in stride(from: 0, to: raw.count, by: size) {
                    for byte in (0..<size).reversed() { swapped.append(unsafe raw[element + byte]) }
                }
                try unsafe swapped.withUnsafeBytes { try unsafe body(rows, $0) }
            }
            start = rows.upperBound
        }
    }

    /// The values widened to Int64 (labels are stored as int64 whatever their IDX type).
    public func int64Values() throws -> [Int64] {
        var values: [Int64] = []
        values.reserveCapacity(shape.reduce(1, *))
        try unsafe forEachBatch(batchRows: 1 << 16) { _, raw in
            let size = dtype.size
            for element in stride(from: 0, to: raw.count, by: size) {
                switch dtype {
                case .u8: values.append(Int64(unsafe raw[element]))
                case .i8: values.append(Int64(Int8(bitPattern: unsafe raw[element])))
                case .i16: values.append(Int64(Int16(bitPattern: UInt16(unsafe raw[element]) | UInt16(unsafe raw[element + 1]) << 8)))
                case .i32: values.append(Int64(Int32(bitPattern: (0..<4).reduce(UInt32(0)) { unsafe $0 | UInt32(raw[element + $1]) << (8 * $1) })))
                default: throw SourceError(path: path, reason: "labels of type \(dtype.rawValue) are not integers")
                }
            }
        }
        return values
    }
}
