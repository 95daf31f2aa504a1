import Dispatch
import Foundation
import Synchronization

/// Runs the parts of one parallel region (a layer's GEMM split across the session's threads) on
/// persistent helper threads that spin briefly between regions before they sleep.
///
/// `DispatchQueue.concurrentPerform` wakes a pool thread for every region, about 10 µs here when the
/// previous region ended a few hundred µs earlier (a layer of the MLP): the region then ends late by
/// that much. Helpers that are still spinning pick the next layer up at once. Only one region runs
/// on the helpers at a time; a caller that finds them busy (another session on another thread) falls
/// back to `concurrentPerform`.
final class ParallelRegion: @unchecked Sendable {
    static let shared = ParallelRegion()

    /// One region: the caller's closure and the parts still to claim. Helpers only call `body` for a
    /// part they claimed, and every part is claimed before the caller returns.
    private final class Job: @unchecked Sendable {
        let body: (Int) -> Void
        let parts: Int
        let next = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        init(body: @escaping (Int) -> Void, parts: Int) {
            self.body = body
            self.parts = parts
        }

        func drain() {
            while true {
                let part = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if part >= parts { return }
                body(part)
                finished.wrappingAdd(1, ordering: .releasing)
            }
        }
    }

    /// How long a helper keeps polling for the next region before it sleeps: enough to bridge the gap
    /// between two layers, short enough not to take a core from the loader between batches.
    private static let spinIterations = 20_000

    private let busy = NSLock()
    private let wake = NSCondition()
    private let generation = Atomic<Int>(0)
    private let holders = Atomic<Int>(0)
    // Guarded by `wake`.
    private var current: Job?
    private var sleepers = 0
    private var helpers = 0

    /// Calls `body(part)` for every part in 0..<parts, concurrently, and returns when all are done.
    func run(parts: Int, _ body: (Int) -> Void) {
        if parts <= 1 {
            if parts == 1 { body(0) }
            return
        }
        guard busy.try() else {
            withoutActuallyEscaping(body) { body in
                struct Body: @unchecked Sendable { let run: (Int) -> Void }
                let shared = Body(run: body)
                DispatchQueue.concurrentPerform(iterations: parts) { shared.run($0) }
            }
            return
        }
        defer { busy.unlock() }
        withoutActuallyEscaping(body) { body in
            let job = Job(body: body, parts: parts)
            wake.lock()
            startHelpers(parts - 1)
            current = job
            generation.wrappingAdd(1, ordering: .releasing)
            if sleepers > 0 { wake.broadcast() }
            wake.unlock()
            job.drain()
            Self.spin(while: { job.finished.load(ordering: .acquiring) < parts })
            wake.lock()
            current = nil
            wake.unlock()
            // Helpers that took the job drop it before they count themselves out, so no reference to
            // `body` outlives this call.
            Self.spin(while: { holders.load(ordering: .acquiring) > 0 })
        }
    }

    /// Polls `condition` until it is false, yielding the core now and then so a helper that was
    /// descheduled mid-part (a loaded machine) gets to finish it.
    private static func spin(while condition: () -> Bool) {
        var polls = 0
        while condition() {
            polls += 1
            if polls % 1024 == 0 { sched_yield() }
        }
    }

    /// Starts helpers until there are `count` (called with `wake` held).
    private func startHelpers(_ count: Int) {
        while helpers < min(count, 63) {
            helpers += 1
            let thread = Thread(block: { [self] in helperLoop() })
            thread.name = "stoke-engine-\(helpers)"
            thread.start()
        }
    }

    private func helperLoop() {
        var seen = generation.load(ordering: .acquiring)
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen && spins < Self.spinIterations { spins += 1 }
            wake.lock()
            if generation.load(ordering: .acquiring) == seen {
                sleepers += 1
                while generation.load(ordering: .acquiring) == seen { wake.wait() }
                sleepers -= 1
            }
            seen = generation.load(ordering: .acquiring)
            wake.unlock()
            if runCurrent() { holders.wrappingSubtract(1, ordering: .releasing) }
        }
    }

    /// Helps with the current region, if any; true when it took one (and counted itself a holder).
    /// A separate frame, so the helper's reference to the job ends before it counts itself out.
    @inline(never)
    private func runCurrent() -> Bool {
        wake.lock()
        guard let job = current else {
            wake.unlock()
            return false
        }
        holders.wrappingAdd(1, ordering: .relaxed)
        wake.unlock()
        job.drain()
        return true
    }
}
