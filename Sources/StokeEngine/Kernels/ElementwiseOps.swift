import COpenBLAS
import CStokeKernels

/// Unary, binary (numpy broadcasting) and row-wise (softmax) operators.
enum ElementwiseOps {
    static func unary(_ code: Int32, alpha: Float = 0, beta: Float = 0) -> OperatorRegistry.Planner {
        { (c: OpContext) throws(EngineError) -> OpPlan in
            let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
            let integer = try c.input(0)
            if integer.type == .int64, code == STOKE_UNARY_NEG.rawValue32 || code == STOKE_UNARY_ABS.rawValue32 {
                // Shape arithmetic in exported graphs negates integers.
                let n = integer.count, negate = code == STOKE_UNARY_NEG.rawValue32
                return .kernel([(.int64, integer.shape)]) { s in
                    for i in 0..<n {
                        let v = unsafe s.int64s(ix)[i]
                        unsafe s.int64s(iy)[i] = negate ? 0 &- v : (v < 0 ? 0 &- v : v)
                    }
                }
            }
            let x = try c.float32Input(0)
            let n = x.count
            return .kernel([(.float32, x.shape)]) { s in
                unsafe stoke_unary_f32(code, s.floats(ix), s.floats(iy), n, alpha, beta)
            }
        }
    }

    static func leakyRelu(_ c: OpContext) throws(EngineError) -> OpPlan {
        try unary(STOKE_UNARY_LEAKY_RELU.rawValue32, alpha: try c.float("alpha", 0.01))(c)
    }

    /// A unary operator whose float attributes become the kernel's alpha and beta.
    static func parameterized(_ code: stoke_unary_op, alpha: (String, Float)? = nil, beta: (String, Float)? = nil) -> OperatorRegistry.Planner {
        { (c: OpContext) throws(EngineError) -> OpPlan in
            let a = try alpha.map { (key, fallback) throws(EngineError) -> Float in try c.float(key, fallback) } ?? 0
            let b = try beta.map { (key, fallback) throws(EngineError) -> Float in try c.float(key, fallback) } ?? 0
            return try unary(code.rawValue32, alpha: a, beta: b)(c)
        }
    }

    /// PRelu: x < 0 ? slope * x : x, with the slope broadcast to x (unidirectionally).
    static func prelu(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.float32Input(0), slope = try c.float32Input(1)
        var slopeShape = slope.shape
        if broadcastShape(x.shape, slopeShape) != x.shape, slope.shape.count == 1, x.shape.count >= 2, slope.count == x.shape[1] {
            // Opsets before 7 broadcast a [C] slope over the channel axis.
            slopeShape = [slope.count] + [Int](repeating: 1, count: x.shape.count - 2)
        }
        guard let shape = broadcastShape(x.shape, slopeShape), shape == x.shape else {
            throw c.fail("slope \(slope.shape) does not broadcast to \(x.shape)")
        }
        let slopeStrides = broadcastStrides(slopeShape, to: shape)
        let dense = denseStrides(shape)
        let (ix, islope, iy, n) = (c.inputSlots[0], c.inputSlots[1], c.outputSlots[0], x.count)
        return .kernel([(.float32, shape)]) { s in
            for index in 0..<n {
                var rest = index, offset = 0
                for axis in 0..<shape.count {
                    offset += (rest / Int(dense[axis])) * Int(slopeStrides[axis])
                    rest %= Int(dense[axis])
                }
                let v = unsafe s.floats(ix)[index]
                unsafe s.floats(iy)[index] = v < 0 ? v * s.floats(islope)[offset] : v
            }
        }
    }

    static func gelu(_ c: OpContext) throws(EngineError) -> OpPlan {
        switch try c.string("approximate", "none") {
        case "none": return try unary(STOKE_UNARY_GELU.rawValue32)(c)
        case "tanh": return try unary(STOKE_UNARY_GELU_TANH.rawValue32)(c)
        case let other: throw c.unsupported("approximate=\(other)")
        }
    }

    static func clip(_ c: OpContext) throws(EngineError) -> OpPlan {
        var low = -Float.greatestFiniteMagnitude, high = Float.greatestFiniteMagnitude
        if c.opset < 11 {
            low = try c.float("min", low)
            high = try c.float("max", high)
            return try unary(STOKE_UNARY_CLIP.rawValue32, alpha: low, beta: high)(c)
        }
        if try c.input(0).type == .int64 { return try integerClip(c) }
        let x = try c.float32Input(0)
        // Bounds are optional scalar inputs; when fed at run time they are read on each run.
        var boundSlots: [Int?] = [nil, nil]
        for index in 1...2 {
            guard let bound = c.optionalInput(index) else { continue }
            guard bound.type == .float32, bound.count == 1 else { throw c.fail("input \(index) must be a float32 scalar") }
            if let constant = bound.constant {
                if index == 1 { low = constant.floats[0] } else { high = constant.floats[0] }
            } else {
                boundSlots[index - 1] = c.inputSlots[index]
            }
        }
        let n = x.count
        let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
        let (lowSlot, highSlot) = (boundSlots[0], boundSlots[1])
        return .kernel([(.float32, x.shape)]) { s in
            let a = lowSlot.map { unsafe s.floats($0)[0] } ?? low
            let b = highSlot.map { unsafe s.floats($0)[0] } ?? high
            unsafe stoke_unary_f32(STOKE_UNARY_CLIP.rawValue32, s.floats(ix), s.floats(iy), n, a, b)
        }
    }

