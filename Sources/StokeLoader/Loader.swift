import CStokeKernels
import Foundation
import StokeStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Per-channel normalization applied while collating a u8, f16 or f32 field into f32:
/// `(x · inputScale − mean) / std`; for u8, `(x / 255 − mean) / std`, as torchvision's `ToTensor()` +
/// `Normalize(mean, std)`.
public struct Normalization: Sendable, Equatable, Codable {
    /// Per channel, on the 0–1 scale (one value applies to every channel).
    public var mean: [Float]
    public var std: [Float]
    /// What stored values are multiplied by to reach the 0–1 scale: nil means 1/255 for u8 fields and
    /// 1 for f16/f32 fields (stores packed with `--dtype f32` hold 0–1 values).
    public var inputScale: Float?
    public init(mean: [Float], std: [Float], inputScale: Float? = nil) {
        self.mean = mean
        self.std = std
        self.inputScale = inputScale
    }
}

/// How the loader reads a store.
public struct LoaderOptions: Sendable {
    /// Fields to load (nil: every field of the store).
    public var fields: [String]? = nil
    /// Samples per batch.
    public var batchSize = 256
    public var order: SampleOrder = .chunkShuffle(window: 4)
    /// Drop the last partial batch (and, with several ranks, trim instead of padding).
    public var dropLast = false
    /// Worker threads that decode chunks and fill batches.
    public var workers = ProcessInfo.processInfo.activeProcessorCount
    /// Batches in flight at most (being filled or ready and not yet taken).
    public var prefetch = 4
    /// This process's rank and the number of ranks (distributed training).
    public var rank = 0
    public var world = 1
    public var seed: UInt64 = 0
    /// Explicit normalization per field (u8 fields only; output becomes f32). Overrides the store's.
    public var normalization: [String: Normalization] = [:]
    /// Element type per field in batches: `.f32` turns a field of any element type into floats with the
    /// same values (u8 0–255, no scaling; integers wider than 24 bits and f64 rounded to nearest) in the
    /// collate pass; a field with a normalization is f32 anyway. Other target types are refused.
    public var outputTypes: [String: DType] = [:]
    /// Apply the normalization recorded in the store's `normalization` attribute.
    public var useStoreNormalization = true
    /// Byte budget of the decoded-chunk cache shared by all workers; nil sizes it for the order: for
    /// chunk-shuffle, the chunks of the batches in flight plus two windows and one chunk per worker
    /// (small, so decoded chunks stay in the CPU caches); one chunk per worker and two more for
    /// sequential; 256 MiB for random.
    public var cacheBytes: Int? = nil
    /// Page-lock batch buffers with mlock when RLIMIT_MEMLOCK allows.
    public var pinBuffers = true
    /// Also register them with the CUDA runtime (cudaHostRegister) when libcudart can be loaded.
    public var registerWithCUDA = true
    /// Stored bytes read ahead of decoding, in the order the epoch plan needs the chunks
    /// (`posix_fadvise(WILLNEED)` from a thread of its own); 0 turns the I/O prefetcher off.
    /// Default 64 MiB.
    public var ioPrefetchBytes = 64 << 20
    /// Drop each chunk's stored bytes from the page cache once decoded, so a run reads as a store larger
    /// than memory does (what `stoke bench io --memory-limit` falls back to without a cgroup).
    public var dropConsumedChunks = false

    /// The most worker threads a loader starts.
    public static let maximumWorkers = 256
    /// The most batches in flight.
    public static let maximumPrefetch = 1024

    public init() {}
}

/// Time and bytes of one epoch so far. Seconds are summed over worker threads, except `wait` (the
/// consumer's time blocked in `next()`) and `wall`.
public struct LoaderStats: Sendable, Equatable {
    public var batches = 0
    public var samples = 0
    /// Waiting for stored bytes: faulting in a memory-mapped chunk's pages before it is decoded (the
    /// time the disk, not the CPU, takes), and reads through the HDF5 library for fields without an index.
    public var readSeconds = 0.0
    /// Decoding chunks whose stored bytes are already in memory.
    public var decodeSeconds = 0.0
    /// Gathering rows into batch buffers, with conversion and normalization.
    public var gatherSeconds = 0.0
    public var waitSeconds = 0.0
    /// Workers' time blocked for want of work: every batch allowed by `prefetch` taken, no free buffer,
    /// or none left in the epoch while the consumer takes the last ones.
    public var workerIdleSeconds = 0.0
    /// Workers' time waiting for a chunk another worker was decoding.
    public var chunkWaitSeconds = 0.0
    public var wallSeconds = 0.0
    /// Bytes delivered in batches (output dtype).
    public var batchBytes = 0
    /// Decoded bytes produced by chunk decodes.
    public var decodedBytes = 0
    /// Stored (compressed) bytes of the chunks decoded, as the chunk index records them.
    public var storedBytesRead = 0
    public var chunkDecodes = 0
    /// Chunks decoded more than once this epoch because the cache had evicted them.
    public var redecodes = 0
    public var cacheHits = 0
    /// Stored bytes the I/O prefetcher asked the kernel to read ahead, and the most it had ahead at once.
    public var ioPrefetchedBytes = 0
    public var ioPrefetchPeakBytes = 0
    /// Pages faulted in before decoding whose first byte was odd (keeps the page touches from being
    /// optimized away; no meaning of its own).
    var pageTouches = 0

    public init() {}
}

