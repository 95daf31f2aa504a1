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
        if scaleTensor.shape.count == 1 && (scales.count > 1 || c.node.attributes["axis"] != nil) && c.opset >= 13 {
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
    static let narrowingOperators: Set<String> = ["Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Clip", "Neg", "Abs"]
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
                                  outputSlots: Array(inputCount..<(inputCount + outputCount)))
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
                let inputScratch = narrow.map { (index: $0, storage: TensorStorage(byteCount: 8 * c.inputs[$0]!.count)) }
                let outputScratch = specs.map { spec in
                    narrowing && spec.0 == .int64 ? TensorStorage(byteCount: 8 * elementCount(spec.1)) : nil
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
