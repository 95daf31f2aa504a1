import CStokeKernels
import Foundation
import Testing
@testable import StokeEngine

/// Per-operator numeric checks against straightforward reference loops.
@Suite("Operators")
struct OperatorTests {
    /// Direct (seven-loop) convolution over NCHW, the definition the engine's im2col path must match.
    static func referenceConv(x: Tensor, w: Tensor, bias: [Float]?, group: Int, strides: [Int], pads: [Int], dilations: [Int]) -> ([Float], [Int]) {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (m, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let oh = (h + pads[0] + pads[2] - (dilations[0] * (kh - 1) + 1)) / strides[0] + 1
        let ow = (wd + pads[1] + pads[3] - (dilations[1] * (kw - 1) + 1)) / strides[1] + 1
        let (xv, wv) = (x.floats, w.floats)
        var y = [Float](repeating: 0, count: n * m * oh * ow)
        let mg = m / group
        for image in 0..<n {
            for filter in 0..<m {
                let g = filter / mg
                for i in 0..<oh {
                    for j in 0..<ow {
                        var sum = bias?[filter] ?? 0
                        for ci in 0..<cg {
                            let channel = g * cg + ci
                            for a in 0..<kh {
                                for b in 0..<kw {
                                    let ih = i * strides[0] - pads[0] + a * dilations[0]
                                    let iw = j * strides[1] - pads[1] + b * dilations[1]
                                    guard ih >= 0, ih < h, iw >= 0, iw < wd else { continue }
                                    sum += xv[((image * c + channel) * h + ih) * wd + iw] * wv[((filter * cg + ci) * kh + a) * kw + b]
                                }
                            }
                        }
                        y[((image * m + filter) * oh + i) * ow + j] = sum
                    }
                }
            }
        }
        _ = c
        return (y, [n, m, oh, ow])
    }

    struct ConvCase: Sendable, CustomStringConvertible {
        var x: [Int], w: [Int], group: Int, strides: [Int], pads: [Int], dilations: [Int], bias: Bool
        var description: String { "x\(x) w\(w) g\(group) s\(strides) p\(pads) d\(dilations)" }
    }

    @Test("Conv matches the direct definition", arguments: [
        ConvCase(x: [2, 3, 7, 6], w: [4, 3, 3, 3], group: 1, strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], bias: true),
        ConvCase(x: [1, 4, 9, 9], w: [6, 2, 3, 2], group: 2, strides: [2, 1], pads: [0, 1, 2, 0], dilations: [1, 2], bias: false),
        ConvCase(x: [2, 5, 6, 6], w: [5, 1, 3, 3], group: 5, strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], bias: true),  // depthwise
        ConvCase(x: [1, 3, 5, 5], w: [8, 3, 1, 1], group: 1, strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], bias: true),  // pointwise
        ConvCase(x: [1, 2, 8, 8], w: [3, 2, 3, 3], group: 1, strides: [3, 2], pads: [2, 1, 0, 1], dilations: [2, 2], bias: true),
    ])
    func conv(_ c: ConvCase) throws {
        let x = GraphBuilding.random(c.x, seed: 1), w = GraphBuilding.random(c.w, seed: 2)
        let bias = c.bias ? GraphBuilding.randomFloats(c.w[0], seed: 3) : nil
        let attributes: [String: AttributeValue] = ["group": .int(Int64(c.group)), "strides": .ints(c.strides.map { Int64($0) }),
                                                    "pads": .ints(c.pads.map { Int64($0) }), "dilations": .ints(c.dilations.map { Int64($0) })]
        let inputs: [Tensor?] = [x, w] + (bias.map { [Tensor(shape: [c.w[0]], floats: $0)] } ?? [])
        let y = try GraphBuilding.runNode("Conv", inputs, attributes: attributes, constantInputs: [1, 2])
        let (expected, shape) = Self.referenceConv(x: x, w: w, bias: bias, group: c.group, strides: c.strides, pads: c.pads, dilations: c.dilations)
        GraphBuilding.assertClose(y, expected, shape: shape)
    }

    @Test func conv1DAndSamePadding() throws {
        let x = GraphBuilding.random([1, 2, 10], seed: 4), w = GraphBuilding.random([3, 2, 3], seed: 5)
        let y = try GraphBuilding.runNode("Conv", [x, w], attributes: ["auto_pad": .string("SAME_UPPER"), "strides": .ints([2])])
        // As 2-D with height 1: SAME_UPPER with stride 2 on 10 gives 5 outputs and pads (0, 1).
        let (expected, _) = Self.referenceConv(x: x.reshaped([1, 2, 1, 10]), w: w.reshaped([3, 2, 1, 3]), bias: nil, group: 1,
                                               strides: [1, 2], pads: [0, 0, 0, 1], dilations: [1, 1])
        GraphBuilding.assertClose(y, expected, shape: [1, 3, 5])
    }

    @Test func gemmWithTransposesAlphaBetaAndBias() throws {
        let a = Tensor(shape: [3, 2], floats: [1, 2, 3, 4, 5, 6])  // transA -> [2, 3]
        let b = Tensor(shape: [4, 3], floats: (0..<12).map { Float($0) })  // transB -> [3, 4]
        let c = Tensor(shape: [2, 1], floats: [10, 20])
        let y = try GraphBuilding.runNode("Gemm", [a, b, c], attributes: ["transA": .int(1), "transB": .int(1), "alpha": .float(0.5), "beta": .float(2)],
                                          constantInputs: [2])
        var expected: [Float] = []
        let av = a.floats, bv = b.floats
        for i in 0..<2 {
            for j in 0..<4 {
                var sum: Float = 0
                for k in 0..<3 { sum += av[k * 2 + i] * bv[j * 3 + k] }
                expected.append(0.5 * sum + 2 * c.floats[i])
            }
        }
        GraphBuilding.assertClose(y, expected, shape: [2, 4])
    }

    @Test func matMulBroadcastsBatches() throws {
        let a = GraphBuilding.random([2, 1, 3, 4], seed: 6), b = GraphBuilding.random([3, 4, 2], seed: 7)
        let y = try GraphBuilding.runNode("MatMul", [a, b])
        #expect(y.shape == [2, 3, 3, 2])
        let (av, bv, yv) = (a.floats, b.floats, y.floats)
        for outer in 0..<2 {
            for batch in 0..<3 {
                for i in 0..<3 {
                    for j in 0..<2 {
                        var sum: Float = 0
                        for k in 0..<4 { sum += av[(outer * 3 + i) * 4 + k] * bv[(batch * 4 + k) * 2 + j] }
                        #expect(abs(yv[((outer * 3 + batch) * 3 + i) * 2 + j] - sum) < 1e-5)
                    }
                }
            }
        }
        let vector = try GraphBuilding.runNode("MatMul", [Tensor(shape: [3], floats: [1, 2, 3]), Tensor(shape: [3, 2], floats: [1, 0, 0, 1, 1, 1])])
        GraphBuilding.assertClose(vector, [4, 5], shape: [2])
    }

    @Test func binaryOpsBroadcast() throws {
        let a = Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6]), b = Tensor(shape: [3], floats: [10, 20, 30])
        GraphBuilding.assertClose(try GraphBuilding.runNode("Add", [a, b]), [11, 22, 33, 14, 25, 36], shape: [2, 3])
        GraphBuilding.assertClose(try GraphBuilding.runNode("Sub", [b, a]), [9, 18, 27, 6, 15, 24], shape: [2, 3])
        let column = Tensor(shape: [2, 1], floats: [2, 4])
        GraphBuilding.assertClose(try GraphBuilding.runNode("Mul", [a, column]), [2, 4, 6, 16, 20, 24], shape: [2, 3])
        GraphBuilding.assertClose(try GraphBuilding.runNode("Div", [a, column]), [0.5, 1, 1.5, 1, 1.25, 1.5], shape: [2, 3])
        let ints = try GraphBuilding.runNode("Div", [Tensor(shape: [2], int64s: [7, -7]), Tensor(shape: [], int64s: [2])])
        #expect(ints.int64s == [3, -3])
        #expect(throws: EngineError.self) { try GraphBuilding.runNode("Add", [a, Tensor(shape: [2], floats: [1, 2])]) }
    }

    @Test func activationsMatchTheirDefinitions() throws {
        let values: [Float] = [-3, -1, -0.25, 0, 0.5, 2, 4]
        let x = Tensor(shape: [values.count], floats: values)
        func check(_ op: String, _ attributes: [String: AttributeValue] = [:], opset: Int64 = 17, _ f: (Float) -> Float) throws {
            GraphBuilding.assertClose(try GraphBuilding.runNode(op, [x], attributes: attributes, opset: opset), values.map(f), shape: [values.count], tolerance: 1e-5)
        }
        try check("Relu") { max(0, $0) }
        try check("LeakyRelu", ["alpha": .float(0.1)]) { $0 >= 0 ? $0 : 0.1 * $0 }
        try check("Sigmoid") { 1 / (1 + exp(-$0)) }
        try check("Tanh") { tanh($0) }
        try check("Erf") { erf($0) }
        try check("Gelu", opset: 20) { 0.5 * $0 * (1 + erf($0 / Float(2).squareRoot())) }
        try check("Gelu", ["approximate": .string("tanh")], opset: 20) { 0.5 * $0 * (1 + tanh(0.7978845608 * ($0 + 0.044715 * $0 * $0 * $0))) }
        try check("Clip", ["min": .float(-1), "max": .float(1)], opset: 6) { min(1, max(-1, $0)) }
        let clipped = try GraphBuilding.runNode("Clip", [x, Tensor(shape: [], floats: [0]), Tensor(shape: [], floats: [2])])
        GraphBuilding.assertClose(clipped, values.map { min(2, max(0, $0)) }, shape: [values.count])
    }

    @Test func softmaxOnEveryAxis() throws {
        let x = GraphBuilding.random([2, 3, 4], seed: 8)
        let v = x.floats
        for axis in 0..<3 {
            for log in [false, true] {
                let y = try GraphBuilding.runNode(log ? "LogSoftmax" : "Softmax", [x], attributes: ["axis": .int(Int64(axis))])
                let shape = [2, 3, 4], strides = [12, 4, 1]
                var expected = [Float](repeating: 0, count: 24)
                for index in 0..<24 {
                    let coordinate = (index / strides[axis]) % shape[axis]
                    let base = index - coordinate * strides[axis]
                    let row = (0..<shape[axis]).map { v[base + $0 * strides[axis]] }
                    let total = row.map { exp($0) }.reduce(0, +)
                    expected[index] = log ? v[index] - Foundation.log(total) : exp(v[index]) / total
                }
                GraphBuilding.assertClose(y, expected, shape: shape, tolerance: 1e-5)
            }
        }
    }

    @Test func poolingWithPaddingAndCeilMode() throws {
        let x = Tensor(shape: [1, 1, 4, 4], floats: (1...16).map { Float($0) })
        let maxPool = try GraphBuilding.runNode("MaxPool", [x], attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)])
        GraphBuilding.assertClose(maxPool, [11, 12, 15, 16], shape: [1, 1, 2, 2])
        let average = try GraphBuilding.runNode("AveragePool", [x], attributes: ["kernel_shape": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2])])
        GraphBuilding.assertClose(average, [1, 2.5, 4, 7, 8.5, 10, 13, 14.5, 16], shape: [1, 1, 3, 3])
        let included = try GraphBuilding.runNode("AveragePool", [x], attributes: ["kernel_shape": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]),
                                                                               "strides": .ints([2, 2]), "count_include_pad": .int(1)])
        GraphBuilding.assertClose(included, [0.25, 1.25, 1, 3.5, 8.5, 5, 3.25, 7.25, 4], shape: [1, 1, 3, 3])
        let global = try GraphBuilding.runNode("GlobalAveragePool", [x])
        GraphBuilding.assertClose(global, [8.5], shape: [1, 1, 1, 1])
    }

    @Test func batchNormalizationAndReduceMean() throws {
        let x = GraphBuilding.random([2, 3, 2, 2], seed: 9)
        let scale = Tensor(shape: [3], floats: [1, 2, 0.5]), bias = Tensor(shape: [3], floats: [0, 1, -1])
        let mean = Tensor(shape: [3], floats: [0.1, -0.2, 0.3]), variance = Tensor(shape: [3], floats: [1, 0.5, 2])
        let y = try GraphBuilding.runNode("BatchNormalization", [x, scale, bias, mean, variance], attributes: ["epsilon": .float(1e-3)],
                                          constantInputs: [1, 2, 3, 4])
        let expected = x.floats.enumerated().map { index, value -> Float in
            let c = (index / 4) % 3
            return (value - mean.floats[c]) / (variance.floats[c] + 1e-3).squareRoot() * scale.floats[c] + bias.floats[c]
        }
        GraphBuilding.assertClose(y, expected, shape: x.shape)
        let reduced = try GraphBuilding.runNode("ReduceMean", [x], attributes: ["axes": .ints([1, 3]), "keepdims": .int(0)], opset: 13)
        #expect(reduced.shape == [2, 2])
        let v = x.floats
        var first: Float = 0
        for c in 0..<3 { for w in 0..<2 { first += v[c * 4 + w] } }
        first /= 6
        #expect(abs(reduced.floats[0] - first) < 1e-5)
    }

    @Test func layoutOperators() throws {
        let x = Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        GraphBuilding.assertClose(try GraphBuilding.runNode("Transpose", [x]), [1, 4, 2, 5, 3, 6], shape: [3, 2])
        let sliced = try GraphBuilding.runNode("Slice", [x, Tensor(shape: [1], int64s: [-1]), Tensor(shape: [1], int64s: [-100]),
                                                         Tensor(shape: [1], int64s: [1]), Tensor(shape: [1], int64s: [-2])], constantInputs: [1, 2, 3, 4])
        GraphBuilding.assertClose(sliced, [3, 1, 6, 4], shape: [2, 2])
        let joined = try GraphBuilding.runNode("Concat", [x, Tensor(shape: [2, 1], floats: [7, 8])], attributes: ["axis": .int(-1)])
        GraphBuilding.assertClose(joined, [1, 2, 3, 7, 4, 5, 6, 8], shape: [2, 4])
        let padded = try GraphBuilding.runNode("Pad", [x, Tensor(shape: [4], int64s: [0, 2, 0, 1])], attributes: ["mode": .string("reflect")], constantInputs: [1])
        GraphBuilding.assertClose(padded, [3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5], shape: [2, 6])
        let gathered = try GraphBuilding.runNode("Gather", [x, Tensor(shape: [2, 2], int64s: [2, 0, -1, 1])], attributes: ["axis": .int(1)])
        GraphBuilding.assertClose(gathered, [3, 1, 3, 2, 6, 4, 6, 5], shape: [2, 2, 2])
        let flat = try GraphBuilding.runNode("Flatten", [GraphBuilding.random([2, 3, 4], seed: 10)], attributes: ["axis": .int(2)])
        #expect(flat.shape == [6, 4])
        let reshaped = try GraphBuilding.runNode("Reshape", [x, Tensor(shape: [3], int64s: [0, -1, 1])], constantInputs: [1])
        #expect(reshaped.shape == [2, 3, 1])
        let unsqueezed = try GraphBuilding.runNode("Unsqueeze", [x, Tensor(shape: [2], int64s: [0, -1])], constantInputs: [1])
        #expect(unsqueezed.shape == [1, 2, 3, 1])
        let squeezed = try GraphBuilding.runNode("Squeeze", [unsqueezed], constantInputs: [])
        #expect(squeezed.shape == [2, 3])
        let shape = try GraphBuilding.runNode("Shape", [x])
        #expect(shape.int64s == [2, 3])
        let filled = try GraphBuilding.runNode("ConstantOfShape", [Tensor(shape: [2], int64s: [2, 2])],
                                               attributes: ["value": .tensor(Tensor(shape: [1], floats: [7]))], constantInputs: [0])
        GraphBuilding.assertClose(filled, [7, 7, 7, 7], shape: [2, 2])
    }

    @Test func variadicSplitLayerNormAndPow() throws {
        let a = Tensor(shape: [2, 2], floats: [1, 5, -3, 4]), b = Tensor(shape: [2], floats: [2, 2]), c = Tensor(shape: [], floats: [0])
        GraphBuilding.assertClose(try GraphBuilding.runNode("Max", [a, b, c]), [2, 5, 2, 4], shape: [2, 2])
        GraphBuilding.assertClose(try GraphBuilding.runNode("Min", [a, b]), [1, 2, -3, 2], shape: [2, 2])
        GraphBuilding.assertClose(try GraphBuilding.runNode("Sum", [a, b, c]), [3, 7, -1, 6], shape: [2, 2])
        GraphBuilding.assertClose(try GraphBuilding.runNode("Mean", [a, b]), [1.5, 3.5, -0.5, 3], shape: [2, 2])
        GraphBuilding.assertClose(try GraphBuilding.runNode("Pow", [b, Tensor(shape: [], floats: [3])]), [8, 8], shape: [2])
        let x = Tensor(shape: [2, 4], floats: [1, 2, 3, 4, 0, 0, 0, 4])
        let normalized = try GraphBuilding.runNode("LayerNormalization", [x, Tensor(shape: [4], floats: [1, 1, 1, 1]), Tensor(shape: [4], floats: [0, 0, 0, 1])],
                                                   attributes: ["epsilon": .float(0)])
        let deviation = Float(1.25).squareRoot()
        let third = Float(3).squareRoot()
        GraphBuilding.assertClose(normalized, [-1.5 / deviation, -0.5 / deviation, 0.5 / deviation, 1.5 / deviation + 1,
                                               -1 / third, -1 / third, -1 / third, 3 / third + 1], shape: [2, 4])
        let split = try GraphBuilding.run([Node(name: "split", opType: "Split", inputs: ["x", "sizes"], outputs: ["left", "right"], attributes: ["axis": .int(1)])],
                                          feeds: ["x": x], outputs: ["left", "right"], initializers: ["sizes": Tensor(shape: [2], int64s: [1, 3])])
        GraphBuilding.assertClose(try #require(split["left"]), [1, 0], shape: [2, 1])
        GraphBuilding.assertClose(try #require(split["right"]), [2, 3, 4, 0, 0, 4], shape: [2, 3])
    }

    @Test func comparisonsWhereAndRange() throws {
        let a = Tensor(shape: [2, 2], floats: [1, 5, -3, 4]), b = Tensor(shape: [2], floats: [1, 4])
        #expect(try GraphBuilding.runNode("Equal", [a, b]).int64s == [1, 0, 0, 1])
        #expect(try GraphBuilding.runNode("Greater", [a, b]).int64s == [0, 1, 0, 0])
        #expect(try GraphBuilding.runNode("LessOrEqual", [a, b]).int64s == [1, 0, 1, 1])
        let mask = try GraphBuilding.runNode("Less", [a, Tensor(shape: [], floats: [2])])
        let chosen = try GraphBuilding.runNode("Where", [mask, a, Tensor(shape: [], floats: [0])])
        GraphBuilding.assertClose(chosen, [1, 0, -3, 0], shape: [2, 2])
        let range = try GraphBuilding.runNode("Range", [Tensor(shape: [], int64s: [2]), Tensor(shape: [], int64s: [9]), Tensor(shape: [], int64s: [3])],
                                              constantInputs: [0, 1, 2])
        #expect(range.int64s == [2, 5, 8])
    }

    @Test func badShapesAreTypedErrorsNamingTheNode() throws {
        do {
            _ = try GraphBuilding.runNode("MatMul", [GraphBuilding.random([2, 3], seed: 1), GraphBuilding.random([4, 2], seed: 2)])
            Issue.record("mismatched MatMul ran")
        } catch let error as EngineError {
            guard case let .shapeMismatch(op, node, detail) = error else { Issue.record("got \(error)"); return }
            #expect(op == "MatMul" && node == "n" && detail.contains("inner dimensions"))
        }
        #expect(throws: EngineError.self) {
            try GraphBuilding.runNode("Conv", [GraphBuilding.random([1, 1, 2, 2, 2], seed: 1), GraphBuilding.random([1, 1, 1, 1, 1], seed: 2)])
        }
    }
}

