import Foundation

// What every test target needs to drive real programs (the `stoke` binary, the venv's Python, h5dump).

/// The repository root, from this file's place in it.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The project venv's Python (made by scripts/setup: numpy, h5py, hdf5plugin, onnx, onnxruntime, Pillow).
public let venvPython = repositoryRoot.appendingPathComponent(".venv/bin/python3").path

public struct ProcessOutput: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program to completion; stdout and stderr are drained concurrently so neither pipe can fill.
@discardableResult
public func execute(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> ProcessOutput {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    final class Box: @unchecked Sendable { var data = Data() }  // written by one thread, read after the semaphore
    let stderrBox = Box()
    let drained = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        stderrBox.data = err.fileHandleForReading.readDataToEndOfFile()
        drained.signal()
    }
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    drained.wait()
    process.waitUntilExit()
    return ProcessOutput(
        status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
        stderr: String(decoding: stderrBox.data, as: UTF8.self))
}

/// A fresh directory under the temporary directory; the caller removes it.
public func temporaryDirectory(_ prefix: String = "stoke-test-") -> String {
    let path = NSTemporaryDirectory() + prefix + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
