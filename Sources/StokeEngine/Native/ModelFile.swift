import Foundation
import StokeStore

// Native model files: one HDF5 file per `SequentialModel`, written with StokeStore's `ArrayFile`.
//
//   /<parameter>   float32 dataset per parameter, named like PyTorch's state dict ("0.weight",
//                  "1.running_var"), so `h5py.File(p)["0.weight"][:]` is the PyTorch tensor
//   @stoke_model   JSON: {"format": "stoke-sequential-model", "version": 1, "sample_shape": [...],
//                  "layers": [{"type": "linear", "in_features": 784, ...}, ...],
//                  "input": "input", "output": "output", "opset": 17}
//   @metadata      JSON object of the caller's strings plus "created" and "stoke_version"
//
// The layer spec, not a serialized graph, is stored: it is what training and export start from, and
// the graph is a pure function of it (`SequentialModel.graph()`). Every field is checked on load and
// an error names the file and the field (`layers[2].kernel_size`, dataset `0.weight`).

extension SequentialModel {
    /// The `format` value of the `stoke_model` attribute.
    public static let fileFormat = "stoke-sequential-model"
    /// The newest model file version this build writes and reads.
    public static let fileVersion = 1

    /// Saves the model as an HDF5 model file (weights as float32 datasets, layer spec and metadata
    /// as JSON root attributes), atomically: a partial file never appears at `path`.
    ///
    /// - Parameters:
    ///   - metadata: free-form strings kept with the model (e.g. dataset, accuracy); `created` and
    ///     `stoke_version` are added.
    ///   - overwrite: replace an existing file at `path`.
    /// - Throws: `EngineError.modelFile` naming the file when it cannot be written.
    public func save(to path: String, metadata: [String: String] = [:], overwrite: Bool = true) throws(EngineError) {
        var arrays: [NamedArray] = []
        for name in parameters.keys.sorted() {
            guard let tensor = parameters[name] else { continue }
            arrays.append(NamedArray(name: name, dtype: .f32, shape: tensor.shape, values: tensor.floats))
        }
        let spec = ModelRecord(format: Self.fileFormat, version: Self.fileVersion, sample_shape: sampleShape,
                               layers: layers.map(LayerRecord.init), input: "input", output: "output", opset: Int(Self.opset),
                               parameters: parameters.keys.sorted())
        var fullMetadata = metadata
        fullMetadata["created"] = fullMetadata["created"] ?? ISO8601DateFormatter().string(from: Date())
        fullMetadata["stoke_version"] = StokeVersion.string
        let attributes = ["stoke_model": Self.json(spec), "metadata": Self.json(fullMetadata)]
        do {
            try ArrayFile.write(arrays, attributes: attributes, to: path, overwrite: overwrite)
        } catch {
            throw .modelFile(path: path, field: "file", detail: error.description)
        }
    }

    /// Loads a model saved by `save(to:)`.
    ///
    /// - Throws: `EngineError.modelFile` naming the file and the field at fault: not HDF5 or
    ///   unreadable, `stoke_model` missing or not this format, an unknown layer type, a missing or
    ///   ill-typed layer field, a parameter dataset missing, of the wrong shape or dtype, or extra.
    public static func load(path: String) throws(EngineError) -> SequentialModel {
        try loadWithMetadata(path: path).model
    }

