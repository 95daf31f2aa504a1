import CStokeKernels
import Foundation

/// How the engine runs: its thread budget, FP32 GEMM backend, convolution policy and CPU kernel set.
///
/// A value built once by the caller and held by each `Session` and `Trainer`; planners take their
/// threads, backend and policy from the context of the session they plan for, never from process-wide
/// state, so two sessions with different contexts in one process do not affect each other (and their
/// results are those each gives alone). The CLI checks the environment at start-up
/// (`parseEnvironment`) and makes its context from it when a command first runs the engine; library
/// users who pass nothing get `ExecutionContext.default`.
public struct ExecutionContext: Sendable, Equatable {
    /// Which FP32 GEMM to use.
    public enum GemmChoice: Sendable, Equatable {
        /// The fastest available backend, measured once per process (`GemmBackend.measuredFastest`):
        /// every context in the process that asks for it records the same backend. Being a timing,
        /// it can differ between processes (and the backends round differently); `.backend(_)` or
        /// `STOKE_GEMM` fixes it.
        case automatic
        /// This backend.
        case backend(GemmBackend)
    }

    /// How stride-1, single-group convolutions with constant filters are computed.
    public enum ConvPolicy: String, Sendable, Equatable, CaseIterable {
        /// The direct kernel (conv_f32.c) where the kernel set has its vector path and the geometry
        /// pays (`DirectConv.pays`), else im2col + GEMM.
        case direct
        /// Always im2col + GEMM (for comparisons).
        case im2col
    }

    /// Threads the engine's kernels use (≥ 1): Stoke's GEMMs, convolutions, pooling and quantized
    /// kernels split their work across this many threads, and OpenBLAS runs with this many.
    public let threads: Int
    /// The FP32 GEMM backend, resolved when the context was made (never `.automatic` here).
    /// Plans made on a thread whose kernel set lacks what it needs use OpenBLAS (`gemmInUse`).
    public let gemm: GemmBackend
    /// The convolution policy.
    public let conv: ConvPolicy
    /// The CPU kernel set Stoke's C kernels run on: the machine's features as restricted by
    /// `STOKE_CPU`. The restriction itself is process-wide and applied once at start-up
    /// (`KernelSet.restrictProcess()`, or by the C kernels' first use in processes that do not call it); the
    /// context records it for reports (`kernel_set` in the CLI's JSON).
    public let kernelSet: KernelSet

    /// - Parameters:
    ///   - threads: engine threads; values below 1 become 1.
    ///   - gemm: the GEMM backend, or `.automatic` (measured once per process).
    ///   - conv: the convolution policy.
    ///   - kernelSet: the kernel set to record (default: the one in use on this thread now).
    public init(threads: Int = 1, gemm: GemmChoice = .automatic, conv: ConvPolicy = .direct, kernelSet: KernelSet = .current) {
        self.threads = max(1, threads)
        switch gemm {
        case .automatic: self.gemm = GemmBackend.measuredFastest
        case let .backend(backend): self.gemm = backend
        }
        self.conv = conv
        self.kernelSet = kernelSet
    }

    /// This context with `threads` threads (values below 1 become 1).
    public func with(threads: Int) -> ExecutionContext {
        ExecutionContext(threads: threads, gemm: .backend(gemm), conv: conv, kernelSet: kernelSet)
    }

    /// The context for library users who pass none: one thread, and `fromEnvironment()`'s GEMM,
    /// convolution policy and kernel set, read once per process (values it refuses are ignored here,
    /// giving the automatic choices).
    public static let `default`: ExecutionContext = {
        (try? fromEnvironment()) ?? ExecutionContext(threads: 1)
    }()

    /// The backend plans made now on this thread use: `gemm`, or OpenBLAS when this thread's kernel
    /// set lacks what `gemm` needs (a test forcing a lower set, say), so such a set never reaches it.
    public var gemmInUse: GemmBackend { gemm.isAvailable ? gemm : .openBLAS }

