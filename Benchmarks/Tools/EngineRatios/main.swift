// engine-ratios: the engine numbers issue 6 sets goals for, measured in one run.
//
//   swift run -c release --package-path Benchmarks engine-ratios [--batch 256] [--threads 1,2]
//       [--rounds 3] [--seconds 1] [--profile] [--keep] [--cpu LEVEL]
//
//   --cpu portable|avx2|avx-vnni|avx512|avx512-vnni runs Stoke's kernels (and the FMA peak loop) on
//   that kernel set, as STOKE_CPU does; the kernel set in use is printed first.
//
//   samples/s of Stoke vs onnxruntime on the Fashion-MNIST MLP (784-512-256-10) and a small CNN
//   (conv3×3 1→16, ReLU, maxpool 2, conv3×3 16→32, ReLU, maxpool 2, FC 1568→128, ReLU, FC 128→10),
//   per thread count; goal ≥ 1.0×. Both sides run the same weights: the models are Stoke native
//   models, exported to ONNX for onnxruntime, and the outputs are compared before anything is timed.
//
//   sgemm 1024³ GFLOP/s (the engine's MatMul path) as a fraction of the FP32 FMA peak, itself measured
//   in the same run by a register-only FMA loop (EngineBenchKernels) on 1 and on 2 threads.
//
// Stoke and onnxruntime (a child process from <repo>/.venv/bin/python3, or STOKE_BENCH_PYTHON,
// timing its own loop) alternate for --rounds rounds; ratios use each side's best round, the least
// disturbed by other work on a shared machine, and medians are printed beside them.

import Dispatch
import EngineBenchKernels
import EngineBenchSupport
import Foundation
import StokeEngine

struct Options {
    var batch = 256
    var threads = [1, 2]
    var rounds = 3
    var seconds = 1.0
    var keep = false
    var profile = false
    /// A kernel set name (`--cpu`), applied before anything runs.
    var cpu: String?
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("engine-ratios: \(message)\n".utf8))
    exit(2)
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    func next(_ name: String) -> String {
        guard let text = arguments.popFirst() else { fail("\(name) needs a value") }
        return text
    }
    while let argument = arguments.popFirst() {
        switch argument {
        case "--batch":
            guard let value = Int(next(argument)), value > 0 else { fail("--batch needs a positive integer") }
            options.batch = value
        case "--threads":
            let values = next(argument).split(separator: ",").compactMap { Int($0) }
            guard !values.isEmpty, values.allSatisfy({ $0 > 0 }) else { fail("--threads needs a list such as 1,2") }
            options.threads = values
        case "--rounds":
            guard let value = Int(next(argument)), value > 0 else { fail("--rounds needs a positive integer") }
            options.rounds = value
        case "--seconds":
            guard let value = Double(next(argument)), value > 0 else { fail("--seconds needs a positive number") }
            options.seconds = value
        case "--keep": options.keep = true
        case "--profile": options.profile = true
        case "--cpu":
            guard let value = arguments.popFirst() else { fail("--cpu needs a kernel set") }
            options.cpu = value
        case "-h", "--help":
            print("usage: engine-ratios [--batch N] [--threads 1,2] [--rounds N] [--seconds S] [--profile] [--keep] [--cpu LEVEL]")
            exit(0)
        default:
            fail("unknown argument '\(argument)' (see --help)")
        }
    }
    return options
}


// MARK: - Models

/// Deterministic inputs in [-1, 1).
func input(_ shape: [Int], seed: UInt64) -> Tensor {
    var state = seed
    let count = shape.reduce(1, *)
    let values = (0..<count).map { _ -> Float in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 23) - 1
    }
    return Tensor(shape: shape, floats: values)
}

// MARK: - Stoke side

/// Samples/s of `model` at `threads`: a fresh session (the thread budget is process-wide and set
/// when a session is made), 3 untimed runs (plan, arena, caches), then runs for at least `seconds`.
/// Also returns samples per second of this thread's CPU time, which other processes taking turns
/// on the cores barely move (meaningful at 1 thread, where all the work runs on this thread).
func stokeRate(_ model: Model, _ x: Tensor, threads: Int, seconds: Double) throws -> (wall: Double, cpu: Double) {
    let session = Session(model: model, threads: threads)
    for _ in 0..<3 { try session.run(["input": x]) { _ in } }
    var runs = 0
    let start = now(), cpuStart = threadCPUTime()
    var elapsed = 0.0
    while elapsed < seconds {
        try session.run(["input": x]) { _ in }
        runs += 1
        elapsed = now() - start
    }
    return (Double(runs * x.shape[0]) / elapsed, Double(runs * x.shape[0]) / (threadCPUTime() - cpuStart))
}

/// CPU seconds used by the calling thread.
func threadCPUTime() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

// MARK: - onnxruntime side

