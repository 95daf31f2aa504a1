import CStokeKernels
import CZlib

/// How a field's chunks are compressed on disk.
public enum Codec: Sendable, Equatable, CustomStringConvertible {
    case none
    /// LZ4, HDF5 filter 32004.
    case lz4
    /// HDF5's byte shuffle (filter 2), then LZ4: better ratios on multi-byte types.
    case lz4Shuffle
    /// zlib deflate (HDF5 filter 1) at level 1–9.
    case deflate(level: Int)

    /// Parses `none`, `lz4`, `lz4-shuffle`, `deflate` (level 4) or `deflate:N`.
    public init?(parsing text: String) {
        switch text {
        case "none": self = .none
        case "lz4": self = .lz4
        case "lz4-shuffle": self = .lz4Shuffle
        case "deflate", "gzip": self = .deflate(level: 4)
        default:
            let parts = text.split(separator: ":")
            guard parts.count == 2, parts[0] == "deflate" || parts[0] == "gzip",
                  let level = Int(parts[1]), (1...9).contains(level) else { return nil }
            self = .deflate(level: level)
        }
    }

    public var description: String {
        switch self {
        case .none: "none"
        case .lz4: "lz4"
        case .lz4Shuffle: "lz4-shuffle"
        case .deflate(let level): "deflate:\(level)"
        }
    }
}

/// A dataset's filter pipeline as Stoke runs it outside the HDF5 library: encode for direct chunk
/// writes, decode for reads from a memory map. Stages are in HDF5's application (encode) order; bit `i`
/// of a chunk's filter mask means stage `i` was skipped for that chunk.
struct ChunkPipeline: Sendable, Equatable {
    enum Stage: Sendable, Equatable {
        case shuffle(elementSize: Int)
        case lz4(blockBytes: Int)
        case deflate(level: Int)
        case fletcher32
    }

    var stages: [Stage]

    init(stages: [Stage]) { self.stages = stages }

    /// The pipeline Stoke writes for a codec: [shuffle] [lz4 | deflate] [fletcher32].
    init(codec: Codec, checksum: Bool, elementSize: Int, lz4BlockBytes: Int = 0) {
        var stages: [Stage] = []
        switch codec {
        case .none: break
        case .lz4: stages.append(.lz4(blockBytes: lz4BlockBytes))
        case .lz4Shuffle: stages += [.shuffle(elementSize: elementSize), .lz4(blockBytes: lz4BlockBytes)]
        case .deflate(let level): stages.append(.deflate(level: level))
        }
        if checksum { stages.append(.fletcher32) }
        self.stages = stages
    }

    /// The pipeline of an existing dataset, or nil when it holds a filter Stoke does not decode itself
    /// (the reader then goes through the library).
    init?(filters: [FilterSpec], elementSize: Int) {
        var stages: [Stage] = []
        for filter in filters {
            switch filter.id {
            case 1: stages.append(.deflate(level: Int(filter.values.first ?? 4)))
            case 2: stages.append(.shuffle(elementSize: Int(filter.values.first ?? UInt32(elementSize))))
            case 3: stages.append(.fletcher32)
            case LZ4Chunk.filterID: stages.append(.lz4(blockBytes: Int(filter.values.first ?? 0)))
            default: return nil
            }
        }
        self.stages = stages
    }

    var hasChecksum: Bool { stages.contains(.fletcher32) }

    /// The codec this pipeline implements, for reports.
    var codec: Codec {
        for stage in stages {
            switch stage {
            case .lz4: return stages.contains(where: { if case .shuffle = $0 { true } else { false } }) ? .lz4Shuffle : .lz4
            case .deflate(let level): return .deflate(level: level)
            default: continue
            }
        }
        return .none
    }

    /// Largest encoded size of a `count`-byte chunk.
    func maximumEncodedSize(count: Int) -> Int {
        var size = count
        for stage in stages {
            switch stage {
            case .shuffle: break
            case .lz4(let block): size = LZ4Chunk.maximumEncodedSize(count: size, blockBytes: block)
            case .deflate: size = Int(compressBound(UInt(size)))
            case .fletcher32: size += 4
            }
        }
        return size
    }

