// store-ratios: the two ratios issue 2 sets goals for, measured in one run on the same data.
//
//   swift run -c release --package-path Benchmarks store-ratios [--mib 256] [--read-mib 256]
//       [--runs 3] [--workers 2] [--no-checksum] [--keep]
//
//   write ratio: Stoke StoreWriter (LZ4, --workers threads) vs h5py + hdf5plugin (LZ4, same chunks,
//                same Fletcher-32 setting) writing the same array; goal ≥ 1.8×.
//   read ratio:  Field.readRows over the whole store (--workers threads, file in page cache) vs the
//                decode ceiling (stored chunks copied to memory, LZ4-decoded on all cores); goal ≥ 0.9.
//
// Each side runs --runs times, alternating; the ratios use each side's best run (the least disturbed
// by other work on a shared machine). MB/s are decimal megabytes of raw (decoded) data per second.

import Foundation
import StokeStore
import StoreBenchSupport

struct Options {
    var mebibytes = 256
    var readMebibytes: Int?
    var runs = 3
    var workers = 2
    var checksum = true
    var keep = false
    var read = true
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    func value(_ name: String) -> Int {
        guard let text = arguments.popFirst(), let number = Int(text), number > 0 else {
            FileHandle.standardError.write(Data("store-ratios: \(name) needs a positive integer\n".utf8))
            exit(2)
        }
        return number
    }
    while let argument = arguments.popFirst() {
        switch argument {
        case "--mib": options.mebibytes = value(argument)
        case "--read-mib": options.readMebibytes = value(argument)
        case "--runs": options.runs = value(argument)
        case "--workers": options.workers = value(argument)
        case "--no-checksum": options.checksum = false
        case "--keep": options.keep = true
        case "--write-only": options.read = false
        case "-h", "--help":
            print("usage: store-ratios [--mib N] [--read-mib N] [--runs N] [--workers N] [--no-checksum] [--write-only] [--keep]")
            exit(0)
        default:
            FileHandle.standardError.write(Data("store-ratios: unknown argument '\(argument)' (see --help)\n".utf8))
            exit(2)
        }
    }
    return options
}

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

