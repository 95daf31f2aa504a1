import Foundation
import StokeStore

/// `stoke bench codecs`: which codec delivers the most samples/s on this machine, warm and cold, for
/// the user's own data, from a sample of its chunks.
public struct CodecBenchmark {
    public struct Row: Sendable {
        public var codec: Codec
        public var ratio: Double
        /// Raw bytes compressed per second on one core.
        public var compressBytesPerSecond: Double
        /// Raw bytes decoded per second on one core.
        public var decodeBytesPerSecond: Double
        /// Samples/s this codec can deliver from a warm page cache and from a cold disk, on `cores` cores.
        public var warmSamplesPerSecond: Double
        public var coldSamplesPerSecond: Double
    }

    public struct Result: Sendable {
        public var input: String
        public var sampleBytes: Int
        public var chunkBytes: Int
        public var chunksSampled: Int
        public var cores: Int
        public var warmReadBytesPerSecond: Double
        public var coldReadBytesPerSecond: Double
        public var coldResidentFraction: Double
        public var rows: [Row]
        public var bestWarm: Codec { rows.max { $0.warmSamplesPerSecond < $1.warmSamplesPerSecond }!.codec }
        public var bestCold: Codec { rows.max { $0.coldSamplesPerSecond < $1.coldSamplesPerSecond }!.codec }
    }

    public static let defaultCodecs: [Codec] = [.none, .lz4, .lz4Shuffle, .deflate(level: 1), .deflate(level: 6)]

