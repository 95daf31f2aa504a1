import Foundation
import StokeStore
#if canImport(Glibc)
import Glibc
#endif

/// A throughput measured once: bytes and samples over seconds.
public struct Throughput: Sendable, Equatable {
    public var bytes: Int
    public var samples: Int
    public var seconds: Double
    public var bytesPerSecond: Double { Double(bytes) / max(seconds, 1e-9) }
    public var samplesPerSecond: Double { Double(samples) / max(seconds, 1e-9) }
}

/// What this machine allows for a store, measured in the same run as the loader.
public enum Ceilings {
    /// A plain sequential read of the whole file (8 MiB preads), in stored bytes/s.
    public static func storage(path: String, samples: Int) throws(StoreError) -> Throughput {
        let descriptor = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", message: unsafe String(cString: strerror(errno))) }
        defer { close(descriptor) }
        let blockBytes = 8 << 20
        var buffer = [UInt8](repeating: 0, count: blockBytes)
        var total = 0
        let start = ContinuousClock.now
        while true {
            let got = unsafe buffer.withUnsafeMutableBytes { unsafe pread(descriptor, $0.baseAddress, blockBytes, off_t(total)) }
            if got < 0 { throw .io(path: path, operation: "pread", message: unsafe String(cString: strerror(errno))) }
            if got == 0 { break }
            total += got
        }
        return Throughput(bytes: total, samples: samples, seconds: (ContinuousClock.now - start).seconds)
    }

    /// Every chunk of the fields decoded on `workers` threads from memory, no batching: the stored bytes
    /// are copied out of the file first, so only decoding is timed. Each thread decodes into a ring of
    /// `ringChunks` chunk buffers, so the output is not flattered by staying in the core's L2 cache (a
    /// loader's decoded chunks do not either). In decoded bytes/s.
    /// With `verifyChecksums`, Fletcher-32 is checked as the loader checks it.
    public static func decode(
        store: Store, fields names: [String], workers: Int, ringChunks: Int = 16, verifyChecksums: Bool = false
    ) throws(StoreError) -> Throughput {
        struct Job { var field: Field; var chunk: Int; var stored: [UInt8]; var mask: UInt32 }
        var jobs: [Job] = []
        var decodedBytes = 0
        for name in names {
            let field = try store.field(name)
            guard field.chunkRows != nil, field.decodesDirectly else {
                // Contiguous or library-read fields have nothing to decode outside HDF5: count their raw bytes as free.
                continue
            }
            for chunk in 0..<field.chunkCount {
                let (stored, mask) = unsafe try field.withStoredChunk(chunk) { (bytes, mask) throws(StoreError) in (unsafe Array(bytes), mask) }
                jobs.append(Job(field: field, chunk: chunk, stored: stored, mask: mask))
                decodedBytes += field.rows(inChunk: chunk).count * field.sampleBytes
            }
        }
        let threads = max(1, min(workers, jobs.count))
        // Each thread decodes into its own ring of chunk buffers (so the caches see fresh targets, as the
        // loader's batches do), allocated and touched before the clock starts: on a small store, zero-
        // filling 16 rings inside the timed region would be most of what the "ceiling" measured.
        final class Ring: @unchecked Sendable {
            // Used by one decoding thread only.
            var buffers: [[UInt8]]
            var scratch: [UInt8] = []
            init(count: Int, bytes: Int) { buffers = (0..<count).map { _ in [UInt8](repeating: 0, count: bytes) } }
        }
        let largest = jobs.map(\.field.chunkBytes).max() ?? 0
        let perThread = max(1, min(ringChunks, (jobs.count + threads - 1) / threads))
        let rings = (0..<threads).map { _ in Ring(count: perThread, bytes: largest) }
        let next = AtomicCounter()
        let failure = FirstError()
        let start = ContinuousClock.now
        let shared = jobs
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            let ring = rings[thread]
            var turn = 0
            while true {
                let index = next.increment()
                if index >= shared.count || failure.isSet { return }
                let job = shared[index]
                turn = (turn + 1) % ring.buffers.count
                do throws(StoreError) {
                    unsafe try withMutableBytes(of: &ring.buffers[turn]) { (buffer) throws(StoreError) in
                        let target = unsafe UnsafeMutableRawBufferPointer(rebasing: buffer[0..<job.field.chunkBytes])
                        unsafe try withBytes(of: job.stored) { (stored) throws(StoreError) in
                            try unsafe job.field.decode(
                                stored: stored, filterMask: job.mask, chunk: job.chunk, into: target, verifyChecksum: verifyChecksums,
                                scratch: &ring.scratch)
                        }
                    }
                } catch {
                    failure.set(error)
                    return
                }
            }
        }
        if let error = failure.value { throw error }
        let samples = names.isEmpty ? 0 : store.sampleCount
        return Throughput(bytes: decodedBytes, samples: samples, seconds: (ContinuousClock.now - start).seconds)
    }
}

final class AtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0  // guarded by lock
    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value - 1
    }
}

final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var error: StoreError?  // guarded by lock
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return error != nil }
    var value: StoreError? { lock.lock(); defer { lock.unlock() }; return error }
    func set(_ new: StoreError) { lock.lock(); if error == nil { error = new }; lock.unlock() }
}

extension Duration {
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}