/// One field as it appears in batches.
public struct BatchFieldLayout: Sendable, Equatable {
    public var name: String
    /// Element type in the batch (f32 for normalized or widened fields).
    public var dtype: DType
    public var sampleShape: [Int]
    /// Bytes per sample in the batch.
    public var sampleBytes: Int
    /// Offset of the field in a batch buffer, in bytes.
    var offset: Int
    var normalization: Normalization?
}

/// Streams a store in deterministic, shuffled batches: worker threads decode chunks from the memory
/// map into a shared cache and gather rows into pinned, reused batch buffers (normalizing u8 to f32 in
/// the same pass); batches arrive in plan order with at most `prefetch` in flight, and nothing is
/// allocated per batch in the steady state.
///
/// Iterate with `epoch(_:)`; each `Batch` is a `~Copyable` lease on a buffer that returns to the pool
/// when the batch goes out of scope. One epoch runs at a time; starting another stops the current one.
@safe public final class Loader: Sendable {
    private let core: LoaderCore

    /// Opens the loader on a store; allocates the pinned pool and the cache and starts the workers.
    public init(store: Store, options: LoaderOptions = LoaderOptions()) throws(StoreError) {
        core = try LoaderCore(store: store, options: options)
    }

    /// Joins the worker threads. Batches still held stay valid: they keep the pipeline's state alive.
    deinit { core.shutdown() }

    public var store: Store { core.store }
    public var options: LoaderOptions { core.options }
    public var layouts: [BatchFieldLayout] { core.layouts }
    /// Bytes of one batch buffer (all fields and the sample indices).
    public var batchBufferBytes: Int { core.batchBufferBytes }
    public var pinning: PinningStatus { core.pinning }
    /// Decoded-chunk cache slots per field.
    public var cacheSlots: [Int] { core.cacheSlots }
    /// Samples in the store.
    public var sampleCount: Int { core.sampleCount }

    /// The plan of an epoch (the same on every run for the same seed, whatever the worker count).
    public func plan(epoch: Int) -> EpochPlan { core.plan(epoch: epoch) }

    /// Starts epoch `number` at batch `startBatch` (O(1) resume: earlier batches are not read), stopping
    /// any epoch in progress.
    public func epoch(_ number: Int, startingAt startBatch: Int = 0) throws(StoreError) -> Epoch {
        try core.epoch(number, startingAt: startBatch)
    }

    /// Starts epoch `number` on `plan` instead of the loader's own (an elastic resume: `epoch(resuming:)`).
    public func epoch(_ number: Int, plan: EpochPlan) throws(StoreError) -> Epoch {
        try core.epoch(number, startingAt: 0, plan: plan)
    }

    /// Stops the current epoch and joins every worker thread; safe to call twice.
    public func shutdown() { core.shutdown() }
}

/// The loader's pipeline: worker threads capture this object, not the `Loader`, so the loader can be
/// released (and join them in `deinit`) while they still run.
@safe final class LoaderCore: @unchecked Sendable {
    public let store: Store
    public let options: LoaderOptions
    public let layouts: [BatchFieldLayout]
    /// Bytes of one batch buffer (all fields and the sample indices).
    public let batchBufferBytes: Int
    public var pinning: PinningStatus { pool.status }
    /// Decoded-chunk cache slots per field.
    public var cacheSlots: [Int] { cache.slotCounts }

    let fields: [Field]
    private let pool: PinnedBufferPool
    private let cache: ChunkCache
    private let indicesOffset: Int
    private let chunkRows: Int
    private let scales: [[Float]]
    private let biases: [[Float]]
    private let channelInner: [Int]
    /// Rows per batch buffer: the batch size, or the samples one rank reads when that is fewer.
    private let bufferRows: Int
    /// Reads chunks ahead of the workers; present when a field is decoded from the memory map.
    private let prefetcher: IOPrefetcher?
    /// The store file's size as last seen by a worker (refreshed once per batch with fstat), so a file
    /// truncated while it is read is an error naming the chunk, not a SIGBUS from its missing pages.
    private let fileSize = Atomic<Int>(Int.max)
    private let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    // Pipeline state, all guarded by `condition`.
    private let condition = NSCondition()
    private var generation = 0
    private var plan: EpochPlan?
    private var epochNumber = 0
    private var nextDispatch = 0
    private var nextConsume = 0
    private var endBatch = 0
    private var freeSlots: [Int]
    private var readyBatch: [Int]
    private var readySlot: [Int]
    private var failure: StoreError?
    private var busyWorkers = 0
    private var shuttingDown = false
    private var runningThreads = 0
    private var stats = LoaderStats()
    private var epochStart = ContinuousClock.now

