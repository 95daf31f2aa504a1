// quant-ratios: the INT8 numbers issue 7 sets goals for, measured in one run.
//
//   swift run -c release --package-path Benchmarks quant-ratios [--batch 256] [--threads 1,2]
//       [--rounds 3] [--seconds 1] [--calibration-samples 1024] [--keep] [--cpu LEVEL]
//
//   --cpu portable|avx2|avx-vnni|avx512|avx512-vnni runs Stoke's kernels (and the peak loops) on that
//   kernel set, as STOKE_CPU does; the kernel set in use is printed first. The int8 GEMM of (a) runs
//   with 7-bit (s7, the quantizer's default) and 8-bit (s8) weights, naming the table entry each
//   used; without VNNI the int8 limit is a vpmaddubsw + vpmaddwd + vpaddd register loop. (b) also
//   times Stoke's own FP32 model and prints INT8 / own FP32 (issue 13: ≥ 1.25× at avx2).
//
//   (a) int8 GEMM ops/s (stoke_int8_gemm_s32, u8 × packed s8 → s32, rows split over the threads) and
//       FP32 sgemm FLOP/s (the engine's MatMul) on the same shapes, each as a fraction of its peak
//       measured in the same run: the vpdpbusd register loop (AVX-512 VNNI) and the FMA register loop
//       of EngineBenchKernels, each the higher of a measurement before and after the GEMMs. An int8
//       op is a multiply or an add, as a FLOP is.
//   (b) samples/s at batch --batch of Stoke INT8 (dynamic, and static QDQ calibrated on
//       --calibration-samples deterministic inputs) on the MLP and CNN of engine-ratios against
//       onnxruntime's quantize_dynamic and quantize_static (QDQ, per-channel s8 weights, u8
//       activations, calibrated on the same inputs) models, per thread count; the ratio is against
//       onnxruntime's best INT8 model. Goals: MLP ≥ 1.0×, CNN ≥ 2×.
//
// Each INT8 model's predictions are compared with the FP32 model's on the timed batch before
// anything is timed (top-1 agreement), so a fast but wrong model shows. Stoke and onnxruntime (a child
// process from <repo>/.venv/bin/python3, or STOKE_BENCH_PYTHON, timing its own loop) alternate for
// --rounds rounds; ratios use each side's best round, medians in brackets.

import CStokeKernels
import Dispatch
import EngineBenchKernels
import EngineBenchSupport
import Foundation
import StokeBench
import StokeEngine
import StokeLoader
import StokeStore

struct Options {
    var batch = 256
    var threads = [1, 2]
    var rounds = 3
    var seconds = 1.0
    var calibrationSamples = 1024
    var keep = false
    /// A folder with train.h5 and test.h5 for the accuracy part (c).
    var stores: String?
    /// A kernel set name (`--cpu`), applied before anything runs.
    var cpu: String?
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("quant-ratios: \(message)\n".utf8))
    exit(2)
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    func next(_ name: String) -> String {
        guard let text = arguments.popFirst() else { fail("\(name) needs a value") }
        return text
    }
    func positive(_ name: String) -> Int {
        guard let value = Int(next(name)), value > 0 else { fail("\(name) needs a positive integer") }
        return value
    }
    while let argument = arguments.popFirst() {
        switch argument {
        case "--batch": options.batch = positive(argument)
        case "--rounds": options.rounds = positive(argument)
        case "--calibration-samples": options.calibrationSamples = positive(argument)
        case "--threads":
            let values = next(argument).split(separator: ",").compactMap { Int($0) }
            guard !values.isEmpty, values.allSatisfy({ $0 > 0 }) else { fail("--threads needs a list such as 1,2") }
            options.threads = values
        case "--seconds":
            guard let value = Double(next(argument)), value > 0 else { fail("--seconds needs a positive number") }
            options.seconds = value
        case "--keep": options.keep = true
        case "--stores": options.stores = next(argument)
        case "--cpu": options.cpu = next(argument)
        case "-h", "--help":
            print("usage: quant-ratios [--batch N] [--threads 1,2] [--rounds N] [--seconds S] [--calibration-samples N] [--stores DIR] [--keep] [--cpu LEVEL]")
            exit(0)
        default:
            fail("unknown argument '\(argument)' (see --help)")
        }
    }
    return options
}

/// A lock-guarded sum (each peak thread reports its ops once).
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var total: UInt64 = 0
    func add(_ value: UInt64) { lock.lock(); total += value; lock.unlock() }
    var value: UInt64 { lock.lock(); defer { lock.unlock() }; return total }
}

