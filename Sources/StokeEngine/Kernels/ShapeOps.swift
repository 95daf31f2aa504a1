import CStokeKernels

/// Operators that move, select or describe data without arithmetic.
enum ShapeOps {
    static func identity(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        return .alias(x.type, x.shape)
    }

    static func dropout(_ c: OpContext) throws(EngineError) -> OpPlan {
        // Inference: Dropout is the identity and the optional mask is all true (ones): of the input's
        // type before opset 10 (Dropout-7), boolean (int64 here, as every boolean) from opset 10.
        if c.opset >= 12, let mode = try c.constantInput(2, "training_mode"), mode.int64s.first ?? 0 != 0 {
            throw c.unsupported("training_mode=true")
        }
        let x = try c.input(0)
        guard c.node.outputs.count > 1, !c.node.outputs[1].isEmpty else { return .alias(x.type, x.shape) }
        let (ix, iy, mask) = (c.inputSlots[0], c.outputSlots[0], c.outputSlots[1])
        let bytes = x.count * x.type.byteCount, count = x.count
        let maskType: ElementType = c.opset < 10 ? x.type : .int64
        let one: Tensor
        switch maskType {
        case .float32: one = Tensor(shape: [], floats: [1])
        case .int64: one = Tensor(shape: [], int64s: [1])
        case .uint8: one = Tensor(shape: [], uint8s: [1])
        case .int8: one = Tensor(shape: [], int8s: [1])
        }
        return .kernel([(x.type, x.shape), (maskType, x.shape)]) { s in
            unsafe s.raw(iy).copyMemory(from: s.raw(ix), byteCount: bytes)
            unsafe stoke_fill(s.raw(mask), one.storage.pointer, count, maskType.byteCount)
        }
    }

    static func flatten(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        let raw = try c.int("axis", 1)
        let axis = raw < 0 ? raw + x.shape.count : raw
        guard axis >= 0, axis <= x.shape.count else { throw c.fail("axis \(raw) out of range for rank \(x.shape.count)") }
        let (outer, inner) = (elementCount(Array(x.shape[..<axis])), elementCount(Array(x.shape[axis...])))
        guard outer <= maximumElementCount, inner <= maximumElementCount else { throw c.fail("input shape \(x.shape) has too many values") }
        return .alias(x.type, [outer, inner])
    }

    static func reshape(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        let requested: [Int]
        if c.opset < 5 {
            requested = try c.ints("shape") ?? []
        } else {
            guard let t = try c.constantInput(1, "shape") else { throw c.fail("missing shape input") }
            requested = intValues(t)
        }
        let allowZero = try c.int("allowzero", 0) != 0
        var shape = requested
        var inferred: Int?
        for (i, d) in requested.enumerated() {
            if d == 0 && !allowZero {
                guard i < x.shape.count else { throw c.fail("0 at axis \(i) copies a dimension the input lacks") }
                shape[i] = x.shape[i]
            } else if d == -1 {
                guard inferred == nil else { throw c.fail("more than one -1 in shape \(requested)") }
                inferred = i
            } else if d < -1 {
                throw c.fail("negative dimension \(d) in shape \(requested)")
            }
        }
        if let i = inferred {
            let known = elementCount(shape.enumerated().filter { $0.offset != i }.map(\.element))
            guard known > 0, x.count % known == 0 else { throw c.fail("cannot reshape \(x.shape) to \(requested)") }
            shape[i] = x.count / known
        }
        guard elementCount(shape) == x.count else { throw c.fail("cannot reshape \(x.shape) (\(x.count) elements) to \(requested)") }
        return .alias(x.type, shape)
    }

    /// Axes from the `axes` attribute (opset < 13) or input 1 (opset >= 13).
    private static func axesArgument(_ c: OpContext, inputSince: Int64) throws(EngineError) -> [Int]? {
        if c.opset >= inputSince { return try c.constantInput(1, "axes").map(intValues) }
        return try c.ints("axes")
    }

    static func squeeze(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        var shape: [Int] = []
        if let axes = try axesArgument(c, inputSince: 13) {
            var drop = Set<Int>()
            for a in axes {
                let axis = try c.axis(a, rank: x.shape.count)
                guard x.shape[axis] == 1 else { throw c.fail("cannot squeeze axis \(a) of extent \(x.shape[axis])") }
                drop.insert(axis)
            }
            shape = x.shape.enumerated().filter { !drop.contains($0.offset) }.map(\.element)
        } else {
            shape = x.shape.filter { $0 != 1 }
        }
        return .alias(x.type, shape)
    }

