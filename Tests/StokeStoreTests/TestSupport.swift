import Foundation
import StokeStore

/// A fresh temporary directory per test, removed by the caller with `cleanup()`.
struct TemporaryDirectory {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "stoke-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// The repository root, found from this file's path.
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The project's venv Python (made by scripts/setup), used for interop checks against h5py and hdf5plugin.
let venvPython = repositoryRoot + "/.venv/bin/python3"

struct ProcessResult { var status: Int32; var output: String }

/// Runs a program and returns its exit status and combined output.
@discardableResult
func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
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
