import CStokeKernels

// QuantizeLinear and DequantizeLinear (opsets 10–21): the reference semantics every fused INT8
// operator must reproduce. Per tensor (scalar scale) or per axis (1-D scale, opset 13+); uint8 and
// int8 quantized types; rounding half to even and saturation, as onnxruntime and numpy do.

/// Scale and zero point of one QuantizeLinear/DequantizeLinear node, read at plan time.
struct QuantizationParameters {
    /// One scale per channel of `axis` (one value: per tensor).
    var scales: [Float]
    /// One zero point per scale (0 when the input is omitted).
    var zeroPoints: [Int32]
    /// The quantized element type (uint8 or int8; int64 for DequantizeLinear of widened int32).
    var type: ElementType
    /// The quantized axis (normalized), nil for per-tensor parameters.
    var axis: Int?

    var perTensor: Bool { axis == nil }

    /// The representable range of `type`.
    var range: ClosedRange<Int32> {
        switch type {
        case .uint8: return 0...255
        case .int8: return -128...127
        default: return Int32.min...Int32.max
        }
    }

    /// Reads inputs 1 (scale) and 2 (zero point) of a Q/DQ node whose data input has `shape`.
    /// `quantizedType` is the type the zero point must have when present (DequantizeLinear: its
    /// input's type) or nil (QuantizeLinear: the zero point decides, else `output_dtype`, else uint8).
    static func read(_ c: OpContext, dataShape shape: [Int], quantizedType: ElementType?) throws(EngineError) -> QuantizationParameters {
        guard let scaleValue = c.optionalInput(1) else {
            throw c.fail("the scale (input 1) is missing; \(c.op) needs y_scale")
        }
        guard scaleValue.type == .float32 else {
            throw c.unsupported("scale (input 1) is \(scaleValue.type); it must be float32")
        }
        guard let scaleTensor = scaleValue.constant else {
            throw c.unsupported("scale (input 1) is computed at run time; Stoke needs it to be a constant")
        }
        guard try c.int("block_size", 0) == 0 else {
            throw c.unsupported("blocked quantization (block_size \(try c.int("block_size", 0))) is not supported")
        }
        let scales = scaleTensor.floats
        guard !scales.isEmpty, scales.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw c.fail("scale values must be finite and positive, got \(scales.prefix(4))")
        }
        var axis: Int? = nil
        // A one-element scale is per tensor whatever its rank (onnxruntime reads it so too).
        if scaleTensor.shape.count == 1 && scales.count > 1 && c.opset >= 13 {
            let normalized = try c.axis(c.int("axis", 1), rank: shape.count)
            guard shape.count > normalized, shape[normalized] == scales.count else {
                throw c.fail("per-axis scale has \(scales.count) values; axis \(normalized) of input \(shape) has \(shape.count > normalized ? shape[normalized] : 0)")
            }
            axis = normalized
        } else if scales.count != 1 {
            throw c.fail("scale must be a scalar (or, from opset 13, 1-D along 'axis'); got shape \(scaleTensor.shape)")
        }

