import Foundation

/// One chunk to encode: raw bytes in, stored bytes out.
struct ChunkJob: Sendable {
    var sequence: Int
    var field: Int
    var chunk: Int
    var rows: Int
    var raw: [UInt8]
    var pipeline: ChunkPipeline
}

struct ChunkResult: Sendable {
    var sequence: Int
    var field: Int
    var chunk: Int
    var rows: Int
    /// The stored bytes are `stored[0..<storedCount]` (the buffer is reused, so it can be longer).
    var stored: [UInt8]
    var storedCount: Int
    /// The job's raw buffer, handed back for reuse as a staging buffer.
    var raw: [UInt8]
}

/// Worker threads that encode chunks in parallel. Jobs go in through `trySubmit` (refused while
/// `inFlightLimit` chunks are queued, being encoded or waiting to be written, which bounds memory);
/// results come out by sequence number, so the single writer thread writes them in order.
///
/// All mutable state is guarded by `condition`; that is why the class is `@unchecked Sendable`.
final class ChunkCompressor: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [ChunkJob] = []          // guarded by condition
    private var queueHead = 0                   // guarded by condition
    private var results: [Int: ChunkResult] = [:]  // guarded by condition
    private var inFlight = 0                    // guarded by condition
    private var stopping = false                // guarded by condition
    private var runningWorkers = 0              // guarded by condition
    private var spareBuffers: [[UInt8]] = []    // guarded by condition
    private let inFlightLimit: Int

    init(workers: Int, inFlightLimit: Int) {
        self.inFlightLimit = inFlightLimit
        runningWorkers = workers
        for number in 0..<workers {
            let thread = Thread { [self] in work() }
            thread.name = "stoke-compress-\(number)"
            thread.start()
        }
    }

    deinit { shutdown() }

    /// Queues a job unless the in-flight limit is reached.
    func trySubmit(_ job: ChunkJob) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard inFlight < inFlightLimit else { return false }
        queue.append(job)
        inFlight += 1
        condition.broadcast()
        return true
    }

    /// The result for `sequence`, waiting for it when `wait` is set; nil if not ready (and not waiting).
    func takeResult(sequence: Int, wait: Bool) -> ChunkResult? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let result = results.removeValue(forKey: sequence) {
                inFlight -= 1
                condition.broadcast()
                return result
            }
            if !wait || stopping { return nil }
            condition.wait()
        }
    }

    /// Returns a buffer (a written chunk's raw or stored bytes) for reuse, so the steady state
    /// allocates no chunk-sized arrays.
    func recycle(_ buffer: consuming [UInt8]) {
        condition.lock()
        if spareBuffers.count < 4 * inFlightLimit { spareBuffers.append(buffer) }
        condition.unlock()
    }

    /// A recycled buffer, or an empty one.
    func spare() -> [UInt8] {
        condition.lock()
        defer { condition.unlock() }
        return spareBuffers.popLast() ?? []
    }

    /// Stops the workers after the jobs already queued; waits until they have exited.
    func shutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while runningWorkers > 0 { condition.wait() }
        condition.unlock()
    }

    private func work() {
        var scratch: [UInt8] = []
        var output: [UInt8] = []
        while true {
            condition.lock()
            while queueHead == queue.count && !stopping { condition.wait() }
            if queueHead == queue.count {
                runningWorkers -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            var job = queue[queueHead]
            queue[queueHead].raw = []
            queueHead += 1
            if queueHead > 64 && queueHead * 2 > queue.count {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
            condition.unlock()

            let count = unsafe job.raw.withUnsafeBytes { raw in
                unsafe job.pipeline.encode(raw, into: &output, scratch: &scratch)
            }
            var stored: [UInt8] = []
            swap(&stored, &output)
            let raw = job.raw
            job.raw = []
            let result = ChunkResult(
                sequence: job.sequence, field: job.field, chunk: job.chunk, rows: job.rows, stored: stored, storedCount: count, raw: raw)

            condition.lock()
            output = spareBuffers.popLast() ?? []
            results[job.sequence] = result
            condition.broadcast()
            condition.unlock()
        }
    }
}
