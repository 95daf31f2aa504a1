/// Appends protobuf wire-format fields to a byte array.
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ wireType: ProtobufReader.WireType) {
        varint(UInt64(field << 3 | wireType.rawValue))
    }

    mutating func int(_ field: Int, _ value: Int64) {
        key(field, .varint)
        varint(UInt64(bitPattern: value))
    }

    mutating func float(_ field: Int, _ value: Float) {
        key(field, .fixed32)
        let bits = value.bitPattern
        for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt32(k)))) }
    }

    mutating func data(_ field: Int, _ payload: [UInt8]) {
        key(field, .lengthDelimited)
        varint(UInt64(payload.count))
        bytes += payload
    }

    mutating func string(_ field: Int, _ value: String) { data(field, Array(value.utf8)) }

    mutating func message(_ field: Int, _ build: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        build(&inner)
        data(field, inner.bytes)
    }

    mutating func packedInts(_ field: Int, _ values: [Int64]) {
        var inner = ProtobufWriter()
        for v in values { inner.varint(UInt64(bitPattern: v)) }
        data(field, inner.bytes)
    }

    mutating func packedFloats(_ field: Int, _ values: [Float]) {
        var inner = ProtobufWriter()
        for v in values {
            let bits = v.bitPattern
            for k in 0..<4 { inner.bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt32(k)))) }
        }
        data(field, inner.bytes)
    }
}

/// Serializes graphs as ONNX ModelProto bytes that onnxruntime and PyTorch tooling load.
public enum ONNXExport {
    /// ONNX IR version written (8 = ONNX 1.10+, understood by onnxruntime >= 1.10).
    static let irVersion: Int64 = 8

    /// Encodes `graph` as a self-contained `.onnx` file (weights embedded as raw_data).
    ///
    /// Activations fused by the engine's optimizer are written back as separate standard nodes.
    public static func serialize(graph: Graph, opset: Int64, producer: String = "stoke") -> [UInt8] {
        serialize(graph: graph, opset: opset, producer: producer, int32Initializers: [])
    }

