import Foundation
import StokeLoader
import StokeStore
import Testing

@Suite("elastic resume: LoaderState on another number of ranks")
struct ElasticResumeTests {
    /// Runs `steps` steps on `before` ranks, checkpoints, resumes on `after` ranks to the epoch's end, and
    /// checks that every sample was read exactly once (pad: plus exactly the padding; drop: minus exactly
    /// the dropped tail, and nothing repeated).
    private func check(samples: Int, batch: Int, before: Int, after: Int, steps: Int, dropLast: Bool, order: SampleOrder) {
        let start = LoaderState(seed: 17, epoch: 3)
        var counts = [Int](repeating: 0, count: samples)
        for rank in 0..<before {
            let plan = EpochPlan.elastic(samples: samples, chunkRows: 16, order: order, state: start, batchSize: batch, dropLast: dropLast, rank: rank, world: before)
            let taken = min(steps, plan.batchCount)
            for number in 0..<taken { for position in plan.batchRange(number) { counts[plan.indices[position]] += 1 } }
        }
        let checkpoint = start.advanced(steps: steps, world: before, batchSize: batch, samples: samples)
        // The checkpoint travels as JSON.
        let decoded = try? JSONDecoder().decode(LoaderState.self, from: JSONEncoder().encode(checkpoint))
        #expect(decoded == checkpoint)
        var padded = 0, dropped = 0
        for rank in 0..<after {
            let plan = EpochPlan.elastic(samples: samples, chunkRows: 16, order: order, state: checkpoint, batchSize: batch, dropLast: dropLast, rank: rank, world: after)
            padded = plan.paddedSamples
            dropped = plan.droppedSamples
            for number in 0..<plan.batchCount { for position in plan.batchRange(number) { counts[plan.indices[position]] += 1 } }
        }
        let label = "samples \(samples) batch \(batch) W \(before) -> W' \(after) after \(steps) steps, dropLast \(dropLast), \(order)"
        if dropLast {
            #expect(padded == 0, "\(label)")
            #expect(counts.allSatisfy { $0 <= 1 }, "\(label): a sample was repeated")
            #expect(counts.filter { $0 == 0 }.count == dropped, "\(label): \(counts.filter { $0 == 0 }.count) unread, \(dropped) dropped")
            #expect(dropped < after * batch, "\(label)")
        } else {
            #expect(dropped == 0, "\(label)")
            #expect(counts.allSatisfy { $0 >= 1 }, "\(label): a sample was skipped")
            #expect(counts.reduce(0, +) == samples + padded, "\(label): \(counts.reduce(0, +) - samples) repeats, \(padded) padding")
            #expect(padded < after, "\(label)")
        }
    }

    @Test("no sample skipped or repeated over (W, W', resume point), uneven tails, pad and drop",
          arguments: [(1, 2), (2, 1), (2, 3), (3, 2), (4, 5), (8, 3), (3, 8)])
    func worldChanges(worlds: (Int, Int)) {
        for samples in [1000, 997, 64] {
            for batch in [1, 7, 32] {
                let fullSteps = samples / (worlds.0 * batch)
                // Checkpoints are taken between full steps (the tail step ends the epoch).
                for steps in Set([0, 1, fullSteps / 2, fullSteps]) where steps <= fullSteps {
                    for dropLast in [false, true] {
                        for order in [SampleOrder.random, .chunkShuffle(window: 3)] {
                            check(samples: samples, batch: batch, before: worlds.0, after: worlds.1, steps: steps, dropLast: dropLast, order: order)
                        }
                    }
                }
            }
        }
    }

    @Test("the global order does not depend on the world size: W ranks' steps read the order front to back")
    func prefixOrder() {
        let reference = EpochPlan.make(samples: 500, chunkRows: 16, order: .random, seed: 4, epoch: 1, batchSize: 10, dropLast: false, rank: 0, world: 1).indices
        for world in [1, 2, 5] {
            var merged: [Int] = []
            let plans = (0..<world).map {
                EpochPlan.elastic(samples: 500, chunkRows: 16, order: .random, state: LoaderState(seed: 4, epoch: 1), batchSize: 10, dropLast: true, rank: $0, world: world)
            }
            for step in 0..<plans[0].batchCount { for plan in plans { merged += plan.batchRange(step).map { plan.indices[$0] } } }
            #expect(merged == Array(reference.prefix(merged.count)), "world \(world)")
        }
    }

    @Test("Loader.epoch(resuming:) delivers the elastic plan's samples with their data, and refuses another seed")
    func loaderResumes() throws {
        let directory = NSTemporaryDirectory() + "stoke-elastic-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/store.h5"
        var writeOptions = StoreWriteOptions()
        writeOptions.chunking = .samples(32)
        let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "id", dtype: .i64, sampleShape: [])], options: writeOptions)
        try writer.append("id", values: (0..<300).map { Int64($0) })
        try writer.finish()
        var seen: [Int] = []
        let state = LoaderState(seed: 9, epoch: 2).advanced(steps: 3, world: 2, batchSize: 16, samples: 300)
        #expect(state.samplesConsumed == 96)
        for rank in 0..<3 {
            var options = LoaderOptions()
            options.seed = 9
            options.batchSize = 16
            options.rank = rank
            options.world = 3
            options.workers = 1
            let loader = try Loader(store: Store(path: path), options: options)
            let plan = loader.elasticPlan(resuming: state)
            let epoch = try loader.epoch(resuming: state)
            var mine: [Int] = []
            while let batch = try epoch.next() {
                #expect(try batch.values("id", as: Int64.self).map(Int.init) == batch.indices)
                mine += batch.indices
            }
            #expect(mine == plan.indices)
            seen += mine
            if rank == 0 {
                options.seed = 10
                let other = try Loader(store: Store(path: path), options: options)
                #expect(throws: StoreError.self) { _ = try other.epoch(resuming: state) }
            }
        }
        let order = EpochPlan.make(samples: 300, chunkRows: 32, order: .chunkShuffle(window: 4), seed: 9, epoch: 2, batchSize: 16, dropLast: false, rank: 0, world: 1).indices
        // 204 samples remain: 4 steps of 48, then a tail of 12 shared 4 per rank, no padding.
        #expect(seen.sorted() == Array(order[96...]).sorted())
    }
}
