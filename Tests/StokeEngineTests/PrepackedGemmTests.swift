import CStokeKernels
import Foundation
import Testing
@testable import StokeEngine

/// Constant weights take the prepacked path (packed at plan time); the same weights fed as inputs
/// take the run-time path. Both must agree on every shape class: edges of the 8x32 tile, K split
/// into several blocks, bias kinds, ReLU, row and column thread splits.
@Suite("Prepacked constant weights")
struct PrepackedGemmTests {
    static func gemmNodes(bias: Bool, relu: Bool, transB: Bool) -> [Node] {
        var nodes = [Node(name: "gemm", opType: "Gemm", inputs: ["x", "w"] + (bias ? ["b"] : []), outputs: [relu ? "g" : "y"],
                          attributes: ["transB": .int(transB ? 1 : 0)])]
        if relu { nodes.append(Node(name: "relu", opType: "Relu", inputs: ["g"], outputs: ["y"])) }
        return nodes
    }

    @Test(arguments: [(1, 1, 1), (7, 33, 5), (37, 53, 71), (256, 10, 784), (130, 65, 257), (256, 512, 300), (3, 300, 513)])
    func gemmWithConstantWeightsMatchesFedWeights(shape: (Int, Int, Int)) throws {
        let (m, n, k) = shape
        for (bias, relu, transB) in [(true, true, true), (false, false, false), (true, false, false)] {
            let x = GraphBuilding.random([m, k], seed: 1)
            let w = GraphBuilding.random(transB ? [n, k] : [k, n], seed: 2)
            let b = GraphBuilding.random([n], seed: 3)
            let nodes = Self.gemmNodes(bias: bias, relu: relu, transB: transB)
            let feedsOnly = try GraphBuilding.run(nodes, feeds: ["x": x, "w": w, "b": b].filter { bias || $0.key != "b" }, outputs: ["y"])
            let expected = try #require(feedsOnly["y"])
            for threads in [1, 2] {
                let graph = GraphBuilding.graph(nodes, inputs: ["x"], outputs: ["y"], initializers: bias ? ["w": w, "b": b] : ["w": w])
                let y = try #require(try Session(model: Model(graph: graph, opset: 17), threads: threads).run(["x": x])["y"])
                GraphBuilding.assertClose(y, expected.floats, shape: [m, n], tolerance: 1e-4)
            }
        }
    }

    @Test func matMulWithConstantWeightsMatchesFedWeights() throws {
        let x = GraphBuilding.random([2, 45, 70], seed: 4), w = GraphBuilding.random([70, 100], seed: 5)
        let node = Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"])
        let expected = try #require(try GraphBuilding.run([node], feeds: ["x": x, "w": w], outputs: ["y"])["y"])
        for threads in [1, 2] {
            let graph = GraphBuilding.graph([node], inputs: ["x"], outputs: ["y"], initializers: ["w": w])
            let y = try #require(try Session(model: Model(graph: graph, opset: 17), threads: threads).run(["x": x])["y"])
            GraphBuilding.assertClose(y, expected.floats, shape: [2, 45, 100], tolerance: 1e-4)
        }
    }

