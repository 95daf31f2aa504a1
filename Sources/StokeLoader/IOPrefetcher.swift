import Foundation
import StokeStore
#if canImport(Glibc)
import Glibc
#endif

/// Reads stored chunks ahead of decoding, in the order the epoch plan will need them: a thread walks
/// the plan's chunk extents and asks the kernel to read each one (`posix_fadvise(POSIX_FADV_WILLNEED)`,
/// which queues the reads and returns), at most `budgetBytes` ahead of the batches the workers have
/// taken. Cold, the disk then works while the workers decode instead of each page fault waiting for
/// its own 4 KiB-plus-readahead read.
///
/// The memory it commits is bounded: the bytes advised and not yet reached by the workers never exceed
/// `budgetBytes` (a single extent larger than the budget is advised alone). It allocates nothing per
/// chunk. With `dropConsumed`, extents the workers have decoded are dropped from the page cache
/// (`POSIX_FADV_DONTNEED`), so a run behaves as on a store larger than memory.
///
/// State is guarded by `condition`; the advice calls run outside it.
@safe final class IOPrefetcher: @unchecked Sendable {
    /// One chunk's stored bytes and the first batch that needs them.
    struct Extent: Sendable, Equatable {
        var offset: UInt64
        var size: UInt64
        var batch: Int
    }

    let path: String
    /// The most bytes advised ahead of the workers.
    let budgetBytes: Int
    let dropConsumed: Bool
    private let descriptor: Int32
    private let condition = NSCondition()
    private let exited = DispatchSemaphore(value: 0)

    // Guarded by `condition`.
    private var extents: [Extent] = []
    private var nextIssue = 0
    private var firstUnconsumed = 0
    private var consumedBatches = 0
    private var inFlightBytes = 0
    private var generation = 0
    private var drops: [(UInt64, UInt64)] = []
    private var shuttingDown = false
    private var peak = 0
    private var issued = 0
    private var issuedCount = 0
    private var order: [Extent] = []
    private var recording = false

    /// This epoch's most bytes ahead at once.
    var peakInFlightBytes: Int { locked { peak } }
    /// Bytes and extents advised this epoch.
    var issuedBytes: Int { locked { issued } }
    var issuedExtents: Int { locked { issuedCount } }
    /// The extents advised this epoch in order, when `recordOrder` is set (tests).
    var issuedOrder: [Extent] { locked { order } }
    var recordOrder: Bool {
        get { locked { recording } }
        set { locked { recording = newValue } }
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }

    /// Opens the file for advice and starts the thread.
    /// - Parameters:
    ///   - budgetBytes: bytes advised ahead of the workers at most (> 0).
    ///   - dropConsumed: drop chunks from the page cache once decoded.
    init(path: String, budgetBytes: Int, dropConsumed: Bool = false) throws(StoreError) {
        self.path = path
        self.budgetBytes = max(1, budgetBytes)
        self.dropConsumed = dropConsumed
        let descriptor = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", message: unsafe String(cString: strerror(errno))) }
        self.descriptor = descriptor
        let thread = Thread { [self] in
            self.run()
            self.exited.signal()
        }
        thread.name = "stoke-io-prefetch"
        thread.start()
    }

    deinit { _ = close(descriptor) }

    /// Starts a new epoch's extents (in the order the plan needs them), dropping the previous epoch's.
    func start(_ extents: [Extent], fromBatch batch: Int) {
        condition.lock()
        generation += 1
        self.extents = extents
        nextIssue = 0
        firstUnconsumed = 0
        consumedBatches = batch
        inFlightBytes = 0
        // The counters describe one epoch.
        peak = 0
        issued = 0
        issuedCount = 0
        order = []
        advanceConsumedLocked()
        condition.broadcast()
        condition.unlock()
    }

    /// The workers have taken every batch below `batches`: their extents no longer count as ahead.
    func consumed(batchesBelow batches: Int) {
        condition.lock()
        if batches > consumedBatches {
            consumedBatches = batches
            advanceConsumedLocked()
            condition.broadcast()
        }
        condition.unlock()
    }

    /// Stops advising for the current epoch (the loader's epoch ended or was abandoned).
    func stop() {
        condition.lock()
        generation += 1
        extents = []
        nextIssue = 0
        firstUnconsumed = 0
        inFlightBytes = 0
        condition.broadcast()
        condition.unlock()
    }

    /// Stops the thread and waits for it; safe to call twice.
    func shutdown() {
        condition.lock()
        let first = !shuttingDown
        shuttingDown = true
        condition.broadcast()
        condition.unlock()
        if first { exited.wait() }
    }

    /// Bytes advised and not yet reached by the workers, now.
    var inFlight: Int {
        condition.lock()
        defer { condition.unlock() }
        return inFlightBytes
    }

    /// The file's size now (a file truncated under a reader is reported before its pages are touched).
    func currentFileSize() throws(StoreError) -> Int {
        var status = stat()
        guard unsafe fstat(descriptor, &status) == 0 else {
            throw .io(path: path, operation: "fstat", message: unsafe String(cString: strerror(errno)))
        }
        return Int(status.st_size)
    }

    /// Drops a decoded chunk's bytes from the page cache (with `dropConsumed`). The drop is done by the
    /// prefetcher's thread, after any read-ahead advice it is giving, so advice given late cannot read
    /// a dropped chunk back in.
    func dropFromCache(offset: UInt64, size: UInt64) {
        guard dropConsumed, size > 0 else { return }
        condition.lock()
        drops.append((offset, size))
        condition.broadcast()
        condition.unlock()
    }

    private func drop(_ offset: UInt64, _ size: UInt64) {
        // Whole pages only are dropped: widen the range to the pages the chunk touches.
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let start = offset / page * page
        let end = (offset + size + page - 1) / page * page
        _ = posix_fadvise(descriptor, off_t(start), off_t(end - start), POSIX_FADV_DONTNEED)
    }

    private func advanceConsumedLocked() {
        while firstUnconsumed < extents.count && extents[firstUnconsumed].batch < consumedBatches {
            if firstUnconsumed < nextIssue { inFlightBytes -= Int(extents[firstUnconsumed].size) }
            firstUnconsumed += 1
        }
        // Extents the workers reached before they were advised are not worth advising any more.
        if nextIssue < firstUnconsumed { nextIssue = firstUnconsumed }
    }

    private func run() {
        condition.lock()
        while true {
            if !drops.isEmpty {
                let pending = drops
                drops.removeAll(keepingCapacity: true)
                condition.unlock()
                for (offset, size) in pending { drop(offset, size) }
                condition.lock()
                continue
            }
            if shuttingDown {
                condition.unlock()
                return
            }
            guard nextIssue < extents.count else {
                condition.wait()
                continue
            }
            let extent = extents[nextIssue]
            let size = Int(extent.size)
            guard inFlightBytes == 0 || inFlightBytes + size <= budgetBytes else {
                condition.wait()
                continue
            }
            nextIssue += 1
            inFlightBytes += size
            peak = max(peak, inFlightBytes)
            issued += size
            issuedCount += 1
            if recording { order.append(extent) }
            condition.unlock()
            if size > 0 { _ = posix_fadvise(descriptor, off_t(extent.offset), off_t(size), POSIX_FADV_WILLNEED) }
            condition.lock()
        }
    }
}
