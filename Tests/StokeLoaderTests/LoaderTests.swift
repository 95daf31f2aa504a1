import Foundation
import StokeLoader
import StokeStore
import Testing

/// A store where sample `i` has `id == i` and `x` bytes `(i * 31 + j) & 0xFF`, so every batch can be
/// checked against its indices.
private func makeStore(samples: Int, chunkRows: Int, codec: Codec = .lz4, normalization: String? = nil) throws -> (String, () -> Void) {
    let directory = NSTemporaryDirectory() + "stoke-loader-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let path = directory + "/store.h5"
    var options = StoreWriteOptions()
    options.codec = codec
    options.chunking = .samples(chunkRows)
    let writer = try StoreWriter(path: path, fields: [
        FieldSpec(name: "x", dtype: .u8, sampleShape: [2, 4, 4]), FieldSpec(name: "id", dtype: .i64, sampleShape: []),
    ], options: options)
    try writer.append("x", values: (0..<samples).flatMap { sample in (0..<32).map { UInt8(truncatingIfNeeded: sample * 31 + $0) } })
    try writer.append("id", values: (0..<samples).map { Int64($0) })
    if let normalization { try writer.setMetadata("normalization", json: normalization) }
    try writer.finish()
    return (path, { try? FileManager.default.removeItem(atPath: directory) })
}

/// All batches of one epoch as (indices, ids), checking the x bytes of each sample on the way.
private func collect(_ loader: Loader, epoch: Int, from start: Int = 0) throws -> [[Int]] {
    var batches: [[Int]] = []
    let running = try loader.epoch(epoch, startingAt: start)
    while let batch = try running.next() {
        let indices = batch.indices
        #expect(try batch.values("id", as: Int64.self).map(Int.init) == indices)
        let x = try batch.values("x", as: UInt8.self)
        for (position, sample) in indices.enumerated() {
            #expect(Array(x[(position * 32)..<((position + 1) * 32)]) == (0..<32).map { UInt8(truncatingIfNeeded: sample * 31 + $0) })
        }
        batches.append(indices)
    }
    return batches
}