    static func unsqueeze(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        guard let axes = try axesArgument(c, inputSince: 13) else { throw c.fail("missing axes") }
        let rank = x.shape.count + axes.count
        var normalized = Set<Int>()
        for a in axes { normalized.insert(try c.axis(a, rank: rank)) }
        guard normalized.count == axes.count else { throw c.fail("repeated axes \(axes)") }
        var shape: [Int] = []
        var source = x.shape.makeIterator()
        for axis in 0..<rank { shape.append(normalized.contains(axis) ? 1 : source.next() ?? 1) }
        return .alias(x.type, shape)
    }

    /// A kernel that copies input `slot` through `strides` into a dense output.
    private static func stridedCopyKernel(from input: Int, offset: Int, strides: [Int64], shape: [Int], type: ElementType, to output: Int) -> Kernel {
        let (dims, s) = coalesce(shape: shape, strides: [strides, denseStrides(shape)])
        let dims64 = dims.map { Int64($0) }
        let (src, dst) = (s[0], s[1])
        let rank = Int32(dims.count)
        let size = type.byteCount
        let byteOffset = offset * size
        if elementCount(shape) == 0 { return { _ in } }
        return { slots in
            unsafe stoke_strided_copy(slots.raw(input) + byteOffset, src, slots.raw(output), dst, dims64, rank, size)
        }
    }

    static func transpose(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        let rank = x.shape.count
        let perm = try c.ints("perm") ?? Array((0..<rank).reversed())
        guard perm.count == rank, Set(perm) == Set(0..<rank) else { throw c.fail("perm \(perm) is not a permutation of rank \(rank)") }
        let dense = denseStrides(x.shape)
        let shape = perm.map { x.shape[$0] }
        return .kernel([(x.type, shape)], stridedCopyKernel(from: c.inputSlots[0], offset: 0, strides: perm.map { dense[$0] },
                                                           shape: shape, type: x.type, to: c.outputSlots[0]))
    }

    static func concat(_ c: OpContext) throws(EngineError) -> OpPlan {
        let first = try c.input(0)
        let rank = first.shape.count
        let axis = try c.axis(try c.int("axis", 0), rank: rank)
        var shape = first.shape
        shape[axis] = 0
        var parts: [(slot: Int, shape: [Int])] = []
        for i in c.inputs.indices {
            let v = try c.input(i)
            guard v.type == first.type, v.shape.count == rank else { throw c.fail("input \(i) has type/rank \(v.type)/\(v.shape.count)") }
            for k in 0..<rank where k != axis && v.shape[k] != first.shape[k] {
                throw c.fail("input \(i) shape \(v.shape) does not match \(first.shape) off axis \(axis)")
            }
            shape[axis] += v.shape[axis]
            parts.append((c.inputSlots[i], v.shape))
        }
        let outStrides = denseStrides(shape)
        let size = first.type.byteCount
        var copies: [(slot: Int, byteOffset: Int, dims: [Int64], src: [Int64], dst: [Int64], rank: Int32)] = []
        var position = 0
        for part in parts {
            let (dims, s) = coalesce(shape: part.shape, strides: [denseStrides(part.shape), outStrides])
            if elementCount(part.shape) > 0 {
                copies.append((part.slot, position * Int(outStrides[axis]) * size, dims.map { Int64($0) }, s[0], s[1], Int32(dims.count)))
            }
            position += part.shape[axis]
        }
        let out = c.outputSlots[0]
        return .kernel([(first.type, shape)]) { slots in
            for copy in copies {
                unsafe stoke_strided_copy(slots.raw(copy.slot), copy.src, slots.raw(out) + copy.byteOffset, copy.dst, copy.dims, copy.rank, size)
            }
        }
    }

    static func shape(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        let rank = x.shape.count
        func clampIndex(_ v: Int) -> Int { v < 0 ? max(0, v + rank) : min(v, rank) }
        let start = clampIndex(try c.int("start", 0))
        let end = clampIndex(try c.int("end", rank))
        let dims = start < end ? Array(x.shape[start..<end]) : []
        return .constants([Tensor(shape: [dims.count], int64s: dims.map { Int64($0) })])
    }

    static func size(_ c: OpContext) throws(EngineError) -> OpPlan {
        .constants([Tensor(shape: [], int64s: [Int64(try c.input(0).count)])])
    }

