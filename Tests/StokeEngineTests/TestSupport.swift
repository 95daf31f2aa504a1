import Foundation
import Testing
@testable import StokeEngine
import StokeTestSupport

/// Locations and helpers shared by the engine tests.
enum TestSupport {
    /// The repository root, found from this file's path (Tests/StokeEngineTests/TestSupport.swift).
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let python = repositoryRoot.appendingPathComponent(".venv/bin/python3")
    static let resources = repositoryRoot.appendingPathComponent("Tests/StokeEngineTests/Resources")

    static let setupHint = "the project venv is missing or incomplete: run scripts/setup (it installs numpy, onnx and onnxruntime into .venv)"

    /// Runs the venv's python with `arguments`; returns (exit status, combined output).
    static func runPython(_ arguments: [String]) throws -> (Int32, String) {
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw SetupError(message: "\(python.path) not found; \(setupHint)")
        }
        let result = try execute(python.path, arguments)
        return (result.status, result.stdout + result.stderr)
    }

    struct SetupError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// Where the onnx wheel keeps its backend test data.
    static let onnxDataDirectory: Result<URL, SetupError> = {
        do {
            let (status, output) = try runPython(["-c", "import onnx.backend.test, os; print(os.path.join(os.path.dirname(onnx.backend.test.__file__), 'data'))"])
            guard status == 0 else { return .failure(SetupError(message: "import onnx failed (\(output)); \(setupHint)")) }
            return .success(URL(fileURLWithPath: output.trimmingCharacters(in: .whitespacesAndNewlines)))
        } catch let error as SetupError {
            return .failure(error)
        } catch {
            return .failure(SetupError(message: "\(error); \(setupHint)"))
        }
    }()

    /// Generated test data (node cases, onnxruntime interop cases), written once per test process
    /// under .build (git-ignored).
    static let generatedDirectory: Result<URL, SetupError> = {
        let directory = repositoryRoot.appendingPathComponent(".build/stoke-engine-testdata")
        try? FileManager.default.removeItem(at: directory)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            for script in ["onnx_node_cases.py", "interop_models.py"] {
                let (status, output) = try runPython([resources.appendingPathComponent(script).path, directory.path])
                guard status == 0 else { return .failure(SetupError(message: "\(script) failed: \(output.suffix(2000)); \(setupHint)")) }
            }
            return .success(directory)
        } catch let error as SetupError {
            return .failure(error)
        } catch {
            return .failure(SetupError(message: "\(error); \(setupHint)"))
        }
    }()

    static func readBytes(_ url: URL) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url))
    }

    /// Elementwise comparison within |a - b| <= atol + rtol * |b|; NaNs must match NaNs.
    static func mismatch(_ actual: Tensor, _ expected: Tensor, rtol: Float, atol: Float) -> String? {
        guard actual.shape == expected.shape || actual.count == expected.count && actual.count == 1 else {
            return "shape \(actual.shape), expected \(expected.shape)"
        }
        if actual.elementType == .int64 || expected.elementType == .int64 {
            let (a, b) = (actual.int64s, expected.int64s)
            if let index = a.indices.first(where: { a[$0] != b[$0] }) { return "element \(index): \(a[index]), expected \(b[index])" }
            return nil
        }
        let (a, b) = (actual.floats, expected.floats)
        for index in a.indices {
            let (x, y) = (a[index], b[index])
            if x.isNaN || y.isNaN { if x.isNaN != y.isNaN { return "element \(index): \(x), expected \(y)" }; continue }
            if x == y { continue }
            if abs(x - y) > atol + rtol * abs(y) { return "element \(index): \(x), expected \(y) (rtol \(rtol), atol \(atol))" }
        }
        return nil
    }
}