nonisolated let pythonScript = """
import json, sys, time
import numpy as np
import onnxruntime as ort
seconds = float(sys.argv[1]); threads = [int(t) for t in sys.argv[2].split(",")]; check = sys.argv[3] == "1"
for spec in sys.argv[4:]:
    name, model, data = spec.split("=")[0], *spec.split("=")[1].split(",")
    x = np.load(data)
    for t in threads:
        options = ort.SessionOptions()
        options.intra_op_num_threads = t
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        y = session.run(None, {"input": x})[0]
        if check:
            np.save(data.replace(".npy", f"-ort-out.npy"), y)
        for _ in range(3):
            session.run(None, {"input": x})
        runs, start, cpu = 0, time.perf_counter(), time.thread_time()
        while time.perf_counter() - start < seconds:
            session.run(None, {"input": x})
            runs += 1
        elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
        print(json.dumps({"model": name, "threads": t, "rate": runs * x.shape[0] / elapsed, "cpu_rate": runs * x.shape[0] / cpu,
                          "version": ort.__version__}), flush=True)
"""

struct ORTResult: Decodable { let model: String; let threads: Int; let rate: Double; let cpu_rate: Double; let version: String }

/// One onnxruntime round: every model at every thread count, in a child process.
func onnxRuntimeRound(_ specs: [String], threads: [Int], seconds: Double, check: Bool) throws -> [ORTResult] {
    guard FileManager.default.isExecutableFile(atPath: Paths.python) else {
        fail("\(Paths.python) not found: run scripts/setup (or set STOKE_BENCH_PYTHON to a Python with numpy and onnxruntime)")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Paths.python)
    process.arguments = ["-c", pythonScript, String(seconds), threads.map(String.init).joined(separator: ","), check ? "1" : "0"] + specs
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { fail("onnxruntime child failed:\n\(output)") }
    return output.split(separator: "\n").compactMap { try? JSONDecoder().decode(ORTResult.self, from: Data($0.utf8)) }
}

// MARK: - FMA peak and sgemm

/// FP32 FMA peak in GFLOP/s on `threads` threads running the FMA loop at once (best of 3).
func fmaPeak(threads: Int) -> Double {
    var sink: Float = 0
    // Size the loop to about 0.2 s on one thread.
    var iterations: UInt64 = 1 << 20
    while true {
        let start = now()
        _ = unsafe engine_bench_fma_loop(iterations, &sink)
        if now() - start > 0.05 { break }
        iterations *= 2
    }
    let measured = iterations * 4
    var best = 0.0
    for _ in 0..<3 {
        let flops = UnsafeAtomicCounter()
        let start = now()
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            var local: Float = 0
            flops.add(unsafe engine_bench_fma_loop(measured, &local))
        }
        best = max(best, Double(flops.value) / (now() - start) / 1e9)
    }
    return best
}

/// A lock-guarded sum (the FMA threads report their FLOPs once each).
final class UnsafeAtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var total: UInt64 = 0
    func add(_ value: UInt64) { lock.lock(); total += value; lock.unlock() }
    var value: UInt64 { lock.lock(); defer { lock.unlock() }; return total }
}


// MARK: - Main

