/// Every failure StokeStore reports: typed, with the file, object and (for HDF5) the library's own
/// error-stack message, so a user sees one line that names what is at fault.
public enum StoreError: Error, Equatable, CustomStringConvertible, Sendable {
    /// An HDF5 call failed. `call` is the C function; `message` is HDF5's error stack, innermost first.
    case hdf5(call: String, path: String, object: String, message: String)
    /// A system call on the file failed (`errno` text in `message`).
    case io(path: String, operation: String, message: String)
    /// A chunk's bytes are inconsistent: a header field, a size or a checksum does not hold.
    case corruptChunk(path: String, field: String, chunk: Int, reason: String)
    /// The chunk address index disagrees with the file.
    case badIndex(path: String, field: String, reason: String)
    /// The file is not a store Stoke can use, or a field in it is malformed.
    case invalidStore(path: String, reason: String)
    /// A caller's request does not fit the store (unknown field, rows out of range, wrong buffer size…).
    case invalidArgument(String)
    /// A valid HDF5 feature Stoke does not handle on this path.
    case unsupported(path: String, reason: String)

    /// One line; control characters (from names or bytes in a file) are written as visible escapes.
    public var description: String { escapedForTerminal(rawDescription) }

    private var rawDescription: String {
        switch self {
        case let .hdf5(call, path, object, message):
            let target = object.isEmpty ? path : "\(path):\(object)"
            return "\(target): \(call) failed: \(message)"
        case let .io(path, operation, message):
            return "\(path): \(operation) failed: \(message)"
        case let .corruptChunk(path, field, chunk, reason):
            return "\(path): field '\(field)' chunk \(chunk) is corrupt: \(reason)"
        case let .badIndex(path, field, reason):
            return "\(path): chunk index of field '\(field)' is wrong: \(reason)"
        case let .invalidStore(path, reason):
            return "\(path): \(reason)"
        case let .invalidArgument(reason):
            return reason
        case let .unsupported(path, reason):
            return "\(path): unsupported: \(reason)"
        }
    }
}

/// `text` with every control character (C0, DEL, C1: terminal escapes, NUL, bell, newlines) written as
/// a visible escape (`\e`, `\0`, `\n`, `\u{9b}`…), so names and bytes taken from a file can go into a
/// one-line error message without reaching the terminal as control sequences.
public func escapedForTerminal<S: StringProtocol>(_ text: S) -> String {
    var result = ""
    result.reserveCapacity(text.utf8.count)
    for scalar in text.unicodeScalars {
        switch scalar.value {
        case 0x00: result += "\\0"
        case 0x09: result += "\\t"
        case 0x0A: result += "\\n"
        case 0x0D: result += "\\r"
        case 0x1B: result += "\\e"
        case 0x01...0x1F, 0x7F...0x9F: result += "\\u{\(String(scalar.value, radix: 16))}"
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result
}
