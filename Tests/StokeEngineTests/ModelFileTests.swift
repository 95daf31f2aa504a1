import Foundation
import StokeStore
import Testing
@testable import StokeEngine

@Suite("HDF5 model files")
struct ModelFileTests {
    /// A fresh scratch folder, removed by the caller's `defer`.
    static func scratch() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stoke-modelfile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Rewrites a saved model file through StokeStore, so a test can damage one field at a time.
    static func rewrite(_ path: String, _ edit: (inout [NamedArray], inout [String: String]) -> Void) throws {
        var (arrays, attributes) = try ArrayFile.read(path)
        edit(&arrays, &attributes)
        try ArrayFile.write(arrays, attributes: attributes, to: path, overwrite: true)
    }

    /// Expects `body` to throw `EngineError.modelFile` for `path` naming `field`; returns the message.
    @discardableResult
    static func expectModelFileError(_ path: String, field: String, containing text: String = "",
                                     sourceLocation: SourceLocation = #_sourceLocation,
                                     _ body: () throws -> Void) -> String {
        do {
            try body()
            Issue.record("loading \(path) did not fail", sourceLocation: sourceLocation)
        } catch let error as EngineError {
            guard case let .modelFile(errorPath, errorField, detail) = error else {
                Issue.record("expected .modelFile, got \(error)", sourceLocation: sourceLocation)
                return ""
            }
            #expect(errorPath == path, sourceLocation: sourceLocation)
            #expect(errorField == field, "\(error)", sourceLocation: sourceLocation)
            #expect(text.isEmpty || detail.contains(text), "\(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains(path) && error.description.contains(field), sourceLocation: sourceLocation)
            return error.description
        } catch {
            Issue.record("expected EngineError, got \(error)", sourceLocation: sourceLocation)
        }
        return ""
    }

    @Test func roundTripKeepsLayersWeightsMetadataAndOutputs() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("cnn.h5").path
        let native = try NativeModelTests.smallCNN()
        try native.save(to: path, metadata: ["dataset": "fashion-mnist", "accuracy": "0.91"])

        let (loaded, metadata) = try SequentialModel.loadWithMetadata(path: path)
        #expect(loaded.layers == native.layers)
        #expect(loaded.sampleShape == native.sampleShape)
        #expect(Set(loaded.parameters.keys) == Set(native.parameters.keys))
        for (name, tensor) in native.parameters {
            #expect(loaded.parameters[name]?.shape == tensor.shape)
            #expect(loaded.parameters[name]?.floats == tensor.floats, "\(name)")
        }
        #expect(metadata["dataset"] == "fashion-mnist" && metadata["accuracy"] == "0.91")
        #expect(metadata["stoke_version"] != nil && metadata["created"] != nil)

