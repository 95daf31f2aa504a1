import ArgumentParser
import Foundation
import StokeEngine
import StokeStore

/// Loads an ONNX model or a Stoke HDF5 model file (chosen by content).
func loadModel(_ path: String) throws -> Model {
    guard FileManager.default.fileExists(atPath: path) else {
        throw UsageError("\(path): no such model file")
    }
    do {
        return try Model.load(path: path)
    } catch {
        throw UsageError("\(path): \(error)")
    }
}

/// Whether a file is a store rather than a model: HDF5 without the `stoke_model` root attribute that
/// Stoke model files carry.
func isStore(_ path: String) -> Bool {
    guard isHDF5(path) else { return false }
    // Graph model files can hold scalar datasets (quantization scales), which no store has: read
    // them as plain named arrays to find the attribute.
    guard let store = try? Store(path: path, options: StoreReadOptions(useChunkIndex: false)) else {
        return (try? ArrayFile.read(path))?.attributes["stoke_model"] == nil
    }
    return store.attributes["stoke_model"] == nil
}

/// Whether a file is HDF5: the signature at byte 0 or past a userblock (512, 1024, 2048, …).
func isHDF5(_ path: String) -> Bool {
    HDF5Signature.isHDF5(path: path)
}

/// Output names made safe as file names.
func sanitizedFileName(_ name: String) -> String {
    let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    let cleaned = String(name.map { allowed.contains($0) ? $0 : "_" })
    return cleaned.isEmpty || cleaned.hasPrefix(".") ? "_" + cleaned : cleaned
}

/// One `.npy` file name per output, in the model's order: the sanitized name, and when two names
/// sanitize alike (`a/b` and `a_b`), the later one gets `-2`, `-3`, … so no output overwrites another.
/// `renamed` lists the outputs whose file is not simply their sanitized name.
func outputFileNames(_ names: [String]) -> (files: [String: String], renamed: [(name: String, file: String)]) {
    var files: [String: String] = [:], taken = Set<String>(), renamed: [(String, String)] = []
    for name in names where files[name] == nil {
        let base = sanitizedFileName(name)
        var file = base + ".npy", suffix = 1
        while taken.contains(file) {
            suffix += 1
            file = "\(base)-\(suffix).npy"
        }
        if suffix > 1 { renamed.append((name, file)) }
        taken.insert(file)
        files[name] = file
    }
    return (files, renamed)
}

/// The most engine threads a command accepts: 4 per core, at least 8. More threads than that only
/// wait for cores, and each one costs a stack and a workspace (`--threads 100000` used to start them all).
let engineThreadLimit = max(8, 4 * ProcessInfo.processInfo.activeProcessorCount)

/// `requested` engine threads, lowered to `engineThreadLimit` with a note on stderr when above it.
func clampedEngineThreads(_ requested: Int, option: String = "--threads") -> Int {
    guard requested > engineThreadLimit else { return requested }
    FileHandle.standardError.write(Data(
        "stoke: note: \(option) \(requested) is more than 4 per core (\(ProcessInfo.processInfo.activeProcessorCount) cores); using \(engineThreadLimit)\n".utf8))
    return engineThreadLimit
}

/// What `stoke inspect MODEL` prints.
struct ModelReport {
    let path: String
    let model: Model
    let macs: Int?
    let macsNote: String
    /// Bytes of intermediate and output values one sample needs (the plan's arena, with reuse).
    let activationBytes: Int?

    init(path: String) throws {
        self.path = path
        model = try loadModel(path)
        // MACs need concrete shapes: symbolic dimensions are taken as 1 (one sample).
        var shapes: [String: [Int]] = [:]
        var concrete = true
        for input in model.inputs {
            guard let dims = input.shape else { concrete = false; continue }
            shapes[input.name] = dims.map { dimension in
                if case .fixed(let value) = dimension { return value }
                return 1
            }
        }
        guard concrete else {
            (macs, activationBytes, macsNote) = (nil, nil, "unknown: an input declares no shape")
            return
        }
        // Planned for shapes only: nothing activation-sized is allocated, however large the model's
        // shapes are; a shape the engine refuses is named instead of the MACs.
        do {
            let session = Session(model: model, context: processContext)
            let total = try session.costs(inputShapes: shapes).reduce(0) { $0 + $1.macs } / (model.fixedBatchSize ?? 1)
            let arena = try session.memoryPlan(inputShapes: shapes).arenaBytes
            let note = model.fixedBatchSize.map { "per sample (the model's fixed batch of \($0) divided out)" } ?? "per sample (symbolic dimensions taken as 1)"
            (macs, activationBytes, macsNote) = (total, arena, note)
        } catch {
            (macs, activationBytes, macsNote) = (nil, nil, "unknown: \(error)")
        }
    }

