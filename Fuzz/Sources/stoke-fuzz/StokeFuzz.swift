import Foundation
import StokeEngine
import StokePack
@testable import StokeStore

// One libFuzzer binary for all of Stoke's readers of untrusted bytes; STOKE_FUZZ_TARGET picks the target
// (see `targets`). Every target feeds the input to a real entry point and ignores thrown errors: only a
// crash, a sanitizer report, a leak, a timeout or an out-of-memory counts as a finding. Readers that take a
// path get the input written to a per-process scratch file first.

/// libFuzzer's driver (FuzzerDriver.cpp), called from `main` so the Swift entry point stays ours.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// The same entry point under libFuzzer's conventional name (its own `main` references it).
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzOne(data, size)
}

typealias Target = @Sendable (_ input: [UInt8]) -> Void

/// Target names, the input they take, and what they call.
let targets: [String: (about: String, run: Target)] = [
    "chunk": ("chunk decoder: [shuffle][lz4|deflate][fletcher32] pipeline, then gzip streams", fuzzChunk),
    "chunk-index": ("chunk B-tree scanner over an HDF5 file (9-byte parameter header, then the file)", fuzzChunkIndex),
    "npy": ("NPY reader (StokePack NPYArray) and NPY decoder (StokeEngine NPY)", fuzzNPY),
    "npz": ("NPZ archive reader (zip directory, stored and deflated members)", fuzzNPZ),
    "idx": ("IDX reader, plain or gzip", fuzzIDX),
    "csv": ("CSV table reader, with and without a label column", fuzzCSV),
    "image-list": ("image-list CSV (path,label)", fuzzImageList),
    "image": ("PNG, JPEG, PPM/PGM decoders", fuzzImage),
    "onnx": ("ONNX protobuf decoder and model load (validation, optimization passes)", fuzzONNX),
    "model-file": ("model-file reader: Stoke HDF5 model files (sequential and graph) or ONNX, by content", fuzzModelFile),
]

nonisolated(unsafe) var selected: Target = { _ in }
nonisolated(unsafe) var scratchDirectory = ""

@main
struct StokeFuzz {
    static func main() {
        let name = ProcessInfo.processInfo.environment["STOKE_FUZZ_TARGET"] ?? ""
        guard let target = targets[name] else {
            var text = "stoke-fuzz: set STOKE_FUZZ_TARGET to one of:\n"
            for key in targets.keys.sorted() { text += "  \(key.padding(toLength: 12, withPad: " ", startingAt: 0))  \(targets[key]!.about)\n" }
            FileHandle.standardError.write(Data(text.utf8))
            exit(2)
        }
        selected = target.run
        scratchDirectory = NSTemporaryDirectory() + "stoke-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: scratchDirectory, withIntermediateDirectories: true)
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOne(data, size) }
        try? FileManager.default.removeItem(atPath: scratchDirectory)
        exit(status)
    }
}

func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = data.map { [UInt8](UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selected(input)
    return 0
}

/// Writes the input to `<scratch>/input<suffix>` and returns the path.
func scratchFile(_ bytes: [UInt8], suffix: String) -> String {
    let path = scratchDirectory + "/input" + suffix
    try? Data(bytes).write(to: URL(fileURLWithPath: path))  // in place, not through a temporary file
    return path
}

func littleEndian(_ bytes: ArraySlice<UInt8>) -> Int {
    bytes.reversed().reduce(0) { $0 << 8 | Int($1) }
}

/// Reads every row of an array source, so the element bytes are touched as a pack would.
func drain(_ source: some ArraySource) {
    var sum = 0
    try? source.forEachBatch(batchRows: 64) { _, bytes in
        for byte in bytes { sum &+= Int(byte) }
    }
    if sum == 42 { print("") }  // keep the reads
}

// MARK: - Targets

/// Byte 0 chooses the pipeline (bit 0 shuffle, bits 1–2 none/lz4/deflate, bit 3 fletcher32, bit 4 verify
/// the checksum, bit 5 also run the bytes through the gzip reader), byte 1 the element size (1–8),
/// bytes 2–4 the decoded size (< 1 MiB), byte 5 the filter mask; the rest are the stored bytes.
func fuzzChunk(_ input: [UInt8]) {
    guard input.count >= 6 else { return }
    let config = input[0]
    let elementSize = Int(input[1] % 8) + 1
    let decodedBytes = littleEndian(input[2..<5]) & 0xF_FFFF
    let mask = UInt32(input[5] & 0x0F)
    let stored = Array(input[6...])
    var stages: [ChunkPipeline.Stage] = []
    if config & 1 != 0 { stages.append(.shuffle(elementSize: elementSize)) }
    switch (config >> 1) & 3 {
    case 1: stages.append(.lz4(blockBytes: 0))
    case 2, 3: stages.append(.deflate(level: 4))
    default: break
    }
    if config & 8 != 0 { stages.append(.fletcher32) }
    let pipeline = ChunkPipeline(stages: stages)
    var destination = [UInt8](repeating: 0, count: decodedBytes)
    var scratch: [UInt8] = []
    stored.withUnsafeBytes { source in
        destination.withUnsafeMutableBytes { target in
            try? pipeline.decode(source, filterMask: mask, into: target, verifyChecksum: config & 16 != 0, scratch: &scratch)
        }
        if config & 32 != 0 { _ = try? Gzip.decompress(source, path: "fuzz.gz", limit: 1 << 24) }
    }
}

/// Bytes 0–3: the dataset's object header address; 4: rank (1–4); 5–6: rows per chunk; 7–8: chunk count
/// (≤ 4096); the rest is the HDF5 file.
func fuzzChunkIndex(_ input: [UInt8]) {
    guard input.count >= 9 else { return }
    let objectHeader = UInt64(littleEndian(input[0..<4]))
    let rank = Int(input[4] % 4) + 1
    let chunkRows = UInt64(max(1, littleEndian(input[5..<7])))
    let chunkCount = littleEndian(input[7..<9]) % 4097
    let path = scratchFile(Array(input[9...]), suffix: ".h5")
    guard let file = try? MappedFile(path: path) else { return }
    _ = try? ChunkBTree.scan(file: file, objectHeader: objectHeader, rank: rank, chunkRows: chunkRows, chunkCount: chunkCount)
}

func fuzzNPY(_ input: [UInt8]) {
    if let array = try? NPYArray(path: scratchFile(input, suffix: ".npy")) { drain(array) }
    _ = try? NPY.decode(input)
}

func fuzzNPZ(_ input: [UInt8]) {
    guard let archive = try? NPZArchive(path: scratchFile(input, suffix: ".npz")) else { return }
    for member in archive.arrays { drain(member.array) }
}

func fuzzIDX(_ input: [UInt8]) {
    if let array = try? IDXArray(path: scratchFile(input, suffix: ".idx")) {
        drain(array)
        _ = try? array.int64Values()
    }
}

func fuzzCSV(_ input: [UInt8]) {
    let path = scratchFile(input, suffix: ".csv")
    _ = try? CSVTable(path: path)
    _ = try? CSVTable(path: path, labelColumn: "label")
}

func fuzzImageList(_ input: [UInt8]) {
    _ = try? ImageList.csv(scratchFile(input, suffix: ".csv"))
}

func fuzzImage(_ input: [UInt8]) {
    _ = try? ImageDecoder.decode(path: scratchFile(input, suffix: ".img"))
}

func fuzzONNX(_ input: [UInt8]) {
    _ = try? Model.load(onnxBytes: input)
}

func fuzzModelFile(_ input: [UInt8]) {
    _ = try? Model.load(path: scratchFile(input, suffix: ".model"))
}
