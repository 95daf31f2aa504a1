import Foundation
import StokeStore

/// Errors reading a source file: they name the file and the field or position at fault.
public struct SourceError: Error, CustomStringConvertible, Equatable, Sendable {
    public var path: String
    public var reason: String
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
    /// One line; control characters from file names or contents are written as visible escapes.
    public var description: String { escapedForTerminal("\(path): \(reason)") }
}

/// A NumPy `.npy` array (format versions 1, 2 and 3), memory-mapped. Any byte order; C order is read as
/// it is, Fortran order is converted to C order row by row.
public struct NPYArray: ArraySource {
    public let path: String
    public let dtype: DType
    /// Full shape; axis 0 is the sample axis (a 0-d array is refused).
    public let shape: [Int]
    public let fortranOrder: Bool
    public let bigEndian: Bool
    private let map: SourceBytes
    private let dataOffset: Int

    public init(path: String) throws(SourceError) {
        try self.init(bytes: SourceBytes(mapping: path))
    }

    /// Reads an NPY document held in memory or in a slice of a file (an NPZ member); errors name
    /// `bytes.path`.
    public init(bytes source: SourceBytes) throws(SourceError) {
        let path = source.path
        self.path = path
        map = source
        guard let prefix = map.array(at: 0, count: min(map.count, 12)),
              prefix.count >= 10, prefix[0] == 0x93, Array(prefix[1..<6]) == Array("NUMPY".utf8) else {
            throw SourceError(path: path, reason: "not an NPY file (magic bytes missing)")
        }
        let major = prefix[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(prefix[8]) | Int(prefix[9]) << 8
            headerStart = 10
        case 2, 3:
            guard prefix.count >= 12 else { throw SourceError(path: path, reason: "NPY v\(major) header length is truncated") }
            headerLength = Int(prefix[8]) | Int(prefix[9]) << 8 | Int(prefix[10]) << 16 | Int(prefix[11]) << 24
            headerStart = 12
        default:
            throw SourceError(path: path, reason: "NPY format version \(major) is not supported (1, 2 or 3)")
        }
        guard let headerBytes = unsafe map.bytes(at: headerStart, count: headerLength) else {
            throw SourceError(path: path, reason: "NPY header of \(headerLength) bytes runs past the end of the file")
        }
        let header = unsafe String(decoding: headerBytes, as: UTF8.self)
        let fields = try NPYHeader.parse(header, path: path)
        guard let byteOrder = fields.descr.first, "<>|=".contains(byteOrder),
              let dtype = DType(numpyCode: String(fields.descr.dropFirst())) else {
            throw SourceError(path: path, reason: "field 'descr': dtype '\(fields.descr)' is not supported (u1 i1 b1 u2 i2 i4 i8 f2 f4 f8)")
        }
        guard !fields.shape.isEmpty else { throw SourceError(path: path, reason: "field 'shape': a 0-d array has no sample axis") }
        self.dtype = dtype
        self.shape = fields.shape
        self.fortranOrder = fields.fortranOrder
        self.bigEndian = byteOrder == ">" && dtype.size > 1
        dataOffset = headerStart + headerLength
        let (count, overflow) = fields.shape.reduce((1, false)) { partial, dimension in
            let product = partial.0.multipliedReportingOverflow(by: dimension)
            return (product.partialValue, partial.1 || product.overflow)
        }
        let (bytes, overflowBytes) = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, !overflowBytes, bytes <= map.count - dataOffset else {
            throw SourceError(path: path, reason: "data: shape \(fields.shape) of \(dtype.rawValue) needs \(bytes) bytes, the file has \(max(0, map.count - dataOffset)) after the header")
        }
    }

    /// The total bytes (header and data) an NPY document declares, from its first bytes; nil when
    /// `prefix` is too short to hold the whole header. Throws when the header is malformed.
    static func declaredBytes(prefix: [UInt8], path: String) throws(SourceError) -> Int? {
        guard prefix.count >= 10 else { return nil }
        guard prefix[0] == 0x93, Array(prefix[1..<6]) == Array("NUMPY".utf8) else {
            throw SourceError(path: path, reason: "not an NPY file (magic bytes missing)")
        }
        let headerStart = prefix[6] == 1 ? 10 : 12
        guard prefix.count >= headerStart else { return nil }
        let headerLength = prefix[6] == 1 ? Int(prefix[8]) | Int(prefix[9]) << 8
            : Int(prefix[8]) | Int(prefix[9]) << 8 | Int(prefix[10]) << 16 | Int(prefix[11]) << 24
        guard prefix.count >= headerStart + headerLength else { return nil }
        let fields = try NPYHeader.parse(String(decoding: prefix[headerStart..<(headerStart + headerLength)], as: UTF8.self), path: path)
        guard let code = fields.descr.first.map({ _ in String(fields.descr.dropFirst()) }), let dtype = DType(numpyCode: code) else {
            throw SourceError(path: path, reason: "field 'descr': dtype '\(fields.descr)' is not supported (u1 i1 b1 u2 i2 u4 i4 i8 f2 f4 f8)")
        }
        guard let data = MemoryBudget.product(fields.shape + [dtype.size]), let total = MemoryBudget.product([1, data]),
              total <= Int.max - headerStart - headerLength else {
            throw SourceError(path: path, reason: "field 'shape': \(fields.shape) of \(dtype.rawValue) overflows a size")
        }
        return headerStart + headerLength + total
    }