// MARK: - Peaks

/// Ops/s of `loop` on `threads` threads at once, best of 3, the loop sized to about 0.2 s.
func peak(threads: Int, _ loop: @Sendable (UInt64) -> UInt64) -> Double {
    var iterations: UInt64 = 1 << 16
    while true {
        let start = now()
        guard loop(iterations) > 0 else { return 0 }
        if now() - start > 0.05 { break }
        iterations *= 2
    }
    let measured = iterations * 4
    var best = 0.0
    for _ in 0..<3 {
        let ops = Counter()
        let start = now()
        DispatchQueue.concurrentPerform(iterations: threads) { _ in ops.add(loop(measured)) }
        best = max(best, Double(ops.value) / (now() - start))
    }
    return best
}

func fmaPeak(threads: Int) -> Double {
    peak(threads: threads) { iterations in
        var sink: Float = 0
        return unsafe engine_bench_fma_loop(iterations, &sink)
    }
}

func vnniPeak(threads: Int) -> Double {
    peak(threads: threads) { iterations in
        var sink: Int32 = 0
        return unsafe engine_bench_vnni_loop(iterations, &sink)
    }
}

/// The AVX2 int8 limit without VNNI: vpmaddubsw + vpmaddwd + vpaddd register chains.
func u8s8Peak(threads: Int) -> Double {
    peak(threads: threads) { iterations in
        var sink: Int32 = 0
        return unsafe engine_bench_u8s8_avx2_loop(iterations, &sink)
    }
}

// MARK: - GEMM

/// Deterministic values from a 64-bit LCG.
func lcg(_ count: Int, seed: UInt64) -> [UInt64] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state >> 33
    }
}

/// Int8 ops/s of C (M×N s32) = A (M×K u8) × B (K×N s8, packed once for the best level), the rows of A
/// split evenly over `threads` threads, best of 3 measurements of at least 0.5 s.
func int8GemmRate(m: Int, k: Int, n: Int, threads: Int, range: WeightRange) -> (rate: Double, kernel: String) {
    let span = UInt64(2 * range.largest + 1)
    let b = lcg(k * n, seed: 2).map { Int8(Int($0 % span) - range.largest) }
    let level = Int32(stoke_cpu_active().rawValue)
    let kernel = unsafe b.withUnsafeBufferPointer { unsafe String(cString: stoke_int8_kernel_for($0.baseAddress!, n, k, n, level)) }
    let packed = UnsafeMutableRawPointer.allocate(byteCount: max(64, stoke_int8_packed_bytes(k, n, level)), alignment: 64)
    defer { unsafe packed.deallocate() }
    unsafe b.withUnsafeBufferPointer { unsafe stoke_int8_pack_b($0.baseAddress!, n, k, n, level, packed) }
    let a = UnsafeMutablePointer<UInt8>.allocate(capacity: m * k)
    defer { unsafe a.deallocate() }
    for (index, value) in lcg(m * k, seed: 1).enumerated() { unsafe a[index] = UInt8(truncatingIfNeeded: value) }
    let c = UnsafeMutablePointer<Int32>.allocate(capacity: m * n)
    defer { unsafe c.deallocate() }
    let rowsPerThread = (m + threads - 1) / threads
    // Addresses cross into the worker closures as integers (pointers are not Sendable); the buffers
    // are freed only when this function returns.
    let (aAddress, cAddress, packedAddress) = (Int(bitPattern: a), Int(bitPattern: c), Int(bitPattern: packed))
    func product() {
        DispatchQueue.concurrentPerform(iterations: threads) { part in
            let first = part * rowsPerThread, rows = min(rowsPerThread, m - first)
            guard rows > 0 else { return }
            let aRows = unsafe UnsafePointer<UInt8>(bitPattern: aAddress)! + first * k
            let cRows = unsafe UnsafeMutablePointer<Int32>(bitPattern: cAddress)! + first * n
            unsafe stoke_int8_gemm_s32(rows, n, k, aRows, k, UnsafeRawPointer(bitPattern: packedAddress)!, 3, cRows, n)
        }
    }
    for _ in 0..<2 { product() }
    var best = 0.0
    for _ in 0..<3 {
        var runs = 0
        let start = now()
        while now() - start < 0.5 {
            product()
            runs += 1
        }
        best = max(best, 2 * Double(m * n * k) * Double(runs) / (now() - start))
    }
    return (best, kernel)
}