    init(store: Store, options: LoaderOptions) throws(StoreError) {
        self.store = store
        self.options = options
        guard options.batchSize > 0, options.workers > 0, options.prefetch > 0 else {
            throw .invalidArgument("batch size, workers and prefetch must be positive")
        }
        guard options.workers <= LoaderOptions.maximumWorkers else {
            throw .invalidArgument("workers \(options.workers): the loader starts at most \(LoaderOptions.maximumWorkers) threads")
        }
        guard options.prefetch <= LoaderOptions.maximumPrefetch else {
            throw .invalidArgument("prefetch \(options.prefetch): at most \(LoaderOptions.maximumPrefetch) batches in flight")
        }
        guard options.ioPrefetchBytes >= 0 else { throw .invalidArgument("I/O prefetch bytes must not be negative") }
        guard options.world > 0, options.rank >= 0, options.rank < options.world else {
            throw .invalidArgument("rank \(options.rank) is outside world size \(options.world)")
        }
        var fields: [Field] = []
        for name in options.fields ?? store.fields.map(\.name) { fields.append(try store.field(name)) }
        guard !fields.isEmpty else { throw .invalidArgument("\(store.path): no fields to load") }
        self.fields = fields
        let perRank = (store.sampleCount + options.world - 1) / options.world
        bufferRows = max(1, min(options.batchSize, perRank))
        let bufferRows = self.bufferRows
        let storeNormalization = options.useStoreNormalization ? try LoaderCore.storeNormalization(store, fields: fields) : [:]
        var layouts: [BatchFieldLayout] = []
        var offset = 0
        var scales: [[Float]] = [], biases: [[Float]] = [], inner: [Int] = []
        for field in fields {
            var normalization = options.normalization[field.name] ?? storeNormalization[field.name]
            if let wanted = options.outputTypes[field.name], wanted != field.dtype, wanted != (normalization == nil ? field.dtype : .f32) {
                guard wanted == .f32 else {
                    throw .invalidArgument("field '\(field.name)': the loader converts to f32 only, not \(field.dtype.rawValue) to \(wanted.rawValue)")
                }
                // Plain widening: (x · 1 − 0) / 1 = x.
                normalization = Normalization(mean: [0], std: [1], inputScale: 1)
            }
            var dtype = field.dtype
            var channelScale: [Float] = [], channelBias: [Float] = [], innerCount = 1
            if let normalization {
                guard normalization.mean.count == normalization.std.count, !normalization.mean.isEmpty,
                      normalization.std.allSatisfy({ $0 > 0 }) else {
                    throw .invalidArgument("field '\(field.name)': normalization needs as many positive std as mean values")
                }
                let channels = normalization.mean.count
                let shape = field.sampleShape
                if channels == 1 {
                    innerCount = max(1, shape.reduce(1, *))
                } else if shape.first == channels {
                    innerCount = shape.dropFirst().reduce(1, *)   // CHW
                } else if shape.last == channels {
                    innerCount = 1                                 // HWC
                } else {
                    throw .invalidArgument("field '\(field.name)': \(channels) normalization channels match neither the first nor the last axis of \(shape)")
                }
                let inputScale = normalization.inputScale ?? (field.dtype == .u8 ? 1 / 255 : 1)
                channelScale = normalization.std.map { inputScale / $0 }
                channelBias = zip(normalization.mean, normalization.std).map { -$0.0 / $0.1 }
                dtype = .f32
            }
            let sampleBytes = field.sampleShape.reduce(dtype.size, *)
            layouts.append(BatchFieldLayout(
                name: field.name, dtype: dtype, sampleShape: field.sampleShape, sampleBytes: sampleBytes, offset: offset,
                normalization: normalization))
            guard let fieldBytes = MemoryBudget.product([sampleBytes, bufferRows]), fieldBytes < Int.max / 4 else {
                throw .invalidArgument("field '\(field.name)': \(bufferRows) samples of \(sampleBytes) bytes overflow a batch buffer")
            }
            offset += (fieldBytes + 63) / 64 * 64
            scales.append(channelScale)
            biases.append(channelBias)
            inner.append(innerCount)
        }
        self.layouts = layouts
        self.scales = scales
        self.biases = biases
        self.channelInner = inner
        indicesOffset = offset
        batchBufferBytes = offset + 8 * bufferRows
        let buffers = options.prefetch + 2
        do {
            // The plan (indices and the shuffle's working copies) and the batch buffers, before allocating.
            try MemoryBudget.current.check(
                MemoryBudget.product([store.sampleCount, 3 * MemoryLayout<Int>.stride]) ?? -1,
                for: "\(store.path): the epoch plan of \(store.sampleCount) samples")
            try MemoryBudget.current.check(
                MemoryBudget.product([buffers, batchBufferBytes]) ?? -1,
                for: "the loader's \(buffers) batch buffers of \(bufferRows) samples (--prefetch \(options.prefetch) + 2)")
        } catch {
            throw .invalidArgument(error.description)
        }
        pool = PinnedBufferPool(count: buffers, bufferBytes: batchBufferBytes, pin: options.pinBuffers, registerWithCUDA: options.registerWithCUDA)
        chunkRows = fields.first(where: { $0.chunkRows != nil })?.chunkRows ?? 1
        let cachedChunkBytes = fields.map { $0.decodesDirectly && $0.chunkRows != nil ? $0.chunkBytes : 0 }
        let budget: Int
        if let cacheBytes = options.cacheBytes {
            budget = cacheBytes
        } else {
            let perChunkSet = cachedChunkBytes.reduce(0, +)
            switch options.order {
            case .chunkShuffle(let window):
                // The chunks of every batch in flight (prefetch + workers batches) plus a window each side.
                let inFlight = (options.prefetch + options.workers) * bufferRows / max(1, chunkRows) + 1
                budget = perChunkSet * (2 * window + inFlight + options.workers + 1)
            case .sequential: budget = perChunkSet * (options.workers + 2)
            case .random: budget = 256 << 20
            }
        }
        cache = ChunkCache(
            chunkBytes: cachedChunkBytes, chunkCounts: fields.map(\.chunkCount), budgetBytes: budget,
            minimumSlots: options.workers + 1)
        if fields.contains(where: { $0.decodesDirectly && $0.chunkIndex != nil && $0.chunksInStoreFile }) {
            prefetcher = try IOPrefetcher(path: store.path, budgetBytes: options.ioPrefetchBytes, dropConsumed: options.dropConsumedChunks)
            // Dropped chunks must not come back through the kernel's fault readahead.
            if options.dropConsumedChunks { store.adviseRandomAccess() }
        } else {
            prefetcher = nil
        }
        freeSlots = Array((0..<buffers).reversed())
        freeSlots.reserveCapacity(buffers)
        readyBatch = Array(repeating: -1, count: options.prefetch + 1)
        readySlot = Array(repeating: -1, count: options.prefetch + 1)
        runningThreads = options.workers
        for number in 0..<options.workers {
            // The thread holds the core only while it runs the loop, and says it is gone only after
            // letting go, so the core (and the store's HDF5 handles) is never released on a worker.
            let exits = threadExits
            let thread = Thread { [weak self] in
                self?.workerLoop()
                exits.signal()
            }
            thread.name = "stoke-loader-\(number)"
            thread.start()
        }
    }

