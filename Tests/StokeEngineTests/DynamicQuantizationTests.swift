import CStokeKernels
import Testing
@testable import StokeEngine

/// Dynamic INT8 quantization of Gemm/MatMul: exact against a scalar simulation of the same scheme,
/// close to FP32, on every kernel level.
@Suite("dynamic quantization", .serialized)
struct DynamicQuantizationTests {
    /// An MLP 64-32-10 with biases and a fused ReLU, in Gemm (transB, as PyTorch exports) and MatMul form.
    func mlp() throws -> Model {
        let nodes = [
            Node(name: "fc1", opType: "Gemm", inputs: ["x", "w1", "b1"], outputs: ["h"], attributes: ["transB": .int(1)]),
            Node(name: "relu", opType: "Relu", inputs: ["h"], outputs: ["r"]),
            Node(name: "fc2", opType: "MatMul", inputs: ["r", "w2"], outputs: ["y"]),
        ]
        let initializers = [
            "w1": GraphBuilding.random([32, 64], seed: 1), "b1": GraphBuilding.random([32], seed: 2),
            "w2": GraphBuilding.random([32, 10], seed: 3),
        ]
        return try Model(graph: GraphBuilding.graph(nodes, inputs: ["x"], outputs: ["y"], initializers: initializers), opset: 17)
    }

    /// The scheme in plain Swift: per-tensor asymmetric u8 activations, per-column symmetric s8 weights.
    func simulate(_ x: [Float], rows: Int, k: Int, weights: [Float], n: Int, transposed: Bool, bias: [Float]?, relu: Bool,
                  range: WeightRange = .s7) -> [Float] {
        let limit = Float(range.largest)
        let low = min(0, x.min()!), high = max(0, x.max()!)
        let scale = high > low ? (high - low) / 255 : 1
        let zero = Int32(max(0, min(255, (-low / scale).rounded(.toNearestOrEven))))
        let q = x.map { Int32(max(0, min(255, Int32(($0 * (1 / scale)).rounded(.toNearestOrEven)) + zero))) }
        var out = [Float](repeating: 0, count: rows * n)
        for column in 0..<n {
            let w = (0..<k).map { weights[transposed ? column * k + $0 : $0 * n + column] }
            let wScale = max(w.map(abs).max()!, 0) > 0 ? w.map(abs).max()! / limit : 1
            let qw = w.map { Int32(max(-limit, min(limit, ($0 / wScale).rounded(.toNearestOrEven)))) }
            for row in 0..<rows {
                var acc: Int32 = 0
                for t in 0..<k { acc += (q[row * k + t] - zero) * qw[t] }
                var value = scale * wScale * Float(acc) + (bias?[column] ?? 0)
                if relu { value = max(0, value) }
                out[row * n + column] = value
            }
        }
        return out
    }

    @Test("quantized MLP equals the scheme's scalar simulation on every kernel level, and stays close to FP32")
    func exactAndClose() throws {
        let fp32 = try mlp()
        let int8 = try fp32.quantizedDynamic()
        #expect(int8.quantizedNodeCount == 2)
        #expect(int8.operatorCounts.map(\.op).contains(dynamicQuantizedLinear))
        let x = GraphBuilding.random([17, 64], seed: 9)
        let reference = try Session(model: fp32).run(["x": x])["y"]!.floats
        let w1 = fp32.graph.initializers["w1"]!.floats, b1 = fp32.graph.initializers["b1"]!.floats, w2 = fp32.graph.initializers["w2"]!.floats
        for range in WeightRange.allCases {
            let hidden = simulate(x.floats, rows: 17, k: 64, weights: w1, n: 32, transposed: true, bias: b1, relu: true, range: range)
            let expected = simulate(hidden, rows: 17, k: 32, weights: w2, n: 10, transposed: false, bias: nil, relu: false, range: range)
            var firstBits: [UInt32]? = nil
            for level in (0..<Int32(STOKE_CPU_LEVEL_COUNT)).filter({ stoke_cpu_level_supported($0) != 0 }) {
                stoke_cpu_force(level)
                defer { stoke_cpu_force(-1) }
                let got = try Session(model: try fp32.quantizedDynamic(weightRange: range)).run(["x": x])["y"]!.floats
                for index in got.indices {
                    #expect(abs(got[index] - expected[index]) <= 1e-4 * max(1, abs(expected[index])), "\(range) level \(level) index \(index)")
                }
                // The same model gives the same bits on every kernel set.
                if let firstBits { #expect(got.map(\.bitPattern) == firstBits, "\(range) level \(level)") } else { firstBits = got.map(\.bitPattern) }
            }
        }
        let got = try Session(model: int8).run(["x": x])["y"]!.floats
        let range = reference.map(abs).max()!
        let worst = zip(got, reference).map { abs($0 - $1) }.max()!
        #expect(worst < 0.05 * range, "INT8 error \(worst) against an output range of \(range)")
    }

    @Test("rows split across threads give the same bits as one thread", arguments: [1, 47, 48, 97, 300])
    func threadsAgree(rows: Int) throws {
        let int8 = try mlp().quantizedDynamic()
        let x = GraphBuilding.random([rows, 64], seed: 11)
        let one = try Session(model: int8, threads: 1).run(["x": x])["y"]!.floats
        let two = try Session(model: int8, threads: 2).run(["x": x])["y"]!.floats
        #expect(one == two)
    }

    @Test("nodes the scheme does not cover stay FP32")
    func leavesOthersAlone() throws {
        let nodes = [Node(name: "mm", opType: "MatMul", inputs: ["x", "y"], outputs: ["z"])]  // both operands variable
        let model = try Model(graph: GraphBuilding.graph(nodes, inputs: ["x", "y"], outputs: ["z"]), opset: 17)
        let quantized = try model.quantizedDynamic()
        #expect(quantized.quantizedNodeCount == 0)
        #expect(quantized.operatorCounts.map(\.op) == ["MatMul"])
    }
}