    /// `serialize(graph:opset:producer:)` writing the named int64 initializers as ONNX int32 (the
    /// engine widens int32 to int64 on load; DequantizeLinear of a bias needs int32 in the file).
    static func serialize(graph: Graph, opset: Int64, producer: String = "stoke", int32Initializers: Set<String>) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.int(1, irVersion)
        writer.string(2, producer)
        writer.message(7) { encodeGraph(unfused(graph), int32Initializers: int32Initializers, into: &$0) }
        writer.message(8) { opsetWriter in
            opsetWriter.string(1, "")
            opsetWriter.int(2, opset)
        }
        return writer.bytes
    }

    /// Encodes a tensor as a serialized `TensorProto` (the `.pb` files of ONNX test data).
    public static func serialize(tensor: Tensor, name: String) -> [UInt8] {
        var writer = ProtobufWriter()
        encodeTensor(tensor, name: name, into: &writer)
        return writer.bytes
    }

    /// Splits engine-fused activations back into standard ONNX nodes.
    static func unfused(_ graph: Graph) -> Graph {
        var result = graph
        result.nodes = []
        for var node in graph.nodes {
            // A fused MaxPool comes last: Conv → [activation] → MaxPool.
            var pool: Node?
            if node.attributes.removeValue(forKey: fusedMaxPoolKey) != nil {
                let finalOutput = node.outputs[0]
                let intermediate = "\(finalOutput).before_maxpool"
                node.outputs[0] = intermediate
                pool = Node(name: "\(node.name).maxpool", opType: "MaxPool", inputs: [intermediate], outputs: [finalOutput],
                            attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])
            }
            defer { if let pool { result.nodes.append(pool) } }
            guard case let .string(activation)? = node.attributes.removeValue(forKey: fusedActivationKey) else {
                result.nodes.append(node)
                continue
            }
            let alpha = node.attributes.removeValue(forKey: fusedAlphaKey)
            let finalOutput = node.outputs[0]
            let intermediate = "\(finalOutput).before_\(activation.lowercased())"
            node.outputs[0] = intermediate
            result.nodes.append(node)
            var attributes: [String: AttributeValue] = [:]
            if activation == "LeakyRelu", let alpha { attributes["alpha"] = alpha }
            result.nodes.append(Node(name: "\(node.name).\(activation.lowercased())", opType: activation,
                                     inputs: [intermediate], outputs: [finalOutput], attributes: attributes))
        }
        return result
    }

    static func encodeGraph(_ graph: Graph, int32Initializers: Set<String> = [], into writer: inout ProtobufWriter) {
        for node in graph.nodes {
            writer.message(1) { w in
                for input in node.inputs { w.string(1, input) }
                for output in node.outputs { w.string(2, output) }
                w.string(3, node.name)
                w.string(4, node.opType)
                if !node.domain.isEmpty { w.string(7, node.domain) }
                for (name, value) in node.attributes.sorted(by: { $0.key < $1.key }) {
                    w.message(5) { encodeAttribute(name, value, into: &$0) }
                }
            }
        }
        writer.string(2, graph.name.isEmpty ? "stoke" : graph.name)
        for (name, tensor) in graph.initializers.sorted(by: { $0.key < $1.key }) {
            writer.message(5) { encodeTensor(tensor, name: name, asInt32: int32Initializers.contains(name), into: &$0) }
        }
        for input in graph.inputs { writer.message(11) { encodeValueInfo(input, into: &$0) } }
        for output in graph.outputs { writer.message(12) { encodeValueInfo(output, into: &$0) } }
    }

    static func encodeAttribute(_ name: String, _ value: AttributeValue, into w: inout ProtobufWriter) {
        w.string(1, name)
        switch value {
        case let .float(f): w.float(2, f); w.int(20, 1)
        case let .int(i): w.int(3, i); w.int(20, 2)
        case let .string(s): w.string(4, s); w.int(20, 3)
        case let .tensor(t): w.message(5) { encodeTensor(t, name: name, into: &$0) }; w.int(20, 4)
        case let .floats(f): w.packedFloats(7, f); w.int(20, 6)
        case let .ints(i): w.packedInts(8, i); w.int(20, 7)
        case let .strings(s): for item in s { w.string(9, item) }; w.int(20, 8)
        case let .tensors(ts): for t in ts { w.message(10) { encodeTensor(t, name: "", into: &$0) } }; w.int(20, 9)
        case .graph, .unsupported: w.int(20, 0)
        }
    }

    static func encodeTensor(_ tensor: Tensor, name: String, asInt32: Bool = false, into w: inout ProtobufWriter) {
        if !tensor.shape.isEmpty { w.packedInts(1, tensor.shape.map { Int64($0) }) }
        if asInt32 && tensor.elementType == .int64 {
            w.int(2, Int64(ONNXDecoder.DataType.int32))
            w.string(8, name)
            var bytes: [UInt8] = []
            bytes.reserveCapacity(4 * tensor.count)
            for value in tensor.int64s {
                let narrow = UInt32(bitPattern: Int32(clamping: value))
                for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: narrow >> (8 * UInt32(k)))) }
            }
            w.data(9, bytes)
            return
        }
        w.int(2, Int64(tensor.elementType.onnxCode))
        w.string(8, name)
        w.data(9, tensor.storage.array(of: UInt8.self, count: tensor.count * tensor.elementType.byteCount))
    }

    static func encodeValueInfo(_ info: ValueInfo, into w: inout ProtobufWriter) {
        w.string(1, info.name)
        w.message(2) { typeWriter in
            typeWriter.message(1) { tensorType in
                tensorType.int(1, Int64(info.onnxElementType == 0 ? ONNXDecoder.DataType.float : info.onnxElementType))
                if let shape = info.shape {
                    tensorType.message(2) { shapeWriter in
                        for dim in shape {
                            shapeWriter.message(1) { dimWriter in
                                switch dim {
                                case let .fixed(value): dimWriter.int(1, Int64(value))
                                case let .symbolic(name): dimWriter.string(2, name)
                                case .unknown: break
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
