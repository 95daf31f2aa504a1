import COpenBLAS
import CStokeKernels
import Dispatch
import Foundation
import Synchronization

/// Which FP32 GEMM implementation the engine's Gemm, MatMul and Conv kernels call.
public enum GemmBackend: String, Sendable, CaseIterable {
    /// OpenBLAS `cblas_sgemm`, multi-threaded by OpenBLAS.
    case openBLAS = "openblas"
    /// Stoke's packed AVX-512 kernel (CStokeKernels), split across the session's threads.
    case stokeAVX512 = "stoke-avx512"
    /// Stoke's packed AVX2/FMA kernel (6x16 tile), split across the session's threads.
    case stokeAVX2 = "stoke-avx2"

    /// Whether the kernel set in use on this thread can run this backend.
    public var isAvailable: Bool {
        switch self {
        case .openBLAS: true
        case .stokeAVX512: stoke_cpu_has(UInt32(STOKE_CPU_FEATURE_AVX512F | STOKE_CPU_FEATURE_FMA)) != 0
        case .stokeAVX2: stoke_cpu_has(UInt32(STOKE_CPU_FEATURE_AVX2 | STOKE_CPU_FEATURE_FMA)) != 0
        }
    }

    /// The kernel-set features this backend needs ("avx512f", "fma"; none for OpenBLAS).
    public var requiredFeatures: [String] {
        switch self {
        case .openBLAS: []
        case .stokeAVX512: ["avx512f", "fma"]
        case .stokeAVX2: ["avx2", "fma"]
        }
    }

    /// Whether kernel set `set` can run this backend.
    public func isAvailable(in set: KernelSet) -> Bool { requiredFeatures.allSatisfy(set.features.contains) }

    /// The fastest backend available here, measured once per process on an MLP-sized product
    /// (OpenBLAS 0.3.21 may pick a slow SSE3 kernel when it does not recognize a virtual CPU; the
    /// measurement catches that): what `ExecutionContext`'s `.automatic` GEMM choice records, so every
    /// context in a process that asks for it gets the same backend.
    public static let measuredFastest: GemmBackend = calibrate()

    /// OpenBLAS's name for the kernel family it chose (e.g. "SkylakeX", "Haswell", "Prescott").
    public static var openBLASCoreName: String {
        guard let name = unsafe openblas_get_corename() else { return "unknown" }
        return unsafe String(cString: name)
    }

    private static func calibrate() -> GemmBackend {
        let (m, n, k) = (128, 256, 512)
        let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: k * n)
        var c = [Float](repeating: 0, count: m * n)
        let candidates = allCases.filter(\.isAvailable)
        guard candidates.count > 1 else { return .openBLAS }
        var best: [GemmBackend: UInt64] = [:]
        for backend in candidates + candidates {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<4 {
                unsafe a.withUnsafeBufferPointer { pa in unsafe b.withUnsafeBufferPointer { pb in unsafe c.withUnsafeMutableBufferPointer { pc in
                    unsafe LinearOps.sgemm(backend: backend, threads: 1, transA: false, transB: false, m: m, n: n, k: k, alpha: 1,
                                           a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: n, beta: 0, y: pc.baseAddress!, ldy: n)
                } } }
            }
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            best[backend] = min(best[backend] ?? .max, elapsed)
        }
        return candidates.min { (best[$0] ?? .max) < (best[$1] ?? .max) } ?? .openBLAS
    }
}

/// When stride-1, single-group convolutions with constant filters use the direct kernel
/// (conv_f32.c) instead of im2col + GEMM: under the context's `.direct` policy (the default), on
/// kernel sets where it has a vector path and where it pays. `.im2col` (`STOKE_CONV=im2col`) keeps
/// im2col + GEMM, for comparisons.
enum DirectConv {
    /// Whether the direct kernel has a vector path on this machine (probed once per process).
    static let vectorized: Bool = stoke_conv2d_direct_vectorized() != 0

    /// Whether plans made with `context` use the direct kernel where it pays.
    static func enabled(_ context: ExecutionContext) -> Bool { context.conv == .direct && vectorized }

    /// Whether the direct kernel beats im2col + GEMM for this geometry. Its tiles are 16 output
    /// columns wide, so it wastes the lanes past the last column of a row; the GEMM gains with the
    /// reduction length (channels x taps). Measured (one core, CPU time, 3x3, batch 4-32): direct won
    /// at 87.5% lane use from 16 to 256 channels (14x14: 152 vs 96 GFLOP/s at 16 channels, 146 vs 134
    /// at 256; 56x56, 64 channels: 135 vs 92), lost at 75% and below once the reduction passed ~500
    /// (12x12, 128 channels: 131 vs 139; 17x17, 64: 93 vs 128; 7x7, 512: 66 vs 98) and won again at
    /// short reductions (7x7, 32 channels: 76 vs 57). A padded image up to 1 MiB stays in the L2
    /// cache, which every 8-filter block re-reads (56x56x64, 841 KiB, still won).
    static func pays(channels: Int, _ g: stoke_window2d) -> Bool {
        let columns = Int(g.out_w), lanes = (columns + 15) / 16 * 16
        let reduction = channels * Int(g.kernel_h * g.kernel_w)
        let padded = channels * Int(g.out_h + (g.kernel_h - 1) * g.dilation_h) * Int(g.out_w + (g.kernel_w - 1) * g.dilation_w)
        return padded <= 1 << 18 && (columns * 5 >= lanes * 4 || reduction <= 320)
    }
}

/// OpenBLAS's thread count is process-wide (`openblas_set_num_threads`), so the one OpenBLAS GEMM call
/// site runs under this lock and sets the count to its context's threads first: sessions with
/// different thread counts in one process never change each other's, and OpenBLAS GEMMs from different
/// sessions run one at a time (they would share OpenBLAS's one thread pool anyway). This matters for
/// results, not only speed: OpenBLAS's sums can round differently with another thread count (the
/// 784-512-256-10 MLP's outputs differ in the last bits between 1 and 2 threads; Stoke's kernels do not).
enum OpenBLASCalls {
    private static let lock = Mutex<Void>(())

    /// Runs `body` (an OpenBLAS call) with OpenBLAS set to `threads` threads.
    static func withThreads(_ threads: Int, _ body: () -> Void) {
        lock.withLock { _ in
            let wanted = Int32(max(1, threads))
            if copenblas_get_threads() != wanted { copenblas_set_threads(wanted) }
            body()
        }
    }
}
