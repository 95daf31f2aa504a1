import Foundation
import StokeStore
@_exported import StokeTestSupport

/// A fresh temporary directory per test, removed by the caller with `cleanup()`.
struct TemporaryDirectory {
    let path = temporaryDirectory()
    func file(_ name: String) -> String { path + "/" + name }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

struct ProcessResult { var status: Int32; var output: String }

/// Runs a program and returns its exit status and its stdout followed by its stderr.
@discardableResult
func run(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
    let result = try execute(executable, arguments)
    return ProcessResult(status: result.status, output: result.stdout + result.stderr)
}

/// Runs a Python snippet in the project venv; fails loudly when the venv is missing.
func python(_ script: String, _ arguments: [String] = []) throws -> ProcessResult {
    guard FileManager.default.isExecutableFile(atPath: venvPython) else {
        return ProcessResult(status: 127, output: "missing \(venvPython): run scripts/setup first")
    }
    return try run(venvPython, ["-c", script] + arguments)
}

/// Deterministic pseudo-random bytes (xorshift), compressible enough to exercise LZ4 and deflate.
func sampleBytes(count: Int, seed: UInt64 = 0x9E3779B97F4A7C15, smooth: Bool = true) -> [UInt8] {
    var state = seed | 1
    var bytes = [UInt8](repeating: 0, count: count)
    var previous: UInt8 = 0
    for index in 0..<count {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        let noise = UInt8(truncatingIfNeeded: state)
        previous = smooth ? (index % 7 == 0 ? noise : previous &+ (noise & 3)) : noise
        bytes[index] = previous
    }
    return bytes
}
