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

    /// The backend in use: `STOKE_GEMM=openblas|stoke-avx512` if set, else the faster of the two
    /// measured once per process on an MLP-sized product (OpenBLAS 0.3.21 may pick a slow SSE3
    /// kernel when it does not recognize a virtual CPU; the measurement catches that).
    public static let selected: GemmBackend = {
        if let forced = ProcessInfo.processInfo.environment["STOKE_GEMM"].flatMap(GemmBackend.init(rawValue:)) { return forced }
        return calibrate()
    }()

    /// OpenBLAS's name for the kernel family it chose (e.g. "SkylakeX", "Haswell", "Prescott").
    public static var openBLASCoreName: String {
        guard let name = unsafe openblas_get_corename() else { return "unknown" }
        return unsafe String(cString: name)
    }

    private static func calibrate() -> GemmBackend {
        let (m, n, k) = (128, 256, 512)
        let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: k * n)
        var c = [Float](repeating: 0, count: m * n)
        guard unsafe a.withUnsafeBufferPointer({ pa in unsafe b.withUnsafeBufferPointer { pb in unsafe c.withUnsafeMutableBufferPointer { pc in
            unsafe stoke_sgemm_avx512(0, 0, m, n, k, 1, pa.baseAddress!, k, pb.baseAddress!, n, 0, pc.baseAddress!, n)
        } } }) == 0 else { return .openBLAS }
        var best: [GemmBackend: UInt64] = [:]
        for backend in [GemmBackend.openBLAS, .stokeAVX512, .openBLAS, .stokeAVX512] {
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
        return (best[.stokeAVX512] ?? .max) < (best[.openBLAS] ?? .max) ? .stokeAVX512 : .openBLAS
    }
}

/// The engine's thread budget, set by the most recent `Session` (like OpenBLAS's own setting,
/// it is process-wide).
enum EngineThreads {
    private static let count = Atomic<Int>(1)
    static var current: Int { count.load(ordering: .relaxed) }
    static func set(_ value: Int) { count.store(max(1, value), ordering: .relaxed) }
}

/// Whether stride-1, single-group convolutions with constant filters use the direct kernel
/// (conv_f32.c) instead of im2col + GEMM. Measured on the benchmark CNN's 16 -> 32 3x3 conv (batch
/// 256, 14x14): see docs/ARCHITECTURE.md. `STOKE_CONV=im2col` keeps im2col + GEMM, for comparisons.
enum DirectConv {
    static let enabled: Bool = stoke_cpu_probe().rawValue >= STOKE_CPU_AVX512_VNNI.rawValue
        && ProcessInfo.processInfo.environment["STOKE_CONV"] != "im2col"

    /// The largest padded image (channels x padded height x padded width, floats) the direct path
    /// takes: 256 KiB, so one image stays in the L2 cache while every 8-filter block re-reads it.
    static let maxPaddedFloats = 1 << 16
}
