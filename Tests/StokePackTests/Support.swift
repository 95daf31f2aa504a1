import Foundation
import Testing

/// The repository root (tests read the venv and write scratch files relative to it).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The venv's Python, used for reference values (numpy, Pillow, gzip, zipfile).
let python = repositoryRoot.appendingPathComponent(".venv/bin/python3").path

/// Debian's Fashion-MNIST (package dataset-fashion-mnist, installed by scripts/setup).
let fashionMNIST = "/usr/share/datasets/fashion-mnist"

struct ProcessOutput { var status: Int32; var stdout: String; var stderr: String }

/// Runs a program to completion and collects its output.
@discardableResult
func execute(_ executable: String, _ arguments: [String]) throws -> ProcessOutput {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessOutput(
        status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
}

/// Runs a Python snippet in the venv with `arguments` as `sys.argv[1:]`; fails the test on error.
func runPython(_ code: String, _ arguments: [String]) throws {
    let result = try execute(python, ["-c", code] + arguments)
    try #require(result.status == 0, "python failed: \(result.stderr)")
}

/// A fresh scratch directory, removed by the caller.
func scratchDirectory(_ prefix: String) -> String {
    let path = NSTemporaryDirectory() + "\(prefix)-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func readBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
