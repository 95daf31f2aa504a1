import CStokeKernels
import Testing
@testable import StokeEngine

/// The direct convolution kernel (conv_f32.c) against the seven-loop definition, on its own (AVX-512
/// and portable paths) and inside sessions, where stride-1 single-group Convs with constant filters
/// take it and the rest keep im2col + GEMM.
@Suite("Direct convolution kernel")
struct ConvKernelTests {
    struct Case: Sendable, CustomStringConvertible {
        var x: [Int], w: [Int], pads: [Int] = [1, 1, 1, 1], dilations: [Int] = [1, 1], strides: [Int] = [1, 1]
        var relu = false, pool = false, bias = true
        var description: String { "x\(x) w\(w) p\(pads) d\(dilations) s\(strides) relu=\(relu) pool=\(pool) bias=\(bias)" }
    }

    static let cases: [Case] = [
        Case(x: [3, 16, 14, 14], w: [32, 16, 3, 3], relu: true, pool: true),            // the benchmark CNN's second conv
        Case(x: [2, 1, 28, 28], w: [16, 1, 3, 3], relu: true, pool: true),              // and its first
        Case(x: [1, 3, 7, 9], w: [5, 3, 3, 3]),                                         // batch 1, odd sizes, 5 filters
        Case(x: [2, 5, 11, 6], w: [17, 5, 3, 3], relu: true),                           // 17 filters: a 1-filter last block
        Case(x: [1, 2, 9, 13], w: [9, 2, 5, 5], pads: [2, 1, 0, 2], pool: true),        // asymmetric pads, odd pooled size
        Case(x: [2, 3, 10, 10], w: [8, 3, 3, 3], pads: [2, 2, 2, 2], dilations: [2, 2], relu: true),
        Case(x: [1, 4, 6, 21], w: [6, 4, 1, 3], pads: [0, 0, 0, 0], bias: false),       // 1x3 kernel, no padding, no bias
        Case(x: [1, 2, 3, 3], w: [3, 2, 3, 3], pads: [0, 0, 0, 0], relu: true),         // a 1x1 output
        Case(x: [2, 3, 11, 35], w: [10, 3, 3, 3], relu: true, pool: true),              // 3 vectors per row, odd pooled sizes
        Case(x: [1, 2, 5, 40], w: [4, 2, 3, 3], pads: [1, 0, 1, 0]),                   // odd rows, a 6-column last vector
        Case(x: [2, 3, 9, 8], w: [4, 3, 3, 3], strides: [2, 2], relu: true),             // stride 2: im2col + GEMM
    ]

    /// The definition: convolution (+ bias), then ReLU, then a 2x2 floor-mode max pool.
    static func reference(_ c: Case, x: Tensor, w: Tensor, bias: [Float]?) -> ([Float], [Int]) {
        var (y, shape) = OperatorTests.referenceConv(x: x, w: w, bias: bias, group: 1, strides: c.strides, pads: c.pads, dilations: c.dilations)
        if c.relu { y = y.map { $0 > 0 ? $0 : 0 } }
        if c.pool {
            y = PoolingFusionTests.reference(y, planes: shape[0] * shape[1], height: shape[2], width: shape[3])
            shape = [shape[0], shape[1], shape[2] / 2, shape[3] / 2]
        }
        return (y, shape)
    }

    static func tensors(_ c: Case) -> (x: Tensor, w: Tensor, bias: [Float]?) {
        (GraphBuilding.random(c.x, seed: UInt64(c.x.reduce(0, +))), GraphBuilding.random(c.w, seed: UInt64(c.w.reduce(7, +))),
         c.bias ? GraphBuilding.randomFloats(c.w[0], seed: 11) : nil)
    }

