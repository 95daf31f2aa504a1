import COpenBLAS
import CStokeKernels
import Glibc

/// Matrix products, convolution, pooling, normalization and reductions.
enum LinearOps {
    /// The GEMM with an optional epilogue: + rowBias[i], + columnBias[j], then max(0, ·) when
    /// `relu`; Stoke's kernel applies it while storing, OpenBLAS gets a pass afterwards. Stoke's kernels
    /// split the product across `threads`; OpenBLAS runs with `threads` threads (`OpenBLASCalls`).
    /// Zero-sized products skip BLAS, which rejects leading dimensions of 0.
    static func sgemm(backend: GemmBackend, threads: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, y: UnsafeMutablePointer<Float>, ldy: Int,
                      rowBias: UnsafePointer<Float>? = nil, columnBias: UnsafePointer<Float>? = nil, relu: Bool = false) {
        guard m > 0, n > 0 else { return }
        let epilogue = unsafe rowBias != nil || columnBias != nil || relu
        if k == 0 || backend == .openBLAS {
            if k == 0 {
                for row in 0..<m {
                    for column in 0..<n { unsafe y[row * ldy + column] = beta == 0 ? 0 : beta * y[row * ldy + column] }
                }
            } else {
                OpenBLASCalls.withThreads(threads) {
                    unsafe cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                                       Int32(m), Int32(n), Int32(k), alpha, a, Int32(max(lda, 1)), b, Int32(max(ldb, 1)),
                                       beta, y, Int32(max(ldy, 1)))
                }
            }
            if epilogue {
                for row in 0..<m {
                    let line = unsafe y + row * ldy
                    if let rowBias = unsafe rowBias { unsafe stoke_bias_activation_f32(line, 1, n, rowBias + row, 3, 0, 0, 0) }
                    unsafe stoke_bias_activation_f32(line, 1, n, columnBias, columnBias == nil ? 0 : 1, relu ? 1 : 0, 0, 0)
                }
            }
            return
        }
        switch backend {
        case .openBLAS:
            break
        case .stokeAVX512, .stokeAVX2:
            let (ta, tb): (Int32, Int32) = (transA ? 1 : 0, transB ? 1 : 0)
            let reluFlag: Int32 = relu ? 1 : 0
            let kernel = backend == .stokeAVX512 ? stoke_sgemm_avx512_fused : stoke_sgemm_avx2_fused
            GemmSplit.run(m: m, n: n, k: k, threads: threads) { byRows, first, count in
                if byRows {
                    let aPart = unsafe transA ? a + first : a + first * lda
                    _ = unsafe kernel(ta, tb, count, n, k, alpha, aPart, lda, b, ldb, beta, y + first * ldy, ldy,
                                      rowBias.map { unsafe $0 + first }, columnBias, reluFlag)
                } else {
                    let bPart = unsafe transB ? b + first * ldb : b + first
                    _ = unsafe kernel(ta, tb, m, count, k, alpha, a, lda, bPart, ldb, beta, y + first, ldy,
                                      rowBias, columnBias.map { unsafe $0 + first }, reluFlag)
                }
            }
        }
    }

    static func gemm(_ c: OpContext) throws(EngineError) -> OpPlan {
        let (gemmBackend, gemmThreads) = (c.execution.gemmInUse, c.execution.threads)
        let a = try c.float32Input(0), b = try c.float32Input(1)
        guard a.shape.count == 2, b.shape.count == 2 else { throw c.fail("A \(a.shape) and B \(b.shape) must be matrices") }
        let transA = try c.int("transA", 0) != 0
        var transB = try c.int("transB", 0) != 0
        let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == kb else { throw c.fail("inner dimensions differ: A \(a.shape) B \(b.shape) transA=\(transA) transB=\(transB)") }
        let alpha = try c.float("alpha", 1), beta = try c.float("beta", 1)
        let (act, actAlpha) = try c.fusedActivation()
        let (ia, iy) = (c.inputSlots[0], c.outputSlots[0])
        var ib = c.inputSlots[1]
        let lda = a.shape[1]
        var ldb = b.shape[1]
        // Constant weights stored [N, K] (PyTorch Linear) are transposed once here so the GEMM
        // reads them row by row without packing on every run.
        var transposedWeights: Tensor?
        if transB, let weights = b.constant {
            let source = weights.floats
            // Rows are padded off multiples of 512 bytes: the GEMM reads a 32-column panel of B
            // row by row, and with a 2 KiB or 4 KiB row stride every row of the panel lands in the
            // same few L1 sets, so the panel never stays cached (measured 15-20% of the MLP).
            let stride = paddedLeadingDimension(n)
            var transposed = [Float](repeating: 0, count: k * stride)
            for row in 0..<n { for column in 0..<k { transposed[column * stride + row] = source[row * k + column] } }
            transposedWeights = Tensor(shape: [k, stride], floats: transposed)
            transB = false
            ldb = stride
            ib = -1
        }

        // Bias C: a row vector, column vector or scalar becomes an epilogue add; a full matrix is
        // copied into Y and accumulated by sgemm's beta.
        var biasKind: Int32 = 0
        var biasTensor: Tensor?
        var fullBias: (slot: Int, strides: [Int64])?
        if let bias = c.optionalInput(2), beta != 0 {
            guard bias.type == .float32, let shape = broadcastShape(bias.shape, [m, n]), shape == [m, n] else {
                throw c.fail("C \(bias.shape) does not broadcast to [\(m), \(n)]")
            }
            let dims = Array(repeating: 1, count: 2 - bias.shape.count) + bias.shape
            if let constant = bias.constant, dims[0] == 1 || dims[1] == 1 {
                biasKind = dims == [1, 1] ? 3 : dims[0] == 1 ? 1 : 2
                biasTensor = beta == 1 ? constant : Tensor(shape: constant.shape, floats: constant.floats.map { $0 * beta })
            } else {
                fullBias = (c.inputSlots[2], broadcastStrides(bias.shape, to: [m, n]))
            }
        }
        let outputs: [(ElementType, [Int])] = [(.float32, [m, n])]
        // Constant weights with Stoke's kernel: packed once here, read as panels on every run.
        if PrepackedGemm.enabled(gemmBackend), !transA, alpha == 1, fullBias == nil, biasKind != 3, act == 0 || act == 1,
           let weights = b.constant, m * n * k > 0 {
            let packed = PrepackedGemm.packB(weights, k: k, n: n, transB: try c.int("transB", 0) != 0)
            let bias = biasTensor
            return .kernel(outputs) { s in
                let biasPointer: UnsafePointer<Float>? = unsafe bias.map { unsafe UnsafePointer($0.storage.pointer.assumingMemoryBound(to: Float.self)) }
                unsafe PrepackedGemm.multiply(m: m, n: n, k: k, a: s.floats(ia), lda: lda, packedB: packed, y: s.floats(iy), ldy: n,
                                              rowBias: biasKind == 2 ? biasPointer : nil, columnBias: biasKind == 1 ? biasPointer : nil,
                                              relu: act == 1, threads: gemmThreads)
            }
        }
        let (slotB, frozenB) = (ib, transposedWeights)
        @inline(__always) func weights(_ s: Slots) -> UnsafePointer<Float> {
            if let frozenB { return unsafe UnsafePointer(frozenB.storage.pointer.assumingMemoryBound(to: Float.self)) }
            return unsafe UnsafePointer(s.floats(slotB))
        }
        let (transBFinal, ldbFinal) = (transB, ldb)
        if let fullBias {
            let dims: [Int64] = [Int64(m), Int64(n)]
            let dense = denseStrides([m, n])
            return .kernel(outputs) { s in
                unsafe stoke_strided_copy(s.raw(fullBias.slot), fullBias.strides, s.raw(iy), dense, dims, 2, 4)
                unsafe sgemm(backend: gemmBackend, threads: gemmThreads, transA: transA, transB: transBFinal, m: m, n: n, k: k, alpha: alpha, a: s.floats(ia), lda: lda,
                             b: weights(s), ldb: ldbFinal, beta: beta, y: s.floats(iy), ldy: n)
                if act != 0 { unsafe stoke_unary_f32(act, s.floats(iy), s.floats(iy), m * n, actAlpha, 0) }
            }
        }
        // Row or column biases and ReLU ride in the GEMM's epilogue; a scalar bias or LeakyRelu
        // takes a separate pass.
        let fused = (biasKind == 0 || biasKind == 1 || biasKind == 2) && (act == 0 || act == 1)
        return .kernel(outputs) { s in
            let bias: UnsafePointer<Float>? = unsafe biasTensor.map { unsafe UnsafePointer($0.storage.pointer.assumingMemoryBound(to: Float.self)) }
            if fused {
                unsafe sgemm(backend: gemmBackend, threads: gemmThreads, transA: transA, transB: transBFinal, m: m, n: n, k: k, alpha: alpha, a: s.floats(ia), lda: lda,
                             b: weights(s), ldb: ldbFinal, beta: 0, y: s.floats(iy), ldy: n,
                             rowBias: biasKind == 2 ? bias : nil, columnBias: biasKind == 1 ? bias : nil, relu: act == 1)
                return
            }
            unsafe sgemm(backend: gemmBackend, threads: gemmThreads, transA: transA, transB: transBFinal, m: m, n: n, k: k, alpha: alpha, a: s.floats(ia), lda: lda,
                         b: weights(s), ldb: ldbFinal, beta: 0, y: s.floats(iy), ldy: n)
            unsafe stoke_bias_activation_f32(s.floats(iy), m, n, bias, biasKind, act, actAlpha, 0)
        }
    }

    /// A row stride in floats for `columns` columns that is not a multiple of 128 floats (512
    /// bytes), so consecutive rows of a matrix map to different L1 cache sets.
    static func paddedLeadingDimension(_ columns: Int) -> Int {
        let rounded = (columns + 15) / 16 * 16
        return rounded % 128 == 0 ? rounded + 16 : rounded
    }

    static func matMul(_ c: OpContext) throws(EngineError) -> OpPlan {
        let (gemmBackend, gemmThreads) = (c.execution.gemmInUse, c.execution.threads)
        let a = try c.float32Input(0), b = try c.float32Input(1)
        guard !a.shape.isEmpty, !b.shape.isEmpty else { throw c.fail("MatMul of a scalar") }
        // Numpy rules: a 1-D operand gains a unit axis that is dropped from the result.
        let aShape = a.shape.count == 1 ? [1, a.shape[0]] : a.shape
        let bShape = b.shape.count == 1 ? [b.shape[0], 1] : b.shape
        let (m, k) = (aShape[aShape.count - 2], aShape[aShape.count - 1])
        let (kb, n) = (bShape[bShape.count - 2], bShape[bShape.count - 1])
        guard k == kb else { throw c.fail("inner dimensions differ: \(a.shape) x \(b.shape)") }
        let aBatch = Array(aShape.dropLast(2)), bBatch = Array(bShape.dropLast(2))
        guard let batch = broadcastShape(aBatch, bBatch) else { throw c.fail("batch dimensions \(aBatch) and \(bBatch) do not broadcast") }
        var shape = batch + [m, n]
        if a.shape.count == 1 { shape.remove(at: shape.count - 2) }
        if b.shape.count == 1 { shape.removeLast() }
        let (act, actAlpha) = try c.fusedActivation()
        let (ia, ib, iy) = (c.inputSlots[0], c.inputSlots[1], c.outputSlots[0])
        let outputs: [(ElementType, [Int])] = [(.float32, shape)]
        try c.checkOutput(.float32, shape)
        let total = elementCount(shape)

        if bBatch.allSatisfy({ $0 == 1 }) {
            // The common inference case (activations x weights): one sgemm over all rows of A.
            let rows = aBatch.reduce(1, *) * m
            if PrepackedGemm.enabled(gemmBackend), let weights = b.constant, rows * n * k > 0 {
                let packed = PrepackedGemm.packB(weights, k: k, n: n, transB: false)
                return .kernel(outputs) { s in
                    unsafe PrepackedGemm.multiply(m: rows, n: n, k: k, a: s.floats(ia), lda: k, packedB: packed, y: s.floats(iy), ldy: n,
                                                  rowBias: nil, columnBias: nil, relu: act == 1, threads: gemmThreads)
                    if act > 1 { unsafe stoke_unary_f32(act, s.floats(iy), s.floats(iy), total, actAlpha, 0) }
                }
            }
            // Constant weights get a padded row stride once here (see paddedLeadingDimension).
            var padded: Tensor?
            let ldb = b.constant != nil && n >= 32 ? paddedLeadingDimension(n) : n
            if let weights = b.constant, ldb != n {
                let source = weights.floats
                var copy = [Float](repeating: 0, count: k * ldb)
                for row in 0..<k { for column in 0..<n { copy[row * ldb + column] = source[row * n + column] } }
                padded = Tensor(shape: [k, ldb], floats: copy)
            }
            let frozen = padded
            return .kernel(outputs) { s in
                let weights = unsafe frozen.map { unsafe UnsafePointer($0.storage.pointer.assumingMemoryBound(to: Float.self)) }
                    ?? UnsafePointer(s.floats(ib))
                unsafe sgemm(backend: gemmBackend, threads: gemmThreads, transA: false, transB: false, m: rows, n: n, k: k, alpha: 1, a: s.floats(ia), lda: k,
                             b: weights, ldb: ldb, beta: 0, y: s.floats(iy), ldy: n, relu: act == 1)
                if act > 1 { unsafe stoke_unary_f32(act, s.floats(iy), s.floats(iy), total, actAlpha, 0) }
            }
        }
        let batchCount = batch.reduce(1, *)
        let aStrides = broadcastStrides(aBatch, to: batch), bStrides = broadcastStrides(bBatch, to: batch)
        let batchDense = denseStrides(batch)
        let offsets: [(Int, Int)] = (0..<batchCount).map { index in
            var rest = index, ao = 0, bo = 0
            for axis in 0..<batch.count {
                let coordinate = rest / Int(batchDense[axis])
                rest %= Int(batchDense[axis])
                ao += coordinate * Int(aStrides[axis])
                bo += coordinate * Int(bStrides[axis])
            }
            return (ao * m * k, bo * k * n)
        }
        return .kernel(outputs) { s in
            for (index, offset) in offsets.enumerated() {
                unsafe sgemm(backend: gemmBackend, threads: gemmThreads, transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: s.floats(ia) + offset.0, lda: k,
                             b: s.floats(ib) + offset.1, ldb: n, beta: 0, y: s.floats(iy) + index * m * n, ldy: n)
            }
            if act != 0 { unsafe stoke_unary_f32(act, s.floats(iy), s.floats(iy), total, actAlpha, 0) }
        }
    }

    /// Output extent and begin/end padding of one spatial axis of a window operation.
    static func window(_ c: OpContext, input: Int, kernel: Int, stride: Int, dilation: Int, padBegin: Int, padEnd: Int,
                       autoPad: String, ceilMode: Bool) throws(EngineError) -> (out: Int, begin: Int, end: Int) {
        let span = (kernel - 1) * dilation + 1
        switch autoPad {
        case "NOTSET":
            let padded = input + padBegin + padEnd - span
            guard padded >= 0 else { throw c.fail("window of \(span) exceeds padded input \(input + padBegin + padEnd)") }
            var out = (ceilMode ? (padded + stride - 1) / stride : padded / stride) + 1
            // ceil_mode must not start a window entirely in the end padding.
            if ceilMode && (out - 1) * stride >= input + padBegin { out -= 1 }
            return (out, padBegin, padEnd)
        case "VALID":
            guard input >= span else { throw c.fail("window of \(span) exceeds input \(input)") }
            return ((input - span) / stride + 1, 0, 0)
        case "SAME_UPPER", "SAME_LOWER":
            let out = (input + stride - 1) / stride
            let total = max(0, (out - 1) * stride + span - input)
            let small = total / 2
            return autoPad == "SAME_UPPER" ? (out, small, total - small) : (out, total - small, small)
        default:
            throw c.unsupported("auto_pad=\(autoPad)")
        }
    }

    /// Geometry shared by Conv and the pools: spatial rank 1 or 2, lowered to a 2-D window.
    static func geometry(_ c: OpContext, inputShape: [Int], kernelShape: [Int], ceilMode: Bool = false,
                         allowDilation: Bool = true) throws(EngineError) -> (stoke_window2d, outSpatial: [Int]) {
        let spatial = inputShape.count - 2
        guard spatial == 1 || spatial == 2 else { throw c.unsupported("\(spatial)-D spatial input \(inputShape) (1-D and 2-D only)") }
        guard kernelShape.count == spatial else { throw c.fail("kernel_shape \(kernelShape) does not match input \(inputShape)") }
        let strides = try c.ints("strides") ?? [Int](repeating: 1, count: spatial)
        let dilations = try c.ints("dilations") ?? [Int](repeating: 1, count: spatial)
        let pads = try c.ints("pads") ?? [Int](repeating: 0, count: 2 * spatial)
        guard strides.count == spatial, dilations.count == spatial, pads.count == 2 * spatial,
              (strides + dilations + kernelShape).allSatisfy({ $0 > 0 && $0 <= 1 << 20 }), pads.allSatisfy({ $0 >= 0 && $0 <= 1 << 20 }) else {
            throw c.fail("strides \(strides), dilations \(dilations), pads \(pads) do not fit \(spatial)-D")
        }
        let autoPad = try c.string("auto_pad", "NOTSET")
        var outs: [Int] = [], begins: [Int] = [], ends: [Int] = []
        for axis in 0..<spatial {
            let w = try window(c, input: inputShape[2 + axis], kernel: kernelShape[axis], stride: strides[axis],
                               dilation: dilations[axis], padBegin: pads[axis], padEnd: pads[spatial + axis],
                               autoPad: autoPad, ceilMode: ceilMode)
            outs.append(w.out); begins.append(w.begin); ends.append(w.end)
        }
        // 1-D operations run as 2-D ones over a plane of height 1.
        let h = spatial == 2 ? 0 : -1
        func pick(_ values: [Int], _ one: Int) -> (Int, Int) { h == 0 ? (values[0], values[1]) : (one, values[0]) }
        let (inH, inW) = pick(Array(inputShape[2...]), 1)
        let (kH, kW) = pick(kernelShape, 1)
        let (sH, sW) = pick(strides, 1)
        let (dH, dW) = pick(dilations, 1)
        let (pT, pL) = pick(begins, 0)
        let (pB, pR) = pick(ends, 0)
        let (oH, oW) = pick(outs, 1)
        let g = stoke_window2d(in_h: Int64(inH), in_w: Int64(inW), kernel_h: Int64(kH), kernel_w: Int64(kW),
                               pad_top: Int64(pT), pad_left: Int64(pL), stride_h: Int64(sH), stride_w: Int64(sW),
                               dilation_h: Int64(dH), dilation_w: Int64(dW), out_h: Int64(oH), out_w: Int64(oW),
                               pad_bottom: Int64(pB), pad_right: Int64(pR))
        return (g, outs)
    }

    static func conv(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.float32Input(0), w = try c.float32Input(1)
        guard x.shape.count >= 3, w.shape.count == x.shape.count else { throw c.fail("X \(x.shape) and W \(w.shape) ranks do not fit") }
        let group = try c.int("group", 1)
        let (batch, channels) = (x.shape[0], x.shape[1])
        let filters = w.shape[0]
        guard group > 0, channels % group == 0, filters % group == 0, w.shape[1] == channels / group else {
            throw c.fail("W \(w.shape) does not fit \(channels) input channels in \(group) groups")
        }
        let kernelShape = try c.ints("kernel_shape") ?? Array(w.shape[2...])
        guard kernelShape == Array(w.shape[2...]) else { throw c.fail("kernel_shape \(kernelShape) differs from W \(w.shape)") }
        var (g, outSpatial) = try geometry(c, inputShape: x.shape, kernelShape: kernelShape)
        let bias = c.optionalInput(2)
        if let bias, bias.shape != [filters] { throw c.fail("B \(bias.shape) must be [\(filters)]") }
        let (act, actAlpha) = try c.fusedActivation()
        // A fused 2x2 MaxPool (GraphPasses.fuseMaxPool): the output is the pooled tensor.
        let fusedPool = try c.int(fusedMaxPoolKey, 0) != 0
        if fusedPool {
            guard outSpatial.count == 2, outSpatial.allSatisfy({ $0 >= 2 }) else {
                throw c.fail("fused 2x2 MaxPool needs a 2-D output of at least 2x2, got \(outSpatial)")
            }
        }
        let shape = [batch, filters] + (fusedPool ? outSpatial.map { $0 / 2 } : outSpatial)
        let (ix, iw, iy) = (c.inputSlots[0], c.inputSlots[1], c.outputSlots[0])
        let ib = bias == nil ? -1 : c.inputSlots[2]
        let plane = Int(g.out_h * g.out_w), inPlane = Int(g.in_h * g.in_w)
        let storedPlane = fusedPool ? Int(g.out_h / 2) * Int(g.out_w / 2) : plane
        let outputs: [(ElementType, [Int])] = [(.float32, shape)]
        // The output and everything sized from it (im2col columns, pooling scratch) are checked before
        // any of it is allocated: a few bytes of pads must not turn into a terabyte workspace.
        try c.checkOutput(.float32, shape)
        if elementCount(shape) == 0 { return .kernel(outputs) { _ in } }

        if group == channels && filters == channels && group > 1 && !fusedPool {
            return .kernel(outputs) { s in
                let biasPointer: UnsafePointer<Float>? = ib < 0 ? nil : unsafe UnsafePointer(s.floats(ib))
                for image in 0..<batch {
                    unsafe stoke_depthwise_conv2d_f32(s.floats(ix) + image * channels * inPlane, Int64(channels), s.floats(iw),
                                                      biasPointer, &g, s.floats(iy) + image * filters * plane)
                }
                if act != 0 { unsafe stoke_unary_f32(act, s.floats(iy), s.floats(iy), batch * filters * plane, actAlpha, 0) }
            }
        }
        let groupChannels = channels / group, groupFilters = filters / group
        let colRows = groupChannels * Int(g.kernel_h * g.kernel_w)
        // A 1x1, stride-1, unpadded convolution reads the input plane directly: no im2col.
        let pointwise = g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 &&
            g.pad_top == 0 && g.pad_left == 0 && g.pad_bottom == 0 && g.pad_right == 0
        if DirectConv.enabled(c.execution), group == 1, channels > 0, !pointwise, act <= 1, let weights = w.constant, unsafe stoke_conv2d_direct_supported(&g) != 0,
           DirectConv.pays(channels: channels, g) {
            return try directConv(c, g, weights: weights, batch: batch, channels: channels, filters: filters, slots: (ix, ib, iy),
                                  relu: act == 1, pool: fusedPool, outputs: outputs)
        }
        // Each image is one im2col and one GEMM per group, written straight into the output with
        // bias and ReLU applied as the GEMM stores its tiles (the column matrix of one image stays
        // in the L2 cache). With Stoke's GEMM the images are split across the session's threads,
        // each with its own workspace; OpenBLAS threads inside each GEMM instead.
        // Column-matrix rows start on 64-byte boundaries so the GEMM's vector loads of them never
        // straddle cache lines (a 14x14 plane is 784 bytes, which would split most loads).
        let columnStride = (plane + 15) / 16 * 16
        // With a fused pool and packed filters, images go through the GEMM two at a time: their
        // column matrices side by side make N = 2 x plane, so fewer columns are lost to the last,
        // partial 32-column tile (a 14x14 plane fills 7 tiles at 87.5%; two fill 13 at 94%).
        let paired = fusedPool && group == 1 && !pointwise && act <= 1 && c.execution.gemmInUse == .stokeAVX512
            && w.constant != nil
        let pairStride = (2 * plane + 15) / 16 * 16
        let columnBytes = pointwise ? [0] : [colRows, paired ? pairStride : columnStride, 4]
        let backend = c.execution.gemmInUse
        let parts = backend != .openBLAS ? max(1, min(c.execution.threads, batch)) : 1
        let gemmThreads = parts > 1 ? 1 : c.execution.threads
        let workspaces = try c.workspaces(parts, bytes: columnBytes, "im2col workspace")
        // Constant filters with Stoke's kernel: each group's [groupFilters, colRows] block packed once.
        let packedFilters: [TensorStorage]? = PrepackedGemm.enabled(backend)
            ? w.constant.map { weights in (0..<group).map { PrepackedGemm.packA(weights, offset: $0 * groupFilters * colRows, m: groupFilters, k: colRows, lda: colRows) } }
            : nil
        // With a fused MaxPool each image's full-resolution output goes to a per-thread scratch
        // plane set (filters x plane floats, tens of KiB: it stays in L1/L2) and is pooled from there.
        let poolScratch = try c.workspaces(fusedPool ? parts : 0, bytes: [filters, plane, paired ? 2 : 1, 4], "pooling scratch")
        let imagesPerPart = (batch + parts - 1) / parts
        let geometry = g
        let hasBias = ib >= 0
        let fusedRelu = act == 1
        return .kernel(outputs) { s in
            let biasPointer: UnsafePointer<Float>? = ib < 0 ? nil : unsafe UnsafePointer(s.floats(ib))
            let (x, w, y) = unsafe (s.floats(ix), s.floats(iw), s.floats(iy))
            let (xAddress, wAddress, yAddress, biasAddress) = (UInt(bitPattern: x), UInt(bitPattern: w), UInt(bitPattern: y),
                                                               UInt(bitPattern: biasPointer))
            let work: @Sendable (Int) -> Void = { part in
                guard let x = unsafe UnsafePointer<Float>(bitPattern: xAddress), let w = unsafe UnsafePointer<Float>(bitPattern: wAddress),
                      let y = unsafe UnsafeMutablePointer<Float>(bitPattern: yAddress) else { return }
                let bias = unsafe UnsafePointer<Float>(bitPattern: biasAddress)
                let col = unsafe workspaces[part].pointer.assumingMemoryBound(to: Float.self)
                var window = geometry
                let scratch = unsafe fusedPool ? poolScratch[part].pointer.assumingMemoryBound(to: Float.self) : nil
                let end = min(batch, (part + 1) * imagesPerPart)
                var image = part * imagesPerPart
                while image < end {
                    defer { image += 1 }
                    if paired, image + 1 < end, let packedFilters, let scratch = unsafe scratch {
                        let packed = unsafe UnsafePointer(packedFilters[0].pointer.assumingMemoryBound(to: Float.self))
                        for pairIndex in 0..<2 {
                            unsafe stoke_im2col_ld_f32(x + (image + pairIndex) * channels * inPlane, Int64(channels), &window,
                                                       col + pairIndex * plane, Int64(pairStride))
                        }
                        _ = unsafe stoke_sgemm_avx512_prepacked(filters, 2 * plane, colRows, nil, 0, packed, filters, 0,
                                                                UnsafePointer(col), pairStride, nil, 0, 0, scratch, 2 * plane,
                                                                hasBias ? bias : nil, nil, fusedRelu ? 1 : 0)
                        // Scratch row f holds filter f's plane of the first image, then of the second.
                        for filter in 0..<filters {
                            for pairIndex in 0..<2 {
                                unsafe stoke_maxpool2x2_f32(scratch + (2 * filter + pairIndex) * plane, 1, window.out_h, window.out_w,
                                                            y + ((image + pairIndex) * filters + filter) * storedPlane)
                            }
                        }
                        image += 1
                        continue
                    }
                    let imageOutput = unsafe scratch ?? y + image * filters * plane
                    for groupIndex in 0..<group {
                        let weights = unsafe w + groupIndex * groupFilters * colRows
                        let output = unsafe imageOutput + groupIndex * groupFilters * plane
                        let input = unsafe x + (image * channels + groupIndex * groupChannels) * inPlane
                        if !pointwise { unsafe stoke_im2col_ld_f32(input, Int64(groupChannels), &window, col, Int64(columnStride)) }
                        if let packedFilters {
                            let packed = unsafe UnsafePointer(packedFilters[groupIndex].pointer.assumingMemoryBound(to: Float.self))
                            _ = unsafe stoke_sgemm_avx512_prepacked(groupFilters, plane, colRows, nil, 0, packed, groupFilters, 0,
                                                                    pointwise ? input : UnsafePointer(col), pointwise ? plane : columnStride, nil, 0, 0,
                                                                    output, plane, hasBias ? bias.map { unsafe $0 + groupIndex * groupFilters } : nil,
                                                                    nil, fusedRelu ? 1 : 0)
                            continue
                        }
                        unsafe sgemm(backend: backend, threads: gemmThreads, transA: false, transB: false, m: groupFilters, n: plane,
                                     k: colRows, alpha: 1, a: weights, lda: colRows, b: pointwise ? input : UnsafePointer(col),
                                     ldb: pointwise ? plane : columnStride,
                                     beta: 0, y: output, ldy: plane,
                                     rowBias: hasBias ? bias.map { unsafe $0 + groupIndex * groupFilters } : nil, relu: fusedRelu)
                    }
                    if act > 1 {
                        unsafe stoke_unary_f32(act, imageOutput, imageOutput, filters * plane, actAlpha, 0)
                    }
                    if let scratch = unsafe scratch {
                        unsafe stoke_maxpool2x2_f32(scratch, Int64(filters), window.out_h, window.out_w, y + image * filters * storedPlane)
                    }
                }
            }
            if parts == 1 { work(0) } else { ParallelRegion.shared.run(parts: parts, work) }
        }
    }

    /// A stride-1, single-group Conv on the direct kernel (conv_f32.c): filters packed once here,
    /// images split across the session's threads, each thread with its own workspace (a
    /// zero-bordered copy of one image, tens of KiB for small CNNs).
    static func directConv(_ c: OpContext, _ g: stoke_window2d, weights: Tensor, batch: Int, channels: Int, filters: Int,
                           slots: (x: Int, bias: Int, y: Int), relu: Bool, pool: Bool, outputs: [(ElementType, [Int])]) throws(EngineError) -> OpPlan {
        let geometry = g
        let (kh, kw) = (Int64(g.kernel_h), Int64(g.kernel_w))
        let packed = TensorStorage(byteCount: stoke_conv2d_direct_packed_count(Int64(filters), Int64(channels), kh, kw) * 4)
        unsafe stoke_conv2d_direct_pack(weights.storage.pointer.assumingMemoryBound(to: Float.self), Int64(filters), Int64(channels), kh, kw,
                                        packed.pointer.assumingMemoryBound(to: Float.self))
        let parts = max(1, min(c.execution.threads, batch))
        let workspaceFloats = unsafe withUnsafePointer(to: geometry) { unsafe stoke_conv2d_direct_workspace_count(Int64(channels), $0) }
        let workspaces = try c.workspaces(parts, bytes: [workspaceFloats, 4], "direct convolution workspace")
        let imagesPerPart = (batch + parts - 1) / parts
        let inImage = channels * Int(g.in_h * g.in_w)
        let outImage = filters * (pool ? Int(g.out_h / 2) * Int(g.out_w / 2) : Int(g.out_h * g.out_w))
        let (reluFlag, poolFlag): (Int32, Int32) = (relu ? 1 : 0, pool ? 1 : 0)
        return .kernel(outputs) { s in
            let bias: UnsafePointer<Float>? = slots.bias < 0 ? nil : unsafe UnsafePointer(s.floats(slots.bias))
            let (xAddress, yAddress, biasAddress) = unsafe (UInt(bitPattern: s.floats(slots.x)), UInt(bitPattern: s.floats(slots.y)),
                                                            UInt(bitPattern: bias))
            let work: @Sendable (Int) -> Void = { part in
                let first = part * imagesPerPart, count = min(imagesPerPart, batch - first)
                guard count > 0, let x = unsafe UnsafePointer<Float>(bitPattern: xAddress),
                      let y = unsafe UnsafeMutablePointer<Float>(bitPattern: yAddress) else { return }
                var window = geometry
                _ = unsafe stoke_conv2d_direct_f32(x + first * inImage, Int64(count), Int64(channels), Int64(filters), &window,
                                                   packed.pointer.assumingMemoryBound(to: Float.self), UnsafePointer<Float>(bitPattern: biasAddress),
                                                   reluFlag, poolFlag, workspaces[part].pointer.assumingMemoryBound(to: Float.self),
                                                   y + first * outImage)
            }
            if parts == 1 { work(0) } else { ParallelRegion.shared.run(parts: parts, work) }
        }
    }

    /// ConvTranspose (1-D/2-D, groups, strides, dilations, pads, output_padding, output_shape):
    /// per image and group, col = Wᵀ X by GEMM, then col2im adds the columns into the output.
    static func convTranspose(_ c: OpContext) throws(EngineError) -> OpPlan {
        let (gemmBackend, gemmThreads) = (c.execution.gemmInUse, c.execution.threads)
        let x = try c.float32Input(0), w = try c.float32Input(1)
        guard x.shape.count == 3 || x.shape.count == 4, w.shape.count == x.shape.count else {
            throw c.unsupported("ConvTranspose of rank \(x.shape.count) (1-D and 2-D only)")
        }
        let spatial = x.shape.count - 2
        let group = try c.int("group", 1)
        let (batch, channels) = (x.shape[0], x.shape[1])
        guard group > 0, channels % group == 0, w.shape[0] == channels else { throw c.fail("W \(w.shape) does not fit \(channels) channels in \(group) groups") }
        let groupOut = w.shape[1], filters = groupOut * group, groupIn = channels / group
        let kernel = Array(w.shape[2...])
        let strides = try c.ints("strides") ?? [Int](repeating: 1, count: spatial)
        let dilations = try c.ints("dilations") ?? [Int](repeating: 1, count: spatial)
        let outputPadding = try c.ints("output_padding") ?? [Int](repeating: 0, count: spatial)
        var pads = try c.ints("pads") ?? [Int](repeating: 0, count: 2 * spatial)
        guard strides.count == spatial, dilations.count == spatial, outputPadding.count == spatial, pads.count == 2 * spatial,
              (strides + dilations).allSatisfy({ $0 > 0 && $0 <= 1 << 20 }), (pads + outputPadding).allSatisfy({ $0 >= 0 && $0 <= 1 << 20 }) else {
            throw c.fail("strides \(strides), dilations \(dilations), pads \(pads), output_padding \(outputPadding) do not fit \(spatial)-D")
        }
        let autoPad = try c.string("auto_pad", "NOTSET")
        let inputs = Array(x.shape[2...])
        var full: [Int] = []
        for axis in 0..<spatial {
            let span: Int = (kernel[axis] - 1) * dilations[axis] + 1
            let stretched: Int = strides[axis] * (inputs[axis] - 1)
            full.append(stretched + outputPadding[axis] + span)
        }
        var outs: [Int]
        if let requested = try c.ints("output_shape") {
            let target = requested.count == spatial ? requested : Array(requested.suffix(spatial))
            outs = target
            for axis in 0..<spatial {
                // Floor division, as the ONNX reference does: a negative total (an output larger
                // than the transposed convolution covers) leaves zero rows/columns at the end.
                let total = full[axis] - target[axis]
                let half = total >= 0 ? total / 2 : -((-total + 1) / 2)
                let (begin, end) = autoPad == "SAME_UPPER" ? (half, total - half) : (total - half, half)
                pads[axis] = begin
                pads[spatial + axis] = end
            }
        } else if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
            outs = zip(inputs, strides).map { $0 * $1 }
            for axis in 0..<spatial {
                let total = max(0, full[axis] - outs[axis])
                let (begin, end) = autoPad == "SAME_UPPER" ? (total / 2, total - total / 2) : (total - total / 2, total / 2)
                pads[axis] = begin
                pads[spatial + axis] = end
            }
        } else {
            outs = []
            for axis in 0..<spatial { outs.append(full[axis] - pads[axis] - pads[spatial + axis]) }
        }
        guard outs.allSatisfy({ $0 > 0 }) else { throw c.fail("output shape \(outs) (pads \(pads)) is invalid") }
        let shape = try c.checkedShape([batch, filters] + outs)
        try c.checkOutput(.float32, shape)
        // The window maps output positions (its "input" plane) to input positions (its "output" grid).
        let two = spatial == 2
        var g = stoke_window2d(in_h: Int64(two ? outs[0] : 1), in_w: Int64(outs[spatial - 1]),
                               kernel_h: Int64(two ? kernel[0] : 1), kernel_w: Int64(kernel[spatial - 1]),
                               pad_top: Int64(two ? pads[0] : 0), pad_left: Int64(pads[spatial - 1]),
                               stride_h: Int64(two ? strides[0] : 1), stride_w: Int64(strides[spatial - 1]),
                               dilation_h: Int64(two ? dilations[0] : 1), dilation_w: Int64(dilations[spatial - 1]),
                               out_h: Int64(two ? inputs[0] : 1), out_w: Int64(inputs[spatial - 1]),
                               pad_bottom: Int64(two ? pads[spatial] : 0), pad_right: Int64(pads[2 * spatial - 1]))
        let bias = c.optionalInput(2)
        if let bias, bias.count != filters { throw c.fail("B has \(bias.count) values for \(filters) outputs") }
        let (act, actAlpha) = try c.fusedActivation()
        let taps = kernel.reduce(1, *)
        let rows = groupOut * taps
        let inPlane = inputs.reduce(1, *), outPlane = outs.reduce(1, *)
        let workspace = try c.workspace(bytes: [rows, inPlane, 4], "col2im workspace")
        let (ix, iw, iy) = (c.inputSlots[0], c.inputSlots[1], c.outputSlots[0])
        let ib = bias == nil ? -1 : c.inputSlots[2]
        return .kernel([(.float32, shape)]) { s in
            let col = unsafe workspace.pointer.assumingMemoryBound(to: Float.self)
            unsafe s.floats(iy).update(repeating: 0, count: batch * filters * outPlane)
            for image in 0..<batch {
                for groupIndex in 0..<group {
                    // W block [groupIn, groupOut * taps] transposed times X block [groupIn, inPlane].
                    unsafe sgemm(backend: gemmBackend, threads: gemmThreads, transA: true, transB: false, m: rows, n: inPlane, k: groupIn, alpha: 1,
                                 a: s.floats(iw) + groupIndex * groupIn * rows, lda: rows,
                                 b: s.floats(ix) + (image * channels + groupIndex * groupIn) * inPlane, ldb: inPlane,
                                 beta: 0, y: col, ldy: inPlane)
                    unsafe stoke_col2im_add_f32(col, Int64(groupOut), &g, s.floats(iy) + (image * filters + groupIndex * groupOut) * outPlane)
                }
                if ib >= 0 || act != 0 {
                    let biasPointer: UnsafePointer<Float>? = ib < 0 ? nil : unsafe UnsafePointer(s.floats(ib))
                    unsafe stoke_bias_activation_f32(s.floats(iy) + image * filters * outPlane, filters, outPlane, biasPointer,
                                                     ib >= 0 ? 2 : 0, act, actAlpha, 0)
                }
            }
        }
    }

    static func pool(kind: Int32) -> OperatorRegistry.Planner {
        { (c: OpContext) throws(EngineError) -> OpPlan in
            let x = try c.float32Input(0)
            guard x.shape.count >= 3 else { throw c.fail("input \(x.shape) needs [N, C, spatial...]") }
            if c.node.outputs.count > 1, !c.node.outputs[1].isEmpty { throw c.unsupported("Indices output") }
            guard let kernelShape = try c.ints("kernel_shape") else { throw c.fail("missing kernel_shape") }
            var (g, outSpatial) = try geometry(c, inputShape: x.shape, kernelShape: kernelShape, ceilMode: try c.int("ceil_mode", 0) != 0)
            let includePad = Int32(try c.int("count_include_pad", 0))
            let planes = x.shape[0] * x.shape[1]
            let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
            // Large inputs split their planes across the session's threads.
            let parts = x.count >= 1 << 16 ? max(1, min(c.execution.threads, planes)) : 1
            let perPart = (planes + parts - 1) / parts
            let (inPlane, outPlane) = (Int(g.in_h * g.in_w), Int(g.out_h * g.out_w))
            let geometry = g
            let twoByTwo = kind == 0 && Self.isMaxPool2x2(g)
            return .kernel([(.float32, Array(x.shape[..<2]) + outSpatial)]) { s in
                if twoByTwo && parts == 1 {
                    unsafe stoke_maxpool2x2_f32(s.floats(ix), Int64(planes), geometry.in_h, geometry.in_w, s.floats(iy))
                    return
                }
                if parts == 1 {
                    unsafe stoke_pool2d_f32(kind, s.floats(ix), Int64(planes), &g, includePad, s.floats(iy))
                    return
                }
                let (xAddress, yAddress) = unsafe (UInt(bitPattern: s.floats(ix)), UInt(bitPattern: s.floats(iy)))
                ParallelRegion.shared.run(parts: parts) { part in
                    let first = part * perPart, count = min(perPart, planes - first)
                    guard count > 0, let x = unsafe UnsafePointer<Float>(bitPattern: xAddress),
                          let y = unsafe UnsafeMutablePointer<Float>(bitPattern: yAddress) else { return }
                    var window = geometry
                    if twoByTwo {
                        unsafe stoke_maxpool2x2_f32(x + first * inPlane, Int64(count), window.in_h, window.in_w, y + first * outPlane)
                        return
                    }
                    unsafe stoke_pool2d_f32(kind, x + first * inPlane, Int64(count), &window, includePad, y + first * outPlane)
                }
            }
        }
    }

    /// Whether a window is the 2x2, stride-2, unpadded, floor-mode one `stoke_maxpool2x2_f32` handles.
    static func isMaxPool2x2(_ g: stoke_window2d) -> Bool {
        g.kernel_h == 2 && g.kernel_w == 2 && g.stride_h == 2 && g.stride_w == 2 && g.dilation_h == 1 && g.dilation_w == 1 &&
            g.pad_top == 0 && g.pad_left == 0 && g.pad_bottom == 0 && g.pad_right == 0 &&
            g.out_h == g.in_h / 2 && g.out_w == g.in_w / 2
    }

    static func globalPool(max: Bool) -> OperatorRegistry.Planner {
        { (c: OpContext) throws(EngineError) -> OpPlan in
            let x = try c.float32Input(0)
            guard x.shape.count >= 3 else { throw c.fail("input \(x.shape) needs [N, C, spatial...]") }
            let planes = x.shape[0] * x.shape[1]
            let spatial = x.shape[2...].reduce(1, *)
            let shape = Array(x.shape[..<2]) + [Int](repeating: 1, count: x.shape.count - 2)
            let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
            if max {
                var g = stoke_window2d(in_h: 1, in_w: Int64(spatial), kernel_h: 1, kernel_w: Int64(spatial), pad_top: 0, pad_left: 0,
                                       stride_h: 1, stride_w: 1, dilation_h: 1, dilation_w: 1, out_h: 1, out_w: 1, pad_bottom: 0, pad_right: 0)
                return .kernel([(.float32, shape)]) { s in unsafe stoke_pool2d_f32(0, s.floats(ix), Int64(planes), &g, 0, s.floats(iy)) }
            }
            let dims: [Int64] = [Int64(planes), Int64(spatial)]
            let mask: [Int32] = [0, 1]
            let scale = 1 / Float(Swift.max(spatial, 1))
            return .kernel([(.float32, shape)]) { s in
                unsafe stoke_reduce_sum_f32(s.floats(ix), dims, 2, mask, s.floats(iy))
                unsafe cblas_sscal(Int32(planes), scale, s.floats(iy), 1)
            }
        }
    }

    static func batchNormalization(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.float32Input(0)
        guard x.shape.count >= 2 else { throw c.fail("input \(x.shape) needs [N, C, ...]") }
        if c.node.outputs.count > 1, c.node.outputs.dropFirst().contains(where: { !$0.isEmpty }) {
            throw c.unsupported("training-mode outputs (running mean/var)")
        }
        let channels = x.shape[1]
        var parameterSlots: [Int] = []
        var constants: [[Float]] = []
        for index in 1...4 {
            let value = try c.float32Input(index)
            guard value.count == channels else { throw c.fail("input \(index) has \(value.count) values for \(channels) channels") }
            parameterSlots.append(c.inputSlots[index])
            if let constant = value.constant { constants.append(constant.floats) }
        }
        let epsilon = try c.float("epsilon", 1e-5)
        // Scale and shift are folded once when the parameters are constants, else on every run.
        let folded = TensorStorage(byteCount: 2 * channels * 4)
        let foldEachRun = constants.count < 4
        if !foldEachRun {
            let (scale, shift) = foldedAffine(scale: constants[0], bias: constants[1], mean: constants[2], variance: constants[3], epsilon: epsilon)
            folded.copy(from: scale + shift)
        }
        let batch = x.shape[0], spatial = x.shape[2...].reduce(1, *)
        let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
        return .kernel([(.float32, x.shape)]) { s in
            let scale = unsafe folded.pointer.assumingMemoryBound(to: Float.self)
            let shift = unsafe scale + channels
            if foldEachRun {
                let (g, b, m, v) = unsafe (s.floats(parameterSlots[0]), s.floats(parameterSlots[1]), s.floats(parameterSlots[2]), s.floats(parameterSlots[3]))
                for k in 0..<channels {
                    unsafe scale[k] = g[k] / (v[k] + epsilon).squareRoot()
                    unsafe shift[k] = b[k] - m[k] * scale[k]
                }
            }
            unsafe stoke_channel_affine_f32(s.floats(ix), s.floats(iy), batch, channels, spatial, scale, shift)
        }
    }

    /// LRN (local response normalization across channels, AlexNet/Inception v1; opsets 1 and 13):
    /// y = x / (bias + alpha / size · Σ x²)^beta, the sum over channels c − ⌊(size−1)/2⌋ … c + ⌈(size−1)/2⌉
    /// clipped to [0, C), at each position of [N, C, spatial...].
    static func localResponseNormalization(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.float32Input(0)
        guard x.shape.count >= 3 else { throw c.fail("input \(x.shape) needs [N, C, spatial...]") }
        let size = try c.int("size", 0)
        guard size > 0, size <= 1 << 20 else { throw c.fail("size \(size) must be a positive number of channels") }
        let alpha = try c.float("alpha", 1e-4), beta = try c.float("beta", 0.75), bias = try c.float("bias", 1)
        let (batch, channels) = (x.shape[0], x.shape[1])
        let spatial = x.shape[2...].reduce(1, *)
        let (below, above) = ((size - 1) / 2, (size - 1) - (size - 1) / 2)
        let scale = alpha / Float(size)
        // One plane of squared sums, reused for every (image, channel).
        let sums = try c.workspace(bytes: [spatial, 4], "squared-sum plane")
        let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
        return .kernel([(.float32, x.shape)]) { s in
            let (input, output) = unsafe (s.floats(ix), s.floats(iy))
            let sum = unsafe sums.pointer.assumingMemoryBound(to: Float.self)
            for image in 0..<batch {
                let base = image * channels * spatial
                for channel in 0..<channels {
                    unsafe sum.update(repeating: 0, count: spatial)
                    for neighbor in max(0, channel - below)...min(channels - 1, channel + above) {
                        let plane = unsafe input + base + neighbor * spatial
                        for k in 0..<spatial { unsafe sum[k] += plane[k] * plane[k] }
                    }
                    let (from, to) = unsafe (input + base + channel * spatial, output + base + channel * spatial)
                    for k in 0..<spatial { unsafe to[k] = from[k] / powf(bias + scale * sum[k], beta) }
                }
            }
        }
    }

    /// InstanceNormalization: each [N, C] plane normalized by its own mean and variance, then
    /// scaled and shifted per channel.
    static func instanceNormalization(_ c: OpContext) throws(EngineError) -> OpPlan {
        let x = try c.float32Input(0), scale = try c.float32Input(1), bias = try c.float32Input(2)
        guard x.shape.count >= 3 else { throw c.fail("input \(x.shape) needs [N, C, spatial...]") }
        let (batch, channels) = (x.shape[0], x.shape[1])
        guard scale.count == channels, bias.count == channels else { throw c.fail("scale/B need \(channels) values") }
        let spatial = x.shape[2...].reduce(1, *)
        // Unit scale for the plane-wise layer norm: one float per spatial position.
        let ones = try c.workspace(bytes: [spatial, 4], "unit scale")
        if !c.shapesOnly { unsafe ones.pointer.initializeMemory(as: Float.self, repeating: 1, count: spatial) }
        let epsilon = try c.float("epsilon", 1e-5)
        let (ix, isc, ib, iy) = (c.inputSlots[0], c.inputSlots[1], c.inputSlots[2], c.outputSlots[0])
        return .kernel([(.float32, x.shape)]) { s in
            unsafe stoke_layer_norm_f32(s.floats(ix), s.floats(iy), batch * channels, spatial,
                                        ones.pointer.assumingMemoryBound(to: Float.self), nil, epsilon)
            unsafe stoke_channel_affine_f32(s.floats(iy), s.floats(iy), batch, channels, spatial, s.floats(isc), s.floats(ib))
        }
    }

    /// BatchNormalization as y = x * scale' + shift' per channel (inference form).
    static func foldedAffine(scale: [Float], bias: [Float], mean: [Float], variance: [Float], epsilon: Float) -> ([Float], [Float]) {
        var a = [Float](repeating: 0, count: scale.count), b = a
        for i in scale.indices {
            a[i] = scale[i] / (variance[i] + epsilon).squareRoot()
            b[i] = bias[i] - mean[i] * a[i]
        }
        return (a, b)
    }

    /// How a Reduce* operator combines elements.
    enum Reduction { case sum, mean, max, min }

    static func reduce(_ reduction: Reduction) -> OperatorRegistry.Planner {
        { (c: OpContext) throws(EngineError) -> OpPlan in
            let x = try c.float32Input(0)
            let rank = x.shape.count
            // Axes moved from an attribute to an input in opset 13 (ReduceSum) and 18 (the rest).
            let axesFromInput: Int64 = reduction == .sum ? 13 : 18
            let axes: [Int]? = c.opset >= axesFromInput ? try c.constantInput(1, "axes").map(intValues) : try c.ints("axes")
            let keepDims = try c.int("keepdims", 1) != 0
            let noopWhenEmpty = try c.int("noop_with_empty_axes", 0) != 0
            var mask = [Int32](repeating: 0, count: rank)
            if let axes, !axes.isEmpty {
                for a in axes { mask[try c.axis(a, rank: rank)] = 1 }
            } else if noopWhenEmpty {
                return .alias(.float32, x.shape)
            } else {
                mask = [Int32](repeating: 1, count: rank)
            }
            let keptShape = (0..<rank).map { mask[$0] != 0 ? 1 : x.shape[$0] }
            let shape = keepDims ? keptShape : (0..<rank).filter { mask[$0] == 0 }.map { x.shape[$0] }
            let reduced = (0..<rank).filter { mask[$0] != 0 }.reduce(1) { $0 * x.shape[$1] }
            let dims = x.shape.map { Int64($0) }
            let count = elementCount(shape)
            let scale: Float = reduced == 0 ? .nan : 1 / Float(reduced)
            let (ix, iy) = (c.inputSlots[0], c.outputSlots[0])
            return .kernel([(.float32, shape)]) { s in
                switch reduction {
                case .sum, .mean:
                    unsafe stoke_reduce_sum_f32(s.floats(ix), dims, Int32(rank), mask, s.floats(iy))
                    if reduction == .mean { unsafe cblas_sscal(Int32(count), scale, s.floats(iy), 1) }
                case .max, .min:
                    unsafe stoke_reduce_extreme_f32(s.floats(ix), dims, Int32(rank), mask, reduction == .max ? 0 : 1, s.floats(iy))
                }
            }
        }
    }
}