func run(_ options: Options) throws {
    if let cpu = options.cpu, let problem = KernelSet.apply(cpu) { fail(problem) }
    if options.cpu == nil, let problem = KernelSet.applyEnvironment() { fail(problem) }
    engine_bench_restrict(KernelSet.current.features.contains("avx512f") ? 1 : 0, KernelSet.current.features.contains("avx512vnni") ? 1 : 0)
    let cores = ProcessInfo.processInfo.activeProcessorCount
    print("engine-ratios: batch \(options.batch), threads \(options.threads), \(options.rounds) rounds of \(options.seconds) s per side; \(cores) cores; load average \(loadAverage())")
    print("kernel set: \(KernelSet.current) (machine: \(KernelSet.machineFeatures.joined(separator: ",")))")
    print("GEMM backend: \(ExecutionContext.default.gemmInUse.rawValue) (OpenBLAS core: \(GemmBackend.openBLASCoreName))")

    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("stoke-engine-ratios-\(getpid())")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { if !options.keep { try? FileManager.default.removeItem(at: scratch) } else { print("kept \(scratch.path)") } }

    let benchModels = try models()
    var specs: [String] = []
    var compiled: [String: (Model, Tensor)] = [:]
    for (index, bench) in benchModels.enumerated() {
        let modelPath = scratch.appendingPathComponent("\(bench.name).onnx").path
        let dataPath = scratch.appendingPathComponent("\(bench.name)-input.npy").path
        let x = input([options.batch] + bench.sampleShape, seed: UInt64(index + 11))
        try Data(try bench.native.onnx()).write(to: URL(fileURLWithPath: modelPath))
        try Data(NPY.encode(x)).write(to: URL(fileURLWithPath: dataPath))
        specs.append("\(bench.name)=\(modelPath),\(dataPath)")
        // Stoke runs the model as it would load it from the exported file, so both sides start from the same bytes.
        compiled[bench.name] = (try Model.load(path: modelPath), x)
    }

    var stoke: [String: [Double]] = [:], ort: [String: [Double]] = [:]
    var stokeCPU: [String: [Double]] = [:], ortCPU: [String: [Double]] = [:]
    var ortVersion = "?"
    for round in 0..<options.rounds {
        for bench in benchModels {
            guard let (model, x) = compiled[bench.name] else { continue }
            for threads in options.threads {
                let rate = try stokeRate(model, x, threads: threads, seconds: options.seconds)
                stoke["\(bench.name) \(threads)", default: []].append(rate.wall)
                stokeCPU["\(bench.name) \(threads)", default: []].append(rate.cpu)
            }
        }
        for result in try onnxRuntimeRound(specs, threads: options.threads, seconds: options.seconds, check: round == 0) {
            ort["\(result.model) \(result.threads)", default: []].append(result.rate)
            ortCPU["\(result.model) \(result.threads)", default: []].append(result.cpu_rate)
            ortVersion = result.version
        }
        if round == 0 {
            // Same model, same input: the outputs must agree before the rates mean anything.
            for bench in benchModels {
                guard let (model, x) = compiled[bench.name] else { continue }
                let ours = try Session(model: model).run(["input": x])["output"]?.floats ?? []
                let outPath = scratch.appendingPathComponent("\(bench.name)-input-ort-out.npy").path
                let theirs = try NPY.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: outPath)))).floats
                guard ours.count == theirs.count, !ours.isEmpty else { fail("\(bench.name): output sizes differ (\(ours.count) vs \(theirs.count))") }
                let worst = zip(ours, theirs).map { abs($0 - $1) / (1e-3 + abs($1)) }.max() ?? 0
                guard worst < 1e-2 else { fail("\(bench.name): Stoke and onnxruntime outputs differ (worst relative error \(worst))") }
                print("\(bench.name): outputs match onnxruntime (worst relative error \(String(format: "%.1e", worst)))")
            }
        }
        print("round \(round + 1) done; load average \(loadAverage())")
    }

    print("")
    print("samples/s at batch \(options.batch), Stoke vs onnxruntime \(ortVersion) (best of \(options.rounds) rounds; medians in brackets)")
    for bench in benchModels {
        for threads in options.threads {
            let key = "\(bench.name) \(threads)"
            let ours = stoke[key] ?? [0], theirs = ort[key] ?? [0]
            let ratio = (ours.max() ?? 0) / max(theirs.max() ?? 1, 1)
            print("  \(bench.name) threads=\(threads): stoke \(format(ours.max() ?? 0)) [\(format(median(ours)))], onnxruntime \(format(theirs.max() ?? 0)) [\(format(median(theirs)))]: ratio \(format(ratio, 2))× [\(format(median(ours) / max(median(theirs), 1), 2))×] (goal ≥ 1.0×)")
            if threads == 1 {
                // Per CPU second of the one thread doing the work: robust to other load on the machine.
                let oursCPU = stokeCPU[key] ?? [0], theirsCPU = ortCPU[key] ?? [0]
                print("      per CPU-second: stoke \(format(oursCPU.max() ?? 0)), onnxruntime \(format(theirsCPU.max() ?? 0)): ratio \(format((oursCPU.max() ?? 0) / max(theirsCPU.max() ?? 1, 1), 2))×")
            }
        }
    }

    if options.profile {
        // Where Stoke's time goes, per operator type and per node (Session.profile, 20 runs).
        for bench in benchModels {
            guard let (model, x) = compiled[bench.name] else { continue }
            for threads in options.threads {
                let session = Session(model: model, threads: threads)
                let timings = try session.profile(["input": x], repeats: 20)
                let total = timings.reduce(0) { $0 + $1.seconds }
                print("profile \(bench.name) threads=\(threads): \(format(1e3 * total / 20, 3)) ms per batch")
                for timing in timings {
                    print("    \(timing.node) (\(timing.opType)): \(format(100 * timing.seconds / total, 1))%, \(format(timing.gigaflopsPerSecond, 1)) GFLOP/s")
                }
            }
        }
    }

    print("")
    let width = engine_bench_fma_width()
    print("FP32 FMA peak (measured, \(width == 2 ? "AVX-512" : width == 1 ? "AVX2" : "no FMA") register loop), sgemm 1024³ through the engine's MatMul:")
    var peaks: [Int: Double] = [:]
    for threads in options.threads {
        let peak = fmaPeak(threads: threads)
        peaks[threads] = peak
        let gemm = try sgemmRate(m: 1024, k: 1024, n: 1024, threads: threads) / 1e9
        print("  threads=\(threads): peak \(format(peak, 1)) GFLOP/s, sgemm \(format(gemm, 1)) GFLOP/s = \(format(100 * gemm / max(peak, 1e-9), 1))% of peak")
    }
    if let one = peaks[1], one > 0 {
        for (threads, peak) in peaks.sorted(by: { $0.key < $1.key }) where threads > 1 {
            // On free cores the peak scales with threads; less means other work held a core (or the
            // logical CPUs share FMA units), and multi-thread ratios above are then unreliable.
            print("  peak scaling at threads=\(threads): \(format(peak / one, 2))× of 1 thread (\(threads).00× when \(threads) cores are free)")
        }
    }
    print("load average \(loadAverage())")
}

do {
    try run(parseOptions())
} catch {
    fail("\(error)")
}
