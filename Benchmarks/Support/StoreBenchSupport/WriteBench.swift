import Foundation
import StokeStore

/// The write both sides perform: one uint8 field of [N, 3, 96, 96], LZ4 (filter 32004, one LZ4 block
/// per chunk), `chunkSamples` samples per chunk, Fletcher-32 per chunk when `checksum` is set.
public struct WriteSetup: Sendable {
    public var samples: Int
    public var chunkSamples: Int
    public var checksum: Bool
    public var workers: Int

    /// Stoke's default chunking (about 2 MiB of whole samples), Stoke's default checksum, 2 workers.
    public init(samples: Int, chunkSamples: Int? = nil, checksum: Bool = true, workers: Int = 2) {
        self.samples = samples
        self.chunkSamples = chunkSamples ?? StoreWriteOptions().chunking.samplesPerChunk(sampleBytes: BenchData.sampleBytes)
        self.checksum = checksum
        self.workers = workers
    }

    public var rawBytes: Int { samples * BenchData.sampleBytes }
    public var chunkBytes: Int { chunkSamples * BenchData.sampleBytes }
}

/// Where a Stoke write spent its time: `StoreWriter.init`, the `append` calls (staging and compressing,
/// which overlap), and `finish()` (last chunks, B-tree index, fsync, rename).
public struct WritePhases: Sendable {
    public var create = 0.0
    public var append = 0.0
    public var finish = 0.0
    /// CPU seconds (user + system, all threads of this process) the whole write used.
    public var cpu = 0.0
    public init() {}
}

/// Writes `data` as a Stoke store at `path` (replacing one already there) and returns the summary.
/// Appends in batches of 1024 samples, as a packer would; timing covers everything up to the rename.
@discardableResult
public func writeStokeStore(_ data: [UInt8], setup: WriteSetup, path: String) throws -> StoreSummary {
    var phases = WritePhases()
    return try writeStokeStore(data, setup: setup, path: path, phases: &phases)
}

/// CPU seconds (user + system) this process has used so far, all threads.
public func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6
}

/// `writeStokeStore`, also reporting where the time went.
@discardableResult
public func writeStokeStore(_ data: [UInt8], setup: WriteSetup, path: String, phases: inout WritePhases) throws -> StoreSummary {
    let start = now()
    let cpuStart = processCPUSeconds()
    var options = StoreWriteOptions()
    options.codec = .lz4
    options.chunking = .samples(setup.chunkSamples)
    options.checksum = setup.checksum
    options.workers = setup.workers
    options.overwrite = true
    let writer = try StoreWriter(
        path: path, fields: [FieldSpec(name: BenchData.fieldName, dtype: .u8, sampleShape: BenchData.sampleShape)],
        options: options)
    let created = now()
    let batch = 1024 * BenchData.sampleBytes
    try data.withUnsafeBytes { bytes in
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + batch)
            try writer.append(BenchData.fieldName, bytes: UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
            start = end
        }
    }
    let appended = now()
    let summary = try writer.finish()
    phases = WritePhases()
    phases.create = created - start
    phases.append = appended - created
    phases.finish = now() - appended
    phases.cpu = processCPUSeconds() - cpuStart
    return summary
}

/// h5py + hdf5plugin writing the same array, in a long-lived Python child so that interpreter start-up
/// and imports stay out of the measurement: the child loads the raw array once, then writes the store
/// each time it reads a line `write` and answers with one JSON line of its own timings.
///
/// The child runs `$STOKE_BENCH_PYTHON`, else `<repo>/.venv/bin/python3` (numpy, h5py, hdf5plugin).
public final class H5pyWriter {
    public struct Timing: Sendable {
        /// `h5py.File(...)`, `create_dataset(data=...)` and close: what an h5py user waits for.
        public var writeSeconds: Double
        /// The `fsync` after close (Stoke's writer syncs before its rename; h5py does not by itself).
        public var fsyncSeconds: Double
        public var fileBytes: Int
        /// CPU seconds the child used for the write and close (`time.process_time`).
        public var cpuSeconds: Double
        /// Wall time as this process saw it, pipe round trip included.
        public var roundTripSeconds: Double
    }

    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var pending = Data()
    public let python: String
    public private(set) var versions = ""