    /// Stops the current epoch and joins every worker thread.
    func shutdown() {
        condition.lock()
        let first = !shuttingDown
        shuttingDown = true
        generation += 1
        condition.broadcast()
        while runningThreads > 0 { condition.wait() }
        condition.unlock()
        if first { for _ in 0..<options.workers { threadExits.wait() } }
        prefetcher?.shutdown()
    }

    private let threadExits = DispatchSemaphore(value: 0)

    /// Samples in the store.
    public var sampleCount: Int { store.sampleCount }

    /// The plan of an epoch (the same on every run for the same seed, whatever the worker count).
    public func plan(epoch: Int) -> EpochPlan {
        EpochPlan.make(
            samples: store.sampleCount, chunkRows: chunkRows, order: options.order, seed: options.seed, epoch: epoch,
            batchSize: options.batchSize, dropLast: options.dropLast, rank: options.rank, world: options.world)
    }

    /// Starts epoch `number` at batch `startBatch` (O(1) resume: earlier batches are not read), stopping
    /// any epoch in progress.
    public func epoch(_ number: Int, startingAt startBatch: Int = 0, plan given: EpochPlan? = nil) throws(StoreError) -> Epoch {
        let plan = given ?? plan(epoch: number)
        guard startBatch >= 0, startBatch <= plan.batchCount else {
            throw .invalidArgument("epoch \(number) has \(plan.batchCount) batches; cannot start at \(startBatch)")
        }
        cache.startEpoch()
        let extents = prefetcher != nil && options.ioPrefetchBytes > 0 ? ioExtents(plan: plan, from: startBatch) : []
        condition.lock()
        stopLocked()
        generation += 1
        self.plan = plan
        epochNumber = number
        nextDispatch = startBatch
        nextConsume = startBatch
        endBatch = plan.batchCount
        failure = nil
        stats = LoaderStats()
        epochStart = ContinuousClock.now
        let current = generation
        prefetcher?.start(extents, fromBatch: startBatch)
        condition.broadcast()
        condition.unlock()
        return Epoch(loader: self, generation: current, number: number, plan: plan)
    }

    /// The stored extents of the plan's chunks from `startBatch` on, each where a batch first needs it.
    private func ioExtents(plan: EpochPlan, from startBatch: Int) -> [IOPrefetcher.Extent] {
        let indexed = fields.filter { $0.decodesDirectly && $0.chunkIndex != nil && $0.chunkRows != nil && $0.chunksInStoreFile }
        let locations = indexed.map { $0.chunkIndex! }
        let rowsPerChunk = indexed.map { $0.chunkRows! }
        var seen = locations.map { [Bool](repeating: false, count: $0.count) }
        var extents: [IOPrefetcher.Extent] = []
        extents.reserveCapacity(locations.reduce(0) { $0 + $1.count })
        for batch in startBatch..<plan.batchCount {
            for position in plan.batchRange(batch) {
                let row = plan.indices[position]
                for field in locations.indices {
                    let chunk = row / rowsPerChunk[field]
                    guard chunk < seen[field].count, !seen[field][chunk] else { continue }
                    seen[field][chunk] = true
                    let location = locations[field][chunk]
                    extents.append(IOPrefetcher.Extent(offset: location.offset, size: location.size, batch: batch))
                }
            }
        }
        return extents
    }

    // MARK: - Consumer side

    fileprivate func next(generation expected: Int) throws(StoreError) -> Batch? {
        condition.lock()
        defer { condition.unlock() }
        guard generation == expected else {
            // A superseded epoch ends (documented: one epoch at a time). A shut-down loader is an error,
            // not an empty epoch: `let epoch = try Loader(...).epoch(0)` releases the loader at once.
            if shuttingDown {
                throw .invalidArgument("\(store.path): the loader was shut down or released while epoch \(epochNumber) was in use; keep the Loader alive as long as its epochs")
            }
            return nil
        }
        let waitStart = ContinuousClock.now
        defer { stats.waitSeconds += (ContinuousClock.now - waitStart).seconds }
        while true {
            if let failure { throw failure }
            if nextConsume >= endBatch { return nil }
            let ring = nextConsume % readyBatch.count
            if readyBatch[ring] == nextConsume {
                let slot = readySlot[ring]
                readyBatch[ring] = -1
                let number = nextConsume
                nextConsume += 1
                stats.wallSeconds = (ContinuousClock.now - epochStart).seconds
                condition.broadcast()
                let count = plan!.batchRange(number).count
                return Batch(loader: self, slot: slot, number: number, count: count)
            }
            condition.wait()
        }
    }