    /// Clip of integer tensors (ONNX int8..int64, represented as int64).
    static func integerClip(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        var slots: [Int?] = [nil, nil]
        for index in 1...2 {
            guard let bound = c.optionalInput(index) else { continue }
            guard bound.type == .int64, bound.count == 1 else { throw c.fail("input \(index) must be an integer scalar") }
            slots[index - 1] = c.inputSlots[index]
        }
        let (ix, iy, n, low, high) = (c.inputSlots[0], c.outputSlots[0], x.count, slots[0], slots[1])
        return .kernel([(.int64, x.shape)]) { s in
            let a = low.map { unsafe s.int64s($0)[0] } ?? Int64.min
            let b = high.map { unsafe s.int64s($0)[0] } ?? Int64.max
            for i in 0..<n { unsafe s.int64s(iy)[i] = min(b, max(a, s.int64s(ix)[i])) }
        }
    }

    /// Cast/CastLike between the engine's element types. Integer targets truncate toward zero,
    /// bool gives 0/1; narrower ONNX integer types are represented as int64 (see `ElementType`),
    /// so their wrap-around is not modelled.
    static func cast(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        let target: Int
        if c.op == "CastLike" {
            let like = try c.input(1)
            target = like.type == .float32 ? 1 : 7
        } else {
            target = try c.int("to", 0)
        }
        let (ix, iy, n) = (c.inputSlots[0], c.outputSlots[0], x.count)
        switch (x.type, target) {
        case (.float32, 1), (.float32, 11), (.int64, 7):
            return .alias(x.type, x.shape)
        case (.int64, 1), (.int64, 11):
            return .kernel([(.float32, x.shape)]) { s in
                for i in 0..<n { unsafe s.floats(iy)[i] = Float(s.int64s(ix)[i]) }
            }
        case (.float32, 6), (.float32, 7), (.float32, 3), (.float32, 5):
            return .kernel([(.int64, x.shape)]) { s in
                for i in 0..<n {
                    let v = unsafe s.floats(ix)[i]
                    unsafe s.int64s(iy)[i] = v.isFinite && abs(v) < 9.2e18 ? Int64(v) : 0
                }
            }
        case (.float32, 9):
            return .kernel([(.int64, x.shape)]) { s in
                for i in 0..<n { unsafe s.int64s(iy)[i] = s.floats(ix)[i] != 0 ? 1 : 0 }
            }
        case (.int64, 9):
            return .kernel([(.int64, x.shape)]) { s in
                for i in 0..<n { unsafe s.int64s(iy)[i] = s.int64s(ix)[i] != 0 ? 1 : 0 }
            }
        case (.int64, 6), (.int64, 3), (.int64, 5):
            return .alias(.int64, x.shape)
        default:
            break
        }
        throw c.unsupported("cast of \(x.type) to ONNX type \(target)")
    }

    static func binary(_ code: Int32) -> OperatorRegistry.Planner {
        { (c: OpContext) throws(EngineError) -> OpPlan in
            let a = try c.input(0), b = try c.input(1)
            if code == 6, a.type != .float32 || b.type != .float32 { throw c.unsupported("Pow of \(a.type) by \(b.type) (float32 only)") }
            guard a.type == b.type else { throw c.fail("input types differ: \(a.type) and \(b.type)") }
            guard let shape = broadcastShape(a.shape, b.shape) else {
                throw c.fail("shapes \(a.shape) and \(b.shape) do not broadcast")
            }
            let (loopShape, strides) = coalesce(shape: shape, strides: [broadcastStrides(a.shape, to: shape),
                                                                     broadcastStrides(b.shape, to: shape)])
            let dims = loopShape.map { Int64($0) }
            let (sa, sb) = (strides[0], strides[1])
            let rank = Int32(dims.count)
            let (ia, ib, iy) = (c.inputSlots[0], c.inputSlots[1], c.outputSlots[0])
            let type = a.type
            if elementCount(shape) == 0 { return .kernel([(type, shape)]) { _ in } }
            return .kernel([(type, shape)]) { s in
                switch type {
                case .float32: unsafe stoke_binary_f32(code, s.floats(ia), sa, s.floats(ib), sb, s.floats(iy), dims, rank)
                case .int64: unsafe stoke_binary_i64(code, s.int64s(ia), sa, s.int64s(ib), sb, s.int64s(iy), dims, rank)
                case .uint8, .int8: break  // refused at plan time by OperatorRegistry.planner
                }
            }
        }
    }