    @Test(arguments: [(3, 16, 3, 1), (16, 32, 3, 1), (8, 12, 1, 1), (8, 12, 3, 2), (20, 9, 5, 1)])
    func convWithConstantFiltersMatchesFedFilters(shape: (Int, Int, Int, Int)) throws {
        let (channels, filters, kernel, group) = shape
        let x = GraphBuilding.random([5, channels, 13, 14], seed: 6)
        let w = GraphBuilding.random([filters, channels / group, kernel, kernel], seed: 7), b = GraphBuilding.random([filters], seed: 8)
        let node = Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"],
                        attributes: ["kernel_shape": .ints([Int64(kernel), Int64(kernel)]), "pads": .ints(Array(repeating: Int64(kernel / 2), count: 4)),
                                     "group": .int(Int64(group))])
        let expected = try #require(try GraphBuilding.run([node], feeds: ["x": x, "w": w, "b": b], outputs: ["y"])["y"])
        for threads in [1, 2] {
            let graph = GraphBuilding.graph([node], inputs: ["x"], outputs: ["y"], initializers: ["w": w, "b": b])
            let y = try #require(try Session(model: Model(graph: graph, opset: 17), threads: threads).run(["x": x])["y"])
            GraphBuilding.assertClose(y, expected.floats, shape: expected.shape, tolerance: 1e-4)
        }
    }

    /// The kernel itself, whichever backend the engine calibrated to: packed A or packed B, with
    /// the row and column offsets the thread splits use, against a plain triple loop.
    @Test(.enabled(if: stoke_cpu_has(UInt32(STOKE_CPU_FEATURE_AVX512F | STOKE_CPU_FEATURE_FMA)) != 0,
                   "skipped: the kernel set in use has no AVX-512F (STOKE_CPU or this CPU)"),
          arguments: [(1, 1, 1), (9, 40, 7), (33, 70, 300), (16, 784, 9), (70, 33, 513)])
    func prepackedKernelMatchesTheDefinition(shape: (Int, Int, Int)) throws {
        let (m, n, k) = shape
        let a = GraphBuilding.random([m, k], seed: 11), b = GraphBuilding.random([k, n], seed: 12)
        let rowBias = GraphBuilding.randomFloats(m, seed: 13), columnBias = GraphBuilding.randomFloats(n, seed: 14)
        let (av, bv) = (a.floats, b.floats)
        var expected = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k { sum += av[i * k + p] * bv[p * n + j] }
                expected[i * n + j] = max(0, sum + rowBias[i] + columnBias[j])
            }
        }
        let packedA = PrepackedGemm.packA(a, offset: 0, m: m, k: k, lda: k)
        let packedB = PrepackedGemm.packB(b, k: k, n: n, transB: false)
        let (pa, pb) = unsafe (UnsafePointer(packedA.pointer.assumingMemoryBound(to: Float.self)),
                               UnsafePointer(packedB.pointer.assumingMemoryBound(to: Float.self)))
        let (ra, rb) = unsafe (UnsafePointer(a.storage.pointer.assumingMemoryBound(to: Float.self)),
                               UnsafePointer(b.storage.pointer.assumingMemoryBound(to: Float.self)))
        // Split at the first tile boundary past the middle, as a two-thread run would.
        let rowSplit = min(m, (m / 2 + 7) / 8 * 8), columnSplit = min(n, (n / 2 + 31) / 32 * 32)
        for variant in ["packed A", "packed B", "packed B by columns"] {
            var y = [Float](repeating: .nan, count: m * n)
            var status: Int32 = 0
            unsafe y.withUnsafeMutableBufferPointer { py in unsafe rowBias.withUnsafeBufferPointer { pr in unsafe columnBias.withUnsafeBufferPointer { pc in
                let (c, r, cb) = (py.baseAddress!, pr.baseAddress!, pc.baseAddress!)
                switch variant {
                case "packed A":
                    for (first, count) in [(0, rowSplit), (rowSplit, m - rowSplit)] where count > 0 {
                        status |= unsafe stoke_sgemm_avx512_prepacked(count, n, k, nil, 0, pa, m, first, rb, n, nil, 0, 0,
                                                                      c + first * n, n, r + first, cb, 1)
                    }
                case "packed B":
                    for (first, count) in [(0, rowSplit), (rowSplit, m - rowSplit)] where count > 0 {
                        status |= unsafe stoke_sgemm_avx512_prepacked(count, n, k, ra + first * k, k, nil, 0, 0, nil, 0, pb, n, 0,
                                                                      c + first * n, n, r + first, cb, 1)
                    }
                default:
                    for (first, count) in [(0, columnSplit), (columnSplit, n - columnSplit)] where count > 0 {
                        status |= unsafe stoke_sgemm_avx512_prepacked(m, count, k, ra, k, nil, 0, 0, nil, 0, pb, n, first,
                                                                      c + first, n, r, cb + first, 1)
                    }
                }
            } } }
            if status == -1 { return }  // no AVX-512 on this CPU: the engine never takes this path
            #expect(status == 0)
            let worst = zip(y, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .nan
            #expect(worst < 1e-4, "\(variant) m=\(m) n=\(n) k=\(k): worst \(worst)")
        }
    }
}
