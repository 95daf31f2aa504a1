import Glibc

/// The most memory one request may ask for, checked before anything is allocated.
///
/// A file's header or a model's attributes can declare sizes far beyond what the machine holds (a
/// 1.4 KB file declaring 10^9 rows, a Conv with pads of 2^31). Every reader and the engine check the
/// bytes they are about to allocate against this budget first and refuse with a `MemoryBudgetError`
/// that names what asked, instead of trapping in the allocator or swapping for a minute.
public struct MemoryBudget: Sendable, Equatable {
    /// The budget in bytes.
    public let bytes: Int

    public init(bytes: Int) {
        self.bytes = max(0, bytes)
    }

    /// The process's budget: `STOKE_MEMORY_BUDGET` (bytes, or with a `K`/`M`/`G`/`T` suffix, powers of
    /// 1024) when set, else 3/4 of the smaller of physical memory and the address-space limit
    /// (`ulimit -v`). Read once.
    public static let current: MemoryBudget = {
        if let text = unsafe getenv("STOKE_MEMORY_BUDGET").map({ unsafe String(cString: $0) }),
           let bytes = parseByteCount(text) {
            return MemoryBudget(bytes: bytes)
        }
        return MemoryBudget(bytes: Int(Double(machineLimitBytes()) * 0.75))
    }()

    /// Physical memory in bytes, lowered to the address-space limit when one is set.
    public static func machineLimitBytes() -> Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES))
        let pageSize = sysconf(Int32(_SC_PAGESIZE))
        var physical = Int.max / 2
        if pages > 0, pageSize > 0 {
            let (product, overflow) = pages.multipliedReportingOverflow(by: pageSize)
            if !overflow { physical = product }
        }
        var limit = rlimit()
        if unsafe getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit) == 0,
           limit.rlim_cur < UInt(Int.max) {
            return min(physical, Int(limit.rlim_cur))
        }
        return physical
    }

    /// Parses `123`, `64K`, `512M`, `2G`, `1T` (binary units); nil for anything else.
    public static func parseByteCount(_ text: String) -> Int? {
        var digits = Substring(text).drop(while: { $0 == " " })
        var scale = 1
        if let last = digits.last, let shift = ["K": 10, "M": 20, "G": 30, "T": 40][String(last).uppercased()] {
            scale = 1 << shift
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = Int(digits), value >= 0 else { return nil }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? nil : bytes
    }

    /// Throws when `requestedBytes` is negative (an overflowed size) or above the budget.
    /// - Parameters:
    ///   - requestedBytes: what is about to be allocated, in bytes.
    ///   - what: names the file, field, node or option asking, for the error message.
    public func check(_ requestedBytes: Int, for what: @autoclosure () -> String) throws(MemoryBudgetError) {
        if requestedBytes < 0 || requestedBytes > bytes {
            throw MemoryBudgetError(what: what(), requestedBytes: requestedBytes, budgetBytes: bytes)
        }
    }

    /// Multiplies sizes, returning nil on overflow: for `rows * rowBytes` style products of
    /// untrusted numbers before they reach `check`.
    public static func product(_ factors: [Int]) -> Int? {
        var total = 1
        for factor in factors {
            guard factor >= 0 else { return nil }
            let (next, overflow) = total.multipliedReportingOverflow(by: factor)
            if overflow { return nil }
            total = next
        }
        return total
    }
}

/// A request for more memory than `MemoryBudget` allows.
public struct MemoryBudgetError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file, field, node or option that asked.
    public let what: String
    /// What was asked for, in bytes (negative when the size overflowed).
    public let requestedBytes: Int
    /// The budget in force, in bytes.
    public let budgetBytes: Int

    public var description: String {
        let asked = requestedBytes < 0 ? "a size that overflows" : "\(formatBytes(requestedBytes))"
        return "\(what) needs \(asked), more than the memory budget of \(formatBytes(budgetBytes))"
            + " (3/4 of memory; set STOKE_MEMORY_BUDGET to change it)"
    }
}

private func formatBytes(_ bytes: Int) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    let tenths = Int((value * 10).rounded())
    return unit == 0 ? "\(bytes) bytes" : "\(tenths / 10).\(tenths % 10) \(units[unit])"
}