    fileprivate func recycle(slot: Int) {
        condition.lock()
        freeSlots.append(slot)
        condition.broadcast()
        condition.unlock()
    }

    fileprivate func stop(generation expected: Int) {
        condition.lock()
        if generation == expected { stopLocked() }
        condition.unlock()
    }

    fileprivate func currentStats(generation expected: Int) -> LoaderStats {
        condition.lock()
        defer { condition.unlock() }
        var snapshot = stats
        snapshot.chunkDecodes = cache.decodes
        snapshot.redecodes = cache.redecodes
        snapshot.cacheHits = cache.hits
        if let prefetcher {
            snapshot.ioPrefetchedBytes = prefetcher.issuedBytes
            snapshot.ioPrefetchPeakBytes = prefetcher.peakInFlightBytes
        }
        return snapshot
    }

    /// Ends the epoch in progress: no new batches start, the ready ones return to the pool, and the
    /// call waits for batches being filled. Caller holds `condition`.
    private func stopLocked() {
        generation += 1
        prefetcher?.stop()
        endBatch = 0
        for ring in readyBatch.indices where readyBatch[ring] >= 0 {
            freeSlots.append(readySlot[ring])
            readyBatch[ring] = -1
        }
        condition.broadcast()
        while busyWorkers > 0 { condition.wait() }
    }

    // MARK: - Workers