    /// Samples `chunks` chunks of `input` (a store's field, or an NPY array in ~2 MiB chunks of whole
    /// samples) and measures each codec on them.
    public static func run(
        input: String, field: String?, chunks: Int = 16, codecs: [Codec] = defaultCodecs, cores: Int,
        loadNPY: (String) throws -> (elementSize: Int, sampleBytes: Int, rows: Int, read: (Range<Int>) throws -> [UInt8])
    ) throws -> Result {
        var samples: [[UInt8]] = []
        var elementSize = 1, sampleBytes = 1, chunkBytes = 0
        if input.hasSuffix(".npy") {
            let array = try loadNPY(input)
            elementSize = array.elementSize
            sampleBytes = array.sampleBytes
            let rowsPerChunk = max(1, (2 << 20) / max(1, array.sampleBytes))
            let chunkCount = max(1, (array.rows + rowsPerChunk - 1) / rowsPerChunk)
            chunkBytes = rowsPerChunk * array.sampleBytes
            for pick in picks(count: chunkCount, wanted: chunks) {
                let rows = (pick * rowsPerChunk)..<min(array.rows, (pick + 1) * rowsPerChunk)
                if !rows.isEmpty { samples.append(try array.read(rows)) }
            }
        } else {
            let store = try Store(path: input)
            let chosen = try field.map { try store.field($0) }
                ?? store.fields.filter { $0.chunkRows != nil && $0.decodesDirectly }.max { $0.rawBytes < $1.rawBytes }
            guard let chosen, chosen.chunkRows != nil else {
                throw StoreError.invalidArgument("\(input): no field chunked by whole samples to sample (use --field)")
            }
            elementSize = chosen.dtype.size
            sampleBytes = chosen.sampleBytes
            chunkBytes = chosen.chunkBytes
            var scratch: [UInt8] = []
            for pick in picks(count: chosen.chunkCount, wanted: chunks) {
                var buffer = [UInt8](repeating: 0, count: chosen.chunkBytes)
                unsafe try withMutableBytes(of: &buffer) { (bytes) throws(StoreError) in try unsafe chosen.decodeChunk(pick, into: bytes, scratch: &scratch) }
                buffer.removeLast((chosen.chunkRows! - chosen.rows(inChunk: pick).count) * chosen.sampleBytes)
                samples.append(buffer)
            }
        }
        guard !samples.isEmpty else { throw StoreError.invalidArgument("\(input): no data to sample") }

        _ = try Ceilings.storage(path: input, samples: 0)
        let warm = try Ceilings.storage(path: input, samples: 0)
        try PageCache.evict(input)
        let resident = try PageCache.residentFraction(input)
        let cold = try Ceilings.storage(path: input, samples: 0)

        let rawTotal = samples.reduce(0) { $0 + $1.count }
        var rows: [Row] = []
        for codec in codecs {
            let coder = ChunkCodec(codec: codec, elementSize: elementSize)
            var encoded: [[UInt8]] = []
            var output: [UInt8] = [], scratch: [UInt8] = []
            let compressStart = ContinuousClock.now
            for sample in samples {
                unsafe sample.withUnsafeBytes { unsafe coder.encode($0, into: &output, scratch: &scratch) }
                encoded.append(output)
            }
            let compressSeconds = (ContinuousClock.now - compressStart).seconds
            let storedTotal = encoded.reduce(0) { $0 + $1.count }
            var destination = [UInt8](repeating: 0, count: samples.map(\.count).max()!)
            // Decode repeatedly for at least 0.2 s so fast codecs are timed reliably.
            var decodedBytes = 0
            let decodeStart = ContinuousClock.now
            repeat {
                for (index, stored) in encoded.enumerated() {
                    let size = samples[index].count
                    unsafe try withMutableBytes(of: &destination) { (target) throws(StoreError) in
                        unsafe try withBytes(of: stored) { (source) throws(StoreError) in
                            try unsafe coder.decode(source, into: UnsafeMutableRawBufferPointer(rebasing: target[0..<size]), scratch: &scratch)
                        }
                    }
                    decodedBytes += size
                }
            } while (ContinuousClock.now - decodeStart).seconds < 0.2
            let decodeRate = Double(decodedBytes) / max((ContinuousClock.now - decodeStart).seconds, 1e-9)
            let ratio = Double(rawTotal) / Double(max(storedTotal, 1))
            let decodeAll = decodeRate * Double(cores)
            rows.append(Row(
                codec: codec, ratio: ratio, compressBytesPerSecond: Double(rawTotal) / max(compressSeconds, 1e-9),
                decodeBytesPerSecond: decodeRate,
                warmSamplesPerSecond: min(warm.bytesPerSecond * ratio, decodeAll) / Double(sampleBytes),
                coldSamplesPerSecond: min(cold.bytesPerSecond * ratio, decodeAll) / Double(sampleBytes)))
        }
        return Result(
            input: input, sampleBytes: sampleBytes, chunkBytes: chunkBytes, chunksSampled: samples.count, cores: cores,
            warmReadBytesPerSecond: warm.bytesPerSecond, coldReadBytesPerSecond: cold.bytesPerSecond,
            coldResidentFraction: resident, rows: rows)
    }

    /// `wanted` chunk numbers spread evenly over `count`.
    static func picks(count: Int, wanted: Int) -> [Int] {
        let n = min(count, max(1, wanted))
        return (0..<n).map { $0 * count / n }
    }
}

extension CodecBenchmark.Result {
    public var json: [String: Any] {
        [
            "input": input, "sample_bytes": sampleBytes, "chunk_bytes": chunkBytes, "chunks_sampled": chunksSampled,
            "cores": cores, "storage": ["warm_bytes_per_s": warmReadBytesPerSecond, "cold_bytes_per_s": coldReadBytesPerSecond,
                                        "cold_resident_fraction": coldResidentFraction],
            "codecs": rows.map {
                [
                    "codec": $0.codec.description, "ratio": $0.ratio, "compress_bytes_per_s_per_core": $0.compressBytesPerSecond,
                    "decode_bytes_per_s_per_core": $0.decodeBytesPerSecond, "warm_samples_per_s": $0.warmSamplesPerSecond,
                    "cold_samples_per_s": $0.coldSamplesPerSecond,
                ] as [String: Any]
            },
            "best": ["warm": bestWarm.description, "cold": bestCold.description],
        ]
    }
}
