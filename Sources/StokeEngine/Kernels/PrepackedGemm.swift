import CStokeKernels

/// Constant GEMM operands packed once at plan time into the panel layout of Stoke's AVX-512
/// kernel (`stoke_sgemm_avx512_prepacked`): a Gemm/MatMul's weights (B) or a Conv's filters (A).
/// Packing per run cost the MLP's first layer a copy of its 1.6 MB of weights and a Conv one pack
/// of its filters per image; packed panels are also contiguous, so they stay in L1 whatever the
/// original row stride.
enum PrepackedGemm {
    /// Whether plans on `backend` (a context's `gemmInUse`) should pack constant weights: only
    /// Stoke's AVX-512 kernel reads packed panels.
    static func enabled(_ backend: GemmBackend) -> Bool { backend == .stokeAVX512 }

    /// op(B) [k, n] packed; `transB` when `b` is stored [n, k] (PyTorch Linear weights).
    static func packB(_ b: Tensor, k: Int, n: Int, transB: Bool) -> TensorStorage {
        let packed = TensorStorage(byteCount: stoke_sgemm_packed_b_count(k, n) * 4)
        unsafe stoke_sgemm_pack_b(k, n, b.storage.pointer.assumingMemoryBound(to: Float.self), transB ? k : n, transB ? 1 : 0,
                                  packed.pointer.assumingMemoryBound(to: Float.self))
        return packed
    }

    /// A [m, k] (row stride `lda`, starting `offset` floats into `a`) packed.
    static func packA(_ a: Tensor, offset: Int, m: Int, k: Int, lda: Int) -> TensorStorage {
        let packed = TensorStorage(byteCount: stoke_sgemm_packed_a_count(m, k) * 4)
        unsafe stoke_sgemm_pack_a(m, k, a.storage.pointer.assumingMemoryBound(to: Float.self) + offset, lda,
                                  packed.pointer.assumingMemoryBound(to: Float.self))
        return packed
    }

    /// y[m, n] (row stride ldy) = A[m, k] · packed B (+ rowBias[i]) (+ columnBias[j]), then ReLU,
    /// split across `threads`: by rows (multiples of 8) when A is tall, else by columns (multiples
    /// of 32, so each part starts on a packed panel). Small products stay on one thread.
    static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, packedB: TensorStorage,
                         y: UnsafeMutablePointer<Float>, ldy: Int, rowBias: UnsafePointer<Float>?, columnBias: UnsafePointer<Float>?,
                         relu: Bool, threads: Int) {
        guard m > 0, n > 0 else { return }
        let b = unsafe UnsafePointer(packedB.pointer.assumingMemoryBound(to: Float.self))
        let reluFlag: Int32 = relu ? 1 : 0
        GemmSplit.run(m: m, n: n, k: k, threads: threads) { byRows, first, count in
            if byRows {
                _ = unsafe stoke_sgemm_avx512_prepacked(count, n, k, a + first * lda, lda, nil, 0, 0, nil, 0, b, n, 0,
                                                        y + first * ldy, ldy, rowBias.map { unsafe $0 + first }, columnBias, reluFlag)
            } else {
                _ = unsafe stoke_sgemm_avx512_prepacked(m, count, k, a, lda, nil, 0, 0, nil, 0, b, n, first,
                                                        y + first, ldy, rowBias, columnBias.map { unsafe $0 + first }, reluFlag)
            }
        }
    }
}

/// How a GEMM is split across threads: by rows (multiples of the kernel's 8-row tile) when A is tall,
/// else by columns (multiples of 32, so no thread repeats another's packing and prepacked panels start
/// on a boundary). Products under 2^20 multiply-adds stay on one thread, where the fork costs more.
enum GemmSplit {
    /// Calls `part(byRows, first, count)` once per part, concurrently when there are several; a single
    /// part covers every row (`byRows`) or column.
    static func run(m: Int, n: Int, k: Int, threads: Int, _ part: (_ byRows: Bool, _ first: Int, _ count: Int) -> Void) {
        // Wider than tall (784→512 at batch 256): split the columns, so each thread streams only its half
        // of the packed weights (which then fit its L2) instead of all of them (MLP at 2 threads 233k →
        // 250k samples/s).
        let byRows = m >= 64 * threads && (n < 64 * threads || m >= n)
        let total = byRows ? m : n
        let tile = byRows ? 8 : 32
        let parts = m * n * k >= 1 << 20 ? min(threads, (total + tile - 1) / tile) : 1
        if parts <= 1 {
            part(byRows, 0, total)
            return
        }
        let span = ((total + parts - 1) / parts + tile - 1) / tile * tile
        ParallelRegion.shared.run(parts: parts) { index in
            let first = index * span
            let count = min(span, total - first)
            if count > 0 { part(byRows, first, count) }
        }
    }
}