// MARK: - Models (those of engine-ratios)


/// Deterministic inputs in [0, 1): image-like (non-negative, as normalized pixels before centering
/// are), so the calibrated u8 range is used the way real data uses it.
func input(_ shape: [Int], seed: UInt64) -> Tensor {
    Tensor(shape: shape, floats: lcg(shape.reduce(1, *), seed: seed).map { Float($0 >> 7) / Float(1 << 24) })
}

/// Samples/s of `model` at `threads`: a fresh session, 3 untimed runs, then runs for ≥ `seconds`.
func stokeRate(_ model: Model, _ x: Tensor, threads: Int, seconds: Double) throws -> Double {
    let session = Session(model: model, threads: threads)
    for _ in 0..<3 { try session.run(["input": x]) { _ in } }
    var runs = 0
    let start = now()
    while now() - start < seconds {
        try session.run(["input": x]) { _ in }
        runs += 1
    }
    return Double(runs * x.shape[0]) / (now() - start)
}

/// Row-wise argmax of a [rows, classes] output.
func argmax(_ values: [Float], rows: Int) -> [Int] {
    let classes = values.count / max(rows, 1)
    return (0..<rows).map { row in
        var best = 0
        for column in 1..<classes where values[row * classes + column] > values[row * classes + best] { best = column }
        return best
    }
}

func agreement(_ a: [Int], _ b: [Int]) -> Double {
    Double(zip(a, b).filter { $0 == $1 }.count) / Double(max(a.count, 1))
}

// MARK: - onnxruntime side

nonisolated let pythonScript = """
import json, sys, time
import numpy as np
import onnxruntime as ort
mode = sys.argv[1]
if mode == "quantize":
    from onnxruntime.quantization import quantize_dynamic, quantize_static, QuantType, QuantFormat, CalibrationDataReader
    class Reader(CalibrationDataReader):
        def __init__(self, data, batch):
            self.batches = iter([{"input": data[i:i + batch]} for i in range(0, len(data), batch)])
        def get_next(self):
            return next(self.batches, None)
    batch = int(sys.argv[2])
    for spec in sys.argv[3:]:
        model, calibration = spec.split(",")
        quantize_dynamic(model, model.replace(".onnx", "-ort-dynamic.onnx"), weight_type=QuantType.QInt8)
        quantize_static(model, model.replace(".onnx", "-ort-static.onnx"), Reader(np.load(calibration), batch),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    print(json.dumps({"version": ort.__version__}), flush=True)
    sys.exit(0)
seconds = float(sys.argv[2]); threads = [int(t) for t in sys.argv[3].split(",")]; check = sys.argv[4] == "1"
for spec in sys.argv[5:]:
    name, model, data = spec.split("=")[0], *spec.split("=")[1].split(",")
    x = np.load(data)
    for t in threads:
        options = ort.SessionOptions()
        options.intra_op_num_threads = t
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        y = session.run(None, {"input": x})[0]
        if check:
            np.save(model.replace(".onnx", "-out.npy"), y)
        for _ in range(3):
            session.run(None, {"input": x})
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            session.run(None, {"input": x})
            runs += 1
        print(json.dumps({"model": name, "threads": t, "rate": runs * x.shape[0] / (time.perf_counter() - start)}), flush=True)
"""

struct ORTResult: Decodable { let model: String; let threads: Int; let rate: Double }

func python(_ arguments: [String]) throws -> String {
    guard FileManager.default.isExecutableFile(atPath: Paths.python) else {
        fail("\(Paths.python) not found: run scripts/setup (or set STOKE_BENCH_PYTHON to a Python with numpy, onnx and onnxruntime)")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Paths.python)
    process.arguments = ["-c", pythonScript] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { fail("onnxruntime child (\(arguments.first ?? "")) failed:\n\(output)") }
    return output
}

// MARK: - Accuracy on a labeled store