    static func constant(_ c: OpContext) throws(EngineError) -> OpPlan {
        guard let (key, value) = c.node.attributes.first else { throw c.fail("no value attribute") }
        switch (key, value) {
        case let ("value", .tensor(t)): return .constants([t])
        case let ("value_float", .float(f)): return .constants([Tensor(shape: [], floats: [f])])
        case let ("value_floats", .floats(f)): return .constants([Tensor(shape: [f.count], floats: f)])
        case let ("value_int", .int(i)): return .constants([Tensor(shape: [], int64s: [i])])
        case let ("value_ints", .ints(i)): return .constants([Tensor(shape: [i.count], int64s: i)])
        default: throw c.unsupported("attribute \(key)")
        }
    }

    static func constantOfShape(_ c: OpContext) throws(EngineError) -> OpPlan {
        guard let shapeTensor = try c.constantInput(0, "shape") else { throw c.fail("missing shape") }
        let shape = try c.checkedShape(intValues(shapeTensor))
        var fill = Tensor(shape: [1], floats: [0])
        if case let .tensor(t)? = c.node.attributes["value"] { fill = t }
        try c.checkOutput(fill.elementType, shape, constant: true)
        switch fill.elementType {
        case .float32: return .constants([Tensor(shape: shape, floats: [Float](repeating: fill.floats.first ?? 0, count: elementCount(shape)))])
        case .int64: return .constants([Tensor(shape: shape, int64s: [Int64](repeating: fill.int64s.first ?? 0, count: elementCount(shape)))])

        case .uint8: return .constants([Tensor(shape: shape, uint8s: [UInt8](repeating: fill.uint8s.first ?? 0, count: elementCount(shape)))])
        case .int8: return .constants([Tensor(shape: shape, int8s: [Int8](repeating: fill.int8s.first ?? 0, count: elementCount(shape)))])
        }
    }

    static func gather(_ c: OpContext) throws(EngineError) -> OpPlan {
        let data = try c.input(0), indices = try c.input(1)
        guard indices.type == .int64 else { throw c.fail("indices must be integers") }
        let axis = try c.axis(try c.int("axis", 0), rank: data.shape.count)
        let extent = data.shape[axis]
        if let constant = indices.constant {
            for k in constant.int64s where k < -Int64(extent) || k >= Int64(extent) {
                throw c.fail("index \(k) out of range for axis extent \(extent)")
            }
        }
        let shape = Array(data.shape[..<axis]) + indices.shape + Array(data.shape[(axis + 1)...])
        let outer = data.shape[..<axis].reduce(1, *)
        let innerBytes = data.shape[(axis + 1)...].reduce(1, *) * data.type.byteCount
        let count = indices.count
        let (id, ii, iy) = (c.inputSlots[0], c.inputSlots[1], c.outputSlots[0])
        return .kernel([(data.type, shape)]) { s in
            // Indices fed at run time are checked by the kernel; out-of-range ones leave zeros.
            if unsafe stoke_gather(s.raw(id), outer, Int64(extent), innerBytes, s.int64s(ii), count, s.raw(iy)) != 0 {
                unsafe s.raw(iy).initializeMemory(as: UInt8.self, repeating: 0, count: elementCount(shape) * data.type.byteCount)
            }
        }
    }

    static func slice(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        let rank = x.shape.count
        var starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
        if c.opset < 10 {
            starts = try c.ints("starts") ?? []
            ends = try c.ints("ends") ?? []
            axes = try c.ints("axes")
            steps = nil
        } else {
            starts = try c.constantInput(1, "starts").map(intValues) ?? []
            ends = try c.constantInput(2, "ends").map(intValues) ?? []
            axes = try c.constantInput(3, "axes").map(intValues)
            steps = try c.constantInput(4, "steps").map(intValues)
        }
        let axisList = axes ?? Array(0..<starts.count)
        let stepList = steps ?? [Int](repeating: 1, count: starts.count)
        guard starts.count == ends.count, axisList.count == starts.count, stepList.count == starts.count else {
            throw c.fail("starts/ends/axes/steps lengths differ")
        }
        var shape = x.shape
        var begin = [Int](repeating: 0, count: rank)
        var step = [Int](repeating: 1, count: rank)
        for k in starts.indices {
            let axis = try c.axis(axisList[k], rank: rank)
            let n = x.shape[axis]
            let st = stepList[k]
            guard st != 0 else { throw c.fail("step 0 on axis \(axis)") }
            var s = starts[k] < 0 ? starts[k] + n : starts[k]
            var e = ends[k] < 0 ? ends[k] + n : ends[k]
            if st > 0 {
                s = min(max(s, 0), n); e = min(max(e, 0), n)
                shape[axis] = e > s ? (e - s + st - 1) / st : 0
            } else {
                s = min(max(s, 0), n - 1); e = min(max(e, -1), n - 1)
                shape[axis] = s > e ? (s - e + (-st) - 1) / (-st) : 0
            }
            begin[axis] = s
            step[axis] = st
        }
        let dense = denseStrides(x.shape)
        let offset = (0..<rank).reduce(0) { $0 + begin[$1] * Int(dense[$1]) }
        let strides = (0..<rank).map { dense[$0] * Int64(step[$0]) }
        return .kernel([(x.type, shape)], stridedCopyKernel(from: c.inputSlots[0], offset: elementCount(shape) == 0 ? 0 : offset,
                                                           strides: strides, shape: shape, type: x.type, to: c.outputSlots[0]))
    }

