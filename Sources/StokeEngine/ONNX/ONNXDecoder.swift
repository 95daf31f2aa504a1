/// Decodes ONNX protobuf messages (ModelProto, TensorProto) from bytes.
///
/// Field numbers follow onnx/onnx.proto3. Unknown fields are skipped, so newer producers still
/// load; malformed bytes raise `EngineError.malformedProtobuf` naming the field path.
enum ONNXDecoder {
    /// ONNX `TensorProto.DataType` codes.
    enum DataType {
        static let float = 1, uint8 = 2, int8 = 3, uint16 = 4, int16 = 5, int32 = 6, int64 = 7
        static let string = 8, bool = 9, float16 = 10, double = 11, uint32 = 12, uint64 = 13

        /// Bytes per element in `raw_data` for the types the engine accepts.
        static func rawByteCount(_ type: Int) -> Int? {
            switch type {
            case float, int32, uint32: return 4
            case int64, uint64, double: return 8
            case uint8, int8, bool: return 1
            case uint16, int16: return 2
            default: return nil
            }
        }
    }

    static func decodeModel(_ bytes: [UInt8]) throws(EngineError) -> ONNXModel {
        var reader = ProtobufReader(bytes: bytes, range: 0..<bytes.count, path: "ModelProto")
        var irVersion: Int64 = 0
        var producer = ""
        var opsets: [String: Int64] = [:]
        var graph: Graph?
        while let (number, wire) = try reader.readKey() {
            switch number {
            case 1: irVersion = try reader.readInt64(field: "ir_version", wire)
            case 2:
                try reader.expect(wire, .lengthDelimited, field: "producer_name")
                producer = try reader.readString(field: "producer_name")
            case 7:
                try reader.expect(wire, .lengthDelimited, field: "graph")
                var sub = try reader.readMessage(field: "graph")
                graph = try decodeGraph(&sub)
            case 8:
                try reader.expect(wire, .lengthDelimited, field: "opset_import")
                var sub = try reader.readMessage(field: "opset_import[\(opsets.count)]")
                var domain = ""
                var version: Int64 = 0
                while let (n, w) = try sub.readKey() {
                    switch n {
                    case 1:
                        try sub.expect(w, .lengthDelimited, field: "domain")
                        domain = try sub.readString(field: "domain")
                    case 2: version = try sub.readInt64(field: "version", w)
                    default: try sub.skip(w, field: n)
                    }
                }
                opsets[domain] = version
            default: try reader.skip(wire, field: number)
            }
        }
        guard let graph else {
            if bytes.isEmpty { throw EngineError.malformedProtobuf(field: "ModelProto", offset: 0, reason: "empty file") }
            throw EngineError.invalidModel("ModelProto has no graph (field 7)")
        }
        return ONNXModel(irVersion: irVersion, producerName: producer, opsetImports: opsets, graph: graph)
    }

    static func decodeGraph(_ reader: inout ProtobufReader) throws(EngineError) -> Graph {
        var name = ""
        var nodes: [Node] = []
        var initializers: [String: Tensor] = [:]
        var declaredInputs: [ValueInfo] = []
        var outputs: [ValueInfo] = []
        while let (number, wire) = try reader.readKey() {
            switch number {
            case 1:
                try reader.expect(wire, .lengthDelimited, field: "node")
                var sub = try reader.readMessage(field: "node[\(nodes.count)]")
                nodes.append(try decodeNode(&sub))
            case 2:
                try reader.expect(wire, .lengthDelimited, field: "name")
                name = try reader.readString(field: "name")
            case 5:
                try reader.expect(wire, .lengthDelimited, field: "initializer")
                var sub = try reader.readMessage(field: "initializer[\(initializers.count)]")
                let (tensorName, tensor) = try decodeTensor(&sub)
                initializers[tensorName] = tensor
            case 11:
                try reader.expect(wire, .lengthDelimited, field: "input")
                var sub = try reader.readMessage(field: "input[\(declaredInputs.count)]")
                declaredInputs.append(try decodeValueInfo(&sub))
            case 12:
                try reader.expect(wire, .lengthDelimited, field: "output")
                var sub = try reader.readMessage(field: "output[\(outputs.count)]")
                outputs.append(try decodeValueInfo(&sub))
            case 15:
                throw reader.error("sparse_initializer", "sparse initializers are not supported")
            default: try reader.skip(wire, field: number)
            }
        }
        // Before IR version 4 initializers were also listed as inputs; callers feed only the rest.
        let inputs = declaredInputs.filter { initializers[$0.name] == nil }
        return Graph(name: name, nodes: nodes, initializers: initializers, inputs: inputs, outputs: outputs)
    }