        let x = GraphBuilding.random([4, 1, 12, 12], seed: 21)
        let expected = try #require(try Session(model: native.model()).run(["input": x])["output"])
        let fromNative = try #require(try Session(model: loaded.model()).run(["input": x])["output"])
        #expect(fromNative.floats == expected.floats)
        // Model.load tells HDF5 from ONNX by content, whatever the file is called.
        let renamed = directory.appendingPathComponent("model.bin").path
        try FileManager.default.copyItem(atPath: path, toPath: renamed)
        let viaLoad = try #require(try Session(model: Model.load(path: renamed)).run(["input": x])["output"])
        #expect(viaLoad.floats == expected.floats)
        let onnxPath = directory.appendingPathComponent("cnn.onnx").path
        try Data(try native.onnx()).write(to: URL(fileURLWithPath: onnxPath))
        let viaONNX = try #require(try Session(model: Model.load(path: onnxPath)).run(["input": x])["output"])
        #expect(viaONNX.floats == expected.floats)
    }

    @Test func saveRefusesToOverwriteWhenAsked() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("m.h5").path
        let native = try SequentialModel(layers: [.linear(inFeatures: 3, outFeatures: 2)], sampleShape: [3])
        try native.save(to: path)
        Self.expectModelFileError(path, field: "file", containing: "exists") { try native.save(to: path, overwrite: false) }
    }

    @Test func h5pyReadsTheWeightsAndTheSpec() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("mlp.h5").path
        let native = try SequentialModel(layers: [.linear(inFeatures: 784, outFeatures: 32), .relu, .linear(inFeatures: 32, outFeatures: 10)],
                                         sampleShape: [784], seed: 5)
        try native.save(to: path)
        let script = """
        import h5py, json, sys
        with h5py.File(sys.argv[1], "r") as f:
            spec = json.loads(f.attrs["stoke_model"])
            out = {"types": [layer["type"] for layer in spec["layers"]]}
            for name in f:
                a = f[name][()]
                out[name] = [list(a.shape), str(a.dtype), float(a.astype("float64").sum()), float(a.flat[0])]
        print(json.dumps(out))
        """
        let (status, output) = try TestSupport.runPython(["-c", script, path])
        try #require(status == 0, "h5py failed: \(output)")
        let line = try #require(output.split(separator: "\n").last.map(String.init))
        let result = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(result["types"] as? [String] == ["linear", "relu", "linear"])
        for (name, tensor) in native.parameters {
            let entry = try #require(result[name] as? [Any], "h5py did not list \(name): \(output)")
            #expect(entry[0] as? [Int] == tensor.shape)
            #expect(entry[1] as? String == "float32")
            let sum = tensor.floats.reduce(0.0) { $0 + Double($1) }
            #expect(abs((entry[2] as? Double ?? .nan) - sum) < 1e-4, "\(name)")
            #expect((entry[3] as? Double).map { Float($0) } == tensor.floats[0])
        }
    }

    @Test("attributes h5py rewrote as variable-length UTF-8 strings still load")
    func h5pyStringAttributes() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("mlp.h5").path
        let native = try SequentialModel(layers: [.linear(inFeatures: 6, outFeatures: 3)], sampleShape: [6], seed: 5)
        try native.save(to: path, metadata: ["note": "saved by stoke"])
        let script = """
        import h5py, sys
        with h5py.File(sys.argv[1], "r+") as f:
            for key in list(f.attrs):
                value = f.attrs[key]
                value = value.decode() if isinstance(value, bytes) else str(value)
                del f.attrs[key]
                f.attrs[key] = value  # h5py's default: variable-length UTF-8
        """
        let (status, output) = try TestSupport.runPython(["-c", script, path])
        try #require(status == 0, "h5py failed: \(output)")
        let (loaded, metadata) = try SequentialModel.loadWithMetadata(path: path)
        #expect(loaded.layers == native.layers && metadata["note"] == "saved by stoke")
    }

    @Test func missingAndCorruptFilesNameTheFile() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let missing = directory.appendingPathComponent("absent.h5").path
        Self.expectModelFileError(missing, field: "file") { _ = try SequentialModel.load(path: missing) }
        #expect(throws: EngineError.io(path: missing, detail: "file does not exist or is not readable")) { try Model.load(path: missing) }

        // A real file cut in half: the HDF5 signature survives, so Model.load routes it to HDF5.
        let path = directory.appendingPathComponent("cut.h5").path
        try NativeModelTests.smallCNN().save(to: path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
        Self.expectModelFileError(path, field: "file") { _ = try Model.load(path: path) }

        // Signature followed by garbage.
        let garbage = directory.appendingPathComponent("garbage.h5").path
        var random = StokeStore.SplitMix64(seed: 3)
        try Data(Model.hdf5Signature + (0..<4096).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            .write(to: URL(fileURLWithPath: garbage))
        Self.expectModelFileError(garbage, field: "file") { _ = try Model.load(path: garbage) }

        // An HDF5 file that is not a model (a plain ArrayFile).
        let plain = directory.appendingPathComponent("plain.h5").path
        try ArrayFile.write([NamedArray(name: "x", dtype: .f32, shape: [2], values: [Float(1), 2])], attributes: [:], to: plain)
        Self.expectModelFileError(plain, field: "stoke_model", containing: "not a Stoke model file") { _ = try Model.load(path: plain) }
    }

    @Test func damagedFieldsAreNamed() throws {
        let directory = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = directory.appendingPathComponent("original.h5").path
        try NativeModelTests.smallCNN().save(to: original)
        var counter = 0
        /// A copy of the model file with one edit applied.
        func damaged(_ edit: (inout [NamedArray], inout [String: String]) -> Void) throws -> String {
            counter += 1
            let path = directory.appendingPathComponent("damaged\(counter).h5").path
            try FileManager.default.copyItem(atPath: original, toPath: path)
            try Self.rewrite(path, edit)
            return path
        }
        func editSpec(_ from: String, _ to: String) -> (inout [NamedArray], inout [String: String]) -> Void {
            { _, attributes in
                let spec = attributes["stoke_model"] ?? ""
                precondition(spec.contains(from), "test edit '\(from)' does not apply to \(spec)")
                attributes["stoke_model"] = spec.replacingOccurrences(of: from, with: to)
            }
        }

        // smallCNN's layer 2 is a ReLU.
        var path = try damaged(editSpec(#"{"type":"relu"}"#, #"{"type":"swish"}"#))
        let message = Self.expectModelFileError(path, field: "stoke_model.layers[2].type", containing: "unknown layer type 'swish'") {
            _ = try SequentialModel.load(path: path)
        }
        #expect(message.contains("max_pool2d"))
        path = try damaged(editSpec(#""in_channels":1,"#, ""))
        Self.expectModelFileError(path, field: "stoke_model.layers[0].in_channels", containing: "missing") { _ = try Model.load(path: path) }
        path = try damaged(editSpec(#""in_channels":1,"#, #""in_channels":"one","#))
        Self.expectModelFileError(path, field: "stoke_model.layers[0].in_channels") { _ = try Model.load(path: path) }
        path = try damaged(editSpec(#""kernel_size":3,"#, #""kernel_size":0,"#))
        Self.expectModelFileError(path, field: "stoke_model.layers[0].kernel_size", containing: "not positive") { _ = try Model.load(path: path) }
        path = try damaged(editSpec(#""format":"stoke-sequential-model""#, #""format":"keras""#))
        Self.expectModelFileError(path, field: "stoke_model.format", containing: "keras") { _ = try Model.load(path: path) }
        path = try damaged(editSpec(#""version":1"#, #""version":99"#))
        Self.expectModelFileError(path, field: "stoke_model.version", containing: "99") { _ = try Model.load(path: path) }
        path = try damaged { _, attributes in attributes["stoke_model"] = "{not json" }
        Self.expectModelFileError(path, field: "stoke_model") { _ = try Model.load(path: path) }
        // Hostile sizes are refused before anything is allocated: a conv of 2^40 filters, a padding that
        // would overflow the window arithmetic.
        path = try damaged(editSpec(#""out_channels":4,"#, #""out_channels":1099511627776,"#))
        Self.expectModelFileError(path, field: "stoke_model.layers") { _ = try Model.load(path: path) }
        path = try damaged(editSpec(#""padding":1"#, #""padding":4611686018427387904"#))
        Self.expectModelFileError(path, field: "stoke_model.layers", containing: "window does not fit") { _ = try Model.load(path: path) }
        // Layers that do not chain: conv 1 -> 4 channels followed by BatchNorm over 5.
        path = try damaged(editSpec(#""features":4"#, #""features":5"#))
        Self.expectModelFileError(path, field: "stoke_model.layers", containing: "layer 1") { _ = try Model.load(path: path) }

        path = try damaged { arrays, _ in arrays.removeAll { $0.name == "0.weight" } }
        Self.expectModelFileError(path, field: "dataset 0.weight", containing: "missing") { _ = try Model.load(path: path) }
        path = try damaged { arrays, _ in
            arrays = arrays.map { $0.name == "0.bias" ? NamedArray(name: "0.bias", dtype: .f32, shape: [2, 2], bytes: $0.bytes) : $0 }
        }
        Self.expectModelFileError(path, field: "dataset 0.bias", containing: "[2, 2]") { _ = try Model.load(path: path) }
        path = try damaged { arrays, _ in
            arrays = arrays.map { $0.name == "0.bias" ? NamedArray(name: "0.bias", dtype: .i32, shape: $0.shape, bytes: $0.bytes) : $0 }
        }
        Self.expectModelFileError(path, field: "dataset 0.bias", containing: "i32") { _ = try Model.load(path: path) }
        path = try damaged { arrays, _ in arrays.append(NamedArray(name: "stray", dtype: .f32, shape: [1], values: [Float(0)])) }
        Self.expectModelFileError(path, field: "dataset stray", containing: "not a parameter") { _ = try Model.load(path: path) }
    }
}
