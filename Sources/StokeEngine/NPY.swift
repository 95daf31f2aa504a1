import Foundation

/// NumPy `.npy` files (format versions 1-3), for feeding models and writing their outputs.
///
/// Reads little-endian float32/float64 (stored as float32) and int8/16/32/64, uint8/16, bool
/// (stored as int64) in C order; writes float32 (`<f4`) and int64 (`<i8`) in format 1.0.
public enum NPY {
    /// Decodes a `.npy` file.
    ///
    /// - Throws: `EngineError.badInput` naming what is wrong (magic, header, dtype, Fortran
    ///   order, size).
    public static func decode(_ bytes: [UInt8]) throws(EngineError) -> Tensor {
        func fail(_ detail: String) -> EngineError { .badInput("not a readable .npy file: \(detail)") }
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw fail("missing \\x93NUMPY magic") }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated header length") }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw fail("format version \(major) (1-3 supported)")
        }
        guard headerStart + headerLength <= bytes.count else { throw fail("header runs past the end of the file") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard let descr = value(of: "descr", in: header)?.trimmingCharacters(in: CharacterSet(charactersIn: "'\"")),
              let fortran = value(of: "fortran_order", in: header),
              let shapeText = value(of: "shape", in: header) else { throw fail("header \(header) lacks descr/fortran_order/shape") }
        guard fortran == "False" else { throw fail("Fortran-order arrays are not supported (save with np.ascontiguousarray)") }
        var shape: [Int] = []
        for part in shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "()")).split(separator: ",") {
            let text = part.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            guard let extent = Int(text), extent >= 0 else { throw fail("shape \(shapeText)") }
            shape.append(extent)
        }
        let count = elementCount(shape)
        let dataStart = headerStart + headerLength
        let width: Int
        switch descr {
        case "<f4", "<i4", "<u4": width = 4
        case "<f8", "<i8": width = 8
        case "<i2", "<u2": width = 2
        case "|u1", "|i1", "|b1", "<u1", "<i1": width = 1
        default: throw fail("dtype \(descr) (little-endian float32/64, int8-64, uint8-16, bool supported)")
        }
        guard bytes.count - dataStart == count * width else {
            throw fail("\(bytes.count - dataStart) data bytes for shape \(shape) of \(descr) (needs \(count * width))")
        }
        if descr == "<f4" {
            let tensor = Tensor(zeros: .float32, shape: shape)
            tensor.storage.copyBytes(bytes, range: dataStart..<bytes.count)
            return tensor
        }
        if descr == "<i8" {
            let tensor = Tensor(zeros: .int64, shape: shape)
            tensor.storage.copyBytes(bytes, range: dataStart..<bytes.count)
            return tensor
        }
        func word(_ index: Int) -> UInt64 {
            (0..<width).reduce(UInt64(0)) { $0 | UInt64(bytes[dataStart + index * width + $1]) << (8 * UInt64($1)) }
        }
        switch descr {
        case "<f8": return Tensor(shape: shape, floats: (0..<count).map { Float(Double(bitPattern: word($0))) })
        case "<i4": return Tensor(shape: shape, int64s: (0..<count).map { Int64(Int32(truncatingIfNeeded: word($0))) })
        case "<i2": return Tensor(shape: shape, int64s: (0..<count).map { Int64(Int16(truncatingIfNeeded: word($0))) })
        case "|i1", "<i1": return Tensor(shape: shape, int64s: (0..<count).map { Int64(Int8(truncatingIfNeeded: word($0))) })
        default: return Tensor(shape: shape, int64s: (0..<count).map { Int64(word($0)) })
        }
    }

    /// Encodes a tensor as a version 1.0 `.npy` file (`<f4` or `<i8`, C order).
    public static func encode(_ tensor: Tensor) -> [UInt8] {
        let descr = tensor.elementType == .float32 ? "<f4" : "<i8"
        let shape = tensor.shape.count == 1 ? "(\(tensor.shape[0]),)" : "(\(tensor.shape.map(String.init).joined(separator: ", ")))"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        // The header (with magic and length) is padded with spaces to a multiple of 64 bytes.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var bytes: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
        bytes += [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8)
        bytes += tensor.storage.array(of: UInt8.self, count: tensor.count * tensor.elementType.byteCount)
        return bytes
    }

    /// The text after `'key':` in a header dict, up to the next top-level comma.
    private static func value(of key: String, in header: String) -> String? {
        guard let range = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else { return nil }
        var rest = header[range.upperBound...].drop { $0 == " " || $0 == ":" }
        var depth = 0
        var result = ""
        while let character = rest.first {
            if character == "(" { depth += 1 }
            if character == ")" { depth -= 1 }
            if depth == 0 && (character == "," || character == "}") { break }
            result.append(character)
            rest = rest.dropFirst()
            if depth == 0 && character == ")" { break }
        }
        return result.trimmingCharacters(in: .whitespaces)
    }
}