    @Test("Conv (+ Relu, + MaxPool fused) in a session matches the definition", arguments: cases)
    func session(_ c: Case) throws {
        let (x, w, bias) = Self.tensors(c)
        let attributes: [String: AttributeValue] = ["kernel_shape": .ints(c.w[2...].map { Int64($0) }), "pads": .ints(c.pads.map { Int64($0) }),
                                                    "dilations": .ints(c.dilations.map { Int64($0) }), "strides": .ints(c.strides.map { Int64($0) })]
        var nodes = [Node(name: "conv", opType: "Conv", inputs: bias == nil ? ["x", "w"] : ["x", "w", "b"], outputs: ["c"], attributes: attributes)]
        var last = "c"
        if c.relu {
            nodes.append(Node(name: "relu", opType: "Relu", inputs: [last], outputs: ["r"]))
            last = "r"
        }
        if c.pool {
            nodes.append(Node(name: "pool", opType: "MaxPool", inputs: [last], outputs: ["p"],
                              attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]))
            last = "p"
        }
        var initializers = ["w": w]
        if let bias { initializers["b"] = Tensor(shape: [bias.count], floats: bias) }
        let model = try Model(graph: GraphBuilding.graph(nodes, inputs: ["x"], outputs: [last], initializers: initializers), opset: 17)
        // Activation and pool fusion leave one Conv node: the kernel's fused ReLU and pool are what runs.
        #expect(model.graph.nodes.map(\.opType) == ["Conv"])
        let (expected, shape) = Self.reference(c, x: x, w: w, bias: bias)
        for threads in [1, 2] {
            let y = try #require(try Session(model: model, threads: threads).run(["x": x])[last])
            GraphBuilding.assertClose(y, expected, shape: shape, tolerance: 1e-5)
        }
    }

    /// Runs the C kernel on every image of `c` at the given CPU level (-1: the probed one).
    static func runKernel(_ c: Case, level: Int32) -> (status: Int32, y: [Float]) {
        let (x, w, bias) = tensors(c)
        let (oh, ow) = (c.x[2] + c.pads[0] + c.pads[2] - c.dilations[0] * (c.w[2] - 1),
                        c.x[3] + c.pads[1] + c.pads[3] - c.dilations[1] * (c.w[3] - 1))
        var g = stoke_window2d(in_h: Int64(c.x[2]), in_w: Int64(c.x[3]), kernel_h: Int64(c.w[2]), kernel_w: Int64(c.w[3]),
                               pad_top: Int64(c.pads[0]), pad_left: Int64(c.pads[1]), stride_h: Int64(c.strides[0]), stride_w: Int64(c.strides[1]),
                               dilation_h: Int64(c.dilations[0]), dilation_w: Int64(c.dilations[1]), out_h: Int64(oh), out_w: Int64(ow),
                               pad_bottom: Int64(c.pads[2]), pad_right: Int64(c.pads[3]))
        let (filters, channels) = (c.w[0], c.x[1])
        var packed = [Float](repeating: .nan, count: stoke_conv2d_direct_packed_count(Int64(filters), Int64(channels), Int64(c.w[2]), Int64(c.w[3])))
        unsafe stoke_conv2d_direct_pack(w.floats, Int64(filters), Int64(channels), Int64(c.w[2]), Int64(c.w[3]), &packed)
        // NaN-filled workspace and output: the kernel must initialize whatever it reads.
        var workspace = [Float](repeating: .nan, count: unsafe stoke_conv2d_direct_workspace_count(Int64(channels), &g))
        var y = [Float](repeating: .nan, count: c.x[0] * filters * (c.pool ? (oh / 2) * (ow / 2) : oh * ow))
        stoke_cpu_force(level)
        defer { stoke_cpu_force(-1) }
        let status = unsafe stoke_conv2d_direct_f32(x.floats, Int64(c.x[0]), Int64(channels), Int64(filters), &g, packed, bias,
                                                    c.relu ? 1 : 0, c.pool ? 1 : 0, &workspace, &y)
        return (status, y)
    }

    @Test("The kernel matches the definition on the AVX-512 and portable paths",
          arguments: cases.filter { $0.strides == [1, 1] })
    func kernel(_ c: Case) throws {
        let (x, w, bias) = Self.tensors(c)
        let (expected, shape) = Self.reference(c, x: x, w: w, bias: bias)
        for level in [-1, Int32(STOKE_CPU_PORTABLE.rawValue)] {
            let (status, y) = Self.runKernel(c, level: level)
            #expect(status == 0)
            GraphBuilding.assertClose(Tensor(shape: shape, floats: y), expected, shape: shape, tolerance: 1e-5)
        }
    }

    @Test func kernelRefusesStridesAndPoolsItCannotDo() {
        var strided = Self.cases[0]
        strided.strides = [2, 1]
        #expect(Self.runKernel(strided, level: -1).status == -3)
        var g = stoke_window2d(in_h: 3, in_w: 3, kernel_h: 3, kernel_w: 3, pad_top: 1, pad_left: 1, stride_h: 1, stride_w: 2,
                               dilation_h: 1, dilation_w: 1, out_h: 3, out_w: 2, pad_bottom: 1, pad_right: 1)
        #expect(unsafe stoke_conv2d_direct_supported(&g) == 0)
        // A pool needs at least a 2x2 output: a 1x1 one is refused.
        var tiny = Self.cases[7]  // the 1x1 output
        tiny.pool = true
        #expect(Self.runKernel(tiny, level: -1).status == -3)
    }

    @Test("The direct path is chosen where it measured faster than im2col + GEMM")
    func selectionRule() {
        func square(_ size: Int) -> stoke_window2d {
            stoke_window2d(in_h: Int64(size), in_w: Int64(size), kernel_h: 3, kernel_w: 3, pad_top: 1, pad_left: 1, stride_h: 1, stride_w: 1,
                           dilation_h: 1, dilation_w: 1, out_h: Int64(size), out_w: Int64(size), pad_bottom: 1, pad_right: 1)
        }
        #expect(DirectConv.pays(channels: 16, square(14)))    // the benchmark CNN's second conv
        #expect(DirectConv.pays(channels: 1, square(28)))     // and its first
        #expect(DirectConv.pays(channels: 64, square(56)))    // 841 KiB padded, 87.5% of lanes
        #expect(DirectConv.pays(channels: 32, square(7)))     // few lanes, but a short reduction
        #expect(!DirectConv.pays(channels: 64, square(17)))   // 53% of lanes
        #expect(!DirectConv.pays(channels: 512, square(7)))
        #expect(!DirectConv.pays(channels: 256, square(64)))  // 4.3 MiB padded: past the L2 cache
    }

    @Test("A fused pool gives the same bits as Conv then MaxPool, NaNs included", arguments: [false, true])
    func fusedPoolMatchesUnfusedBits(relu: Bool) throws {
        var values = GraphBuilding.randomFloats(2 * 3 * 10 * 12, seed: 21)
        values[17] = .nan
        values[200] = .nan
        let x = Tensor(shape: [2, 3, 10, 12], floats: values)
        var nodes = [Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                          attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])])]
        if relu { nodes.append(Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"])) }
        nodes.append(Node(name: "pool", opType: "MaxPool", inputs: [relu ? "r" : "c"], outputs: ["y"],
                          attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]))
        let graph = GraphBuilding.graph(nodes, inputs: ["x"], outputs: ["y"],
                                        initializers: ["w": GraphBuilding.random([9, 3, 3, 3], seed: 22), "b": GraphBuilding.random([9], seed: 23)])
        var unfusedOptions = OptimizationOptions()
        unfusedOptions.fusePooling = false
        let fused = try Model(graph: graph, opset: 17), plain = try Model(graph: graph, opset: 17, options: unfusedOptions)
        #expect(fused.graph.nodes.map(\.opType) == ["Conv"])
        let expected = try #require(try Session(model: plain).run(["x": x])["y"])
        let y = try #require(try Session(model: fused).run(["x": x])["y"])
        #expect(y.shape == [2, 9, 5, 6])
        let hasNaN = expected.floats.contains { $0.isNaN }
        #expect(hasNaN)  // Relu(NaN) is NaN (ONNX), so NaNs reach the pool either way
        #expect(y.floats.map(\.bitPattern) == expected.floats.map(\.bitPattern))
    }

    @Test func oneDimensionalConvRunsAsOneRowPlanes() throws {
        let x = GraphBuilding.random([2, 3, 37], seed: 31), w = GraphBuilding.random([5, 3, 4], seed: 32)
        let bias = GraphBuilding.randomFloats(5, seed: 33)
        let y = try GraphBuilding.runNode("Conv", [x, w, Tensor(shape: [5], floats: bias)],
                                          attributes: ["pads": .ints([2, 1]), "dilations": .ints([2])], constantInputs: [1, 2])
        let (expected, shape) = OperatorTests.referenceConv(x: x.reshaped([2, 3, 1, 37]), w: w.reshaped([5, 3, 1, 4]), bias: bias, group: 1,
                                                            strides: [1, 1], pads: [0, 2, 0, 1], dilations: [1, 2])
        GraphBuilding.assertClose(y, expected, shape: [shape[0], shape[1], shape[3]], tolerance: 1e-5)
    }
}
