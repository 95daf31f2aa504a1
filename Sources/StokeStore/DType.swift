/// Element types a store field can hold. Raw values are the names the CLI and the JSON schema use.
public enum DType: String, CaseIterable, Sendable, Codable {
    case u8, i8, u16, i16, u32, i32, i64, f16, f32, f64

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .u8, .i8: 1
        case .u16, .i16, .f16: 2
        case .u32, .i32, .f32: 4
        case .i64, .f64: 8
        }
    }

    public var isFloat: Bool { self == .f16 || self == .f32 || self == .f64 }

    /// The numpy type string for little-endian data (`<f4`, `|u1`, …).
    public var numpyDescr: String {
        switch self {
        case .u8: "|u1"
        case .i8: "|i1"
        case .u16: "<u2"
        case .i16: "<i2"
        case .u32: "<u4"
        case .i32: "<i4"
        case .i64: "<i8"
        case .f16: "<f2"
        case .f32: "<f4"
        case .f64: "<f8"
        }
    }

    /// Parses a numpy type code such as `u1`, `f4` or `i8` (without byte-order prefix).
    public init?(numpyCode: String) {
        switch numpyCode {
        case "u1", "b1": self = .u8
        case "i1": self = .i8
        case "u2": self = .u16
        case "i2": self = .i16
        case "u4": self = .u32
        case "i4": self = .i32
        case "i8": self = .i64
        case "f2": self = .f16
        case "f4": self = .f32
        case "f8": self = .f64
        default: return nil
        }
    }
}