    /// Starts the child; `rawPath` holds the array's bytes, `outputPath` is rewritten on each `write()`.
    public init(rawPath: String, setup: WriteSetup, outputPath: String) throws {
        python = H5pyWriter.pythonPath()
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw BenchError("no Python at \(python): create it with `python3 -m venv .venv && .venv/bin/pip install numpy h5py hdf5plugin` in the repository root, or set STOKE_BENCH_PYTHON")
        }
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [
            "-u", "-c", H5pyWriter.script, rawPath, outputPath, String(setup.samples),
            BenchData.sampleShape.map(String.init).joined(separator: ","), String(setup.chunkSamples), setup.checksum ? "1" : "0",
        ]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        let ready = try readLine()
        guard ready.hasPrefix("ready ") else { throw BenchError("h5py child did not start: \(ready)") }
        versions = String(ready.dropFirst("ready ".count))
    }

    deinit { close() }

    /// Writes the store once in the child.
    public func write() throws -> Timing {
        let start = now()
        try input.fileHandleForWriting.write(contentsOf: Data("write\n".utf8))
        let line = try readLine()
        let roundTrip = now() - start
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let write = object["write_s"] as? Double, let sync = object["fsync_s"] as? Double,
              let bytes = object["bytes"] as? Int, let cpu = object["cpu_s"] as? Double
        else { throw BenchError("h5py child answered: \(line)") }
        return Timing(writeSeconds: write, fsyncSeconds: sync, fileBytes: bytes, cpuSeconds: cpu, roundTripSeconds: roundTrip)
    }

    /// Ends the child (it exits when its input closes).
    public func close() {
        guard process.isRunning else { return }
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    private func readLine() throws -> String {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                pending = Data(pending[(newline + 1)...])
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty {
                throw BenchError("h5py child exited (status \(process.isRunning ? -1 : Int(process.terminationStatus))); see its stderr above")
            }
            pending.append(chunk)
        }
    }

    static func pythonPath() -> String {
        if let configured = ProcessInfo.processInfo.environment["STOKE_BENCH_PYTHON"], !configured.isEmpty { return configured }
        return repositoryRoot() + "/.venv/bin/python3"
    }

    /// The repository root, from this source file's place in it (Benchmarks/Support/StoreBenchSupport/).
    static func repositoryRoot() -> String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }

    static let script = #"""
import json, os, sys, time
import numpy as np, h5py, hdf5plugin

raw, out, n, shape, chunk, checksum = sys.argv[1:7]
shape = tuple(int(d) for d in shape.split(","))
n, chunk, checksum = int(n), int(chunk), checksum == "1"
data = np.fromfile(raw, dtype=np.uint8).reshape((n,) + shape)
print("ready numpy %s h5py %s hdf5 %s hdf5plugin %s" % (np.__version__, h5py.__version__, h5py.version.hdf5_version, hdf5plugin.version), flush=True)
for line in sys.stdin:
    if line.strip() != "write":
        continue
    if os.path.exists(out):
        os.unlink(out)
    c0 = time.process_time()
    t0 = time.perf_counter()
    with h5py.File(out, "w") as f:
        f.create_dataset("image", data=data, chunks=(chunk,) + shape, fletcher32=checksum, **hdf5plugin.LZ4(nbytes=0))
    t1 = time.perf_counter()
    c1 = time.process_time()
    fd = os.open(out, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    t2 = time.perf_counter()
    print(json.dumps({"write_s": t1 - t0, "fsync_s": t2 - t1, "bytes": os.path.getsize(out), "cpu_s": c1 - c0}), flush=True)
"""#
}