    /// Calls `body` with rows `[start, start + n)` as little-endian C-order bytes, `batchRows` at a time.
    /// C-order little-endian data is passed straight from the map, without a copy.
    public func forEachBatch(batchRows: Int, _ body: (Range<Int>, UnsafeRawBufferPointer) throws -> Void) throws {
        unsafe try forEachBatch(batchRows: batchRows, in: nil, body)
    }

    /// The rows of `range` (default: all), `batchRows` at a time, as `forEachBatch(batchRows:_:)` gives them.
    public func forEachBatch(
        batchRows: Int, in range: Range<Int>?, _ body: (Range<Int>, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let range = range ?? 0..<count
        guard range.lowerBound >= 0, range.upperBound <= count else {
            throw SourceError(path: path, reason: "rows \(range) are outside the array's \(count) samples")
        }
        let step = max(1, batchRows)
        var converted: [UInt8] = []
        let innerOffsets = fortranOrder ? fortranInnerOffsets() : []
        var start = range.lowerBound
        while start < range.upperBound {
            let rows = start..<min(range.upperBound, start + step)
            if !fortranOrder && !bigEndian {
                guard let bytes = unsafe map.bytes(at: dataOffset + rows.lowerBound * sampleBytes, count: rows.count * sampleBytes) else {
                    throw SourceError(path: path, reason: "rows \(rows) lie past the end of the file")
                }
                try unsafe body(rows, bytes)
            } else {
                converted.removeAll(keepingCapacity: true)
                converted.reserveCapacity(rows.count * sampleBytes)
                let size = dtype.size
                guard let all = unsafe map.bytes(at: dataOffset, count: count * sampleBytes) else {
                    throw SourceError(path: path, reason: "data lies past the end of the file")
                }
                for row in rows {
                    if fortranOrder {
                        for inner in innerOffsets {
                            let element = (row + inner) * size
                            unsafe appendElement(from: all, at: element, size: size, to: &converted)
                        }
                    } else {
                        for element in stride(from: row * sampleBytes, to: (row + 1) * sampleBytes, by: size) {
                            unsafe appendElement(from: all, at: element, size: size, to: &converted)
                        }
                    }
                }
                try unsafe converted.withUnsafeBytes { try unsafe body(rows, $0) }
            }
            start = rows.upperBound
        }
    }

    private func appendElement(from all: UnsafeRawBufferPointer, at offset: Int, size: Int, to output: inout [UInt8]) {
        if bigEndian {
            for byte in (0..<size).reversed() { output.append(unsafe all[offset + byte]) }
        } else {
            for byte in 0..<size { output.append(unsafe all[offset + byte]) }
        }
    }

    /// For Fortran order: the element offset of each C-order position within a sample, relative to the
    /// sample's first element (axis 0 has stride 1 in Fortran order).
    private func fortranInnerOffsets() -> [Int] {
        let inner = sampleShape
        var strides: [Int] = []
        var running = shape[0]
        for dimension in inner {
            strides.append(running)
            running *= dimension
        }
        var offsets: [Int] = []
        offsets.reserveCapacity(inner.reduce(1, *))
        var index = [Int](repeating: 0, count: inner.count)
        let total = inner.reduce(1, *)
        for _ in 0..<total {
            offsets.append(zip(index, strides).reduce(0) { $0 + $1.0 * $1.1 })
            var axis = inner.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < inner[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return offsets
    }
}

/// The Python-literal header dictionary of an NPY file.
enum NPYHeader {
    struct Fields { var descr: String; var fortranOrder: Bool; var shape: [Int] }

    static func parse(_ text: String, path: String) throws(SourceError) -> Fields {
        func value(of key: String) throws(SourceError) -> Substring {
            guard let keyRange = text.range(of: "'\(key)'") ?? text.range(of: "\"\(key)\""),
                  let colon = text[keyRange.upperBound...].firstIndex(of: ":") else {
                throw SourceError(path: path, reason: "NPY header has no '\(key)' field")
            }
            return text[text.index(after: colon)...].drop { $0 == " " }
        }
        let descrText = try value(of: "descr")
        guard let quote = descrText.first, quote == "'" || quote == "\"",
              let end = descrText.dropFirst().firstIndex(of: quote) else {
            throw SourceError(path: path, reason: "field 'descr' is not a simple dtype string (structured arrays are not supported)")
        }
        let descr = String(descrText[descrText.index(after: descrText.startIndex)..<end])
        let fortranText = try value(of: "fortran_order")
        let fortran: Bool
        if fortranText.hasPrefix("True") { fortran = true } else if fortranText.hasPrefix("False") { fortran = false } else {
            throw SourceError(path: path, reason: "field 'fortran_order' is neither True nor False")
        }
        let shapeText = try value(of: "shape")
        guard shapeText.first == "(", let close = shapeText.firstIndex(of: ")") else {
            throw SourceError(path: path, reason: "field 'shape' is not a tuple")
        }
        var shape: [Int] = []
        for part in shapeText[shapeText.index(after: shapeText.startIndex)..<close].split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: " L")
            if trimmed.isEmpty { continue }
            guard let dimension = Int(trimmed), dimension >= 0 else {
                throw SourceError(path: path, reason: "field 'shape': '\(trimmed)' is not a dimension")
            }
            shape.append(dimension)
        }
        return Fields(descr: descr, fortranOrder: fortran, shape: shape)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in characters: String) -> Substring {
        var result = self
        while let first = result.first, characters.contains(first) { result = result.dropFirst() }
        while let last = result.last, characters.contains(last) { result = result.dropLast() }
        return result
    }
}
