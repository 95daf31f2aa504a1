import Foundation
import Synchronization

/// Per-thread reusable buffers for decode work.
public struct DecodeScratch {
    var chunk: [UInt8] = []
    var other: [UInt8] = []
    public init() {}
}

/// Runs `body(i)` for every `i` in `0..<count` on up to `workers` threads (the caller's included), each
/// with its own scratch buffers. Indices are handed out in order from an atomic counter. The first error
/// stops further work and is rethrown.
func parallelFor(
    count: Int, workers: Int, _ body: @escaping @Sendable (Int, inout DecodeScratch) throws(StoreError) -> Void
) throws(StoreError) {
    if count == 0 { return }
    let threads = max(1, min(workers, count))
    if threads == 1 {
        var scratch = DecodeScratch()
        for index in 0..<count { try body(index, &scratch) }
        return
    }
    let next = Atomic<Int>(0)
    let failure = Mutex<StoreError?>(nil)
    DispatchQueue.concurrentPerform(iterations: threads) { _ in
        var scratch = DecodeScratch()
        while true {
            let index = next.add(1, ordering: .relaxed).oldValue
            if index >= count || failure.withLock({ $0 != nil }) { return }
            do throws(StoreError) {
                try body(index, &scratch)
            } catch {
                failure.withLock { if $0 == nil { $0 = error } }
                return
            }
        }
    }
    if let error = failure.withLock({ $0 }) { throw error }
}