    static func decodeNode(_ reader: inout ProtobufReader) throws(EngineError) -> Node {
        var node = Node(name: "", opType: "", inputs: [], outputs: [])
        while let (number, wire) = try reader.readKey() {
            switch number {
            case 1:
                try reader.expect(wire, .lengthDelimited, field: "input")
                node.inputs.append(try reader.readString(field: "input"))
            case 2:
                try reader.expect(wire, .lengthDelimited, field: "output")
                node.outputs.append(try reader.readString(field: "output"))
            case 3:
                try reader.expect(wire, .lengthDelimited, field: "name")
                node.name = try reader.readString(field: "name")
            case 4:
                try reader.expect(wire, .lengthDelimited, field: "op_type")
                node.opType = try reader.readString(field: "op_type")
            case 5:
                try reader.expect(wire, .lengthDelimited, field: "attribute")
                var sub = try reader.readMessage(field: "attribute[\(node.attributes.count)]")
                let (name, value) = try decodeAttribute(&sub)
                node.attributes[name] = value
            case 7:
                try reader.expect(wire, .lengthDelimited, field: "domain")
                node.domain = try reader.readString(field: "domain")
            default: try reader.skip(wire, field: number)
            }
        }
        if node.opType.isEmpty { throw reader.error("op_type", "node has no op_type") }
        if node.name.isEmpty { node.name = "\(node.opType)->\(node.outputs.first ?? "?")" }
        return node
    }

    static func decodeAttribute(_ reader: inout ProtobufReader) throws(EngineError) -> (String, AttributeValue) {
        var name = ""
        var type = 0
        var f: Float = 0, i: Int64 = 0, s = "", t: Tensor?
        var floats: [Float] = [], ints: [Int64] = [], strings: [String] = [], tensors: [Tensor] = []
        var hasGraph = false
        while let (number, wire) = try reader.readKey() {
            switch number {
            case 1:
                try reader.expect(wire, .lengthDelimited, field: "name")
                name = try reader.readString(field: "name")
            case 20: type = Int(try reader.readInt32(field: "type", wire))
            case 2:
                try reader.expect(wire, .fixed32, field: "f")
                f = Float(bitPattern: try reader.readFixed32(field: "f"))
            case 3: i = try reader.readInt64(field: "i", wire)
            case 4:
                try reader.expect(wire, .lengthDelimited, field: "s")
                s = try reader.readString(field: "s")
            case 5:
                try reader.expect(wire, .lengthDelimited, field: "t")
                var sub = try reader.readMessage(field: "t")
                t = try decodeTensor(&sub).1
            case 6, 11:
                try reader.skip(wire, field: number)
                hasGraph = true
            case 7: try reader.readRepeatedFloats(field: "floats", wire, into: &floats)
            case 8: try reader.readRepeatedVarints(field: "ints", wire, into: &ints)
            case 9:
                try reader.expect(wire, .lengthDelimited, field: "strings")
                strings.append(try reader.readString(field: "strings"))
            case 10:
                try reader.expect(wire, .lengthDelimited, field: "tensors")
                var sub = try reader.readMessage(field: "tensors[\(tensors.count)]")
                tensors.append(try decodeTensor(&sub).1)
            default: try reader.skip(wire, field: number)
            }
        }
        let value: AttributeValue
        switch type {
        case 1: value = .float(f)
        case 2: value = .int(i)
        case 3: value = .string(s)
        case 4:
            guard let t else { throw reader.error("t", "TENSOR attribute '\(name)' has no tensor") }
            value = .tensor(t)
        case 5, 10: value = .graph
        case 6: value = .floats(floats)
        case 7: value = .ints(ints)
        case 8: value = .strings(strings)
        case 9: value = .tensors(tensors)
        case 0:
            // Very old producers omit `type`; infer it from the field that was set.
            if let t { value = .tensor(t) }
            else if !ints.isEmpty { value = .ints(ints) }
            else if !floats.isEmpty { value = .floats(floats) }
            else if !strings.isEmpty { value = .strings(strings) }
            else if hasGraph { value = .graph }
            else if !s.isEmpty { value = .string(s) }
            else if f != 0 { value = .float(f) }
            else { value = .int(i) }
        default: value = .unsupported(type: type)
        }
        return (name, value)
    }