    private func workerLoop() {
        var keys = [Int](repeating: 0, count: bufferRows)
        var deferred = [Int](repeating: 0, count: bufferRows)
        var scratch: [UInt8] = []
        condition.lock()
        while true {
            if shuttingDown {
                runningThreads -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            guard failure == nil, let plan, nextDispatch < endBatch, nextDispatch < nextConsume + options.prefetch,
                  let slot = freeSlots.popLast() else {
                let idleStart = ContinuousClock.now
                let waitGeneration = generation
                condition.wait()
                // Idle within one running epoch (the end of an epoch included: every batch dispatched,
                // the consumer still taking the last ones); not the time between epochs.
                if generation == waitGeneration && self.plan != nil && endBatch > 0 {
                    stats.workerIdleSeconds += (ContinuousClock.now - idleStart).seconds
                }
                continue
            }
            let number = nextDispatch
            nextDispatch += 1
            busyWorkers += 1
            let myGeneration = generation
            condition.unlock()
            prefetcher?.consumed(batchesBelow: number + 1)

            var timing = LoaderStats()
            var error: StoreError?
            do throws(StoreError) {
                try fill(slot: slot, batch: number, plan: plan, keys: &keys, deferred: &deferred, scratch: &scratch, timing: &timing)
            } catch let caught {
                error = caught
            }

            condition.lock()
            busyWorkers -= 1
            if myGeneration != generation {
                freeSlots.append(slot)
            } else if let error {
                if failure == nil { failure = error }
                freeSlots.append(slot)
            } else {
                let ring = number % readyBatch.count
                readyBatch[ring] = number
                readySlot[ring] = slot
                stats.batches += 1
                stats.samples += timing.samples
                stats.readSeconds += timing.readSeconds
                stats.decodeSeconds += timing.decodeSeconds
                stats.gatherSeconds += timing.gatherSeconds
                stats.chunkWaitSeconds += timing.chunkWaitSeconds
                stats.batchBytes += timing.batchBytes
                stats.decodedBytes += timing.decodedBytes
                stats.storedBytesRead += timing.storedBytesRead
            }
            condition.broadcast()
        }
    }

    /// Fills buffer `slot` with batch `number`: for each field, rows are grouped by chunk (a heap sort of
    /// preallocated keys), each chunk is taken from the cache once, and its rows are copied or
    /// normalized into place.
    private func fill(
        slot: Int, batch number: Int, plan: EpochPlan, keys: inout [Int], deferred: inout [Int], scratch: inout [UInt8],
        timing: inout LoaderStats
    ) throws(StoreError) {
        let range = plan.batchRange(number)
        let count = range.count
        let buffer = unsafe pool.buffer(slot)
        let indices = unsafe buffer.baseAddress!.advanced(by: indicesOffset).assumingMemoryBound(to: Int64.self)
        for position in 0..<count { unsafe indices[position] = Int64(plan.indices[range.lowerBound + position]) }
        timing.samples = count
        if let prefetcher { fileSize.store(try prefetcher.currentFileSize(), ordering: .relaxed) }
        for (fieldNumber, field) in fields.enumerated() {
            let layout = layouts[fieldNumber]
            let destination = unsafe buffer.baseAddress!.advanced(by: layout.offset)
            timing.batchBytes += count * layout.sampleBytes
            guard field.decodesDirectly, let rowsPerChunk = field.chunkRows else {
                let start = ContinuousClock.now
                for position in 0..<count {
                    let row = plan.indices[range.lowerBound + position]
                    let target = unsafe UnsafeMutableRawBufferPointer(start: destination.advanced(by: position * field.sampleBytes), count: field.sampleBytes)
                    try unsafe field.readRows(row..<(row + 1), into: target)
                }
                if layout.normalization != nil {
                    // Rows were read in their stored type into the front of the f32 area; widen from the back
                    // (row p's output never overlaps a lower row's input; row 0's own input goes via a copy).
                    var copy = [UInt8](repeating: 0, count: field.sampleBytes)
                    for position in (0..<count).reversed() {
                        let source = unsafe destination.advanced(by: position * field.sampleBytes)
                        unsafe copy.withUnsafeMutableBytes { unsafe $0.baseAddress!.copyMemory(from: source, byteCount: field.sampleBytes) }
                        unsafe copy.withUnsafeBytes { bytes in
                            unsafe normalize(bytes.baseAddress!, into: destination.advanced(by: position * layout.sampleBytes),
                                             field: fieldNumber, dtype: field.dtype, elements: field.sampleBytes / field.dtype.size)
                        }
                    }
                }
                timing.readSeconds += (ContinuousClock.now - start).seconds
                continue
            }
            for position in 0..<count {
                keys[position] = (plan.indices[range.lowerBound + position] / rowsPerChunk) * bufferRows + position
            }
            heapSort(&keys, count: count)
            // First pass: chunks nobody else is decoding; groups whose chunk another worker is decoding
            // are deferred (their start kept in `deferred`) so this worker decodes other chunks meanwhile.
            var deferredCount = 0
            var groupStart = 0
            while groupStart < count {
                let groupEnd = groupEnd(keys, from: groupStart, count: count)
                if unsafe try decodeInPlace(field, layout, keys, groupStart..<groupEnd, plan, range, destination, &scratch, &timing) {
                    groupStart = groupEnd
                    continue
                }
                if unsafe try !gather(fieldNumber, field, layout, keys, groupStart..<groupEnd, plan, range, destination, wait: false, &scratch, &timing) {
                    deferred[deferredCount] = groupStart
                    deferredCount += 1
                }
                groupStart = groupEnd
            }
            for index in 0..<deferredCount {
                let start = deferred[index]
                _ = unsafe try gather(fieldNumber, field, layout, keys, start..<groupEnd(keys, from: start, count: count), plan, range, destination, wait: true, &scratch, &timing)
            }
        }
    }

    private func groupEnd(_ keys: [Int], from start: Int, count: Int) -> Int {
        let chunk = keys[start] / bufferRows
        var end = start + 1
        while end < count && keys[end] / bufferRows == chunk { end += 1 }
        return end
    }

    /// When a group is a whole chunk whose rows land in order at consecutive batch positions (sequential
    /// reading), decodes it straight into the batch buffer: no cache slot, no copy. False otherwise.
    private func decodeInPlace(
        _ field: Field, _ layout: BatchFieldLayout, _ keys: [Int], _ group: Range<Int>, _ plan: EpochPlan,
        _ range: Range<Int>, _ destination: UnsafeMutableRawPointer, _ scratch: inout [UInt8], _ timing: inout LoaderStats
    ) throws(StoreError) -> Bool {
        guard layout.normalization == nil, let rowsPerChunk = field.chunkRows, group.count == rowsPerChunk else { return false }
        let chunk = keys[group.lowerBound] / bufferRows
        let firstPosition = keys[group.lowerBound] % bufferRows
        let firstRow = chunk * rowsPerChunk
        for (offset, key) in group.enumerated() {
            let position = key % bufferRows
            guard position == firstPosition + offset, plan.indices[range.lowerBound + position] == firstRow + offset else { return false }
        }
        let target = unsafe UnsafeMutableRawBufferPointer(
            start: destination.advanced(by: firstPosition * layout.sampleBytes), count: field.chunkBytes)
        try unsafe decode(field, chunk, into: target, &scratch, &timing)
        return true
    }

    /// Decodes one chunk: its stored pages are faulted in first (timed as `read`: waiting for the disk),
    /// then decoded (timed as `decode`); with `dropConsumedChunks` its pages then leave the page cache.
    private func decode(
        _ field: Field, _ chunk: Int, into target: UnsafeMutableRawBufferPointer, _ scratch: inout [UInt8],
        _ timing: inout LoaderStats
    ) throws(StoreError) {
        let readStart = ContinuousClock.now
        // A joined store's locations are in its shard files: nothing to bound-check or drop by offset here.
        let location = field.chunksInStoreFile ? field.chunkIndex?[chunk] : nil
        if let location, location.size > 0 {
            let size = fileSize.load(ordering: .relaxed)
            guard location.offset <= UInt64(size), location.size <= UInt64(size) - location.offset else {
                throw .corruptChunk(path: store.path, field: field.name, chunk: chunk,
                                    reason: "the file was truncated to \(size) bytes while it was read: the chunk's bytes at \(location.offset)+\(location.size) are gone")
            }
            unsafe try field.withStoredChunk(chunk) { (bytes, _) throws(StoreError) in
                timing.pageTouches &+= Int(unsafe stoke_touch_pages(bytes.baseAddress!, bytes.count, pageSize) & 1)
            }
        }
        let decodeStart = ContinuousClock.now
        try unsafe field.decodeChunk(chunk, into: target, scratch: &scratch)
        let end = ContinuousClock.now
        timing.readSeconds += (decodeStart - readStart).seconds
        timing.decodeSeconds += (end - decodeStart).seconds
        timing.decodedBytes += field.chunkBytes
        timing.storedBytesRead += Int(field.chunkIndex?[chunk].size ?? 0)
        if let prefetcher, prefetcher.dropConsumed, let location, location.size > 0 {
            // Pages this process maps stay resident: unmap the pages the chunk touches, then drop them
            // (a page shared with a neighbouring chunk is read again if that chunk comes later).
            unsafe try field.withStoredChunk(chunk) { (bytes, _) throws(StoreError) in
                let start = Int(bitPattern: bytes.baseAddress!) / pageSize * pageSize
                let stop = (Int(bitPattern: bytes.baseAddress!) + bytes.count + pageSize - 1) / pageSize * pageSize
                if stop > start {
                    _ = unsafe madvise(UnsafeMutableRawPointer(bitPattern: start), stop - start, MADV_DONTNEED)
                }
            }
            prefetcher.dropFromCache(offset: location.offset, size: location.size)
        }
    }

    /// Copies (or normalizes) the rows of one chunk group into the batch; false when the chunk is being
    /// decoded by another worker and `wait` is off.
    private func gather(
        _ fieldNumber: Int, _ field: Field, _ layout: BatchFieldLayout, _ keys: [Int], _ group: Range<Int>, _ plan: EpochPlan,
        _ range: Range<Int>, _ destination: UnsafeMutableRawPointer, wait: Bool, _ scratch: inout [UInt8], _ timing: inout LoaderStats
    ) throws(StoreError) -> Bool {
        let rowsPerChunk = field.chunkRows!
        let chunk = keys[group.lowerBound] / bufferRows
        let decodeStart = ContinuousClock.now
        var decodedHere = false
        guard let (cacheSlot, chunkBytes) = unsafe try cache.acquire(field: fieldNumber, chunk: chunk, wait: wait, decode: { (target) throws(StoreError) in
            try unsafe decode(field, chunk, into: target, &scratch, &timing)
            decodedHere = true
        }) else { return false }
        let gatherStart = ContinuousClock.now
        if !decodedHere {
            timing.chunkWaitSeconds += (gatherStart - decodeStart).seconds
        }
        for key in group {
            let position = keys[key] % bufferRows
            let row = plan.indices[range.lowerBound + position] - chunk * rowsPerChunk
            let source = unsafe chunkBytes.baseAddress!.advanced(by: row * field.sampleBytes)
            let target = unsafe destination.advanced(by: position * layout.sampleBytes)
            if layout.normalization != nil {
                unsafe normalize(source, into: target, field: fieldNumber, dtype: field.dtype, elements: field.sampleBytes / field.dtype.size)
            } else {
                unsafe stoke_copy_rows_streaming(target, source, field.sampleBytes)
            }
        }
        cache.release(field: fieldNumber, slot: cacheSlot)
        timing.gatherSeconds += (ContinuousClock.now - gatherStart).seconds
        return true
    }

    /// One sample's `elements` values to f32 `x · scale[c] + bias[c]`: the SIMD kernel for u8, a loop
    /// the compiler vectorizes per channel run for f16 and f32.
    private func normalize(_ source: UnsafeRawPointer, into target: UnsafeMutableRawPointer, field: Int, dtype: DType, elements: Int) {
        let output = unsafe target.assumingMemoryBound(to: Float.self)
        let inner = channelInner[field], channels = scales[field].count
        switch dtype {
        case .u8:
            unsafe stoke_normalize_u8_f32(
                source.assumingMemoryBound(to: UInt8.self), output, elements, inner, channels, scales[field], biases[field])
        case .f32:
            let input = unsafe source.assumingMemoryBound(to: Float.self)
            for index in 0..<elements {
                let channel = (index / inner) % channels
                unsafe output[index] = input[index] * scales[field][channel] + biases[field][channel]
            }
        case .f16: unsafe widen(source, Float16.self, into: output, field: field, elements: elements) { Float($0) }
        case .f64: unsafe widen(source, Double.self, into: output, field: field, elements: elements) { Float($0) }
        case .i8: unsafe widen(source, Int8.self, into: output, field: field, elements: elements) { Float($0) }
        case .u16: unsafe widen(source, UInt16.self, into: output, field: field, elements: elements) { Float($0) }
        case .i16: unsafe widen(source, Int16.self, into: output, field: field, elements: elements) { Float($0) }
        case .u32: unsafe widen(source, UInt32.self, into: output, field: field, elements: elements) { Float($0) }
        case .i32: unsafe widen(source, Int32.self, into: output, field: field, elements: elements) { Float($0) }
        case .i64: unsafe widen(source, Int64.self, into: output, field: field, elements: elements) { Float($0) }
        }
    }

    /// `normalize` for element types without a SIMD kernel: each value to Float (rounded to nearest for
    /// wide integers and f64), then `x · scale[c] + bias[c]`.
    @inline(__always)
    private func widen<Element>(_ source: UnsafeRawPointer, _: Element.Type, into output: UnsafeMutablePointer<Float>, field: Int,
                                elements: Int, _ toFloat: (Element) -> Float) {
        let input = unsafe source.assumingMemoryBound(to: Element.self)
        let inner = channelInner[field], channels = scales[field].count
        for index in 0..<elements {
            let channel = (index / inner) % channels
            unsafe output[index] = toFloat(input[index]) * scales[field][channel] + biases[field][channel]
        }
    }

    /// The view of a leased buffer, for `Batch`.
    fileprivate func bytes(slot: Int, field: Int, count: Int) -> UnsafeRawBufferPointer {
        let buffer = unsafe pool.buffer(slot)
        return unsafe UnsafeRawBufferPointer(start: buffer.baseAddress!.advanced(by: layouts[field].offset), count: count * layouts[field].sampleBytes)
    }

    fileprivate func indices(slot: Int, count: Int) -> UnsafeBufferPointer<Int64> {
        let buffer = unsafe pool.buffer(slot)
        return unsafe UnsafeBufferPointer(start: buffer.baseAddress!.advanced(by: indicesOffset).assumingMemoryBound(to: Int64.self), count: count)
    }

    /// The normalization recorded in the store: `{"<field>": {"mean": [...], "std": [...]}}` or
    /// `{"field": "<name>", "mean": [...], "std": [...]}`.
    static func storeNormalization(_ store: Store, fields: [Field]) throws(StoreError) -> [String: Normalization] {
        guard let text = store.attributes["normalization"] else { return [:] }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw .invalidStore(path: store.path, reason: "attribute 'normalization' is not a JSON object")
        }
        func parse(_ value: Any?) -> Normalization? {
            guard let entry = value as? [String: Any], let mean = entry["mean"] as? [Double], let std = entry["std"] as? [Double] else { return nil }
            return Normalization(mean: mean.map(Float.init), std: std.map(Float.init), inputScale: (entry["scale"] as? Double).map(Float.init))
        }
        if let single = parse(object) {
            let name = (object["field"] as? String) ?? fields.first(where: { [.u8, .f16, .f32].contains($0.dtype) && !$0.sampleShape.isEmpty })?.name
            return name.map { [$0: single] } ?? [:]
        }
        var result: [String: Normalization] = [:]
        for (name, value) in object {
            guard let normalization = parse(value) else {
                throw .invalidStore(path: store.path, reason: "attribute 'normalization': entry '\(name)' needs mean and std arrays")
            }
            result[name] = normalization
        }
        return result
    }
}