@Suite("loader")
struct LoaderTests {
    @Test("every order yields each sample exactly once per epoch", arguments: [SampleOrder.sequential, .random, .chunkShuffle(window: 3)])
    func exactlyOnce(order: SampleOrder) throws {
        let (path, cleanup) = try makeStore(samples: 1000, chunkRows: 64)
        defer { cleanup() }
        var options = LoaderOptions()
        options.order = order
        options.batchSize = 37
        options.workers = 2
        options.seed = 11
        let loader = try Loader(store: Store(path: path), options: options)
        for epoch in 0..<2 {
            let batches = try collect(loader, epoch: epoch)
            #expect(batches.count == 28)
            #expect(batches.last?.count == 1000 - 27 * 37)
            #expect(batches.flatMap { $0 }.sorted() == Array(0..<1000))
            if order == .sequential { #expect(batches.flatMap { $0 } == Array(0..<1000)) }
        }
        if order != .sequential {
            #expect(try collect(loader, epoch: 0) != collect(loader, epoch: 1), "epochs differ")
        }
    }

    @Test("sequential batches larger than a chunk decode whole chunks in place, bypassing the cache")
    func sequentialInPlace() throws {
        let (path, cleanup) = try makeStore(samples: 1000, chunkRows: 40)
        defer { cleanup() }
        var options = LoaderOptions()
        options.order = .sequential
        options.batchSize = 150
        let loader = try Loader(store: Store(path: path), options: options)
        let batches = try collect(loader, epoch: 0)  // checks every sample's bytes
        #expect(batches.flatMap { $0 } == Array(0..<1000))
        let epoch = try loader.epoch(1)
        while let _ = try epoch.next() {}
        // 25 chunks per field; most are decoded straight into batches, so the cache decodes only the
        // chunks that straddle a batch boundary.
        #expect(epoch.stats.chunkDecodes < 2 * 25)
        #expect(epoch.stats.decodedBytes >= 1000 * 32)
    }

    @Test("chunk-shuffle decodes each chunk once per epoch when the cache holds a window")
    func chunkShuffleDecodesOnce() throws {
        let (path, cleanup) = try makeStore(samples: 2000, chunkRows: 100)
        defer { cleanup() }
        var options = LoaderOptions()
        options.order = .chunkShuffle(window: 2)
        options.batchSize = 64
        options.fields = ["x"]
        options.cacheBytes = 6 * 100 * 32  // 6 chunks of x
        let loader = try Loader(store: Store(path: path), options: options)
        let epoch = try loader.epoch(0)
        var samples = 0
        while let batch = try epoch.next() { samples += batch.count }
        #expect(samples == 2000)
        let stats = epoch.stats
        #expect(stats.chunkDecodes == 20)
        #expect(stats.redecodes == 0)
        #expect(stats.batches == 32)
        #expect(stats.decodedBytes == 20 * 100 * 32)
        let stored = try Store(path: path).field("x").chunkIndex!.reduce(0) { $0 + Int($1.size) }
        #expect(stats.storedBytesRead == stored)
    }

    @Test("random order with a tiny cache counts re-decodes")
    func randomCountsRedecodes() throws {
        let (path, cleanup) = try makeStore(samples: 2000, chunkRows: 100)
        defer { cleanup() }
        var options = LoaderOptions()
        options.order = .random
        options.fields = ["x"]
        options.workers = 1
        options.cacheBytes = 0
        let loader = try Loader(store: Store(path: path), options: options)
        let epoch = try loader.epoch(0)
        while let _ = try epoch.next() {}
        #expect(epoch.stats.redecodes > 0)
        #expect(epoch.stats.chunkDecodes == 20 + epoch.stats.redecodes)
    }

    @Test("same seed gives the same batches with 1, 2 and 4 workers")
    func deterministicAcrossWorkers() throws {
        let (path, cleanup) = try makeStore(samples: 700, chunkRows: 50)
        defer { cleanup() }
        var results: [[[Int]]] = []
        for workers in [1, 2, 4] {
            var options = LoaderOptions()
            options.workers = workers
            options.seed = 99
            options.batchSize = 32
            options.prefetch = 3
            results.append(try collect(Loader(store: Store(path: path), options: options), epoch: 5))
        }
        #expect(results[0] == results[1])
        #expect(results[1] == results[2])
    }

    @Test("distributed ranks are disjoint and cover the set, with padding or dropping reported")
    func distributed() throws {
        let (path, cleanup) = try makeStore(samples: 1000, chunkRows: 64)
        defer { cleanup() }
        for dropLast in [false, true] {
            var all: [Int] = []
            for rank in 0..<3 {
                var options = LoaderOptions()
                options.world = 3
                options.rank = rank
                options.batchSize = 50
                options.dropLast = dropLast
                let loader = try Loader(store: Store(path: path), options: options)
                let plan = loader.plan(epoch: 0)
                #expect(plan.paddedSamples == (dropLast ? 0 : 2))
                #expect(plan.droppedSamples == (dropLast ? 1 : 0))
                let batches = try collect(loader, epoch: 0)
                all += batches.flatMap { $0 }
            }
            if dropLast {
                #expect(Set(all).count == all.count)  // disjoint
                #expect(all.count == 3 * (333 / 50) * 50)  // 999 samples, 333 per rank, whole batches only
            } else {
                #expect(Set(all) == Set(0..<1000))   // covering
                #expect(all.count == 1002)
            }
        }
    }

    @Test("resume at (epoch, batch) yields the same remaining batches")
    func resume() throws {
        let (path, cleanup) = try makeStore(samples: 500, chunkRows: 40)
        defer { cleanup() }
        var options = LoaderOptions()
        options.batchSize = 30
        options.seed = 3
        let loader = try Loader(store: Store(path: path), options: options)
        let full = try collect(loader, epoch: 2)
        let resumed = try collect(loader, epoch: 2, from: 7)
        #expect(resumed == Array(full[7...]))
        #expect(throws: StoreError.self) { _ = try loader.epoch(2, startingAt: 100) }
    }

    @Test("normalized f32 output equals (x/255 - mean)/std per channel")
    func normalization() throws {
        let (path, cleanup) = try makeStore(samples: 90, chunkRows: 16, normalization: #"{"x": {"mean": [0.25, 0.5], "std": [0.5, 0.2]}}"#)
        defer { cleanup() }
        var options = LoaderOptions()
        options.order = .sequential
        options.batchSize = 20
        let loader = try Loader(store: Store(path: path), options: options)
        #expect(loader.layouts.first { $0.name == "x" }?.dtype == .f32)
        let epoch = try loader.epoch(0)
        while let batch = try epoch.next() {
            let values = try batch.values("x", as: Float.self)
            for (position, sample) in batch.indices.enumerated() {
                for element in 0..<32 {
                    let raw = Float(UInt8(truncatingIfNeeded: sample * 31 + element))
                    let channel = element / 16
                    let expected = (raw / 255 - [0.25, 0.5][channel]) / [0.5, 0.2][channel]
                    #expect(abs(values[position * 32 + element] - expected) < 1e-5)
                }
            }
        }
        // Explicit normalization overrides the store's; bad shapes are refused.
        var bad = LoaderOptions()
        bad.normalization = ["x": Normalization(mean: [0.1, 0.2, 0.3], std: [1, 1, 1])]
        #expect(throws: StoreError.self) { try Loader(store: Store(path: path), options: bad) }
    }

    @Test("a store's normalization applies to f32 and f16 fields too, with the recorded input scale")
    func floatNormalization() throws {
        let directory = NSTemporaryDirectory() + "stoke-loader-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for dtype in [DType.f32, .f16] {
            let path = directory + "/\(dtype).h5"
            let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "image", dtype: dtype, sampleShape: [2, 3])])
            let values = (0..<60).map { Float($0 % 7) / 8 }
            if dtype == .f32 { try writer.append("image", values: values) } else { try writer.append("image", values: values.map { Float16($0) }) }
            try writer.setMetadata("normalization", json: #"{"field": "image", "mean": [0.5, 0.25], "std": [0.5, 2], "scale": 1}"#)
            try writer.finish()
            var options = LoaderOptions()
            options.order = .sequential
            options.batchSize = 10
            let loader = try Loader(store: Store(path: path), options: options)
            let epoch = try loader.epoch(0)
            let got = try #require(try epoch.next()?.values("image", as: Float.self))
            let means: [Float] = [0.5, 0.25], stds: [Float] = [0.5, 2]
            let expected: [Float] = (0..<60).map { index in
                let channel = (index % 6) / 3
                return (values[index] - means[channel]) / stds[channel]
            }
            #expect(zip(got, expected).allSatisfy { abs($0 - $1) < 1e-6 }, "\(dtype)")
        }
    }

    @Test("output type f32 widens u8 and i64 samples (r22: integer data feeds a float model); other targets are refused")
    func outputTypes() throws {
        let (path, cleanup) = try makeStore(samples: 50, chunkRows: 16)
        defer { cleanup() }
        var options = LoaderOptions()
        options.order = .sequential
        options.batchSize = 50
        options.outputTypes = ["x": .f32, "id": .f32]
        let loader = try Loader(store: Store(path: path), options: options)
        let epoch = try loader.epoch(0)
        guard let batch = try epoch.next() else {
            Issue.record("no batch")
            return
        }
        let x = try batch.values("x", as: Float.self), ids = try batch.values("id", as: Float.self)
        let expectedX: [Float] = (0..<50).flatMap { (sample: Int) -> [Float] in (0..<32).map { Float(UInt8(truncatingIfNeeded: sample * 31 + $0)) } }
        #expect(x == expectedX)
        #expect(ids == (0..<50).map { Float($0) })
        var bad = LoaderOptions()
        bad.outputTypes = ["id": .i32]
        #expect(throws: StoreError.self) { try Loader(store: Store(path: path), options: bad) }
    }

    @Test("an epoch whose loader was released throws instead of ending as if empty")
    func epochOutlivesLoader() throws {
        let (path, cleanup) = try makeStore(samples: 64, chunkRows: 16)
        defer { cleanup() }
        let epoch = try Loader(store: Store(path: path), options: LoaderOptions()).epoch(0)
        #expect(throws: StoreError.self) { _ = try epoch.next() }
    }

    @Test("every element type widens to f32, with a store's normalization applied", arguments: DType.allCases)
    func widening(dtype: DType) throws {
        let directory = NSTemporaryDirectory() + "stoke-widen-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/store.h5"
        let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "v", dtype: dtype, sampleShape: [3])], options: StoreWriteOptions())
        // Values every type holds exactly: 0...29, negated for signed types.
        let values: [Double] = (0..<30).map { [.i8, .i16, .i32, .i64, .f16, .f32, .f64].contains(dtype) && $0 % 2 == 1 ? -Double($0) : Double($0) }
        switch dtype {
        case .u8: try writer.append("v", values: values.map { UInt8($0) })
        case .i8: try writer.append("v", values: values.map { Int8($0) })
        case .u16: try writer.append("v", values: values.map { UInt16($0) })
        case .i16: try writer.append("v", values: values.map { Int16($0) })
        case .u32: try writer.append("v", values: values.map { UInt32($0) })
        case .i32: try writer.append("v", values: values.map { Int32($0) })
        case .i64: try writer.append("v", values: values.map { Int64($0) })
        case .f16: try writer.append("v", values: values.map { Float16($0) })
        case .f32: try writer.append("v", values: values.map { Float($0) })
        case .f64: try writer.append("v", values: values.map { $0 })
        }
        try writer.setMetadata("normalization", json: #"{"v": {"mean": [1], "std": [2], "scale": 1}}"#)
        try writer.finish()
        var options = LoaderOptions()
        options.order = .sequential
        options.batchSize = 10
        options.outputTypes = ["v": .f32]
        for useStore in [false, true] {
            options.useStoreNormalization = useStore
            let loader = try Loader(store: Store(path: path), options: options)
            let epoch = try loader.epoch(0)
            let got = try #require(try epoch.next()?.values("v", as: Float.self))
            #expect(got == values.map { Float(useStore ? ($0 - 1) / 2 : $0) }, "\(dtype) store normalization \(useStore)")
        }
    }

    @Test("a corrupt chunk surfaces as an error naming store, field and chunk, without hanging")
    func corruptChunk() throws {
        let (path, cleanup) = try makeStore(samples: 400, chunkRows: 50, codec: .lz4)
        defer { cleanup() }
        let location = try #require(try Store(path: path).field("x").chunkIndex?[3])
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: location.offset)
        try handle.write(contentsOf: Data([0xFF, 0xFF, 0xFF, 0xFF]))
        try handle.close()
        var options = LoaderOptions()
        options.order = .sequential
        options.batchSize = 25
        let loader = try Loader(store: Store(path: path), options: options)
        let epoch = try loader.epoch(0)
        var delivered = 0
        let error = #expect(throws: StoreError.self) {
            while let batch = try epoch.next() { delivered += batch.count }
        }
        #expect(error?.description.contains("field 'x' chunk 3") == true, "\(String(describing: error))")
        #expect(error?.description.contains(path) == true)
        #expect(delivered <= 150)
    }

    @Test("stopping mid-epoch joins every worker promptly", .timeLimit(.minutes(1)))
    func earlyStop() throws {
        let (path, cleanup) = try makeStore(samples: 3000, chunkRows: 64)
        defer { cleanup() }
        var options = LoaderOptions()
        options.workers = 4
        options.batchSize = 16
        let loader = try Loader(store: Store(path: path), options: options)
        do {
            let epoch = try loader.epoch(0)
            let firstCount = try epoch.next()?.count
            #expect(firstCount == 16)
        }
        // A new epoch after an abandoned one starts cleanly.
        #expect(try collect(loader, epoch: 1).flatMap { $0 }.count == 3000)
        loader.shutdown()
        loader.shutdown()
    }

    @Test("batch buffers come from a fixed pool and report pinning")
    func pinnedPool() throws {
        let (path, cleanup) = try makeStore(samples: 100, chunkRows: 10)
        defer { cleanup() }
        let loader = try Loader(store: Store(path: path), options: LoaderOptions())
        #expect(loader.pinning.pinned || !loader.pinning.reason.isEmpty)
        // CUDA registration happens when libcudart loads; otherwise the reason says why not.
        #expect(loader.pinning.cudaRegistered || !loader.pinning.cudaReason.isEmpty)
        // Buffers hold the batch size or, for a store smaller than one batch, every sample (100 here).
        #expect(loader.batchBufferBytes >= 100 * (32 + 8 + 8))
        #expect(loader.batchBufferBytes < 256 * (32 + 8 + 8))
    }
}
