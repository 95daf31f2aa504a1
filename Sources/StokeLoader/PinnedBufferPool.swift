#if canImport(Glibc)
import Glibc
#endif

/// Whether batch buffers are page-locked, and why not when they are not.
public struct PinningStatus: Sendable, Equatable {
    public var pinned: Bool
    /// Why pinning was not possible (RLIMIT_MEMLOCK too small, mlock error…); empty when pinned.
    public var reason: String
    /// Bytes page-locked.
    public var lockedBytes: Int
    /// Whether the pool is registered with the CUDA runtime (cudaHostRegister), and why not otherwise.
    public var cudaRegistered = false
    public var cudaReason = ""
}

/// A fixed set of page-aligned batch buffers, allocated once, page-locked with mlock when
/// RLIMIT_MEMLOCK allows, and recycled: the steady state allocates nothing. Buffers are identified by
/// slot number; the pool never hands out a slot twice before it is returned.
///
/// The memory is owned here and freed in `deinit`; views of it are handed out only while a slot is
/// leased. Slot bookkeeping is done by the loader under its own lock.
@safe final class PinnedBufferPool: @unchecked Sendable {
    let bufferBytes: Int
    let count: Int
    private(set) var status: PinningStatus
    private let base: UnsafeMutableRawPointer
    private let totalBytes: Int

    init(count: Int, bufferBytes: Int, pin: Bool, registerWithCUDA: Bool = true) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let rounded = max(page, (bufferBytes + page - 1) / page * page)
        self.bufferBytes = rounded
        self.count = count
        totalBytes = rounded * count
        var pointer: UnsafeMutableRawPointer? = nil
        let allocated = unsafe posix_memalign(&pointer, page, totalBytes)
        precondition(allocated == 0, "posix_memalign of \(totalBytes) bytes failed: \(allocated)")
        unsafe base = pointer!
        // Touch every page once so the steady state takes no page faults.
        unsafe base.initializeMemory(as: UInt8.self, repeating: 0, count: totalBytes)
        var limit = rlimit()
        _ = unsafe getrlimit(__rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue), &limit)
        let allowed = limit.rlim_cur == rlim_t.max ? Int.max : Int(clamping: limit.rlim_cur)
        if !pin {
            self.status = PinningStatus(pinned: false, reason: "pinning turned off", lockedBytes: 0)
        } else if totalBytes > allowed {
            self.status = PinningStatus(
                pinned: false, reason: "RLIMIT_MEMLOCK is \(allowed) bytes, the pool needs \(totalBytes) (raise it with ulimit -l)",
                lockedBytes: 0)
        } else if unsafe mlock(base, totalBytes) != 0 {
            self.status = PinningStatus(pinned: false, reason: unsafe "mlock failed: \(String(cString: strerror(errno)))", lockedBytes: 0)
        } else {
            self.status = PinningStatus(pinned: true, reason: "", lockedBytes: totalBytes)
        }
        if registerWithCUDA {
            if let reason = unsafe CUDAHostRegistration.register(base, bytes: totalBytes) {
                status.cudaReason = reason
            } else {
                status.cudaRegistered = true
            }
        } else {
            status.cudaReason = "CUDA registration turned off"
        }
    }

    deinit {
        if status.cudaRegistered { unsafe CUDAHostRegistration.unregister(base) }
        if status.pinned { unsafe munlock(base, totalBytes) }
        unsafe free(base)
    }

    /// The whole buffer of `slot`.
    func buffer(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        precondition(slot >= 0 && slot < count)
        return unsafe UnsafeMutableRawBufferPointer(start: base.advanced(by: slot * bufferBytes), count: bufferBytes)
    }
}