/// One epoch of batches, in plan order. Stops the epoch (joining in-flight work) when it goes away.
public struct Epoch: ~Copyable {
    private let loader: LoaderCore
    private let generation: Int
    public let number: Int
    public let plan: EpochPlan

    fileprivate init(loader: LoaderCore, generation: Int, number: Int, plan: EpochPlan) {
        self.loader = loader
        self.generation = generation
        self.number = number
        self.plan = plan
    }

    deinit { loader.stop(generation: generation) }

    /// The next batch, nil at the end of the epoch. A worker's error (a corrupt chunk, naming store,
    /// field and chunk) is thrown here.
    public func next() throws(StoreError) -> Batch? {
        try loader.next(generation: generation)
    }

    /// Time and bytes so far.
    public var stats: LoaderStats { loader.currentStats(generation: generation) }
}

/// A lease on a filled batch buffer. It returns to the loader's pool when the batch goes out of scope
/// (or is `consume`d); views must not outlive the closures that receive them.
public struct Batch: ~Copyable {
    private let loader: LoaderCore
    private let slot: Int
    /// The batch's position in the epoch.
    public let number: Int
    /// Samples in this batch (the last batch may be smaller).
    public let count: Int

    fileprivate init(loader: LoaderCore, slot: Int, number: Int, count: Int) {
        self.loader = loader
        self.slot = slot
        self.number = number
        self.count = count
    }

