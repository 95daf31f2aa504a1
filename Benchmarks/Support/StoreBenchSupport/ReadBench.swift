import Foundation
import StokeStore
import Synchronization

/// A page-aligned buffer owned by the benchmark, written once at creation so that its pages are
/// resident before anything is measured.
public final class ByteBuffer: @unchecked Sendable {
    // The pointer is fixed after init; users write disjoint ranges.
    public let bytes: UnsafeMutableRawBufferPointer

    public init(count: Int) {
        let base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 4096)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 1))
        bytes = UnsafeMutableRawBufferPointer(start: base, count: count)
    }

    deinit { bytes.baseAddress.map { $0.deallocate() } }
}

/// `Field.readRows` over a whole field into one reused destination.
public final class RowReader: @unchecked Sendable {
    // Immutable after init.
    public let store: Store
    public let field: Field
    public let destination: ByteBuffer

    public init(path: String) throws {
        store = try Store(path: path)
        field = try store.field(BenchData.fieldName)
        destination = ByteBuffer(count: field.rawBytes)
    }

    /// Reads every row with `workers` decode threads.
    public func readAll(workers: Int) throws {
        try field.readRows(0..<field.rows, into: destination.bytes, workers: workers)
    }
}

/// The decode ceiling: every chunk's stored bytes copied into memory first, then all chunks decoded in
/// parallel (`DispatchQueue.concurrentPerform`, one chunk at a time from an atomic counter) with
/// StokeStore's own decoder (`Field.decode(stored:…)`), each chunk straight into its slot of one
/// destination. No file, no map, no HDF5: the most a reader could get out of these cores.
public final class DecodeCeiling: @unchecked Sendable {
    // Immutable after init.
    public let field: Field
    public let chunkCount: Int
    public let chunkBytes: Int
    /// Stored bytes of all chunks, back to back (checksum trailers included; decoding skips them).
    public let stored: ByteBuffer
    /// Start of chunk `i`'s stored bytes in `stored`, and one past the last.
    public let offsets: [Int]
    /// Every chunk decoded, at `i * chunkBytes` (the last chunk whole, with its zero padding).
    public let destination: ByteBuffer

    /// Copies the stored chunks of `field` into memory. Only LZ4 fields with every filter applied (the
    /// way StoreWriter writes them) qualify.
    public init(field: Field) throws {
        guard field.codecName == "lz4", field.chunkRows != nil else {
            throw BenchError("decode ceiling: field '\(field.name)' is \(field.codecName), not whole-sample LZ4 chunks")
        }
        self.field = field
        chunkCount = field.chunkCount
        chunkBytes = field.chunkBytes
        var payloads: [(start: Int, count: Int)] = []
        var total = 0
        for chunk in 0..<chunkCount {
            let count = try field.withStoredChunk(chunk) { (bytes, mask) throws(StoreError) -> Int in
                guard mask == 0 else { throw StoreError.invalidArgument("decode ceiling: chunk \(chunk) skips a filter (mask \(mask))") }
                return bytes.count
            }
            payloads.append((total, count))
            total += count
        }
        stored = ByteBuffer(count: total)
        for chunk in 0..<chunkCount {
            let target = stored.bytes.baseAddress!.advanced(by: payloads[chunk].start)
            let count = payloads[chunk].count
            try field.withStoredChunk(chunk) { (bytes, _) throws(StoreError) in
                if count > 0 { target.copyMemory(from: bytes.baseAddress!, byteCount: count) }
            }
        }
        offsets = payloads.map(\.start) + [total]
        destination = ByteBuffer(count: chunkCount * chunkBytes)
    }

    /// Total stored (compressed) bytes held in memory.
    public var storedBytes: Int { offsets.last ?? 0 }

    /// Decodes every chunk on `threads` threads.
    public func decodeAll(threads: Int) throws {
        let next = Atomic<Int>(0)
        let failure = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, chunkCount))) { _ in
            var scratch: [UInt8] = []
            while true {
                let chunk = next.add(1, ordering: .relaxed).oldValue
                if chunk >= chunkCount { return }
                let source = UnsafeRawBufferPointer(
                    start: stored.bytes.baseAddress!.advanced(by: offsets[chunk]), count: offsets[chunk + 1] - offsets[chunk])
                let target = UnsafeMutableRawBufferPointer(
                    start: destination.bytes.baseAddress!.advanced(by: chunk * chunkBytes), count: chunkBytes)
                do {
                    try field.decode(stored: source, filterMask: 0, chunk: chunk, into: target, scratch: &scratch)
                } catch {
                    failure.store(chunk + 1, ordering: .relaxed)
                }
            }
        }
        let failed = failure.load(ordering: .relaxed)
        if failed != 0 { throw BenchError("decode ceiling: chunk \(failed - 1) did not decode") }
    }

    /// The same parallel decode, but reading each chunk's stored bytes from the store's memory map
    /// (`Field.withStoredChunk`) instead of the in-memory copy: separates what the map costs from what
    /// StokeStore's `readRows` adds on top.
    public func decodeAllFromMap(of field: Field, threads: Int) throws {
        let next = Atomic<Int>(0)
        let failure = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, chunkCount))) { _ in
            var scratch: [UInt8] = []
            while true {
                let chunk = next.add(1, ordering: .relaxed).oldValue
                if chunk >= chunkCount { return }
                let target = UnsafeMutableRawBufferPointer(
                    start: destination.bytes.baseAddress!.advanced(by: chunk * chunkBytes), count: chunkBytes)
                do {
                    try field.withStoredChunk(chunk) { (bytes, mask) throws(StoreError) in
                        try field.decode(stored: bytes, filterMask: mask, chunk: chunk, into: target, scratch: &scratch)
                    }
                } catch {
                    failure.store(chunk + 1, ordering: .relaxed)
                }
            }
        }
        let failed = failure.load(ordering: .relaxed)
        if failed != 0 { throw BenchError("decode from map: chunk \(failed - 1) did not decode") }
    }

    /// Whether the decoded chunks equal `rows` (the field's rows as readRows returned them).
    public func matches(_ rows: UnsafeMutableRawBufferPointer) -> Bool {
        memcmp(destination.bytes.baseAddress!, rows.baseAddress!, rows.count) == 0
    }
}
