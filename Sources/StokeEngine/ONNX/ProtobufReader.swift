/// A bounds-checked reader for the protobuf wire format (the subset ONNX uses).
///
/// Every read checks the remaining length first, so malformed input produces
/// `EngineError.malformedProtobuf` naming the message field being decoded, never a trap.
/// The reader works on index ranges into one shared byte array: nested messages and
/// `bytes` fields are sub-ranges, so decoding does not copy the payload.
struct ProtobufReader {
    /// Wire types of the protobuf encoding.
    enum WireType: Int {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    let bytes: [UInt8]
    private(set) var position: Int
    let end: Int
    /// The message path, used in error messages (e.g. `ModelProto.graph.node[2]`).
    let path: String

    init(bytes: [UInt8], range: Range<Int>, path: String) {
        self.bytes = bytes
        self.position = range.lowerBound
        self.end = range.upperBound
        self.path = path
    }

    var isAtEnd: Bool { position >= end }

    func error(_ field: String, _ reason: String, at offset: Int? = nil) -> EngineError {
        .malformedProtobuf(field: field.isEmpty ? path : "\(path).\(field)", offset: offset ?? position, reason: reason)
    }

    /// Reads a base-128 varint of at most 10 bytes.
    mutating func readVarint(field: String) throws(EngineError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let start = position
        while true {
            guard position < end else { throw error(field, "truncated varint", at: start) }
            let byte = bytes[position]
            position += 1
            if shift == 63 && byte > 1 { throw error(field, "varint overflows 64 bits", at: start) }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw error(field, "varint longer than 10 bytes", at: start) }
        }
    }

    /// Reads a field key; returns nil at the end of the message.
    mutating func readKey() throws(EngineError) -> (number: Int, wireType: WireType)? {
        if isAtEnd { return nil }
        let start = position
        let key = try readVarint(field: "key")
        let number = key >> 3
        guard number > 0, number <= 536_870_911 else { throw error("key", "invalid field number \(number)", at: start) }
        guard let wireType = WireType(rawValue: Int(key & 7)) else {
            throw error("key", "invalid wire type \(key & 7) for field \(number)", at: start)
        }
        return (Int(number), wireType)
    }

    mutating func readFixed32(field: String) throws(EngineError) -> UInt32 {
        guard end - position >= 4 else { throw error(field, "truncated fixed32") }
        var value: UInt32 = 0
        for i in 0..<4 { value |= UInt32(bytes[position + i]) << (8 * UInt32(i)) }
        position += 4
        return value
    }

    mutating func readFixed64(field: String) throws(EngineError) -> UInt64 {
        guard end - position >= 8 else { throw error(field, "truncated fixed64") }
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
        position += 8
        return value
    }

    /// Reads a length prefix and returns the range of the payload, checked against the message end.
    mutating func readLengthDelimited(field: String) throws(EngineError) -> Range<Int> {
        let start = position
        let length = try readVarint(field: field)
        guard length <= UInt64(end - position) else {
            throw error(field, "length \(length) exceeds the \(end - position) bytes left in the message", at: start)
        }
        let range = position..<(position + Int(length))
        position = range.upperBound
        return range
    }

    /// Skips a field the engine does not need.
    mutating func skip(_ wireType: WireType, field: Int) throws(EngineError) {
        let name = "field \(field)"
        switch wireType {
        case .varint: _ = try readVarint(field: name)
        case .fixed64: _ = try readFixed64(field: name)
        case .fixed32: _ = try readFixed32(field: name)
        case .lengthDelimited: _ = try readLengthDelimited(field: name)
        case .startGroup, .endGroup: throw error(name, "groups are not used by ONNX")
        }
    }

    /// Checks that a field arrived with the wire type its schema declares.
    func expect(_ wireType: WireType, _ expected: WireType, field: String) throws(EngineError) {
        guard wireType == expected else {
            throw error(field, "wire type \(wireType.rawValue), expected \(expected.rawValue)")
        }
    }

    /// A reader for a nested message.
    mutating func readMessage(field: String) throws(EngineError) -> ProtobufReader {
        let range = try readLengthDelimited(field: field)
        return ProtobufReader(bytes: bytes, range: range, path: "\(path).\(field)")
    }

    mutating func readString(field: String) throws(EngineError) -> String {
        let range = try readLengthDelimited(field: field)
        return String(decoding: bytes[range], as: UTF8.self)
    }

    mutating func readInt64(field: String, _ wireType: WireType) throws(EngineError) -> Int64 {
        try expect(wireType, .varint, field: field)
        return Int64(bitPattern: try readVarint(field: field))
    }

    /// Reads a 32-bit integer field; protobuf sign-extends negatives to 10 bytes, so truncate.
    mutating func readInt32(field: String, _ wireType: WireType) throws(EngineError) -> Int32 {
        try expect(wireType, .varint, field: field)
        return Int32(truncatingIfNeeded: try readVarint(field: field))
    }

    /// Reads a repeated varint field, packed (one length-delimited run) or unpacked (one value).
    mutating func readRepeatedVarints(field: String, _ wireType: WireType, into values: inout [Int64]) throws(EngineError) {
        switch wireType {
        case .varint:
            values.append(Int64(bitPattern: try readVarint(field: field)))
        case .lengthDelimited:
            var packed = try readMessage(field: field)
            while !packed.isAtEnd { values.append(Int64(bitPattern: try packed.readVarint(field: "")) ) }
        default:
            throw error(field, "wire type \(wireType.rawValue) for a repeated varint")
        }
    }

    /// Reads a repeated float field, packed or unpacked.
    mutating func readRepeatedFloats(field: String, _ wireType: WireType, into values: inout [Float]) throws(EngineError) {
        switch wireType {
        case .fixed32:
            values.append(Float(bitPattern: try readFixed32(field: field)))
        case .lengthDelimited:
            let range = try readLengthDelimited(field: field)
            guard range.count % 4 == 0 else {
                throw error(field, "packed float run of \(range.count) bytes is not a multiple of 4", at: range.lowerBound)
            }
            values.reserveCapacity(values.count + range.count / 4)
            var sub = ProtobufReader(bytes: bytes, range: range, path: path)
            while !sub.isAtEnd { values.append(Float(bitPattern: try sub.readFixed32(field: field))) }
        default:
            throw error(field, "wire type \(wireType.rawValue) for a repeated float")
        }
    }

    /// Reads a repeated double field, packed or unpacked.
    mutating func readRepeatedDoubles(field: String, _ wireType: WireType, into values: inout [Double]) throws(EngineError) {
        switch wireType {
        case .fixed64:
            values.append(Double(bitPattern: try readFixed64(field: field)))
        case .lengthDelimited:
            let range = try readLengthDelimited(field: field)
            guard range.count % 8 == 0 else {
                throw error(field, "packed double run of \(range.count) bytes is not a multiple of 8", at: range.lowerBound)
            }
            var sub = ProtobufReader(bytes: bytes, range: range, path: path)
            while !sub.isAtEnd { values.append(Double(bitPattern: try sub.readFixed64(field: field))) }
        default:
            throw error(field, "wire type \(wireType.rawValue) for a repeated double")
        }
    }
}