    func describe(_ info: ValueInfo) -> [String: Any] {
        ["name": info.name, "element_type": info.onnxElementType, "shape": info.shape?.map(\.description) ?? []]
    }

    var json: [String: Any] {
        var document: [String: Any] = [
            "path": path, "opset": Int(model.opset), "inputs": model.inputs.map(describe), "outputs": model.outputs.map(describe),
            "operators": Dictionary(uniqueKeysWithValues: model.operatorCounts.map { ($0.op, $0.count) }),
            "parameters": model.parameterCount,
        ]
        if let macs { document["macs"] = macs }
        if let activationBytes { document["activation_bytes"] = activationBytes }
        if macs == nil { document["macs_note"] = macsNote }
        return document
    }

    func printTable() {
        print("\(path): \(isHDF5(path) ? "Stoke model file" : "ONNX model"), opset \(model.opset), \(model.parameterCount) parameters")
        let shape = { (info: ValueInfo) in info.shape.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "?" }
        stoke.printTable(
            ["", "name", "shape", "type"],
            model.inputs.map { ["input", $0.name, shape($0), "\($0.onnxElementType)"] }
                + model.outputs.map { ["output", $0.name, shape($0), "\($0.onnxElementType)"] })
        print("operators: " + model.operatorCounts.map { "\($0.op) ×\($0.count)" }.joined(separator: ", "))
        print("MACs: " + (macs.map { "\($0) \(macsNote)" } ?? macsNote))
        if let activationBytes {
            let budget = MemoryBudget.current.bytes
            print("activations: \(formatBytes(activationBytes)) " + (model.fixedBatchSize.map { "per run (the model's fixed batch of \($0))" } ?? "per sample")
                  + (activationBytes > budget ? " (more than the memory budget of \(formatBytes(budget)): run and infer will refuse it)" : ""))
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model on NPY arrays; write each output as DIR/<output>.npy.",
        discussion: "Example: stoke run mlp.onnx --input x=batch.npy --output-dir out --repeat 100 --profile")

    @Argument(help: "The model (.onnx).") var model: String
    @Option(name: .long, help: "An input as NAME=FILE.npy (repeatable).") var input: [String] = []
    @Option(name: .long, help: "Where to write the outputs.") var outputDir: String?
    @Option(name: .customLong("repeat"), help: "Run this many more times and report samples/s.") var repeatCount: Int?
    @Option(name: .long, help: "Engine threads.") var threads = 1
    @Flag(name: .long, help: "Report where the time goes, per node and per operator type.") var profile = false
    @Flag(name: .long, help: "Quantize Gemm/MatMul dynamically to INT8 (per-channel s8 weights, per-batch u8 activations).") var int8 = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    mutating func validate() throws {
        guard threads > 0 else { throw UsageError("--threads must be positive") }
        threads = clampedEngineThreads(threads)
        if let repeatCount, repeatCount <= 0 { throw UsageError("--repeat must be positive") }
        var names = Set<String>()
        for entry in input {
            guard let (name, file) = Self.splitInput(entry), !name.isEmpty, !file.isEmpty else {
                throw UsageError("--input '\(entry)': expected NAME=FILE.npy with a non-empty NAME and FILE")
            }
            guard names.insert(name).inserted else { throw UsageError("--input '\(entry)': input '\(name)' is given twice") }
        }
    }

    /// `NAME=FILE` split at the first `=`; nil without one.
    static func splitInput(_ entry: String) -> (name: String, file: String)? {
        guard let equals = entry.firstIndex(of: "=") else { return nil }
        return (String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
    }

    func run() throws {
        try reportingErrors {
            let loaded = int8 ? try loadModel(model).quantizedDynamic() : try loadModel(model)
            var inputs: [String: Tensor] = [:]
            for entry in input {
                guard let (name, file) = Self.splitInput(entry) else { throw UsageError("--input '\(entry)': expected NAME=FILE.npy") }
                guard let data = FileManager.default.contents(atPath: file) else { throw UsageError("\(file): cannot read") }
                do {
                    inputs[name] = try NPY.decode([UInt8](data))
                } catch {
                    throw UsageError("\(file): \(error)")
                }
            }
            let missing = loaded.inputs.map(\.name).filter { inputs[$0] == nil }
            guard missing.isEmpty else { throw UsageError("\(model): missing input(s) \(missing.joined(separator: ", ")) (give --input NAME=FILE.npy)") }
            let session = Session(model: loaded, context: processContext.with(threads: threads))
            let outputs = try session.run(inputs)
            var written: [String: String] = [:]
            if let outputDir {
                try FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true)
                let (files, renamed) = outputFileNames(loaded.outputs.map(\.name))
                for (name, file) in renamed {
                    FileHandle.standardError.write(Data(
                        "stoke: note: output '\(name)' is written to \(file): another output's name already maps to \(sanitizedFileName(name)).npy\n".utf8))
                }
                for (name, tensor) in outputs {
                    let path = outputDir + "/" + (files[name] ?? sanitizedFileName(name) + ".npy")
                    try Data(NPY.encode(tensor)).write(to: URL(fileURLWithPath: path), options: .atomic)
                    written[name] = path
                }
            }
            var document: [String: Any] = [
                "model": model, "threads": threads,
                "outputs": outputs.map { ["name": $0.key, "shape": $0.value.shape, "file": written[$0.key] ?? NSNull()] as [String: Any] },
            ]
            let batch = inputs.values.first?.shape.first ?? 1
            if let repeatCount {
                let start = ContinuousClock.now
                for _ in 0..<repeatCount { _ = try session.run(inputs) { _ in 0 } }
                let elapsed = start.duration(to: .now)
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                document["repeat"] = repeatCount
                document["seconds"] = seconds
                document["samples_per_s"] = Double(repeatCount) * Double(batch) / max(seconds, 1e-9)
            }
            var profileRows: [[String: Any]] = []
            if profile {
                let timings = try session.profile(inputs, repeats: repeatCount ?? 10)
                let total = max(timings.reduce(0) { $0 + $1.seconds }, 1e-12)
                func row(_ timing: NodeTiming, kind: String) -> [String: Any] {
                    ["kind": kind, "name": kind == "node" ? timing.node : timing.opType, "op": timing.opType, "ms": timing.seconds * 1e3 / Double(repeatCount ?? 10),
                     "percent": timing.seconds / total * 100, "gflops": timing.gigaflopsPerSecond]
                }
                profileRows = NodeTiming.byOperator(timings).sorted { $0.seconds > $1.seconds }.map { row($0, kind: "operator") }
                    + timings.sorted { $0.seconds > $1.seconds }.map { row($0, kind: "node") }
                document["profile"] = profileRows
            }
            if json {
                document["kernel_set"] = processContext.kernelSet.jsonObject
                printJSON(document)
                return
            }
            for (name, tensor) in outputs.sorted(by: { $0.key < $1.key }) {
                print("\(name): shape \(tensor.shape)" + (written[name].map { " -> \($0)" } ?? ""))
            }
            if let rate = document["samples_per_s"] as? Double {
                print(String(format: "%d runs of batch %d on %d thread(s): %.0f samples/s", repeatCount ?? 0, batch, threads, rate))
            }
            if profile {
                for kind in ["operator", "node"] {
                    print("")
                    stoke.printTable(
                        [kind, "op", "ms/run", "%", "GFLOP/s"],
                        profileRows.filter { $0["kind"] as? String == kind }.prefix(kind == "node" ? 15 : 50).map {
                            [$0["name"] as? String ?? "", $0["op"] as? String ?? "", String(format: "%.3f", $0["ms"] as? Double ?? 0),
                             String(format: "%.1f", $0["percent"] as? Double ?? 0), String(format: "%.1f", $0["gflops"] as? Double ?? 0)]
                        })
                }
            }
        }
    }
}
