import CStokeKernels

/// The op type dynamic quantization gives a Gemm or MatMul with constant weights: weights per output
/// channel symmetric s8 (packed once per plan), activations quantized per batch on the fly (asymmetric
/// u8, per tensor), u8×s8→s32 products on the best kernel level (AVX-512 VNNI: exact, so no
/// reduce-range loss), dequantized to f32 with the bias and any fused ReLU in the same epilogue.
let dynamicQuantizedLinear = "StokeDynamicQuantizedLinear"

extension Model {
    /// This model with every Gemm (transA = 0, alpha = 1, bias a constant row or absent) and every
    /// MatMul whose weights are a constant matrix replaced by dynamically quantized INT8 versions; the
    /// other nodes stay FP32. The same semantics as PyTorch's and ONNX Runtime's `quantize_dynamic`.
    /// Weights use `weightRange` (`.s7` by default: exact and fast u8 x s8 kernels on every CPU).
    public func quantizedDynamic(weightRange: WeightRange = .s7) throws(EngineError) -> Model {
        var graph = self.graph
        var quantized = 0
        for index in graph.nodes.indices {
            let node = graph.nodes[index]
            guard node.opType == "Gemm" || node.opType == "MatMul", node.inputs.count >= 2,
                  let weights = graph.initializers[node.inputs[1]], weights.elementType == .float32, weights.shape.count == 2 else { continue }
            if node.opType == "Gemm" {
                if case let .int(transA)? = node.attributes["transA"], transA != 0 { continue }
                if case let .float(alpha)? = node.attributes["alpha"], alpha != 1 { continue }
                if node.inputs.count > 2, !node.inputs[2].isEmpty {
                    guard let bias = graph.initializers[node.inputs[2]], bias.elementType == .float32, bias.shape.count <= 2,
                          bias.count == (node.attributes["transB"].flatMap { if case let .int(t) = $0, t != 0 { return weights.shape[0] } else { return nil } } ?? weights.shape[1])
                    else { continue }
                    if case let .float(beta)? = node.attributes["beta"], beta != 1 { continue }
                }
            }
            if case let .string(activation)? = node.attributes[fusedActivationKey], activation != "Relu" { continue }
            graph.nodes[index].attributes["stoke.original_op"] = .string(node.opType)
            graph.nodes[index].opType = dynamicQuantizedLinear
            graph.nodes[index].attributes[WeightRange.attribute] = .string(weightRange.rawValue)
            quantized += 1
        }
        var options = OptimizationOptions.none
        options.removeDeadNodes = false
        var model = try Model(graph: graph, opset: opset, options: options)
        model.quantizedNodeCount = quantized
        model.weightRange = weightRange
        return model
    }
}

/// Plan-time work for the quantized linear operator.
enum QuantizedOps {
    /// Owns the packed weights and the activation buffer of one plan; freed with the plan.
    @safe final class Buffers: @unchecked Sendable {
        // Written at plan time, then read by one running plan at a time.
        let packed: UnsafeMutableRawPointer
        let activations: UnsafeMutablePointer<UInt8>
        let scales: [Float]
        let bias: [Float]?