    deinit { loader.recycle(slot: slot) }

    /// The store indices of the batch's samples.
    public func withIndices<R>(_ body: (UnsafeBufferPointer<Int64>) throws -> R) rethrows -> R {
        try unsafe body(loader.indices(slot: slot, count: count))
    }

    /// The bytes of one field: `count` samples of the layout's dtype and sample shape, C order.
    public func withField<R>(_ name: String, _ body: (UnsafeRawBufferPointer, BatchFieldLayout) throws -> R) throws -> R {
        guard let index = loader.layouts.firstIndex(where: { $0.name == name }) else {
            throw StoreError.invalidArgument("batch has no field '\(name)'")
        }
        return try unsafe body(loader.bytes(slot: slot, field: index, count: count), loader.layouts[index])
    }

    /// A copy of one field's values (allocates; for tests and small consumers).
    public func values<T: BitwiseCopyable>(_ name: String, as: T.Type = T.self) throws -> [T] {
        unsafe try withField(name) { bytes, layout in
            guard MemoryLayout<T>.stride == layout.dtype.size else {
                throw StoreError.invalidArgument("field '\(name)' is \(layout.dtype.rawValue) in batches; \(T.self) does not match")
            }
            return unsafe Array(bytes.assumingMemoryBound(to: T.self))
        }
    }

    /// A copy of the sample indices.
    public var indices: [Int] { unsafe withIndices { unsafe $0.map { Int($0) } } }
}

/// Heap sort of `values[0..<count]` in place: no allocation, O(n log n).
func heapSort(_ values: inout [Int], count: Int) {
    func siftDown(_ values: inout [Int], _ start: Int, _ end: Int) {
        var root = start
        while 2 * root + 1 < end {
            var child = 2 * root + 1
            if child + 1 < end && values[child] < values[child + 1] { child += 1 }
            if values[root] >= values[child] { return }
            values.swapAt(root, child)
            root = child
        }
    }
    guard count > 1 else { return }
    for start in stride(from: count / 2 - 1, through: 0, by: -1) { siftDown(&values, start, count) }
    for end in stride(from: count - 1, to: 0, by: -1) {
        values.swapAt(0, end)
        siftDown(&values, 0, end)
    }
}

extension Duration {
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}