@Suite("GEMM backends")
struct GemmBackendTests {
    /// Every Stoke GEMM the kernel set in use can run (AVX-512 needs AVX-512F, AVX2 needs AVX2 and FMA:
    /// the others are left out, not failed) against OpenBLAS.
    @Test("Stoke's AVX-512 and AVX2 GEMMs match OpenBLAS", arguments: [
        (1, 1, 1), (7, 33, 5), (37, 53, 71), (64, 10, 300), (130, 65, 257), (256, 40, 9),
    ])
    func backendsAgree(shape: (Int, Int, Int)) throws {
        let (m, n, k) = shape
        for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
            for threads in [1, 2] {
                let a = GraphBuilding.randomFloats(m * k, seed: 1), b = GraphBuilding.randomFloats(k * n, seed: 2)
                let c = GraphBuilding.randomFloats(m * n, seed: 3)
                let rowBias = GraphBuilding.randomFloats(m, seed: 4), columnBias = GraphBuilding.randomFloats(n, seed: 5)
                // Threads 2 also exercises the fused epilogue (row and column bias, ReLU).
                let epilogue = threads == 2
                var results: [[Float]] = []
                for backend in GemmBackend.allCases where backend.isAvailable {
                    var y = c
                    unsafe a.withUnsafeBufferPointer { pa in unsafe b.withUnsafeBufferPointer { pb in unsafe y.withUnsafeMutableBufferPointer { py in
                        unsafe rowBias.withUnsafeBufferPointer { pr in unsafe columnBias.withUnsafeBufferPointer { pc in
                            unsafe LinearOps.sgemm(backend: backend, threads: threads, transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.75,
                                                   a: pa.baseAddress!, lda: transA ? m : k, b: pb.baseAddress!, ldb: transB ? k : n,
                                                   beta: 0.5, y: py.baseAddress!, ldy: n,
                                                   rowBias: epilogue ? pr.baseAddress : nil, columnBias: epilogue ? pc.baseAddress : nil, relu: epilogue)
                        } }
                    } } }
                    results.append(y)
                }
                if epilogue { #expect(results[0].allSatisfy { $0 >= 0 }) }
                for (backend, result) in zip(GemmBackend.allCases.filter(\.isAvailable), results).dropFirst() {
                    let worst = zip(results[0], result).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
                    #expect(worst < 1e-4, "\(backend) m=\(m) n=\(n) k=\(k) transA=\(transA) transB=\(transB) threads=\(threads): \(worst)")
                }
            }
        }
    }

    @Test func selectionIsOneOfTheBackends() {
        #expect(GemmBackend.allCases.contains(GemmBackend.measuredFastest))
        #expect(ExecutionContext(threads: 2).gemm == GemmBackend.measuredFastest)
        #expect(!GemmBackend.openBLASCoreName.isEmpty)
    }
}
