import StokeStore

/// A numeric CSV table: a header row naming the columns, then one sample per line. Every column but the
/// label column becomes one element of the `data` field (float32, `[N, columns]`); the label column, when
/// named, becomes int64 labels. Fields are comma-separated; surrounding spaces and double quotes are
/// dropped; blank lines are skipped. Errors name the line (1-based, as editors count) and the column.
public struct CSVTable: Sendable {
    public let path: String
    /// Names of the data columns, in file order (the label column excluded).
    public let columns: [String]
    public let labelColumn: String?
    /// `[samples, columns.count]` float32 values.
    public let data: MemoryArray
    /// `[samples]` int64 labels when a label column was named.
    public let labels: MemoryArray?

    public init(path: String, labelColumn: String? = nil) throws(SourceError) {
        self.path = path
        self.labelColumn = labelColumn
        let file = try SourceBytes(mapping: path)
        let text = unsafe String(decoding: file.bytes(at: 0, count: file.count)!, as: UTF8.self)
        var header: [String]?
        var labelIndex: Int?
        var values: [Float] = []
        var labelValues: [Int64] = []
        var lineNumber = 0
        // "\r\n" is one Character in Swift, so split on both line ends.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(CSVTable.clean)
            guard let names = header else {
                let names = cells.map(String.init)
                if let duplicate = names.enumerated().first(where: { names[..<$0.offset].contains($0.element) }) {
                    throw SourceError(path: path, reason: "line \(lineNumber): column name '\(duplicate.element)' appears twice in the header")
                }
                if let labelColumn {
                    guard let index = names.firstIndex(of: labelColumn) else {
                        throw SourceError(path: path, reason: "line \(lineNumber): no column named '\(labelColumn)' in the header (\(names.joined(separator: ", ")))")
                    }
                    labelIndex = index
                }
                guard names.count > (labelIndex == nil ? 0 : 1) else {
                    throw SourceError(path: path, reason: "line \(lineNumber): the header has no data columns")
                }
                header = names
                continue
            }
            guard cells.count == names.count else {
                throw SourceError(path: path, reason: "line \(lineNumber) has \(cells.count) fields, the header has \(names.count)")
            }
            for (column, cell) in cells.enumerated() {
                func bad(_ why: String) -> SourceError {
                    SourceError(path: path, reason: "line \(lineNumber), column \(column + 1) '\(names[column])': \(why)")
                }
                if cell.isEmpty { throw bad("empty value") }
                if column == labelIndex {
                    if let integer = Int64(cell) {
                        labelValues.append(integer)
                    } else if CSVTable.isDecimal(cell), let number = Double(cell), number.rounded() == number, abs(number) < 9.0e18 {
                        labelValues.append(Int64(number))
                    } else {
                        throw bad("label '\(cell)' is not an integer")
                    }
                } else {
                    values.append(try CSVTable.number(cell, bad))
                }
            }
        }
        guard let names = header else { throw SourceError(path: path, reason: "the file is empty (no header row)") }
        let dataColumns = names.enumerated().filter { $0.offset != labelIndex }.map(\.element)
        columns = dataColumns
        let samples = values.count / dataColumns.count
        guard samples > 0 else { throw SourceError(path: path, reason: "the file has a header but no rows") }
        data = MemoryArray(path: path, dtype: .f32, shape: [samples, dataColumns.count], values: values)
        labels = labelIndex == nil ? nil : MemoryArray(path: path, dtype: .i64, shape: [samples], values: labelValues)
    }

    /// Whether `cell` is a plain decimal number: `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`,
    /// nothing before or after it (no hexadecimal floats, no NUL bytes or other trailing characters).
    static func isDecimal(_ cell: Substring) -> Bool {
        let bytes = Array(cell.utf8)
        var at = 0
        func digits() -> Int {
            let start = at
            while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
            return at - start
        }
        if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
        var mantissa = digits()
        if at < bytes.count, bytes[at] == UInt8(ascii: ".") {
            at += 1
            mantissa += digits()
        }
        guard mantissa > 0 else { return false }
        if at < bytes.count, bytes[at] == UInt8(ascii: "e") || bytes[at] == UInt8(ascii: "E") {
            at += 1
            if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
            guard digits() > 0 else { return false }
        }
        return at == bytes.count
    }

    /// The spellings of infinity and NaN accepted as intended (as `numpy.savetxt` writes them), case-insensitively.
    static let specialValues: [String: Float] = [
        "nan": .nan, "+nan": .nan, "-nan": .nan, "inf": .infinity, "+inf": .infinity, "-inf": -.infinity,
        "infinity": .infinity, "+infinity": .infinity, "-infinity": -.infinity,
    ]

    /// A data cell as float32: a plain decimal number within float32's range, or `nan`/`inf` spelled out.
    /// Hexadecimal floats, trailing bytes and values that would round to infinity are refused.
    static func number(_ cell: Substring, _ bad: (String) -> SourceError) throws(SourceError) -> Float {
        if let special = specialValues[cell.lowercased()] { return special }
        guard isDecimal(cell), let number = Float(cell) else {
            throw bad("'\(cell)' is not a number (expected a plain decimal such as -1.5e3, or nan/inf)")
        }
        guard number.isFinite else {
            throw bad("'\(cell)' is outside float32's range (largest magnitude \(Float.greatestFiniteMagnitude)); write inf if infinity is meant")
        }
        return number
    }

    private static func clean(_ cell: Substring) -> Substring {
        var result = cell.drop { $0 == " " || $0 == "\t" }
        while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
        if result.count >= 2, result.first == "\"", result.last == "\"" { result = result.dropFirst().dropLast() }
        return result
    }
}