    static func decodeValueInfo(_ reader: inout ProtobufReader) throws(EngineError) -> ValueInfo {
        var info = ValueInfo(name: "", onnxElementType: 0, shape: nil)
        while let (number, wire) = try reader.readKey() {
            switch number {
            case 1:
                try reader.expect(wire, .lengthDelimited, field: "name")
                info.name = try reader.readString(field: "name")
            case 2:
                try reader.expect(wire, .lengthDelimited, field: "type")
                var typeProto = try reader.readMessage(field: "type")
                while let (n, w) = try typeProto.readKey() {
                    guard n == 1 else { try typeProto.skip(w, field: n); continue }
                    try typeProto.expect(w, .lengthDelimited, field: "tensor_type")
                    var tensorType = try typeProto.readMessage(field: "tensor_type")
                    while let (tn, tw) = try tensorType.readKey() {
                        switch tn {
                        case 1: info.onnxElementType = Int(try tensorType.readInt32(field: "elem_type", tw))
                        case 2:
                            try tensorType.expect(tw, .lengthDelimited, field: "shape")
                            var shapeProto = try tensorType.readMessage(field: "shape")
                            var dims: [Dimension] = []
                            while let (sn, sw) = try shapeProto.readKey() {
                                guard sn == 1 else { try shapeProto.skip(sw, field: sn); continue }
                                try shapeProto.expect(sw, .lengthDelimited, field: "dim")
                                var dimProto = try shapeProto.readMessage(field: "dim[\(dims.count)]")
                                var dim = Dimension.unknown
                                while let (dn, dw) = try dimProto.readKey() {
                                    switch dn {
                                    case 1: dim = .fixed(Int(try dimProto.readInt64(field: "dim_value", dw)))
                                    case 2:
                                        try dimProto.expect(dw, .lengthDelimited, field: "dim_param")
                                        dim = .symbolic(try dimProto.readString(field: "dim_param"))
                                    default: try dimProto.skip(dw, field: dn)
                                    }
                                }
                                dims.append(dim)
                            }
                            info.shape = dims
                        default: try tensorType.skip(tw, field: tn)
                        }
                    }
                }
            default: try reader.skip(wire, field: number)
            }
        }
        return info
    }

    /// Decodes a TensorProto into a dense engine tensor, from `raw_data` or the typed fields.
    static func decodeTensor(_ reader: inout ProtobufReader) throws(EngineError) -> (String, Tensor) {
        var dims: [Int64] = []
        var dataType = 0
        var name = ""
        var raw: Range<Int>?
        var floatData: [Float] = []
        var intData: [Int64] = []  // int32_data, int64_data and uint64_data all land here
        var doubleData: [Double] = []
        var external = false
        while let (number, wire) = try reader.readKey() {
            switch number {
            case 1: try reader.readRepeatedVarints(field: "dims", wire, into: &dims)
            case 2: dataType = Int(try reader.readInt32(field: "data_type", wire))
            case 4: try reader.readRepeatedFloats(field: "float_data", wire, into: &floatData)
            case 5:
                var values: [Int64] = []
                try reader.readRepeatedVarints(field: "int32_data", wire, into: &values)
                // int32_data holds int32 values and also the bit patterns of narrower types.
                intData += values.map { Int64(Int32(truncatingIfNeeded: $0)) }
            case 7: try reader.readRepeatedVarints(field: "int64_data", wire, into: &intData)
            case 8:
                try reader.expect(wire, .lengthDelimited, field: "name")
                name = try reader.readString(field: "name")
            case 9:
                try reader.expect(wire, .lengthDelimited, field: "raw_data")
                raw = try reader.readLengthDelimited(field: "raw_data")
            case 10: try reader.readRepeatedDoubles(field: "double_data", wire, into: &doubleData)
            case 11: try reader.readRepeatedVarints(field: "uint64_data", wire, into: &intData)
            case 13:
                try reader.skip(wire, field: number)
                external = true
            case 14:
                if try reader.readInt32(field: "data_location", wire) == 1 { external = true }
            default: try reader.skip(wire, field: number)
            }
        }
        if external { throw EngineError.externalDataUnsupported(tensor: name) }
        var shape: [Int] = []
        for dim in dims {
            guard dim >= 0, dim <= Int64(Int32.max) else { throw reader.error("dims", "dimension \(dim) of tensor '\(name)' is out of range") }
            shape.append(Int(dim))
        }
        var count = 1
        for extent in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow, product <= 1 << 40 else { throw reader.error("dims", "tensor '\(name)' has too many elements") }
            count = product
        }

