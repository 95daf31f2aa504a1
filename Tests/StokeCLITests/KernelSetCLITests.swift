import Foundation
import StokeEngine
import Testing

/// STOKE_CPU: read once at start-up by the CLI, reported as `kernel_set` by `run --json`, and a value
/// that is not a kernel set stops the process with status 2 and the accepted names.
@Suite("STOKE_CPU and kernel_set (CLI)")
struct KernelSetCLITests {
    @Test func badValueExitsTwoNamingTheSets() throws {
        let result = try execute(stokeBinary, ["inspect", "nothing.onnx"], environment: ["STOKE_CPU": "avx3"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("STOKE_CPU=avx3 is not a kernel set") && result.stderr.contains("avx512-vnni"), "\(result.stderr)")
    }

    @Test("bad STOKE_GEMM and STOKE_CONV values exit 2 naming the variable", arguments: [("STOKE_GEMM", "mkl"), ("STOKE_CONV", "winograd")])
    func badEngineVariableExitsTwo(variable: String, value: String) throws {
        let result = try execute(stokeBinary, ["inspect", "nothing.onnx"], environment: [variable: value])
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(variable)=\(value) is not"), "\(result.stderr)")
    }

    @Test("run --json reports the forced kernel set", arguments: ["portable", "avx2"])
    func runReportsTheKernelSet(level: String) throws {
        let directory = temporaryDirectory("stoke-kernel-set-")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // y = Relu(x · w): a Stoke graph model file, written with StokeEngine.
        let graph = Graph(name: "g", nodes: [Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["h"]),
                                             Node(name: "relu", opType: "Relu", inputs: ["h"], outputs: ["y"])],
                          initializers: ["w": Tensor(shape: [4, 3], floats: (0..<12).map { Float($0) - 6 })],
                          inputs: [ValueInfo(name: "x", shape: [.symbolic("batch"), .fixed(4)])],
                          outputs: [ValueInfo(name: "y", shape: [.symbolic("batch"), .fixed(3)])])
        try Model(graph: graph, opset: 17).save(to: directory + "/m.h5", metadata: [:])
        try Data(NPY.encode(Tensor(shape: [2, 4], floats: [1, 2, 3, 4, -1, 0, .nan, 2]))).write(to: URL(fileURLWithPath: directory + "/x.npy"))
        let run = try execute(stokeBinary, ["run", directory + "/m.h5", "--input", "x=\(directory)/x.npy", "--output-dir", directory + "/out", "--json"],
                              environment: ["STOKE_CPU": level])
        try #require(run.status == 0, "\(run.stderr)")
        let kernelSet = jsonObject(run.stdout)?["kernel_set"] as? [String: Any]
        let features = kernelSet?["features"] as? [String] ?? ["?"]
        #expect(!features.contains("avx512f"), "\(run.stdout)")
        if level == "portable" { #expect(kernelSet?["name"] as? String == "portable" && features.isEmpty) }
        else if KernelSet.machineFeatures.contains("avx2") { #expect(kernelSet?["name"] as? String == "avx2" && features.contains("fma")) }
        // Relu keeps the NaN of the second row (ONNX semantics) on this kernel set too.
        let y = try NPY.decode([UInt8](Data(contentsOf: URL(fileURLWithPath: directory + "/out/y.npy")))).floats
        #expect(y.count == 6 && y[3...].contains { $0.isNaN } && !y[..<3].contains { $0.isNaN }, "\(y)")
    }
}