/// Part (c): trains the MLP on `directory`/train.h5 and prints the test accuracy of FP32 and INT8.
func accuracyReport(directory: String, calibrationSamples: Int) throws {
    let trainPath = directory + "/train.h5", testPath = directory + "/test.h5"
    let trainStore = try Store(path: trainPath)
    guard let field = trainStore.fields.first(where: { $0.name != "label" && !$0.sampleShape.isEmpty }),
          trainStore.fields.contains(where: { $0.name == "label" }) else { fail("\(trainPath): needs an input field and a label field") }
    var layers: [Layer] = [.flatten]
    let sizes = [field.sampleShape.reduce(1, *), 512, 256, 10]
    for index in 0..<(sizes.count - 1) {
        layers.append(.linear(inFeatures: sizes[index], outFeatures: sizes[index + 1]))
        if index < sizes.count - 2 { layers.append(.relu) }
    }
    var trainingOptions = TrainingOptions()
    trainingOptions.seed = 1
    let trainer = try Trainer(model: try SequentialModel(layers: layers, sampleShape: field.sampleShape, seed: 1), options: trainingOptions)
    var loaderOptions = LoaderOptions()
    loaderOptions.fields = [field.name, "label"]
    loaderOptions.batchSize = 128
    loaderOptions.seed = 1
    loaderOptions.outputTypes[field.name] = .f32
    let loader = try Loader(store: trainStore, options: loaderOptions)
    let start = now()
    for epochNumber in 0..<3 {
        trainer.startEpoch(epochNumber)
        let epoch = try loader.epoch(epochNumber)
        while let batch = try epoch.next() {
            let count = batch.count
            let labels = try batch.values("label", as: Int64.self)
            _ = unsafe try batch.withField(field.name) { bytes, _ in
                unsafe try labels.withUnsafeBufferPointer { labelBuffer in
                    unsafe try trainer.step(input: bytes.assumingMemoryBound(to: Float.self), labels: labelBuffer, count: count)
                }
            }
        }
    }
    let fp32 = try trainer.model().model()
    print("")
    print("(c) accuracy on \(testPath): MLP 784-512-256-10 trained 3 epochs on \(trainPath) in \(format(now() - start, 1)) s")
    func accuracy(_ model: Model) throws -> Double {
        try StreamingInference.run(model: model, storePath: testPath, options: StreamingInference.Options()).accuracy ?? 0
    }
    let reference = try accuracy(fp32)
    print("  FP32: \(format(100 * reference, 2))%")
    var variants: [(String, Model)] = [("dynamic INT8", try fp32.quantizedDynamic())]
    for (name, method) in [("static INT8 MinMax", CalibrationMethod.minMax), ("static INT8 percentile 99.99", .percentile(99.99))] {
        let table = try CalibrationRun.run(model: fp32, storePath: trainPath, samples: calibrationSamples, method: method)
        variants.append((name, try fp32.quantizedStatic(calibration: table)))
    }
    for (name, model) in variants {
        let value = try accuracy(model)
        print("  \(name): \(format(100 * value, 2))%, drop \(format(100 * (reference - value), 2)) pp (goal ≤ 0.3 pp)")
    }
}

// MARK: - Main

