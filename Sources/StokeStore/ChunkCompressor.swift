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
    var stored: [UInt8]
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
            let job = queue[queueHead]
            queueHead += 1
            if queueHead > 64 && queueHead * 2 > queue.count {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
            condition.unlock()

            unsafe job.raw.withUnsafeBytes { raw in
                unsafe job.pipeline.encode(raw, into: &output, scratch: &scratch)
            }
            let result = ChunkResult(sequence: job.sequence, field: job.field, chunk: job.chunk, rows: job.rows, stored: output)

            condition.lock()
            results[job.sequence] = result
            condition.broadcast()
            condition.unlock()
        }
    }
}
