import Foundation

/// The repository root, from this file's place in it.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The `stoke` executable, built next to the test bundle.
let stokeBinary: String = {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [bundle, bundle.deletingLastPathComponent()] {
        let path = candidate.appendingPathComponent("stoke").path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return repositoryRoot.appendingPathComponent(".build/debug/stoke").path
}()

/// The project venv's Python (made by scripts/setup).
let venvPython = repositoryRoot.appendingPathComponent(".venv/bin/python3").path

struct ProcessOutput { var status: Int32; var stdout: String; var stderr: String }

/// Runs a program to completion; stdout and stderr are drained concurrently so neither pipe can fill.
@discardableResult
func execute(_ executable: String, _ arguments: [String]) throws -> ProcessOutput {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
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
    let stderr = stderrBox.data
    process.waitUntilExit()
    return ProcessOutput(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
}

/// A fresh directory under the temporary directory; the caller removes it.
func temporaryDirectory(_ prefix: String = "stoke-cli-") -> String {
    let path = NSTemporaryDirectory() + prefix + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func jsonObject(_ text: String) -> [String: Any]? {
    try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
}