    /// Max, Min, Sum and Mean over any number of inputs with numpy broadcasting: the first two
    /// inputs are combined into the output, then each further input is folded into it.
    static func variadic(_ code: Int32, mean: Bool = false) -> OperatorRegistry.Planner {
        { (c: OpContext) throws(EngineError) -> OpPlan in
            var values: [PlanValue] = []
            for index in c.inputs.indices { values.append(try c.input(index)) }
            guard let first = values.first else { throw c.fail("no inputs") }
            guard values.allSatisfy({ $0.type == first.type }) else { throw c.fail("input types differ") }
            guard first.type == .float32 || !mean else { throw c.unsupported("integer Mean") }
            var shape = first.shape
            for value in values.dropFirst() {
                guard let next = broadcastShape(shape, value.shape) else { throw c.fail("shapes \(shape) and \(value.shape) do not broadcast") }
                shape = next
            }
            let type = first.type
            let dims = shape.map { Int64($0) }, rank = Int32(shape.count)
            let dense = denseStrides(shape)
            let slots = c.inputSlots, out = c.outputSlots[0], count = elementCount(shape)
            let strides = values.map { broadcastStrides($0.shape, to: shape) }
            let scale = 1 / Float(values.count)
            return .kernel([(type, shape)]) { s in
                guard count > 0 else { return }
                if slots.count == 1 {
                    unsafe s.raw(out).copyMemory(from: s.raw(slots[0]), byteCount: count * type.byteCount)
                    return
                }
                for k in 1..<slots.count {
                    let (left, leftStrides) = k == 1 ? (slots[0], strides[0]) : (out, dense)
                    switch type {
                    case .float32:
                        unsafe stoke_binary_f32(code, s.floats(left), leftStrides, s.floats(slots[k]), strides[k], s.floats(out), dims, rank)
                    case .int64:
                        unsafe stoke_binary_i64(code, s.int64s(left), leftStrides, s.int64s(slots[k]), strides[k], s.int64s(out), dims, rank)
                    case .uint8, .int8: break  // refused at plan time by OperatorRegistry.planner
                    }
                }
                if mean { unsafe cblas_sscal(Int32(count), scale, s.floats(out), 1) }
            }
        }
    }

    /// Equal, Less, Greater, ... and the logical And/Or/Xor: broadcasting, 0/1 int64 results
    /// (ONNX bool is represented as int64).
    static func compare(_ code: Int32) -> OperatorRegistry.Planner {
        { (c: OpContext) throws(EngineError) -> OpPlan in
            let a = try c.input(0), b = try c.input(1)
            guard a.type == b.type else { throw c.fail("input types differ: \(a.type) and \(b.type)") }
            guard let shape = broadcastShape(a.shape, b.shape) else { throw c.fail("shapes \(a.shape) and \(b.shape) do not broadcast") }
            let (loopShape, strides) = coalesce(shape: shape, strides: [broadcastStrides(a.shape, to: shape), broadcastStrides(b.shape, to: shape)])
            let dims = loopShape.map { Int64($0) }, rank = Int32(dims.count)
            let (sa, sb) = (strides[0], strides[1])
            let (ia, ib, iy, type) = (c.inputSlots[0], c.inputSlots[1], c.outputSlots[0], a.type)
            return .kernel([(.int64, shape)]) { s in
                switch type {
                case .float32: unsafe stoke_compare_f32(code, s.floats(ia), sa, s.floats(ib), sb, s.int64s(iy), dims, rank)
                case .int64: unsafe stoke_compare_i64(code, s.int64s(ia), sa, s.int64s(ib), sb, s.int64s(iy), dims, rank)
                case .uint8, .int8: break  // refused at plan time by OperatorRegistry.planner
                }
            }
        }
    }

    static func not(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.input(0)
        guard x.type == .int64 else { throw c.fail("Not needs a bool input") }
        let (ix, iy, n) = (c.inputSlots[0], c.outputSlots[0], x.count)
        return .kernel([(.int64, x.shape)]) { s in
            for i in 0..<n { unsafe s.int64s(iy)[i] = s.int64s(ix)[i] == 0 ? 1 : 0 }
        }
    }