/// fsync on a file or folder (flushes what earlier runs left dirty, outside any measurement).
func syncToDisk(_ path: String) throws {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else { throw BenchError("open \(path) for fsync failed") }
    defer { close(descriptor) }
    guard fsync(descriptor) == 0 else { throw BenchError("fsync \(path) failed") }
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func format(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }
func mib(_ bytes: Int) -> String { format(Double(bytes) / Double(1 << 20)) + " MiB" }

func run(_ options: Options) throws {
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let scratch = try ScratchDirectory()
    defer { if !options.keep { scratch.remove() } }

    // MARK: Write

    let setup = WriteSetup(samples: BenchData.samples(mebibytes: options.mebibytes), checksum: options.checksum, workers: options.workers)
    let data = BenchData.imageLike(samples: setup.samples)
    let rawPath = scratch.file("data.u8")
    try Data(data).write(to: URL(fileURLWithPath: rawPath))
    try syncToDisk(rawPath)  // no dirty pages of ours left to throttle the measured writes
    let stokePath = scratch.file("stoke.h5"), h5pyPath = scratch.file("h5py.h5")
    let h5py = try H5pyWriter(rawPath: rawPath, setup: setup, outputPath: h5pyPath)
    defer { h5py.close() }

    print("machine: \(cores) cores, load average \(loadAverage()) before the runs; scratch \(scratch.path)")
    print("python:  \(h5py.python) (\(h5py.versions))")
    print("data:    \(setup.samples) samples × \(BenchData.sampleShape) u8 = \(mib(setup.rawBytes)), image-like; "
        + "chunks of \(setup.chunkSamples) samples (\(mib(setup.chunkBytes))); LZ4, one block per chunk; "
        + "Fletcher-32 \(setup.checksum ? "on" : "off") (both sides)")

    var stokeTimes: [Double] = [], h5pyTimes: [Double] = [], h5pySyncTimes: [Double] = [], h5pyCPU: [Double] = []
    var stokeStored = 0, h5pyFile = 0
    var stokePhases: [WritePhases] = [], stokeCPU: [Double] = []
    // One warm-up write each, not counted: the first write in a process is much slower on both sides.
    var warmUp = WritePhases()
    let warmStart = now()
    try writeStokeStore(data, setup: setup, path: stokePath, phases: &warmUp)
    let stokeWarm = now() - warmStart
    let h5pyWarm = try h5py.write().writeSeconds
    print("warm-up (not counted): stoke \(format(stokeWarm, 3)) s, h5py \(format(h5pyWarm, 3)) s")
    for _ in 0..<options.runs {
        unlink(stokePath)
        var phases = WritePhases()
        let start = now()
        let summary = try writeStokeStore(data, setup: setup, path: stokePath, phases: &phases)
        stokeTimes.append(now() - start)
        stokePhases.append(phases)
        stokeCPU.append(phases.cpu)
        stokeStored = summary.fields[0].storedBytes
        let timing = try h5py.write()
        h5pyTimes.append(timing.writeSeconds)
        h5pyCPU.append(timing.cpuSeconds)
        h5pySyncTimes.append(timing.writeSeconds + timing.fsyncSeconds)
        h5pyFile = timing.fileBytes
    }
    let stokeFile = (try? FileManager.default.attributesOfItem(atPath: stokePath)[.size] as? Int) ?? 0
    func line(_ name: String, _ times: [Double]) -> String {
        let runs = times.map { format($0, 3) }.joined(separator: " ")
        return "\(name) runs \(runs) s; best \(format(megabytesPerSecond(bytes: setup.rawBytes, seconds: times.min()!))) MB/s, "
            + "median \(format(megabytesPerSecond(bytes: setup.rawBytes, seconds: median(times)))) MB/s"
    }
    print(line("write  stoke StoreWriter (lz4, \(setup.workers) workers, incl. fsync+rename):", stokeTimes)
        + "; file \(mib(stokeFile)), LZ4 ratio \(format(Double(setup.rawBytes) / Double(stokeStored), 2))×")
    let bestPhases = stokePhases[stokeTimes.firstIndex(of: stokeTimes.min()!)!]
    print("       stoke best run: init \(format(bestPhases.create * 1000)) ms, append (stage + compress + write) "
        + "\(format(bestPhases.append * 1000)) ms, finish (last chunks, index, fsync, rename) \(format(bestPhases.finish * 1000)) ms; "
        + "CPU \(format(bestPhases.cpu, 3)) s")
    print(line("write  h5py+hdf5plugin (lz4, create_dataset+close):            ", h5pyTimes) + "; file \(mib(h5pyFile))")
    print("       h5py best run: CPU \(format(h5pyCPU[h5pyTimes.firstIndex(of: h5pyTimes.min()!)!], 3)) s")
    print(line("write  h5py+hdf5plugin, then fsync:                             ", h5pySyncTimes))
    let stokeRate = megabytesPerSecond(bytes: setup.rawBytes, seconds: stokeTimes.min()!)
    let h5pyRate = megabytesPerSecond(bytes: setup.rawBytes, seconds: h5pyTimes.min()!)
    let h5pySyncRate = megabytesPerSecond(bytes: setup.rawBytes, seconds: h5pySyncTimes.min()!)
    print("write ratio: \(format(stokeRate / h5pyRate, 2))× (stoke \(format(stokeRate)) MB/s, h5py \(format(h5pyRate)) MB/s) — goal ≥ 1.8×")
    print("write ratio of medians: \(format(median(h5pyTimes) / median(stokeTimes), 2))×")
    print("write ratio, both synced to disk: \(format(stokeRate / h5pySyncRate, 2))× (stoke \(format(stokeRate)) MB/s, h5py+fsync \(format(h5pySyncRate)) MB/s)")
    // CPU time barely depends on what else runs on the machine, wall time does: with `cores` idle
    // cores Stoke's wall time is at least its CPU time / cores, and h5py's (one thread) about its CPU time.
    let bound = Double(min(cores, setup.workers + 1)) * median(h5pyCPU) / median(stokeCPU)
    print("write CPU (median): stoke \(format(median(stokeCPU), 3)) s, h5py \(format(median(h5pyCPU), 3)) s; "
        + "on \(min(cores, setup.workers + 1)) idle cores the write ratio can reach at most \(format(bound, 2))×; "
        + "load average now \(loadAverage())")
    h5py.close()
    unlink(h5pyPath)
    guard options.read else { return }

    // MARK: Read and decode

    var readPath = stokePath
    if let readMebibytes = options.readMebibytes, readMebibytes != options.mebibytes {
        let readSetup = WriteSetup(samples: BenchData.samples(mebibytes: readMebibytes), checksum: options.checksum, workers: options.workers)
        readPath = scratch.file("read.h5")
        try writeStokeStore(BenchData.imageLike(samples: readSetup.samples), setup: readSetup, path: readPath)
    }
    let reader = try RowReader(path: readPath)
    let ceiling = try DecodeCeiling(field: reader.field)
    let rawBytes = reader.field.rawBytes
    // Warm up: faults the map and the destinations in, and checks both paths decode the same bytes.
    try reader.readAll(workers: options.workers)
    try ceiling.decodeAll(threads: cores)
    guard ceiling.matches(reader.destination.bytes) else { throw BenchError("readRows and the decode ceiling disagree") }

    var readTimes: [Double] = [], ceilingTimes: [Double] = [], mapTimes: [Double] = []
    for _ in 0..<max(options.runs, 5) {
        var start = now()
        try reader.readAll(workers: options.workers)
        readTimes.append(now() - start)
        start = now()
        try ceiling.decodeAll(threads: cores)
        ceilingTimes.append(now() - start)
        start = now()
        try ceiling.decodeAllFromMap(of: reader.field, threads: cores)
        mapTimes.append(now() - start)
    }
    func readLine(_ name: String, _ times: [Double]) -> String {
        let runs = times.map { format($0 * 1000, 1) }.joined(separator: " ")
        return "\(name) runs \(runs) ms; best \(format(megabytesPerSecond(bytes: rawBytes, seconds: times.min()!))) MB/s"
    }
    print("read:    \(reader.field.rows) rows = \(mib(rawBytes)) in \(reader.field.chunkCount) chunks, \(mib(ceiling.storedBytes)) stored; file in page cache")
    print(readLine("read   Field.readRows (\(options.workers) workers, mmap + index):", readTimes))
    print(readLine("read   decode ceiling (\(cores) threads, chunks in memory): ", ceilingTimes))
    print(readLine("       same decode, chunks read from the map (diagnostic):", mapTimes))
    let readRate = megabytesPerSecond(bytes: rawBytes, seconds: readTimes.min()!)
    let ceilingRate = megabytesPerSecond(bytes: rawBytes, seconds: ceilingTimes.min()!)
    print("read ratio: \(format(readRate / ceilingRate, 2)) (readRows \(format(readRate)) MB/s, ceiling \(format(ceilingRate)) MB/s) — goal ≥ 0.9")
}

do {
    try run(parseOptions())
} catch {
    FileHandle.standardError.write(Data("store-ratios: \(error)\n".utf8))
    exit(1)
}