        var type: ElementType
        var zeroPoints = [Int32](repeating: 0, count: scales.count)
        if let zeroValue = c.optionalInput(2) {
            guard let zeroTensor = zeroValue.constant else {
                throw c.unsupported("zero point (input 2) is computed at run time; Stoke needs it to be a constant")
            }
            switch zeroValue.type {
            case .uint8, .int8: break
            case .int64 where quantizedType == .int64: break
            default:
                throw c.unsupported("zero point (input 2) is \(zeroValue.type); it must be uint8 or int8")
            }
            if let quantizedType, zeroValue.type != quantizedType {
                throw c.unsupported("zero point (input 2) is \(zeroValue.type) but the quantized input is \(quantizedType)")
            }
            guard zeroTensor.count == scales.count else {
                throw c.fail("zero point has \(zeroTensor.count) values, scale has \(scales.count)")
            }
            zeroPoints = zeroTensor.int64s.map { Int32(truncatingIfNeeded: $0) }
            type = zeroValue.type
        } else if let quantizedType {
            type = quantizedType
        } else {
            switch try c.int("output_dtype", 0) {
            case 0, 2: type = .uint8
            case 3: type = .int8
            case let other: throw c.unsupported("output_dtype \(other) (uint8 = 2 and int8 = 3 only)")
            }
        }
        if type == .int64 && zeroPoints.contains(where: { $0 != 0 }) {
            throw c.unsupported("an int32 input needs a zero point of 0")
        }
        return QuantizationParameters(scales: scales, zeroPoints: zeroPoints, type: type, axis: axis)
    }

    /// Extents (outer, channels, inner) of `shape` around the quantized axis.
    func blocks(_ shape: [Int]) -> (outer: Int, channels: Int, inner: Int) {
        guard let axis else { return (1, 1, elementCount(shape)) }
        return (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// round(x / scale) + zero point, half to even, saturated to `range` (NaN gives the zero point).
    @inline(__always)
    static func quantize(_ x: Float, scale: Float, zeroPoint: Int32, range: ClosedRange<Int32>) -> Int32 {
        let value = (x / scale).rounded(.toNearestOrEven) + Float(zeroPoint)
        if value.isNaN { return zeroPoint }
        return Int32(max(Float(range.lowerBound), min(Float(range.upperBound), value)))
    }
}

extension QuantizedOps {
    static func quantizeLinear(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        guard x.type == .float32 else { throw c.unsupported("input 0 is \(x.type); QuantizeLinear takes float32") }
        let parameters = try QuantizationParameters.read(c, dataShape: x.shape, quantizedType: nil)
        let (outer, channels, inner) = parameters.blocks(x.shape)
        let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
        let (scales, zeros, range, type) = (parameters.scales, parameters.zeroPoints, parameters.range, parameters.type)
        if parameters.perTensor && type == .uint8 {
            let (scale, zero, count) = (scales[0], zeros[0], x.count)
            return .kernel([(type, x.shape)]) { s in
                unsafe stoke_quantize_linear_u8(s.floats(ix), count, scale, zero, s.raw(iy).assumingMemoryBound(to: UInt8.self))
            }
        }
        return .kernel([(type, x.shape)]) { s in
            let input = unsafe s.floats(ix), output = unsafe s.raw(iy)
            var index = 0
            for _ in 0..<outer {
                for channel in 0..<channels {
                    let (scale, zero) = (scales[channel], zeros[channel])
                    for _ in 0..<inner {
                        let q = QuantizationParameters.quantize(unsafe input[index], scale: scale, zeroPoint: zero, range: range)
                        unsafe output.storeBytes(of: UInt8(truncatingIfNeeded: q), toByteOffset: index, as: UInt8.self)
                        index += 1
                    }
                }
            }
        }
    }

    static func dequantizeLinear(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        guard x.type == .uint8 || x.type == .int8 || x.type == .int64 else {
            throw c.unsupported("input 0 is \(x.type); DequantizeLinear takes uint8, int8 or int32")
        }
        let parameters = try QuantizationParameters.read(c, dataShape: x.shape, quantizedType: x.type)
        let (outer, channels, inner) = parameters.blocks(x.shape)
        let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
        let (scales, zeros, type) = (parameters.scales, parameters.zeroPoints, x.type)
        return .kernel([(.float32, x.shape)]) { s in
            let input = unsafe s.raw(ix), output = unsafe s.floats(iy)
            var index = 0
            for _ in 0..<outer {
                for channel in 0..<channels {
                    let (scale, zero) = (scales[channel], zeros[channel])
                    for _ in 0..<inner {
                        let q: Int64
                        switch type {
                        case .uint8: q = Int64(unsafe input.load(fromByteOffset: index, as: UInt8.self))
                        case .int8: q = Int64(unsafe input.load(fromByteOffset: index, as: Int8.self))
                        default: q = unsafe input.load(fromByteOffset: 8 * index, as: Int64.self)
                        }
                        unsafe output[index] = Float(q - Int64(zero)) * scale
                        index += 1
                    }
                }
            }
        }
    }
}

// MARK: - Integer arithmetic on int8/uint8 tensors

extension QuantizedOps {
    /// Operators whose integer output has the type of their inputs (wrapping like ONNX's int8/uint8
    /// arithmetic); their int64 kernels run on widened copies and the results are narrowed back.
    static let narrowingOperators: Set<String> = ["Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Clip", "Neg", "Abs", "Where"]
    /// Operators with a bool (int64 here) output that accept any integer input.
    static let comparisonOperators: Set<String> = ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"]

    /// Wraps an int64 planner so integer arithmetic and comparisons also take int8/uint8 inputs
    /// (ONNX test models use them as plain small integers); every other operator refuses them by
    /// name, so a quantized tensor is never misread as float32 or int64.
    static func acceptingNarrowIntegers(_ planner: @escaping OperatorRegistry.Planner) -> OperatorRegistry.Planner {
        { (c: OpContext) throws(EngineError) -> OpPlan in
            let narrow = c.inputs.indices.filter { c.inputs[$0]?.type == .uint8 || c.inputs[$0]?.type == .int8 }
            guard let first = narrow.first else { return try planner(c) }
            let type = c.inputs[first]!.type
            if c.op == "MaxPool", type == .uint8, c.node.outputs.dropFirst().allSatisfy(\.isEmpty) { return try quantizedMaxPool(c) }
            guard narrowingOperators.contains(c.op) || comparisonOperators.contains(c.op) else {
                throw c.unsupported("input \(first) is \(type); \(c.op) takes float32 or int64 (dequantize it first)")
            }
            let narrowing = narrowingOperators.contains(c.op)
            let widened = c.inputs.map { value -> PlanValue? in
                guard let value, value.type == .uint8 || value.type == .int8 else { return value }
                return PlanValue(type: .int64, shape: value.shape,
                                 constant: value.constant.map { Tensor(shape: $0.shape, int64s: $0.int64s) })
            }
            let inputCount = c.inputs.count, outputCount = c.node.outputs.count
            let inner = OpContext(node: c.node, opset: c.opset, inputs: widened,
                                  inputSlots: c.inputSlots.indices.map { c.inputSlots[$0] < 0 ? -1 : $0 },
                                  outputSlots: Array(inputCount..<(inputCount + outputCount)), budget: c.budget, shapesOnly: c.shapesOnly,
                                  execution: c.execution)
            func narrowed(_ tensor: Tensor) -> Tensor {
                guard narrowing, tensor.elementType == .int64 else { return tensor }
                let values = tensor.int64s
                return type == .uint8 ? Tensor(shape: tensor.shape, uint8s: values.map { UInt8(truncatingIfNeeded: $0) })
                                      : Tensor(shape: tensor.shape, int8s: values.map { Int8(truncatingIfNeeded: $0) })
            }
            switch try planner(inner) {
            case let .constants(tensors):
                return .constants(tensors.map(narrowed))
            case .alias:
                throw c.unsupported("\(type) inputs")
            case let .kernel(specs, kernel):
                let table = SlotTable(count: inputCount + outputCount)
                for (index, spec) in specs.enumerated() { try c.checkOutput(spec.0, spec.1, index: index) }
                var inputScratch: [(index: Int, storage: TensorStorage)] = []
                for index in narrow {
                    inputScratch.append((index, try c.workspace(bytes: [8, c.inputs[index]?.count ?? 0], "int64 copy of input \(index)")))
                }
                var outputScratch: [TensorStorage?] = []
                for (index, spec) in specs.enumerated() {
                    outputScratch.append(narrowing && spec.0 == .int64 ? try c.workspace(bytes: [8, elementCount(spec.1)], "int64 output \(index)") : nil)
                }
                let outerSpecs = specs.map { spec in (narrowing && spec.0 == .int64 ? type : spec.0, spec.1) }
                let inputSlots = c.inputSlots, outputSlots = c.outputSlots
                let counts = c.inputs.map { $0?.count ?? 0 }
                return .kernel(outerSpecs) { s in
                    let slots = table.slots
                    for (index, slot) in inputSlots.enumerated() where slot >= 0 { unsafe slots.set(index, s.raw(slot)) }
                    for (index, storage) in inputScratch {
                        let source = unsafe s.raw(inputSlots[index]), target = unsafe storage.pointer.assumingMemoryBound(to: Int64.self)
                        for k in 0..<counts[index] {
                            unsafe target[k] = type == .uint8 ? Int64(source.load(fromByteOffset: k, as: UInt8.self))
                                                              : Int64(source.load(fromByteOffset: k, as: Int8.self))
                        }
                        unsafe slots.set(index, storage.pointer)
                    }
                    for (index, slot) in outputSlots.enumerated() where index < specs.count {
                        unsafe slots.set(inputCount + index, outputScratch[index]?.pointer ?? s.raw(slot))
                    }
                    kernel(slots)
                    for (index, scratch) in outputScratch.enumerated() {
                        guard let scratch else { continue }
                        let source = unsafe scratch.pointer.assumingMemoryBound(to: Int64.self), target = unsafe s.raw(outputSlots[index])
                        for k in 0..<elementCount(specs[index].1) {
                            unsafe target.storeBytes(of: UInt8(truncatingIfNeeded: source[k]), toByteOffset: k, as: UInt8.self)
                        }
                    }
                }
            }
        }
    }
}

// MARK: - Fused static INT8 operators (created by GraphPasses.fuseQDQ)

extension QuantizedOps {
    /// Plan-time state of one fused INT8 operator: packed weights, requantization constants and
    /// one patch/product workspace per thread; freed with the plan.
    @safe final class StaticLinear: @unchecked Sendable {
        // Written at plan time, then read by one running plan at a time (each thread its own workspace).
        let packed: UnsafeMutableRawPointer
        let workspaces: [TensorStorage]
        let multiplier: [Float]
        let bias: [Int32]?

        init(weights: [Int8], k: Int, n: Int, multiplier: [Float], bias: [Int32]?, workspaces: [TensorStorage]) {
            let level = Int32(stoke_cpu_active().rawValue)
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(64, stoke_int8_packed_bytes(k, n, level)), alignment: 64)
            unsafe weights.withUnsafeBufferPointer { source in
                unsafe stoke_int8_pack_b(source.baseAddress!, n, k, n, level, buffer)
            }
            unsafe packed = buffer
            self.workspaces = workspaces
            self.multiplier = multiplier
            self.bias = bias
        }

        deinit { unsafe packed.deallocate() }
    }

    /// The requantization constants of a fused node: per output channel multiplier
    /// x_scale · w_scale / y_scale, the bias in s32 units of x_scale · w_scale, and the clamp.
    static func requantization(_ c: OpContext, channels: Int) throws(EngineError) -> (multiplier: [Float], bias: [Int32]?, zero: Int32, lo: Int32, hi: Int32) {
        let xScale = try c.float("stoke.x_scale", 0), yScale = try c.float("stoke.y_scale", 0)
        guard case let .floats(wScales)? = c.node.attributes["stoke.w_scales"], wScales.count == 1 || wScales.count == channels,
              xScale > 0, yScale > 0 else {
            throw c.fail("fused INT8 node needs x/y scales and 1 or \(channels) weight scales")
        }
        let scale = { (channel: Int) in xScale * wScales[wScales.count == 1 ? 0 : channel] }
        let multiplier = (0..<channels).map { scale($0) / yScale }
        var bias: [Int32]? = nil
        if case let .floats(values)? = c.node.attributes["stoke.bias"] {
            guard values.count == channels else { throw c.fail("bias has \(values.count) values for \(channels) channels") }
            // Bounded to ±2^30 so bias plus accumulator (|Σ u8·s8| ≤ k·255·128) stays inside int32 for any
            // reduction up to 32,896 long, instead of wrapping.
            bias = values.enumerated().map { Int32(max(-1_073_741_824, min(1_073_741_824, ($0.element / scale($0.offset)).rounded(.toNearestOrEven)))) }
        }
        let zero = Int32(try c.int("stoke.y_zero_point", 0))
        let relu = try c.int("stoke.relu", 0) != 0
        return (multiplier, bias, zero, relu ? max(0, zero) : 0, 255)
    }

    static func quantizedGemm(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0), w = try c.input(1)
        guard x.type == .uint8, x.shape.count >= 1 else { throw c.unsupported("input 0 is \(x.type) \(x.shape); the fused INT8 node takes uint8") }
        guard let weights = w.constant, weights.elementType == .int8, weights.shape.count == 2 else {
            throw c.fail("weights must be a constant int8 matrix, got \(w.type) \(w.shape)")
        }
        let isGemm = try c.string("stoke.original_op", "MatMul") == "Gemm"
        let transposed = try c.int("transB", 0) != 0
        let transB = isGemm && transposed
        let (k, n) = transB ? (weights.shape[1], weights.shape[0]) : (weights.shape[0], weights.shape[1])
        guard x.shape.last == k else { throw c.fail("inner dimensions differ: \(x.shape) x \(weights.shape)") }
        let m = x.shape.dropLast().reduce(1, *)
        var b = weights.int8s
        if transB {
            let source = b
            for row in 0..<k { for column in 0..<n { b[row * n + column] = source[column * k + row] } }
        }
        // The input is a flattened NHWC image (GraphPasses.fuseQDQ's layout choice): the weights'
        // rows, written for (c, h, w) order, are permuted to (h, w, c).
        let nhwcChannels = try c.int(nhwcChannelsKey, 0)
        if nhwcChannels > 0 {
            guard k % nhwcChannels == 0 else { throw c.fail("\(k) inputs are not a multiple of \(nhwcChannels) NHWC channels") }
            let (source, pixels) = (b, k / nhwcChannels)
            for channel in 0..<nhwcChannels {
                for pixel in 0..<pixels {
                    let (from, to) = ((channel * pixels + pixel) * n, (pixel * nhwcChannels + channel) * n)
                    for column in 0..<n { b[to + column] = source[from + column] }
                }
            }
        }
        let (multiplier, bias, zero, lo, hi) = try requantization(c, channels: n)
        let zeroX = Int32(try c.int("stoke.x_zero_point", 0))
        // Rows split across the session's threads in blocks the micro-kernel fills (6 rows).
        let parts = max(1, min(c.execution.threads, m / 48))
        let state = StaticLinear(weights: b, k: k, n: n, multiplier: multiplier, bias: bias, workspaces: [])
        let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
        let rowsPerPart = (m + parts - 1) / parts
        return .kernel([(.uint8, Array(x.shape.dropLast()) + [n])]) { s in
            let (input, output) = unsafe (UInt(bitPattern: s.raw(ix)), UInt(bitPattern: s.raw(iy)))
            let work: @Sendable (Int) -> Void = { part in
                let first = part * rowsPerPart, rows = min(rowsPerPart, m - first)
                guard rows > 0, let a = unsafe UnsafePointer<UInt8>(bitPattern: input),
                      let y = unsafe UnsafeMutablePointer<UInt8>(bitPattern: output) else { return }
                unsafe state.multiplier.withUnsafeBufferPointer { multiplier in
                    unsafe stoke_int8_gemm_u8(rows, n, k, a + first * k, k, state.packed, zeroX, multiplier.baseAddress!,
                                              state.bias, zero, lo, hi, y + first * n, n)
                }
            }
            if parts == 1 { work(0) } else { ParallelRegion.shared.run(parts: parts, work) }
        }
    }

    static func quantizedConv(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0), w = try c.input(1)
        guard x.type == .uint8, x.shape.count == 4 else { throw c.unsupported("input 0 is \(x.type) \(x.shape); the fused INT8 Conv takes uint8 [N, C, H, W]") }
        let inputNHWC = try c.int(inputNHWCKey, 0) != 0, outputNHWC = try c.int(outputNHWCKey, 0) != 0
        // The planner reasons in NCHW; an NHWC input is [N, H, W, C] in memory.
        let logical = inputNHWC ? [x.shape[0], x.shape[3], x.shape[1], x.shape[2]] : x.shape
        guard let weights = w.constant, weights.elementType == .int8, weights.shape.count == 4, weights.shape[1] == logical[1] else {
            throw c.fail("weights must be a constant int8 [M, \(logical[1]), kH, kW], got \(w.type) \(w.shape)")
        }
        let kernelShape = try c.ints("kernel_shape") ?? Array(weights.shape[2...])
        guard kernelShape == Array(weights.shape[2...]) else { throw c.fail("kernel_shape \(kernelShape) differs from W \(weights.shape)") }
        var (g, outSpatial) = try LinearOps.geometry(c, inputShape: logical, kernelShape: kernelShape)
        let (batch, channels, filters) = (logical[0], logical[1], weights.shape[0])
        let (kh, kw) = (kernelShape[0], kernelShape[1])
        // B = W as [K, M], K in the patch order (i, j, c), padded with zero rows to a multiple of 4.
        var window = g
        let k = unsafe stoke_qconv2d_patch_bytes(Int64(channels), &window)
        let source = weights.int8s
        var b = [Int8](repeating: 0, count: k * filters)
        for filter in 0..<filters {
            for channel in 0..<channels {
                for i in 0..<kh {
                    for j in 0..<kw {
                        b[((i * kw + j) * channels + channel) * filters + filter] = source[((filter * channels + channel) * kh + i) * kw + j]
                    }
                }
            }
        }
        let layout = Int32((inputNHWC ? STOKE_QCONV_INPUT_NHWC : 0) | (outputNHWC ? STOKE_QCONV_OUTPUT_NHWC : 0))
        let (multiplier, bias, zero, lo, hi) = try requantization(c, channels: filters)
        let zeroX = Int32(try c.int("stoke.x_zero_point", 0))
        let parts = max(1, min(c.execution.threads, batch))
        let outputShape = outputNHWC ? [batch] + outSpatial + [filters] : [batch, filters] + outSpatial
        try c.checkOutput(.uint8, outputShape)
        let workspaces = try c.workspaces(parts, bytes: [unsafe stoke_qconv2d_workspace_bytes(Int64(channels), &g, filters)], "INT8 patch workspace")
        let state = StaticLinear(weights: b, k: k, n: filters, multiplier: multiplier, bias: bias, workspaces: workspaces)
        let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
        let imagesPerPart = (batch + parts - 1) / parts
        let (inImage, outImage) = (channels * Int(g.in_h * g.in_w), filters * Int(g.out_h * g.out_w))
        let geometry = g
        return .kernel([(.uint8, outputShape)]) { s in
            let (input, output) = unsafe (UInt(bitPattern: s.raw(ix)), UInt(bitPattern: s.raw(iy)))
            let work: @Sendable (Int) -> Void = { part in
                let first = part * imagesPerPart, images = min(imagesPerPart, batch - first)
                guard images > 0, let x = unsafe UnsafePointer<UInt8>(bitPattern: input),
                      let y = unsafe UnsafeMutablePointer<UInt8>(bitPattern: output) else { return }
                var window = geometry
                let workspace = unsafe state.workspaces[part].pointer.assumingMemoryBound(to: UInt8.self)
                unsafe state.multiplier.withUnsafeBufferPointer { multiplier in
                    unsafe stoke_qconv2d_u8(x + first * inImage, images, Int64(channels), &window, filters, state.packed, zeroX,
                                            multiplier.baseAddress!, state.bias, zero, lo, hi, layout, workspace, y + first * outImage)
                }
            }
            if parts == 1 { work(0) } else { ParallelRegion.shared.run(parts: parts, work) }
        }
    }

    static func quantizedMaxPool(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        guard x.type == .uint8, x.shape.count == 4 else { throw c.unsupported("input 0 is \(x.type) \(x.shape); the u8 MaxPool takes uint8 [N, C, H, W]") }
        guard let kernelShape = try c.ints("kernel_shape") else { throw c.fail("missing kernel_shape") }
        let nhwc = try c.int(nhwcPoolKey, 0) != 0
        let logical = nhwc ? [x.shape[0], x.shape[3], x.shape[1], x.shape[2]] : x.shape
        var (g, outSpatial) = try LinearOps.geometry(c, inputShape: logical, kernelShape: kernelShape, ceilMode: try c.int("ceil_mode", 0) != 0)
        let planes = x.shape[0] * x.shape[1]
        let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
        if nhwc {
            let (images, channels) = (logical[0], logical[1])
            let (inImage, outImage) = (x.count / max(1, images), elementCount(outSpatial) * channels)
            let parts = max(1, min(c.execution.threads, images))
            let perPart = (images + parts - 1) / parts
            let geometry = g
            return .kernel([(.uint8, [images] + outSpatial + [channels])]) { s in
                let (input, output) = unsafe (UInt(bitPattern: s.raw(ix)), UInt(bitPattern: s.raw(iy)))
                let work: @Sendable (Int) -> Void = { part in
                    let first = part * perPart, count = min(perPart, images - first)
                    guard count > 0, let x = unsafe UnsafePointer<UInt8>(bitPattern: input),
                          let y = unsafe UnsafeMutablePointer<UInt8>(bitPattern: output) else { return }
                    var window = geometry
                    unsafe stoke_maxpool2d_nhwc_u8(x + first * inImage, Int64(count), Int64(channels), &window, y + first * outImage)
                }
                if parts == 1 { work(0) } else { ParallelRegion.shared.run(parts: parts, work) }
            }
        }
        return .kernel([(.uint8, Array(x.shape[..<2]) + outSpatial)]) { s in
            unsafe stoke_maxpool2d_u8(s.raw(ix).assumingMemoryBound(to: UInt8.self), Int64(planes), &g,
                                      s.raw(iy).assumingMemoryBound(to: UInt8.self))
        }
    }
}
