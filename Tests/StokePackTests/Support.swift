import Foundation
import Testing
@_exported import StokeTestSupport


/// The venv's Python, used for reference values (numpy, Pillow, gzip, zipfile).
let python = venvPython

/// Debian's Fashion-MNIST (package dataset-fashion-mnist, installed by scripts/setup).
let fashionMNIST = "/usr/share/datasets/fashion-mnist"

/// Runs a Python snippet in the venv with `arguments` as `sys.argv[1:]`; fails the test on error.
func runPython(_ code: String, _ arguments: [String]) throws {
    let result = try execute(python, ["-c", code] + arguments)
    try #require(result.status == 0, "python failed: \(result.stderr)")
}

/// A fresh scratch directory, removed by the caller.
func scratchDirectory(_ prefix: String) -> String { temporaryDirectory(prefix + "-") }

func readBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