        let isFloat = dataType == DataType.float || dataType == DataType.double
        let isInteger = [DataType.uint8, DataType.int8, DataType.uint16, DataType.int16, DataType.int32,
                         DataType.int64, DataType.bool, DataType.uint32, DataType.uint64].contains(dataType)
        guard isFloat || isInteger else { throw EngineError.unsupportedElementType(tensor: name, onnxType: dataType) }
        let tensor: Tensor
        if let raw {
            guard let size = DataType.rawByteCount(dataType) else { throw EngineError.unsupportedElementType(tensor: name, onnxType: dataType) }
            guard raw.count == count * size else {
                throw reader.error("raw_data", "tensor '\(name)' has \(raw.count) bytes of raw_data, shape \(shape) needs \(count * size)", at: raw.lowerBound)
            }
            tensor = Tensor(zeros: isFloat ? .float32 : engineIntegerType(dataType), shape: shape)
            if [DataType.float, DataType.int64, DataType.uint64, DataType.uint8, DataType.int8].contains(dataType) {
                tensor.storage.copyBytes(reader.bytes, range: raw)  // same layout: little-endian, native width
            } else if dataType == DataType.double {
                tensor.storage.copy(from: doublesRaw(reader.bytes, raw, count: count))
            } else {
                tensor.storage.copy(from: widenRaw(reader.bytes, raw, type: dataType, count: count))
            }
        } else if dataType == DataType.float {
            guard floatData.count == count else { throw reader.error("float_data", "tensor '\(name)' has \(floatData.count) values, shape \(shape) needs \(count)") }
            tensor = Tensor(shape: shape, floats: floatData)
        } else if dataType == DataType.double {
            guard doubleData.count == count else { throw reader.error("double_data", "tensor '\(name)' has \(doubleData.count) values, shape \(shape) needs \(count)") }
            tensor = Tensor(shape: shape, floats: doubleData.map { Float($0) })
        } else {
            guard intData.count == count else { throw reader.error("int64_data", "tensor '\(name)' has \(intData.count) values, shape \(shape) needs \(count)") }
            switch engineIntegerType(dataType) {
            case .uint8: tensor = Tensor(shape: shape, uint8s: intData.map { UInt8(truncatingIfNeeded: $0) })
            case .int8: tensor = Tensor(shape: shape, int8s: intData.map { Int8(truncatingIfNeeded: $0) })
            default: tensor = Tensor(shape: shape, int64s: intData)
            }
        }
        return (name, tensor)
    }

    /// The engine type an ONNX integer type loads as: int8 and uint8 stay (quantized values), the
    /// other integer types widen to int64.
    static func engineIntegerType(_ dataType: Int) -> ElementType {
        switch dataType {
        case DataType.uint8: return .uint8
        case DataType.int8: return .int8
        default: return .int64
        }
    }

    /// Converts little-endian raw bytes of a narrow or double type to the engine's element type.
    private static func doublesRaw(_ bytes: [UInt8], _ range: Range<Int>, count: Int) -> [Float] {
        (0..<count).map { index in
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(bytes[range.lowerBound + 8 * index + k]) << (8 * UInt64(k)) }
            return Float(Double(bitPattern: v))
        }
    }

    private static func widenRaw(_ bytes: [UInt8], _ range: Range<Int>, type: Int, count: Int) -> [Int64] {
        var out = [Int64](repeating: 0, count: count)
        let base = range.lowerBound
        func le(_ offset: Int, _ width: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in 0..<width { v |= UInt64(bytes[offset + k]) << (8 * UInt64(k)) }
            return v
        }
        for index in 0..<count {
            switch type {
            case DataType.bool: out[index] = Int64(bytes[base + index])
            case DataType.uint16: out[index] = Int64(le(base + 2 * index, 2))
            case DataType.int16: out[index] = Int64(Int16(truncatingIfNeeded: le(base + 2 * index, 2)))
            case DataType.int32: out[index] = Int64(Int32(truncatingIfNeeded: le(base + 4 * index, 4)))
            case DataType.uint32: out[index] = Int64(le(base + 4 * index, 4))
            default: out[index] = 0
            }
        }
        return out
    }
}