    /// A context from the environment, read once (`parseEnvironment(_:)`, then
    /// `EnvironmentRequest.context(threads:)`):
    /// - `STOKE_CPU=portable|avx2|avx-vnni|avx512|avx512-vnni`: the kernel set (default: the machine's best);
    /// - `STOKE_GEMM=openblas|stoke-avx512|stoke-avx2`: the GEMM backend (default: measured once per process);
    /// - `STOKE_CONV=direct|im2col`: the convolution policy (default: direct).
    ///
    /// Empty values count as unset. `threads` sets the thread count (the environment has none).
    /// - Throws: `ExecutionContextError` naming the variable and its value when a value is not one
    ///   of those, or names a GEMM backend the kernel set cannot run.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment,
                                       threads: Int = 1) throws(ExecutionContextError) -> ExecutionContext {
        try parseEnvironment(environment).context(threads: threads)
    }

    /// What the environment asks for, checked but not yet resolved: a caller can check the
    /// environment at start-up (and restrict the process to `kernelSet`) without timing the GEMM
    /// backends, and make the context when it first runs the engine.
    public struct EnvironmentRequest: Sendable, Equatable {
        /// The kernel set `STOKE_CPU` names (default: the one in use now).
        public let kernelSet: KernelSet
        /// `STOKE_GEMM`'s backend, or `.automatic`.
        public let gemm: GemmChoice
        /// `STOKE_CONV`'s policy (default: direct).
        public let conv: ConvPolicy

        /// The context these settings give, with `threads` threads (an automatic GEMM choice is
        /// resolved here: measured the first time in the process, the same backend after that).
        public func context(threads: Int = 1) -> ExecutionContext {
            ExecutionContext(threads: threads, gemm: gemm, conv: conv, kernelSet: kernelSet)
        }
    }

    /// Reads and checks `STOKE_CPU`, `STOKE_GEMM` and `STOKE_CONV` (see `fromEnvironment`) without
    /// measuring anything.
    /// - Throws: `ExecutionContextError` naming the variable and its value.
    public static func parseEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(ExecutionContextError) -> EnvironmentRequest {
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        var kernelSet = KernelSet.current
        if let name = value("STOKE_CPU") {
            guard let set = KernelSet.restricted(to: name) else {
                throw ExecutionContextError(variable: "STOKE_CPU", value: name,
                                            reason: "is not a kernel set; use one of \(KernelSet.names.joined(separator: ", "))")
            }
            kernelSet = set
        }
        var gemm = GemmChoice.automatic
        if let name = value("STOKE_GEMM") {
            guard let backend = GemmBackend(rawValue: name) else {
                throw ExecutionContextError(variable: "STOKE_GEMM", value: name,
                                            reason: "is not a GEMM backend; use one of \(GemmBackend.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard backend.isAvailable(in: kernelSet) else {
                throw ExecutionContextError(variable: "STOKE_GEMM", value: name,
                                            reason: "needs \(backend.requiredFeatures.joined(separator: " and ")), which kernel set \(kernelSet.name) lacks")
            }
            gemm = .backend(backend)
        }
        var conv = ConvPolicy.direct
        if let name = value("STOKE_CONV") {
            guard let policy = ConvPolicy(rawValue: name) else {
                throw ExecutionContextError(variable: "STOKE_CONV", value: name,
                                            reason: "is not a convolution policy; use one of \(ConvPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            conv = policy
        }
        return EnvironmentRequest(kernelSet: kernelSet, gemm: gemm, conv: conv)
    }

    /// Restricts the whole process's C kernels to `kernelSet` (what `STOKE_CPU` does). Call once at
    /// start-up, before any kernel runs: the restriction is process-wide.
    public func applyKernelSet() { kernelSet.restrictProcess() }
}

/// An environment variable `ExecutionContext.fromEnvironment` refuses.
public struct ExecutionContextError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The variable, e.g. "STOKE_GEMM".
    public let variable: String
    /// Its value.
    public let value: String
    /// Why it is refused and what is accepted.
    public let reason: String

    public var description: String { "\(variable)=\(value) \(reason)" }
}
