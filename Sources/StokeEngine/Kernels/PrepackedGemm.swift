import CStokeKernels
import Dispatch

/// Constant GEMM operands packed once at plan time into the panel layout of Stoke's AVX-512
/// kernel (`stoke_sgemm_avx512_prepacked`): a Gemm/MatMul's weights (B) or a Conv's filters (A).
/// Packing per run cost the MLP's first layer a copy of its 1.6 MB of weights and a Conv one pack
/// of its filters per image; packed panels are also contiguous, so they stay in L1 whatever the
/// original row stride.
enum PrepackedGemm {
    /// Whether plans should pack constant weights: only Stoke's kernel reads packed panels.
    static var enabled: Bool { GemmBackend.selected == .stokeAVX512 }

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
        let byRows = m >= 64 * threads
        let tiles = byRows ? (m + 7) / 8 : (n + 31) / 32
        let parts = m * n * k >= 1 << 20 ? min(threads, tiles) : 1
        if parts <= 1 {
            _ = unsafe stoke_sgemm_avx512_prepacked(m, n, k, a, lda, nil, 0, 0, nil, 0, b, n, 0, y, ldy, rowBias, columnBias, reluFlag)
            return
        }
        let tile = byRows ? 8 : 32
        let perPart = ((byRows ? m : n) + parts - 1) / parts
        let span = (perPart + tile - 1) / tile * tile
        let (aAddress, bAddress, yAddress) = (UInt(bitPattern: a), UInt(bitPattern: b), UInt(bitPattern: y))
        let (rowBiasAddress, columnBiasAddress) = (UInt(bitPattern: rowBias), UInt(bitPattern: columnBias))
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let first = part * span
            let count = min(span, (byRows ? m : n) - first)
            guard count > 0, let a = unsafe UnsafePointer<Float>(bitPattern: aAddress),
                  let b = unsafe UnsafePointer<Float>(bitPattern: bAddress),
                  let y = unsafe UnsafeMutablePointer<Float>(bitPattern: yAddress) else { return }
            let rowBias = unsafe UnsafePointer<Float>(bitPattern: rowBiasAddress)
            let columnBias = unsafe UnsafePointer<Float>(bitPattern: columnBiasAddress)
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