    static func pad(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        let rank = x.shape.count
        var pads: [Int]
        var fill = Tensor(shape: [], floats: [0])
        var runtimeFillSlot: Int?
        if c.opset < 11 {
            pads = try c.ints("pads") ?? []
            fill = Tensor(shape: [], floats: [try c.float("value", 0)])
        } else {
            guard let p = try c.constantInput(1, "pads") else { throw c.fail("missing pads") }
            pads = intValues(p)
            if let value = c.optionalInput(2) {
                if let v = value.constant {
                    if v.count > 0 { fill = v }
                } else {
                    guard value.type == x.type, value.count == 1 else { throw c.fail("constant_value must be one \(x.type)") }
                    runtimeFillSlot = c.inputSlots[2]
                }
            }
            if let axesTensor = try c.constantInput(3, "axes") {
                let axes = intValues(axesTensor)
                guard pads.count == 2 * axes.count else { throw c.fail("pads has \(pads.count) values for \(axes.count) axes") }
                var full = [Int](repeating: 0, count: 2 * rank)
                for (k, a) in axes.enumerated() {
                    let axis = try c.axis(a, rank: rank)
                    full[axis] = pads[k]
                    full[rank + axis] = pads[axes.count + k]
                }
                pads = full
            }
        }
        guard pads.count == 2 * rank else { throw c.fail("pads has \(pads.count) values for rank \(rank)") }
        let mode: Int32
        switch try c.string("mode", "constant") {
        case "constant": mode = 0
        case "edge": mode = 1
        case "reflect": mode = 2
        case "wrap": mode = 3
        case let other: throw c.unsupported("mode \(other)")
        }
        let shape = try c.checkedShape((0..<rank).map { x.shape[$0] + pads[$0] + pads[rank + $0] })
        if mode != 0 && x.count == 0 && elementCount(shape) > 0 { throw c.fail("cannot \(mode == 2 ? "reflect" : "edge")-pad an empty tensor") }
        // Negative pads crop: handled by mapping through the same coordinate transform.
        let inDims = x.shape.map { Int64($0) }, outDims = shape.map { Int64($0) }
        let begins = (0..<rank).map { Int64(pads[$0]) }
        let fillValue = x.type == .float32 ? Tensor(shape: [], floats: [fill.floats.first ?? 0]) : Tensor(shape: [], int64s: [fill.int64s.first ?? 0])
        let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
        let size = x.type.byteCount
        let fillSlot = runtimeFillSlot
        return .kernel([(x.type, shape)]) { s in
            let value = unsafe fillSlot.map { unsafe s.raw($0) } ?? fillValue.storage.pointer
            unsafe stoke_pad(s.raw(ix), inDims, begins, s.raw(iy), outDims, Int32(rank), size, mode, value)
        }
    }

    static func split(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        let axis = try c.axis(try c.int("axis", 0), rank: x.shape.count)
        let extent = x.shape[axis]
        let outputs = c.node.outputs.count
        var sizes: [Int]
        if c.opset >= 13, let t = try c.constantInput(1, "split") {
            sizes = intValues(t)
        } else if c.opset < 13, let attribute = try c.ints("split") {
            sizes = attribute
        } else {
            // Equal parts (opset 18's num_outputs, or one per output); the last may be smaller.
            let parts = try c.int("num_outputs", outputs)
            guard parts > 0 else { throw c.fail("num_outputs \(parts)") }
            let size = (extent + parts - 1) / parts
            sizes = (0..<parts).map { max(0, min(size, extent - $0 * size)) }
        }
        guard sizes.count == outputs, sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == extent else {
            throw c.fail("split \(sizes) does not divide axis \(axis) of extent \(extent) into \(outputs) outputs")
        }
        let dense = denseStrides(x.shape)
        var specs: [(ElementType, [Int])] = []
        var kernels: [Kernel] = []
        var offset = 0
        for (index, size) in sizes.enumerated() {
            var shape = x.shape
            shape[axis] = size
            specs.append((x.type, shape))
            kernels.append(stridedCopyKernel(from: c.inputSlots[0], offset: size == 0 ? 0 : offset * Int(dense[axis]), strides: dense,
                                             shape: shape, type: x.type, to: c.outputSlots[index]))
            offset += size
        }
        return .kernel(specs) { s in for kernel in kernels { kernel(s) } }
    }