    static func `where`(_ c: OpContext) throws(EngineError) -> OpPlan {
        let condition = try c.input(0), x = try c.input(1), y = try c.input(2)
        guard condition.type == .int64, x.type == y.type else { throw c.fail("Where needs a bool condition and equal value types") }
        guard let partial = broadcastShape(condition.shape, x.shape), let shape = broadcastShape(partial, y.shape) else {
            throw c.fail("shapes \(condition.shape), \(x.shape), \(y.shape) do not broadcast")
        }
        let (loopShape, strides) = coalesce(shape: shape, strides: [condition.shape, x.shape, y.shape].map { broadcastStrides($0, to: shape) })
        let dims = loopShape.map { Int64($0) }, rank = Int32(dims.count)
        let (ic, ix, iy, out, size) = (c.inputSlots[0], c.inputSlots[1], c.inputSlots[2], c.outputSlots[0], x.type.byteCount)
        return .kernel([(x.type, shape)]) { s in
            unsafe stoke_where(s.int64s(ic), strides[0], s.raw(ix), strides[1], s.raw(iy), strides[2], s.raw(out), dims, rank, size)
        }
    }

    static func layerNormalization(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.float32Input(0), scale = try c.float32Input(1)
        if c.node.outputs.count > 1, c.node.outputs.dropFirst().contains(where: { !$0.isEmpty }) {
            throw c.unsupported("Mean/InvStdDev outputs")
        }
        let axis = try c.axis(try c.int("axis", -1), rank: x.shape.count)
        let cols = x.shape[axis...].reduce(1, *)
        let rows = cols == 0 ? 0 : x.count / cols
        guard scale.count == cols else { throw c.fail("Scale has \(scale.count) values for normalized size \(cols)") }
        let bias = c.optionalInput(2)
        if let bias, bias.count != cols { throw c.fail("B has \(bias.count) values for normalized size \(cols)") }
        let epsilon = try c.float("epsilon", 1e-5)
        let (ix, isc, iy) = (c.inputSlots[0], c.inputSlots[1], c.outputSlots[0])
        let ib = bias == nil ? -1 : c.inputSlots[2]
        return .kernel([(.float32, x.shape)]) { s in
            let biasPointer: UnsafePointer<Float>? = ib < 0 ? nil : unsafe UnsafePointer(s.floats(ib))
            unsafe stoke_layer_norm_f32(s.floats(ix), s.floats(iy), rows, cols, s.floats(isc), biasPointer, epsilon)
        }
    }

    static func softmax(log: Bool) -> OperatorRegistry.Planner {
        { (c: OpContext) throws(EngineError) -> OpPlan in
            let x = try c.float32Input(0)
            let rank = x.shape.count
            let legacy = c.opset < 13
            let axis = try c.axis(try c.int("axis", legacy ? 1 : -1), rank: rank)
            let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
            let flag: Int32 = log ? 1 : 0
            if legacy || axis == rank - 1 {
                // Opsets < 13 flatten to [outer, inner] at `axis`; from 13 the last axis is a row.
                let cols = x.shape[axis...].reduce(1, *)
                let rows = cols == 0 ? 0 : x.count / cols
                return .kernel([(.float32, x.shape)]) { s in
                    unsafe stoke_softmax_f32(s.floats(ix), s.floats(iy), rows, cols, flag)
                }
            }
            // A middle axis: move it last through a workspace, normalize rows, move it back.
            var moved = x.shape
            moved.remove(at: axis)
            moved.append(x.shape[axis])
            var toLast = Array(0..<rank)
            toLast.remove(at: axis)
            toLast.append(axis)
            let dense = denseStrides(x.shape)
            let readStrides = toLast.map { dense[$0] }
            let movedDims = moved.map { Int64($0) }
            let movedDense = denseStrides(moved)
            var backStrides = [Int64](repeating: 0, count: rank)
            for (k, axisIndex) in toLast.enumerated() { backStrides[k] = dense[axisIndex] }
            let cols = x.shape[axis]
            let rows = cols == 0 ? 0 : x.count / cols
            let work = try c.workspace(bytes: [2, x.count, 4], "transposition workspace")
            let r = Int32(rank)
            let count = x.count
            return .kernel([(.float32, x.shape)]) { s in
                let a = unsafe work.pointer
                let b = unsafe work.pointer + count * 4
                unsafe stoke_strided_copy(s.raw(ix), readStrides, a, movedDense, movedDims, r, 4)
                unsafe stoke_softmax_f32(a.assumingMemoryBound(to: Float.self), b.assumingMemoryBound(to: Float.self), rows, cols, flag)
                unsafe stoke_strided_copy(b, movedDense, s.raw(iy), backStrides, movedDims, r, 4)
            }
        }
    }
}

extension stoke_unary_op {
    /// The raw value as the `int` the C kernels take.
    var rawValue32: Int32 { Int32(bitPattern: rawValue) }
}
