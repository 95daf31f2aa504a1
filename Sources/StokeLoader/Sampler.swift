import StokeStore

/// The order samples are visited in an epoch.
public enum SampleOrder: Sendable, Equatable, CustomStringConvertible {
    /// 0, 1, 2, … every epoch.
    case sequential
    /// A full seeded permutation per epoch. Chunks are decoded as often as the cache budget forces.
    case random
    /// Chunks in a seeded random order; samples shuffled within windows of `window` consecutive chunks
    /// of that order. Each chunk is decoded once per epoch when the cache holds a window. The default
    /// for training.
    case chunkShuffle(window: Int)

    public var description: String {
        switch self {
        case .sequential: "sequential"
        case .random: "random"
        case .chunkShuffle(let window): "chunk-shuffle(window: \(window))"
        }
    }

    /// Parses `sequential`, `random`, `chunk-shuffle` (window 4) or `chunk-shuffle:W`.
    public init?(parsing text: String) {
        switch text {
        case "sequential": self = .sequential
        case "random": self = .random
        case "chunk-shuffle": self = .chunkShuffle(window: 4)
        default:
            let parts = text.split(separator: ":")
            guard parts.count == 2, parts[0] == "chunk-shuffle", let window = Int(parts[1]), window > 0 else { return nil }
            self = .chunkShuffle(window: window)
        }
    }
}

extension SplitMix64 {
    /// A generator for one purpose (`stream`) of one epoch, independent of the others.
    static func forEpoch(seed: UInt64, epoch: Int, stream: UInt64) -> SplitMix64 {
        var mixer = SplitMix64(seed: seed ^ (UInt64(truncatingIfNeeded: epoch) &* 0xD6E8_FEB8_6659_FD93) ^ (stream &* 0xA076_1D64_78BD_642F))
        return SplitMix64(seed: mixer.next())
    }
}

/// Fisher–Yates with our generator (the standard library's `shuffle(using:)` does not promise a stable
/// algorithm across versions, and the order must never change).
func deterministicShuffle(_ values: inout [Int], using generator: inout SplitMix64) {
    guard values.count > 1 else { return }
    for index in stride(from: values.count - 1, to: 0, by: -1) {
        let other = Int(generator.next() % UInt64(index + 1))
        values.swapAt(index, other)
    }
}

/// Which samples one rank reads in one epoch, split into batches.
public struct EpochPlan: Sendable, Equatable {
    /// Sample indices in visit order for this rank (padded or trimmed to a multiple of the world size).
    public let indices: [Int]
    public let batchSize: Int
    /// Samples repeated (padding) or dropped so every rank gets the same count.
    public let paddedSamples: Int
    public let droppedSamples: Int
    let dropLast: Bool

    /// Batches in this epoch for this rank.
    public var batchCount: Int {
        dropLast ? indices.count / batchSize : (indices.count + batchSize - 1) / batchSize
    }

    /// Positions in `indices` of batch `number`.
    public func batchRange(_ number: Int) -> Range<Int> {
        (number * batchSize)..<min(indices.count, (number + 1) * batchSize)
    }

    /// The plan for (`seed`, `epoch`): the global order is computed identically on every rank, padded
    /// (repeating its first samples) or trimmed to a multiple of `world`, and rank `rank` takes the
    /// contiguous `1/world` slice (contiguous so each rank touches few chunks; like PyTorch's
    /// DistributedSampler the slices are disjoint and cover the set).
    public static func make(
        samples: Int, chunkRows: Int, order: SampleOrder, seed: UInt64, epoch: Int, batchSize: Int,
        dropLast: Bool, rank: Int, world: Int
    ) -> EpochPlan {
        var global: [Int]
        switch order {
        case .sequential:
            global = Array(0..<samples)
        case .random:
            global = Array(0..<samples)
            var generator = SplitMix64.forEpoch(seed: seed, epoch: epoch, stream: 1)
            deterministicShuffle(&global, using: &generator)
        case .chunkShuffle(let window):
            let rowsPerChunk = max(1, chunkRows)
            let chunks = (samples + rowsPerChunk - 1) / rowsPerChunk
            var chunkOrder = Array(0..<chunks)
            var chunkGenerator = SplitMix64.forEpoch(seed: seed, epoch: epoch, stream: 2)
            deterministicShuffle(&chunkOrder, using: &chunkGenerator)
            var sampleGenerator = SplitMix64.forEpoch(seed: seed, epoch: epoch, stream: 3)
            global = []
            global.reserveCapacity(samples)
            var start = 0
            while start < chunks {
                var windowSamples: [Int] = []
                for chunk in chunkOrder[start..<min(chunks, start + max(1, window))] {
                    windowSamples += (chunk * rowsPerChunk)..<min(samples, (chunk + 1) * rowsPerChunk)
                }
                deterministicShuffle(&windowSamples, using: &sampleGenerator)
                global += windowSamples
                start += max(1, window)
            }
        }
        let world = max(1, world)
        var padded = 0, dropped = 0
        if !global.isEmpty && global.count % world != 0 {
            if dropLast {
                dropped = global.count % world
                global.removeLast(dropped)
            } else {
                padded = world - global.count % world
                for index in 0..<padded { global.append(global[index % max(1, global.count)]) }
            }
        }
        let perRank = global.count / world
        let mine = Array(global[(rank * perRank)..<((rank + 1) * perRank)])
        return EpochPlan(indices: mine, batchSize: max(1, batchSize), paddedSamples: padded, droppedSamples: dropped, dropLast: dropLast)
    }
}
