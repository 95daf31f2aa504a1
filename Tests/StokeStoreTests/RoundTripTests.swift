import Foundation
import StokeStore
import Testing

private let codecs: [Codec] = [.none, .lz4, .lz4Shuffle, .deflate(level: 1), .deflate(level: 9)]

@Test("round trip for every dtype and codec, last chunk partial", arguments: DType.allCases, codecs)
func roundTrip(dtype: DType, codec: Codec) throws {
    let directory = TemporaryDirectory()
    defer { directory.cleanup() }
    let path = directory.file("store.h5")
    let samples = 37
    let spec = FieldSpec(name: "data", dtype: dtype, sampleShape: [3, 5])
    let labels = FieldSpec(name: "label", dtype: .i64, sampleShape: [])
    var options = StoreWriteOptions()
    options.codec = codec
    options.chunking = .samples(8)
    options.workers = 2
    let data = sampleBytes(count: samples * spec.sampleBytes)
    let labelValues = (0..<samples).map { Int64($0 * 3 - 50) }
    let writer = try StoreWriter(path: path, fields: [spec, labels], options: options)
    // Append in uneven batches so chunk boundaries and batch boundaries differ.
    var offset = 0
    for batch in [1, 10, 3, 23] {
        let bytes = Array(data[(offset * spec.sampleBytes)..<((offset + batch) * spec.sampleBytes)])
        try writer.append("data", values: bytes)
        offset += batch
    }
    try writer.append("label", values: labelValues)
    let summary = try writer.finish()
    #expect(summary.samples == samples)

    let store = try Store(path: path, options: StoreReadOptions(verifyChecksums: true))
    #expect(store.sampleCount == samples)
    #expect(store.hasChunkIndex)
    let field = try store.field("data")
    #expect(field.dtype == dtype)
    #expect(field.sampleShape == [3, 5])
    #expect(field.chunkRows == 8)
    #expect(field.codecName == codec.description)
    #expect(field.hasChecksum)
    var back = [UInt8](repeating: 0, count: data.count)
    try back.withUnsafeMutableBytes { try field.readRows(0..<samples, into: $0, workers: 2) }
    #expect(back == data)
    // A middle range crossing chunk boundaries, and a shuffled index list.
    var middle = [UInt8](repeating: 0, count: 20 * spec.sampleBytes)
    try middle.withUnsafeMutableBytes { try field.readRows(5..<25, into: $0) }
    #expect(middle == Array(data[(5 * spec.sampleBytes)..<(25 * spec.sampleBytes)]))
    let picks = [36, 0, 17, 17, 8, 35]
    var picked = [UInt8](repeating: 0, count: picks.count * spec.sampleBytes)
    try picked.withUnsafeMutableBytes { try field.readRows(indices: picks, into: $0) }
    let expected = picks.flatMap { data[($0 * spec.sampleBytes)..<(($0 + 1) * spec.sampleBytes)] }
    #expect(picked == expected)
    #expect(try store.field("label").read(0..<samples, as: Int64.self) == labelValues)
    #expect(try field.verify() == 5)
}

@Test func oneSampleAndEmptyStores() throws {
    let directory = TemporaryDirectory()
    defer { directory.cleanup() }
    let one = directory.file("one.h5")
    let writer = try StoreWriter(path: one, fields: [FieldSpec(name: "x", dtype: .f32, sampleShape: [4])])
    try writer.append("x", values: [Float(1), 2, 3, 4])
    try writer.finish()
    #expect(try Store(path: one).field("x").read(0..<1, as: Float.self) == [1, 2, 3, 4])

    let empty = directory.file("empty.h5")
    let emptyWriter = try StoreWriter(path: empty, fields: [FieldSpec(name: "x", dtype: .u8, sampleShape: [2, 2])])
    let summary = try emptyWriter.finish()
    #expect(summary.samples == 0)
    let store = try Store(path: empty)
    #expect(store.sampleCount == 0)
    #expect(try store.field("x").verify() == 0)
}