        init(packedBytes: Int, activationCount: Int, scales: [Float], bias: [Float]?) {
            unsafe packed = UnsafeMutableRawPointer.allocate(byteCount: max(64, packedBytes), alignment: 64)
            unsafe activations = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, activationCount))
            self.scales = scales
            self.bias = bias
        }

        deinit {
            unsafe packed.deallocate()
            unsafe activations.deallocate()
        }
    }

    static func dynamicLinear(_ c: OpContext) throws(EngineError) -> OpPlan {
        let original = try c.string("stoke.original_op", "MatMul")
        let a = try c.float32Input(0), b = try c.float32Input(1)
        guard let weightTensor = b.constant, b.shape.count == 2, a.shape.count >= 1 else {
            throw c.fail("quantized weights must be a constant matrix, got \(b.shape)")
        }
        let transB = original == "Gemm" ? try c.int("transB", 0) != 0 : false
        let (k, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard a.shape.last == k else { throw c.fail("inner dimensions differ: \(a.shape) x \(b.shape)") }
        if original == "Gemm" { guard a.shape.count == 2 else { throw c.fail("Gemm input must be a matrix, got \(a.shape)") } }
        let m = a.shape.dropLast().reduce(1, *)
        let outputShape = Array(a.shape.dropLast()) + [n]

        // Per output channel symmetric weights: scale = max |w| / 63 (s7) or / 127 (s8; nodes without
        // the attribute, from files written before it existed).
        let range = WeightRange(rawValue: try c.string(WeightRange.attribute, WeightRange.s8.rawValue)) ?? .s8
        let limit = Float(range.largest)
        let source = weightTensor.floats
        var scales = [Float](repeating: 1, count: n)
        var quantizedWeights = [Int8](repeating: 0, count: k * n)
        for column in 0..<n {
            var largest: Float = 0
            for row in 0..<k { largest = max(largest, abs(source[transB ? column * k + row : row * n + column])) }
            let scale = largest > 0 ? largest / limit : 1
            scales[column] = scale
            for row in 0..<k {
                let value = source[transB ? column * k + row : row * n + column] / scale
                quantizedWeights[row * n + column] = Int8(max(-limit, min(limit, value.rounded(.toNearestOrEven))))
            }
        }
        var bias: [Float]? = nil
        if original == "Gemm", let biasValue = c.optionalInput(2) {
            guard let constant = biasValue.constant, constant.count == n else { throw c.fail("bias must be a constant of \(n) values") }
            bias = constant.floats
        }
        let level = Int32(stoke_cpu_active().rawValue)
        let buffers = Buffers(packedBytes: stoke_int8_packed_bytes(k, n, level), activationCount: m * k, scales: scales, bias: bias)
        unsafe quantizedWeights.withUnsafeBufferPointer { weights in
            unsafe stoke_int8_pack_b(weights.baseAddress!, n, k, n, level, buffers.packed)
        }
        let relu: Int32 = try c.fusedActivation().code == 1 ? 1 : 0
        let (ia, iy) = (c.inputSlots[0], c.outputSlots[0])
        // Rows split across the session's threads in blocks the micro-kernel fills (6 rows); quantizing
        // the activations is a single pass and stays on the calling thread.
        let parts = max(1, min(c.execution.threads, m / 48))
        let rowsPerPart = (m + parts - 1) / parts
        return .kernel([(.float32, outputShape)]) { s in
            let x = unsafe s.floats(ia)
            var low: Float = 0, high: Float = 0
            unsafe stoke_minmax_f32(x, m * k, &low, &high)
            // The range always holds 0, so 0 is exactly representable (zero padding stays exact).
            low = min(low, 0)
            high = max(high, 0)
            let scale = high > low ? (high - low) / 255 : 1
            let zeroPoint = Int32(max(0, min(255, (-low / scale).rounded(.toNearestOrEven))))
            unsafe stoke_quantize_u8(x, m * k, scale, zeroPoint, buffers.activations)
            let output = unsafe UInt(bitPattern: s.floats(iy))
            let work: @Sendable (Int) -> Void = { part in
                let first = part * rowsPerPart, rows = min(rowsPerPart, m - first)
                guard rows > 0, let y = unsafe UnsafeMutablePointer<Float>(bitPattern: output) else { return }
                unsafe buffers.scales.withUnsafeBufferPointer { scales in
                    if let bias = buffers.bias {
                        unsafe bias.withUnsafeBufferPointer { bias in
                            unsafe stoke_int8_gemm_f32(rows, n, k, buffers.activations + first * k, k, buffers.packed, zeroPoint, scale,
                                                       scales.baseAddress!, bias.baseAddress, relu, y + first * n, n)
                        }
                    } else {
                        unsafe stoke_int8_gemm_f32(rows, n, k, buffers.activations + first * k, k, buffers.packed, zeroPoint, scale,
                                                   scales.baseAddress!, nil, relu, y + first * n, n)
                    }
                }
            }
            if parts == 1 { work(0) } else { ParallelRegion.shared.run(parts: parts, work) }
        }
    }
}