    /// Loads a model file and the metadata strings saved with it.
    public static func loadWithMetadata(path: String) throws(EngineError) -> (model: SequentialModel, metadata: [String: String]) {
        func fail(_ field: String, _ detail: String) -> EngineError { .modelFile(path: path, field: field, detail: detail) }
        let contents: (arrays: [NamedArray], attributes: [String: String])
        do {
            contents = try ArrayFile.read(path)
        } catch {
            throw fail("file", error.description)
        }
        guard let specText = contents.attributes["stoke_model"] else {
            throw fail("stoke_model", "root attribute missing: not a Stoke model file (attributes: \(contents.attributes.keys.sorted()))")
        }
        // The header first, so a file of another format or a newer version is named as such rather
        // than as a missing field.
        let header = try decodeJSON(FileHeader.self, specText, attribute: "stoke_model", path: path)
        guard header.format == fileFormat else {
            throw fail("stoke_model.format", "is \(header.format.map { "'\($0)'" } ?? "missing"), expected '\(fileFormat)'")
        }
        guard let version = header.version, (1...fileVersion).contains(version) else {
            throw fail("stoke_model.version", "\(header.version.map(String.init) ?? "missing") is not a version this build reads (1...\(fileVersion))")
        }
        let spec = try decodeJSON(ModelRecord.self, specText, attribute: "stoke_model", path: path)
        guard !spec.sample_shape.isEmpty, spec.sample_shape.allSatisfy({ $0 > 0 }) else {
            throw fail("stoke_model.sample_shape", "\(spec.sample_shape) is not a list of positive extents")
        }
        var layers: [Layer] = []
        for (index, record) in spec.layers.enumerated() {
            layers.append(try record.layer(field: "stoke_model.layers[\(index)]", path: path))
        }
        var model: SequentialModel
        do {
            model = try SequentialModel(layers: layers, sampleShape: spec.sample_shape)
        } catch {
            throw fail("stoke_model.layers", error.description)
        }
        var arrays: [String: NamedArray] = [:]
        for array in contents.arrays { arrays[array.name] = array }
        for name in model.parameters.keys.sorted() {
            guard let expected = model.parameters[name] else { continue }
            guard let array = arrays.removeValue(forKey: name) else {
                throw fail("dataset \(name)", "missing (the layers need \(model.parameters.keys.sorted()))")
            }
            guard array.dtype == .f32 else { throw fail("dataset \(name)", "is \(array.dtype.rawValue), expected f32") }
            guard array.shape == expected.shape else {
                throw fail("dataset \(name)", "has shape \(array.shape), the layer needs \(expected.shape)")
            }
            let values: [Float]
            do { values = try array.values(as: Float.self) } catch { throw fail("dataset \(name)", error.description) }
            try model.setParameter(name, Tensor(shape: array.shape, floats: values))
        }
        if let extra = arrays.keys.sorted().first {
            throw fail("dataset \(extra)", "is not a parameter of the layers (expected \(model.parameters.keys.sorted()))")
        }
        var metadata: [String: String] = [:]
        if let text = contents.attributes["metadata"] {
            metadata = try decodeJSON([String: String].self, text, attribute: "metadata", path: path)
        }
        return (model, metadata)
    }

    /// Layer type names as they appear in files, for error messages.
    static let layerTypes = ["linear", "conv2d", "relu", "max_pool2d", "avg_pool2d", "flatten", "batch_norm", "dropout"]

    /// Decodes a JSON attribute, turning a decoding error into the dotted path of the field at fault.
    /// Infinities and NaN are read from the strings `json(_:)` writes for them.
    static func decodeJSON<T: Decodable>(_ type: T.Type, _ text: String, attribute: String, path: String) throws(EngineError) -> T {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return try decoder.decode(type, from: Data(text.utf8))
        } catch let error as DecodingError {
            func field(_ codingPath: [any CodingKey]) -> String {
                codingPath.reduce(attribute) { partial, key in
                    key.intValue.map { "\(partial)[\($0)]" } ?? "\(partial).\(key.stringValue)"
                }
            }
            switch error {
            case let .keyNotFound(key, context):
                throw .modelFile(path: path, field: field(context.codingPath + [key]), detail: "missing")
            case let .typeMismatch(expected, context):
                throw .modelFile(path: path, field: field(context.codingPath), detail: "is not a \(expected)")
            case let .valueNotFound(expected, context):
                throw .modelFile(path: path, field: field(context.codingPath), detail: "is null, expected a \(expected)")
            case let .dataCorrupted(context):
                throw .modelFile(path: path, field: field(context.codingPath), detail: "not valid JSON: \(context.debugDescription)")
            @unknown default:
                throw .modelFile(path: path, field: attribute, detail: "\(error)")
            }
        } catch {
            throw .modelFile(path: path, field: attribute, detail: "\(error)")
        }
    }

    /// Compact, key-sorted JSON text (sorted so the same model always writes the same attribute);
    /// infinities and NaN as strings, since JSON has no numbers for them.
    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

// MARK: - JSON records (snake_case keys, as in PyTorch's module arguments)

private struct FileHeader: Decodable {
    var format: String?
    var version: Int?
}

private struct ModelRecord: Codable {
    var format: String
    var version: Int
    var sample_shape: [Int]
    var layers: [LayerRecord]
    var input: String
    var output: String
    var opset: Int
    var parameters: [String]
}

/// One layer; only the keys its `type` uses are present.
private struct LayerRecord: Codable {
    var type: String
    var in_features: Int?
    var out_features: Int?
    var in_channels: Int?
    var out_channels: Int?
    var kernel_size: Int?
    var stride: Int?
    var padding: Int?
    var bias: Bool?
    var features: Int?
    var epsilon: Float?
    var probability: Float?