    /// Encodes one chunk with one of Stoke's own pipelines ([shuffle] [lz4 | deflate] [fletcher32]) into
    /// `output[0..<returned]`. `output` and `scratch` only ever grow, so buffers reused between chunks
    /// are neither reallocated nor zero-filled again; `output` may be longer than the stored bytes.
    func encode(_ raw: UnsafeRawBufferPointer, into output: inout [UInt8], scratch: inout [UInt8]) -> Int {
        var shuffleSize: Int? = nil
        var compression: Stage? = nil
        var checksum = false
        for stage in stages {
            switch stage {
            case .shuffle(let elementSize): shuffleSize = elementSize
            case .lz4, .deflate: compression = stage
            case .fletcher32: checksum = true
            }
        }
        grow(&output, to: maximumEncodedSize(count: raw.count))
        if shuffleSize != nil { grow(&scratch, to: raw.count) }
        var written = 0
        unsafe output.withUnsafeMutableBytes { out in
            func compress(_ input: UnsafeRawBufferPointer) -> Int {
                switch compression {
                case .lz4(let block)?:
                    return unsafe LZ4Chunk.encode(input, blockBytes: block, into: out)
                case .deflate(let level)?:
                    var length = UInt(out.count)
                    let status = unsafe compress2(
                        out.baseAddress!.assumingMemoryBound(to: Bytef.self), &length,
                        input.baseAddress?.assumingMemoryBound(to: Bytef.self) ?? UnsafePointer(bitPattern: 1)!,
                        UInt(input.count), Int32(level))
                    precondition(status == Z_OK, "zlib compress2 failed with status \(status) on a bounded buffer")
                    return Int(length)
                default:
                    if unsafe !input.isEmpty { unsafe out.baseAddress!.copyMemory(from: input.baseAddress!, byteCount: input.count) }
                    return input.count
                }
            }
            if let shuffleSize, unsafe !raw.isEmpty {
                written = unsafe scratch.withUnsafeMutableBytes { shuffled in
                    unsafe stoke_shuffle(
                        raw.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        shuffled.baseAddress!.assumingMemoryBound(to: UInt8.self), raw.count, shuffleSize)
                    return unsafe compress(UnsafeRawBufferPointer(rebasing: shuffled[0..<raw.count]))
                }
            } else {
                written = unsafe compress(raw)
            }
            if checksum {
                let sum = unsafe fletcher32(UnsafeRawBufferPointer(rebasing: out[0..<written]))
                unsafe out.storeBytes(of: sum.littleEndian, toByteOffset: written, as: UInt32.self)
                written += 4
            }
        }
        return written
    }

    private func grow(_ buffer: inout [UInt8], to count: Int) {
        if buffer.count < count { buffer = [UInt8](repeating: 0, count: count) }
    }

