#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Page-locks host memory with the CUDA runtime (cudaHostRegister), when one is installed, so GPU copies
/// from batch buffers run at full DMA speed. Loaded with dlopen at run time: Stoke never requires CUDA.
@safe enum CUDAHostRegistration {
    private typealias Register = @convention(c) (UnsafeMutableRawPointer?, Int, UInt32) -> Int32
    private typealias Unregister = @convention(c) (UnsafeMutableRawPointer?) -> Int32

    @safe private struct Runtime: @unchecked Sendable {
        // Function pointers from dlsym, immutable once loaded.
        let register: Register
        let unregister: Unregister
    }

    /// The runtime's entry points, or why there are none. Looked up once per process.
    private static let runtime: Result<Runtime, RegistrationError> = {
        var names = ["libcudart.so", "libcudart.so.12", "libcudart.so.11.0"]
        if let configured = ProcessInfo.processInfo.environment["STOKE_CUDART"], !configured.isEmpty { names.insert(configured, at: 0) }
        for name in names {
            guard let library = unsafe dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
            guard let register = unsafe dlsym(library, "cudaHostRegister"), let unregister = unsafe dlsym(library, "cudaHostUnregister") else {
                return .failure(RegistrationError(reason: "\(name) has no cudaHostRegister"))
            }
            return unsafe .success(Runtime(
                register: unsafeBitCast(register, to: Register.self), unregister: unsafeBitCast(unregister, to: Unregister.self)))
        }
        return .failure(RegistrationError(reason: "no CUDA runtime (libcudart) found"))
    }()

    struct RegistrationError: Error { let reason: String }

    /// Registers `[base, base + bytes)`; returns nil on success or the reason it was not registered.
    static func register(_ base: UnsafeMutableRawPointer, bytes: Int) -> String? {
        switch runtime {
        case .failure(let error):
            return error.reason
        case .success(let runtime):
            let status = unsafe runtime.register(base, bytes, 0)  // cudaHostRegisterDefault
            return status == 0 ? nil : "cudaHostRegister failed with CUDA error \(status)"
        }
    }

    static func unregister(_ base: UnsafeMutableRawPointer) {
        if case .success(let runtime) = runtime { _ = unsafe runtime.unregister(base) }
    }
}