    init(_ layer: Layer) {
        type = ""
        switch layer {
        case let .linear(inFeatures, outFeatures, bias):
            type = "linear"; in_features = inFeatures; out_features = outFeatures; self.bias = bias
        case let .conv2d(inChannels, outChannels, kernelSize, stride, padding, bias):
            type = "conv2d"; in_channels = inChannels; out_channels = outChannels; kernel_size = kernelSize
            self.stride = stride; self.padding = padding; self.bias = bias
        case .relu:
            type = "relu"
        case let .maxPool2d(kernelSize, stride):
            type = "max_pool2d"; kernel_size = kernelSize; self.stride = stride
        case let .avgPool2d(kernelSize, stride):
            type = "avg_pool2d"; kernel_size = kernelSize; self.stride = stride
        case .flatten:
            type = "flatten"
        case let .batchNorm(features, epsilon):
            type = "batch_norm"; self.features = features; self.epsilon = epsilon
        case let .dropout(probability):
            type = "dropout"; self.probability = probability
        }
    }

    func layer(field: String, path: String) throws(EngineError) -> Layer {
        func fail(_ key: String, _ detail: String) -> EngineError { .modelFile(path: path, field: "\(field).\(key)", detail: detail) }
        func positive(_ key: String, _ value: Int?, default fallback: Int? = nil) throws(EngineError) -> Int {
            guard let value = value ?? fallback else { throw fail(key, "missing") }
            guard value > 0 else { throw fail(key, "\(value) is not positive") }
            return value
        }
        switch type {
        case "linear":
            return .linear(inFeatures: try positive("in_features", in_features), outFeatures: try positive("out_features", out_features),
                           bias: bias ?? true)
        case "conv2d":
            let padding = self.padding ?? 0
            guard padding >= 0 else { throw fail("padding", "\(padding) is negative") }
            return .conv2d(inChannels: try positive("in_channels", in_channels), outChannels: try positive("out_channels", out_channels),
                           kernelSize: try positive("kernel_size", kernel_size), stride: try positive("stride", stride, default: 1),
                           padding: padding, bias: bias ?? true)
        case "relu":
            return .relu
        case "max_pool2d":
            // No stride means PyTorch's default (the kernel size); kept absent so a round trip is exact.
            return .maxPool2d(kernelSize: try positive("kernel_size", kernel_size), stride: try stride.map { (value) throws(EngineError) in try positive("stride", value) })
        case "avg_pool2d":
            return .avgPool2d(kernelSize: try positive("kernel_size", kernel_size), stride: try stride.map { (value) throws(EngineError) in try positive("stride", value) })
        case "flatten":
            return .flatten
        case "batch_norm":
            let epsilon = self.epsilon ?? 1e-5
            guard epsilon > 0, epsilon.isFinite else { throw fail("epsilon", "\(epsilon) is not a positive number") }
            return .batchNorm(features: try positive("features", features), epsilon: epsilon)
        case "dropout":
            let probability = self.probability ?? 0.5
            guard (0..<1).contains(probability) else { throw fail("probability", "\(probability) is not in [0, 1)") }
            return .dropout(probability: probability)
        default:
            throw fail("type", "unknown layer type '\(type)' (known: \(SequentialModel.layerTypes.joined(separator: ", ")))")
        }
    }
}

extension Model {
    /// The first 8 bytes of every HDF5 file without a user block.
    static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Loads a model from an ONNX file or a Stoke HDF5 model file, told apart by content (the HDF5
    /// signature `\x89HDF\r\n\x1a\n`), not by file name.
    ///
    /// - Throws: `EngineError.io` if the file cannot be read; for HDF5 files `.modelFile` naming the
    ///   file and field; for ONNX files the errors of `load(onnx:)`.
    public static func load(path: String, options: OptimizationOptions = .init()) throws(EngineError) -> Model {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw EngineError.io(path: path, detail: "file does not exist or is not readable")
        }
        let head = [UInt8]((try? handle.read(upToCount: hdf5Signature.count)) ?? Data())
        try? handle.close()
        if head == hdf5Signature {
            return try loadWithMetadata(hdf5: path, options: options).model
        }
        return try load(onnx: path, options: options)
    }

    /// Loads a Stoke HDF5 model file of either format, told apart by `stoke_model.format`: a
    /// sequential model file (layer spec) or a graph model file (any graph, quantized ones too).
    ///
    /// - Throws: `EngineError.modelFile` naming the file and the field at fault.
    public static func loadWithMetadata(hdf5 path: String, options: OptimizationOptions = .init()) throws(EngineError)
        -> (model: Model, metadata: [String: String])
    {
        let contents: (arrays: [NamedArray], attributes: [String: String])
        do {
            contents = try ArrayFile.read(path)
        } catch {
            throw .modelFile(path: path, field: "file", detail: error.description)
        }
        if let text = contents.attributes["stoke_model"],
           (try? SequentialModel.decodeJSON(FileHeader.self, text, attribute: "stoke_model", path: path))?.format == graphFileFormat {
            return try loadGraphFile(path: path, contents: contents, options: options)
        }
        let (sequential, metadata) = try SequentialModel.loadWithMetadata(path: path)
        return (try sequential.model(options: options), metadata)
    }
}
