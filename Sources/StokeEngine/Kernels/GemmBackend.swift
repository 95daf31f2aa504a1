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

    /// The backend in use: `STOKE_GEMM=openblas|stoke-avx512|stoke-avx2` if set (and available), else
    /// the fastest available one measured once per process on an MLP-sized product (OpenBLAS 0.3.21 may pick a slow SSE3
    /// kernel when it does not recognize a virtual CPU; the measurement catches that).
    public static let selected: GemmBackend = {
        if let forced = ProcessInfo.processInfo.environment["STOKE_GEMM"].flatMap(GemmBackend.init(rawValue:)), forced.isAvailable { return forced }
        return calibrate()
    }()

    /// `selected`, or OpenBLAS when the kernel set in use on this thread lacks what the Stoke kernel
    /// needs (AVX-512F and FMA): what plans and calls use, so a forced lower set never reaches it.
    public static var current: GemmBackend {
        selected.isAvailable ? selected : .openBLAS
    }

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

/// The engine's thread budget, set by the most recent `Session` (like OpenBLAS's own setting,
/// it is process-wide).
enum EngineThreads {
    private static let count = Atomic<Int>(1)
    static var current: Int { count.load(ordering: .relaxed) }
    static func set(_ value: Int) { count.store(max(1, value), ordering: .relaxed) }
}

/// When stride-1, single-group convolutions with constant filters use the direct kernel
/// (conv_f32.c) instead of im2col + GEMM, on kernel sets where it has a vector path. `STOKE_CONV=im2col` keeps im2col + GEMM, for comparisons.
enum DirectConv {
    static let enabled: Bool = stoke_conv2d_direct_vectorized() != 0
        && ProcessInfo.processInfo.environment["STOKE_CONV"] != "im2col"

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