    /// Range(start, limit, delta): start, start + delta, ... up to (excluding) limit.
    static func range(_ c: OpContext) throws(EngineError) -> OpPlan {
        guard let start = try c.constantInput(0, "start"), let limit = try c.constantInput(1, "limit"),
              let delta = try c.constantInput(2, "delta") else { throw c.fail("missing start/limit/delta") }
        guard start.elementType == limit.elementType, start.elementType == delta.elementType else { throw c.fail("mixed input types") }
        // ONNX: max(ceil((limit - start) / delta), 0) elements.
        func count(_ span: Double, _ step: Double) throws(EngineError) -> Int {
            let value = (span / step).rounded(.up)
            guard value.isFinite, value <= Double(maximumElementCount) else { throw c.fail("range of \(value) elements") }
            try c.checkOutput(start.elementType, [max(0, Int(value))], constant: true)
            return max(0, Int(value))
        }
        switch start.elementType {
        case .float32:
            let (a, b, d) = (start.floats[0], limit.floats[0], delta.floats[0])
            guard d != 0 else { throw c.fail("delta 0") }
            let n = try count(Double(b) - Double(a), Double(d))
            return .constants([Tensor(shape: [n], floats: (0..<n).map { a + Float($0) * d })])
        case .int64:
            let (a, b, d) = (start.int64s[0], limit.int64s[0], delta.int64s[0])
            guard d != 0 else { throw c.fail("delta 0") }
            let n = try count(Double(b) - Double(a), Double(d))
            return .constants([Tensor(shape: [n], int64s: (0..<n).map { a &+ Int64($0) &* d })])

        case .uint8, .int8:
            throw c.unsupported("Range of \(start.elementType) (float32 and int64 only)")
        }
    }

    /// Tile: the output is viewed as [repeat0, extent0, repeat1, extent1, ...] and read with
    /// stride 0 along the repeat axes, one strided copy.
    static func tile(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        guard let t = try c.constantInput(1, "repeats") else { throw c.fail("missing repeats") }
        let repeats = intValues(t)
        guard repeats.count == x.shape.count, repeats.allSatisfy({ $0 >= 0 }) else { throw c.fail("repeats \(repeats) for rank \(x.shape.count)") }
        guard x.shape.count <= 4 else { throw c.unsupported("Tile of rank \(x.shape.count) (4 at most)") }
        var tiled: [Int] = []
        for (extent, count) in zip(x.shape, repeats) {
            let (product, overflow) = extent.multipliedReportingOverflow(by: count)
            guard !overflow else { throw c.fail("repeats \(repeats) of shape \(x.shape) overflow") }
            tiled.append(product)
        }
        let shape = try c.checkedShape(tiled)
        let dense = denseStrides(x.shape)
        var viewShape: [Int] = [], viewStrides: [Int64] = []
        for axis in x.shape.indices {
            viewShape += [repeats[axis], x.shape[axis]]
            viewStrides += [0, dense[axis]]
        }
        return .kernel([(x.type, shape)], stridedCopyKernel(from: c.inputSlots[0], offset: 0, strides: viewStrides, shape: viewShape,
                                                           type: x.type, to: c.outputSlots[0]))
    }

    static func expand(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        guard let t = try c.constantInput(1, "shape") else { throw c.fail("missing shape") }
        guard let broadcast = broadcastShape(x.shape, intValues(t)) else { throw c.fail("cannot expand \(x.shape) to \(intValues(t))") }
        let shape = try c.checkedShape(broadcast)
        return .kernel([(x.type, shape)], stridedCopyKernel(from: c.inputSlots[0], offset: 0, strides: broadcastStrides(x.shape, to: shape),
                                                           shape: shape, type: x.type, to: c.outputSlots[0]))
    }
}