    /// Decodes one chunk's stored bytes into `destination` (the chunk's full decoded size).
    /// Every stage checks its sizes; a checksum mismatch is an error when `verifyChecksum` is set.
    func decode(
        _ stored: UnsafeRawBufferPointer, filterMask: UInt32, into destination: UnsafeMutableRawBufferPointer,
        verifyChecksum: Bool, scratch: inout [UInt8]
    ) throws(ChunkDecodeError) {
        // Allocation-free: this runs once per chunk on the loader's hot path. Walk the stages in decode
        // order (last applied first), skipping those the chunk's filter mask marks as not applied.
        var input = unsafe stored
        var decoders = 0
        var first = Stage.fletcher32, second = Stage.fletcher32
        var position = stages.count - 1
        while position >= 0 {
            defer { position -= 1 }
            if filterMask & (1 << UInt32(position)) != 0 { continue }
            let stage = stages[position]
            if stage == .fletcher32 {
                guard decoders == 0 else { throw .init("Fletcher-32 is not the last filter of the pipeline") }
                guard input.count >= 4 else { throw .init("Fletcher-32: \(input.count) bytes, fewer than the checksum") }
                let payload = unsafe UnsafeRawBufferPointer(rebasing: input[0..<(input.count - 4)])
                if verifyChecksum {
                    let recorded = UInt32(littleEndian: unsafe input.loadUnaligned(fromByteOffset: input.count - 4, as: UInt32.self))
                    let computed = unsafe fletcher32(payload)
                    // HDF5 also accepts the byte-swapped sum that releases before 1.6.3 wrote.
                    if recorded != computed && recorded != computed.byteSwapped {
                        throw .init("Fletcher-32 checksum mismatch (stored \(hex(recorded)), computed \(hex(computed)))")
                    }
                }
                unsafe input = unsafe payload
                continue
            }
            switch decoders {
            case 0: first = stage
            case 1: second = stage
            default: throw .init("pipeline has more than one compression stage")
            }
            decoders += 1
        }
        switch decoders {
        case 0:
            guard input.count == destination.count else {
                throw .init("stored size \(input.count) does not match the chunk's \(destination.count) bytes")
            }
            if destination.count > 0 {
                unsafe destination.baseAddress!.copyMemory(from: input.baseAddress!, byteCount: input.count)
            }
        case 1:
            try unsafe run(first, input, into: destination)
        default:
            // Two stages: decompress into scratch, then unshuffle into the destination.
            if scratch.count < destination.count { scratch = [UInt8](repeating: 0, count: destination.count) }
            let outcome: Result<Void, ChunkDecodeError> = unsafe scratch.withUnsafeMutableBytes { buffer in
                let middle = unsafe UnsafeMutableRawBufferPointer(rebasing: buffer[0..<destination.count])
                return Result { () throws(ChunkDecodeError) in
                    try unsafe run(first, input, into: middle)
                    try unsafe run(second, UnsafeRawBufferPointer(middle), into: destination)
                }
            }
            try outcome.get()
        }
    }

    /// Runs one decode stage from `input` into `output` (both the stage's full sizes).
    private func run(_ stage: Stage, _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(ChunkDecodeError) {
        switch stage {
        case .lz4:
            try unsafe LZ4Chunk.decode(input, into: output)
        case .deflate:
            try unsafe inflate(input, into: output)
        case .shuffle(let elementSize):
            guard input.count == output.count else {
                throw .init("shuffle: \(input.count) bytes where the chunk has \(output.count)")
            }
            if unsafe output.isEmpty { return }
            unsafe stoke_unshuffle(
                input.baseAddress!.assumingMemoryBound(to: UInt8.self),
                output.baseAddress!.assumingMemoryBound(to: UInt8.self), output.count, max(elementSize, 1))
        case .fletcher32:
            throw .init("Fletcher-32 is not the last filter of the pipeline")
        }
    }

    private func inflate(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) throws(ChunkDecodeError) {
        var length = UInt(destination.count)
        guard let input = source.baseAddress, let output = destination.baseAddress else {
            if unsafe destination.isEmpty && source.isEmpty { return }
            throw .init("deflate: empty stream for a \(destination.count)-byte chunk")
        }
        let status = unsafe uncompress(
            output.assumingMemoryBound(to: Bytef.self), &length, input.assumingMemoryBound(to: Bytef.self), UInt(source.count))
        switch status {
        case Z_OK where Int(length) == destination.count: return
        case Z_OK: throw .init("deflate: stream decodes to \(length) bytes, expected \(destination.count)")
        case Z_BUF_ERROR: throw .init("deflate: stream is truncated or decodes past \(destination.count) bytes")
        case Z_DATA_ERROR: throw .init("deflate: malformed stream")
        default: throw .init("deflate: zlib status \(status)")
        }
    }
}

/// HDF5's Fletcher-32 over a buffer.
func fletcher32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    guard let base = bytes.baseAddress else { return unsafe stoke_fletcher32([UInt8](repeating: 0, count: 1), 0) }
    return unsafe stoke_fletcher32(base.assumingMemoryBound(to: UInt8.self), bytes.count)
}

func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}
