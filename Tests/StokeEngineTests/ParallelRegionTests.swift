import Dispatch
import Synchronization
import Testing
@testable import StokeEngine

/// The engine's parallel regions: every part runs exactly once, callers on several threads at once
/// (one gets the helpers, the others fall back) and regions nested inside a part all finish.
@Suite("parallel regions")
struct ParallelRegionTests {
    /// Runs one region of `parts` and returns how often each part ran.
    func counts(parts: Int) -> [Int] {
        let hits = Mutex([Int](repeating: 0, count: parts))
        ParallelRegion.shared.run(parts: parts) { part in hits.withLock { $0[part] += 1 } }
        return hits.withLock { $0 }
    }

    @Test("each part runs exactly once, region after region", arguments: [0, 1, 2, 3, 7, 64])
    func everyPartOnce(parts: Int) {
        for _ in 0..<500 {
            #expect(counts(parts: parts) == [Int](repeating: 1, count: parts))
        }
    }

    @Test("callers on four threads at once, and a region inside a part, all complete")
    func concurrentAndNested() {
        let total = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<200 {
                ParallelRegion.shared.run(parts: 3) { _ in
                    ParallelRegion.shared.run(parts: 2) { _ in total.wrappingAdd(1, ordering: .relaxed) }
                }
            }
        }
        #expect(total.load(ordering: .relaxed) == 4 * 200 * 3 * 2)
    }
}