func run(_ options: Options) throws {
    if let cpu = options.cpu, let problem = KernelSet.apply(cpu) { fail(problem) }
    if let problem = KernelSet.applyEnvironment(), options.cpu == nil { fail(problem) }
    engine_bench_restrict(stoke_cpu_has(UInt32(STOKE_CPU_FEATURE_AVX512F)) != 0 ? 1 : 0,
                          stoke_cpu_has(UInt32(STOKE_CPU_FEATURE_AVX512VNNI)) != 0 ? 1 : 0)
    let cores = ProcessInfo.processInfo.activeProcessorCount
    print("quant-ratios: batch \(options.batch), threads \(options.threads), \(options.rounds) rounds of \(options.seconds) s per side; \(cores) cores; load average \(loadAverage())")
    print("kernel set: \(KernelSet.current) (machine: \(KernelSet.machineFeatures.joined(separator: ","))); GEMM backend: \(ExecutionContext.default.gemmInUse.rawValue)")

    // (a) peaks and GEMMs
    print("")
    print("(a) GEMM throughput as a fraction of the peak measured now (int8: vpdpbusd loop; FP32: FMA loop)")
    let shapes = [(m: 256, k: 784, n: 512), (m: 1024, k: 1024, n: 1024)]
    var fp32Peaks: [Int: Double] = [:]
    for threads in options.threads {
        // The peaks are measured before and after the GEMMs and the higher kept: on a shared machine
        // one measurement can land while another process holds the core, and a peak measured low
        // would overstate the GEMMs' share of it.
        let vnni = engine_bench_has_vnni() != 0
        let int8PeakLoop = { vnni ? vnniPeak(threads: threads) : u8s8Peak(threads: threads) }
        var int8Peak = int8PeakLoop(), fp32Peak = fmaPeak(threads: threads)
        var rates: [(s7: (rate: Double, kernel: String), s8: (rate: Double, kernel: String), fp32: Double)] = []
        for shape in shapes {
            rates.append((int8GemmRate(m: shape.m, k: shape.k, n: shape.n, threads: threads, range: .s7),
                          int8GemmRate(m: shape.m, k: shape.k, n: shape.n, threads: threads, range: .s8),
                          try sgemmRate(m: shape.m, k: shape.k, n: shape.n, threads: threads)))
        }
        int8Peak = max(int8Peak, int8PeakLoop())
        fp32Peak = max(fp32Peak, fmaPeak(threads: threads))
        fp32Peaks[threads] = fp32Peak
        let loopName = vnni ? "vpdpbusd loop" : "vpmaddubsw+vpmaddwd+vpaddd loop"
        print("  threads=\(threads): int8 peak (\(loopName)) \(format(int8Peak / 1e9, 0)) Gops/s, FP32 peak \(format(fp32Peak / 1e9, 0)) GFLOP/s (int8/FP32 \(fp32Peak > 0 ? format(int8Peak / fp32Peak, 2) : "?")×)")
        for (shape, rate) in zip(shapes, rates) {
            let fp32 = rate.fp32
            let share = { (ops: Double) in int8Peak > 0 ? "\(format(100 * ops / int8Peak, 1))% of peak" : "no int8 peak" }
            print("    M×K×N \(shape.m)×\(shape.k)×\(shape.n): int8 s7 weights (\(rate.s7.kernel)) \(format(rate.s7.rate / 1e9, 0)) Gops/s = \(share(rate.s7.rate)), s8 weights (\(rate.s8.kernel)) \(format(rate.s8.rate / 1e9, 0)) Gops/s = \(share(rate.s8.rate)); sgemm \(format(fp32 / 1e9, 0)) GFLOP/s = \(format(100 * fp32 / max(fp32Peak, 1), 1))% of peak; int8 s7/FP32 \(format(rate.s7.rate / max(fp32, 1), 2))×")
        }
    }
    if let one = fp32Peaks[1], one > 0 {
        for (threads, peak) in fp32Peaks.sorted(by: { $0.key < $1.key }) where threads > 1 {
            // Less than the thread count means other work held a core while this ran: the
            // multi-thread numbers of (a) and (b) then measure that work as much as Stoke's.
            print("  FP32 peak scaling at threads=\(threads): \(format(peak / one, 2))× of 1 thread (\(threads).00× when \(threads) cores are free)")
        }
    }
    print("load average \(loadAverage())")

    // (b) end to end
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("stoke-quant-ratios-\(getpid())")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { if !options.keep { try? FileManager.default.removeItem(at: scratch) } else { print("kept \(scratch.path)") } }
    let benchModels = try models()
    var quantizeSpecs: [String] = [], timingSpecs: [String] = []
    var stokeModels: [(name: String, variant: String, model: Model, x: Tensor)] = []
    var fp32Predictions: [String: [Int]] = [:]
    for (index, bench) in benchModels.enumerated() {
        let modelPath = scratch.appendingPathComponent("\(bench.name).onnx").path
        let dataPath = scratch.appendingPathComponent("\(bench.name)-input.npy").path
        let calibrationPath = scratch.appendingPathComponent("\(bench.name)-calibration.npy").path
        let x = input([options.batch] + bench.sampleShape, seed: UInt64(index + 11))
        let calibration = input([options.calibrationSamples] + bench.sampleShape, seed: UInt64(index + 101))
        try Data(try bench.native.onnx()).write(to: URL(fileURLWithPath: modelPath))
        try Data(NPY.encode(x)).write(to: URL(fileURLWithPath: dataPath))
        try Data(NPY.encode(calibration)).write(to: URL(fileURLWithPath: calibrationPath))
        quantizeSpecs.append("\(modelPath),\(calibrationPath)")
        for variant in ["dynamic", "static"] {
            timingSpecs.append("\(bench.name) \(variant)=\(modelPath.replacingOccurrences(of: ".onnx", with: "-ort-\(variant).onnx")),\(dataPath)")
        }
        let fp32 = try Model.load(path: modelPath)
        stokeModels.append((bench.name, "fp32", fp32, x))
        fp32Predictions[bench.name] = argmax(try Session(model: fp32).run(["input": x])["output"]?.floats ?? [], rows: options.batch)
        // Static: calibrated on the same samples onnxruntime's quantize_static sees, in batches of --batch.
        let calibrator = try Calibrator(model: fp32)
        let values = calibration.floats, width = bench.sampleShape.reduce(1, *)
        for start in stride(from: 0, to: options.calibrationSamples, by: options.batch) {
            let rows = min(options.batch, options.calibrationSamples - start)
            try calibrator.observe(["input": Tensor(shape: [rows] + bench.sampleShape, floats: Array(values[(start * width)..<((start + rows) * width)]))])
        }
        stokeModels.append((bench.name, "dynamic", try fp32.quantizedDynamic(), x))
        stokeModels.append((bench.name, "static", try fp32.quantizedStatic(calibration: try calibrator.table()), x))
    }
    let ortVersion = (try? JSONDecoder().decode([String: String].self, from: Data(try python(["quantize", String(options.batch)] + quantizeSpecs).utf8)))?["version"] ?? "?"

    print("")
    print("(b) samples/s at batch \(options.batch): Stoke INT8 vs onnxruntime \(ortVersion) quantize_dynamic / quantize_static (QDQ) models")
    var stoke: [String: [Double]] = [:], ort: [String: [Double]] = [:]
    for round in 0..<options.rounds {
        for entry in stokeModels {
            for threads in options.threads {
                stoke["\(entry.name) \(entry.variant) \(threads)", default: []].append(try stokeRate(entry.model, entry.x, threads: threads, seconds: options.seconds))
            }
        }
        let output = try python(["time", String(options.seconds), options.threads.map(String.init).joined(separator: ","), round == 0 ? "1" : "0"] + timingSpecs)
        for line in output.split(separator: "\n") {
            guard let result = try? JSONDecoder().decode(ORTResult.self, from: Data(line.utf8)) else { continue }
            ort["\(result.model) \(result.threads)", default: []].append(result.rate)
        }
        if round == 0 {
            for entry in stokeModels where entry.variant != "fp32" {
                let ours = argmax(try Session(model: entry.model).run(["input": entry.x])["output"]?.floats ?? [], rows: options.batch)
                let ortPath = scratch.appendingPathComponent("\(entry.name)-ort-\(entry.variant)-out.npy").path
                let theirs = argmax(try NPY.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: ortPath)))).floats, rows: options.batch)
                let reference = fp32Predictions[entry.name] ?? []
                print("  \(entry.name) \(entry.variant): top-1 agreement with FP32: Stoke \(format(100 * agreement(ours, reference), 1))%, onnxruntime \(format(100 * agreement(theirs, reference), 1))%")
            }
        }
        print("  round \(round + 1) done; load average \(loadAverage())")
    }
    for bench in benchModels {
        for threads in options.threads {
            let ortBest = ["dynamic", "static"].map { (ort["\(bench.name) \($0) \(threads)"] ?? [0]).max() ?? 0 }.max() ?? 0
            let ortMedianBest = ["dynamic", "static"].map { median(ort["\(bench.name) \($0) \(threads)"] ?? [0]) }.max() ?? 0
            let goal = bench.name == "mlp" ? "≥ 1.0×" : "≥ 2×"
            print("  \(bench.name) threads=\(threads):")
            let own = stoke["\(bench.name) fp32 \(threads)"] ?? [0]
            print("    Stoke FP32: \(format(own.max() ?? 0)) [\(format(median(own)))]")
            for variant in ["dynamic", "static"] {
                let ours = stoke["\(bench.name) \(variant) \(threads)"] ?? [0], theirs = ort["\(bench.name) \(variant) \(threads)"] ?? [0]
                print("    \(variant): stoke \(format(ours.max() ?? 0)) [\(format(median(ours)))], onnxruntime \(format(theirs.max() ?? 0)) [\(format(median(theirs)))]; stoke / onnxruntime best INT8 \(format((ours.max() ?? 0) / max(ortBest, 1), 2))× [\(format(median(ours) / max(ortMedianBest, 1), 2))×] (goal \(goal) for static); stoke INT8 / own FP32 \(format((ours.max() ?? 0) / max(own.max() ?? 0, 1), 2))× [\(format(median(ours) / max(median(own), 1), 2))×]")
            }
        }
    }
    print("load average \(loadAverage())")
    if let stores = options.stores {
        try accuracyReport(directory: stores, calibrationSamples: options.calibrationSamples)
    } else {
        print("(c) accuracy: skipped; give --stores DIR, a folder with train.h5 and test.h5 (stoke demo --data-only --directory DIR)")
    }
}

do {
    try run(parseOptions())
} catch {
    fail("\(error)")
}
