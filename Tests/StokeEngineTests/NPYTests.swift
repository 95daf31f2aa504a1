import Foundation
import Testing
@testable import StokeEngine

@Suite("NPY files")
struct NPYTests {
    @Test func readsWhatNumPyWritesAndNumPyReadsWhatWeWrite() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stoke-npy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = TestSupport.resources.appendingPathComponent("npy_roundtrip.py").path
        let (status, log) = try TestSupport.runPython([script, "write", directory.path])
        try #require(status == 0, "\(log)")
        func load(_ name: String) throws -> Tensor {
            try NPY.decode(try TestSupport.readBytes(directory.appendingPathComponent("\(name).npy")))
        }
        let expectedFloats = (0..<24).map { Float($0) / 8 - 1 }
        for name in ["f4", "f8"] {
            let tensor = try load(name)
            #expect(tensor.elementType == .float32 && tensor.shape == [2, 3, 4])
            #expect(tensor.floats == expectedFloats)
        }
        for name in ["i8", "i4"] { #expect(try load(name).int64s == (0..<24).map { Int64($0 - 12) }) }
        #expect(try load("u1").int64s == (0..<24).map { Int64($0) })
        #expect(try load("b1").int64s == (0..<24).map { $0 % 2 == 0 ? 1 : 0 })
        let scalar = try load("scalar")
        #expect(scalar.shape == [] && scalar.floats == [2.5])
        #expect(throws: EngineError.self) { try load("fortran") }

        try Data(NPY.encode(Tensor(shape: [2, 3, 4], floats: expectedFloats))).write(to: directory.appendingPathComponent("stoke_f4.npy"))
        try Data(NPY.encode(Tensor(shape: [5], int64s: [1, -2, 3, -4, 5]))).write(to: directory.appendingPathComponent("stoke_i8.npy"))
        let (checkStatus, checkLog) = try TestSupport.runPython([script, "check", directory.path])
        #expect(checkStatus == 0, "\(checkLog)")
    }

    @Test func malformedFilesAreTypedErrors() throws {
        let good = NPY.encode(Tensor(shape: [3], floats: [1, 2, 3]))
        #expect(throws: EngineError.self) { try NPY.decode([]) }
        #expect(throws: EngineError.self) { try NPY.decode(Array(good.dropLast())) }
        #expect(throws: EngineError.self) { try NPY.decode(Array(good.prefix(20))) }
        var wrongMagic = good
        wrongMagic[1] = 0
        #expect(throws: EngineError.self) { try NPY.decode(wrongMagic) }
        #expect(try NPY.decode(good).floats == [1, 2, 3])
    }
}
