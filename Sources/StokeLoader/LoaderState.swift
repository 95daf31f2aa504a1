import Foundation
import StokeStore

/// Where the reading of an epoch stands across all ranks: enough to resume it exactly on any number of
/// ranks (elastic determinism, as Mosaic Streaming's). The epoch's global order is a pure function of
/// (seed, epoch); in an elastic plan the ranks together consume it front to back, `world * batchSize`
/// samples per step, so what was consumed is always a prefix of that order, whatever the world size was.
public struct LoaderState: Codable, Sendable, Equatable {
    public var seed: UInt64
    public var epoch: Int
    /// Samples of the epoch's global order consumed by all ranks together (a prefix of the order).
    public var samplesConsumed: Int

    public init(seed: UInt64, epoch: Int, samplesConsumed: Int = 0) {
        self.seed = seed
        self.epoch = epoch
        self.samplesConsumed = samplesConsumed
    }

    /// The state after `steps` more steps on `world` ranks taking `batchSize` samples each, in an epoch
    /// of `samples` samples (the final, partial step consumes the rest).
    public func advanced(steps: Int, world: Int, batchSize: Int, samples: Int) -> LoaderState {
        var next = self
        next.samplesConsumed = min(samples, samplesConsumed + max(0, steps) * max(1, world) * max(1, batchSize))
        return next
    }

    /// A JSON object (for printing inside other documents).
    public var jsonObject: [String: Any] {
        ["seed": seed, "epoch": epoch, "samples_consumed": samplesConsumed]
    }

    enum CodingKeys: String, CodingKey {
        case seed, epoch
        case samplesConsumed = "samples_consumed"
    }
}

extension EpochPlan {
    /// Rank `rank`'s part of the rest of epoch `state.epoch` after `state.samplesConsumed`, on `world`
    /// ranks. Step `s` gives the ranks the next `world * batchSize` positions of the global order, rank
    /// `r` the `r`-th block of `batchSize` (each block is consecutive in the order, so a rank touches few
    /// chunks). The final partial step splits the remaining tail evenly: padded to a multiple of `world`
    /// by repeating the epoch's first samples, or, with `dropLast`, not read (`droppedSamples`). A
    /// checkpoint taken after any number of full steps therefore resumes on any world size with no
    /// sample skipped or repeated.
    public static func elastic(
        samples: Int, chunkRows: Int, order: SampleOrder, state: LoaderState, batchSize: Int, dropLast: Bool, rank: Int, world: Int
    ) -> EpochPlan {
        let global = make(
            samples: samples, chunkRows: chunkRows, order: order, seed: state.seed, epoch: state.epoch, batchSize: batchSize,
            dropLast: false, rank: 0, world: 1).indices
        let world = max(1, world), batch = max(1, batchSize)
        let start = min(max(0, state.samplesConsumed), global.count)
        let remaining = global.count - start
        let step = world * batch
        let fullSteps = remaining / step
        var mine: [Int] = []
        mine.reserveCapacity(fullSteps * batch + batch)
        for index in 0..<fullSteps {
            let first = start + index * step + rank * batch
            mine += global[first..<(first + batch)]
        }
        let tailStart = start + fullSteps * step
        let tail = global.count - tailStart
        var padded = 0, dropped = 0
        if tail > 0 {
            if dropLast {
                dropped = tail
            } else {
                let share = (tail + world - 1) / world
                padded = share * world - tail
                let extended = Array(global[tailStart...]) + (0..<padded).map { global[$0 % global.count] }
                mine += extended[(rank * share)..<((rank + 1) * share)]
            }
        }
        return EpochPlan(indices: mine, batchSize: batch, paddedSamples: padded, droppedSamples: dropped, dropLast: dropLast)
    }
}

extension Loader {
    /// The elastic plan of this loader's rank for the rest of the epoch `state` names.
    public func elasticPlan(resuming state: LoaderState) -> EpochPlan {
        EpochPlan.elastic(
            samples: sampleCount, chunkRows: chunkRowsForPlans, order: options.order, state: state, batchSize: options.batchSize,
            dropLast: options.dropLast, rank: options.rank, world: options.world)
    }

    /// Starts the rest of the epoch `state` names, on this loader's rank and world (which may differ from
    /// those the state was taken on). The state's seed must be the loader's.
    public func epoch(resuming state: LoaderState) throws(StoreError) -> Epoch {
        guard state.seed == options.seed else {
            throw .invalidArgument("the loader state has seed \(state.seed), the loader \(options.seed): resume with the same seed")
        }
        guard state.samplesConsumed >= 0, state.samplesConsumed <= sampleCount else {
            throw .invalidArgument("the loader state has consumed \(state.samplesConsumed) samples of an epoch of \(sampleCount)")
        }
        return try epoch(state.epoch, plan: elasticPlan(resuming: state))
    }

    /// Samples per chunk of the first chunked field, as the loader's own plans use.
    var chunkRowsForPlans: Int {
        (options.fields ?? store.fields.map(\.name)).compactMap { try? store.field($0) }.first(where: { $0.chunkRows != nil })?.chunkRows ?? 1
    }
}
