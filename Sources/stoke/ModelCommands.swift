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

/// What `stoke inspect MODEL` prints.
struct ModelReport {
    let path: String
    let model: Model
    let macs: Int?
    let macsNote: String

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
        if concrete, let costs = try? Session(model: model).costs(inputShapes: shapes) {
            macs = costs.reduce(0) { $0 + $1.macs }
            macsNote = "per sample (symbolic dimensions taken as 1)"
        } else {
            macs = nil
            macsNote = "unknown: an input declares no shape"
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

    func validate() throws {
        guard threads > 0 else { throw UsageError("--threads must be positive") }
        if let repeatCount, repeatCount <= 0 { throw UsageError("--repeat must be positive") }
        for entry in input where !entry.contains("=") { throw UsageError("--input '\(entry)': expected NAME=FILE.npy") }
    }

    func run() throws {
        try reportingErrors {
            let loaded = int8 ? try loadModel(model).quantizedDynamic() : try loadModel(model)
            var inputs: [String: Tensor] = [:]
            for entry in input {
                let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
                guard let data = FileManager.default.contents(atPath: parts[1]) else { throw UsageError("\(parts[1]): cannot read") }
                do {
                    inputs[parts[0]] = try NPY.decode([UInt8](data))
                } catch {
                    throw UsageError("\(parts[1]): \(error)")
                }
            }
            let missing = loaded.inputs.map(\.name).filter { inputs[$0] == nil }
            guard missing.isEmpty else { throw UsageError("\(model): missing input(s) \(missing.joined(separator: ", ")) (give --input NAME=FILE.npy)") }
            let session = Session(model: loaded, threads: threads)
            let outputs = try session.run(inputs)
            var written: [String: String] = [:]
            if let outputDir {
                try FileManager.default.createDirectory(atPath: outputDir, withIntermediateDirectories: true)
                for (name, tensor) in outputs {
                    let path = outputDir + "/" + sanitizedFileName(name) + ".npy"
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
                document["samples_per_s"] = Double(repeatCount * batch) / max(seconds, 1e-9)
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
