import Foundation
import StokeTestSupport
import Testing
@testable import StokeEngine

/// QuantizeLinear/DequantizeLinear reference semantics, the element types behind them, and static
/// quantization (calibration, the QDQ graph, its fusion, export to onnxruntime).
@Suite("static quantization", .serialized)
struct StaticQuantizationTests {
    // MARK: - QuantizeLinear / DequantizeLinear

    /// Ties and saturation, the cases numpy's `clip(rint(x / s) + zp)` decides (values computed with
    /// numpy 1.x: rint rounds half to even).
    static let tieInputs: [Float] = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 127.5, 128.5, 300, -300, 0.3, -0.7]

    @Test("QuantizeLinear per tensor rounds half to even and saturates, like numpy, for uint8 and int8")
    func quantizePerTensor() throws {
        let x = Tensor(shape: [12], floats: Self.tieInputs)
        let scale = Tensor(shape: [], floats: [0.5])
        let u8 = try GraphBuilding.runNode("QuantizeLinear", [x, scale, Tensor(shape: [], uint8s: [3])], opset: 13, constantInputs: [1, 2])
        #expect(u8.elementType == .uint8)
        #expect(u8.uint8s == [4, 6, 8, 2, 0, 0, 255, 255, 255, 0, 4, 2])
        let s8 = try GraphBuilding.runNode("QuantizeLinear", [x, scale, Tensor(shape: [], int8s: [-2])], opset: 10, constantInputs: [1, 2])
        #expect(s8.elementType == .int8)
        #expect(s8.int8s == [-1, 1, 3, -3, -5, -7, 127, 127, 127, -128, -1, -3])
        // No zero point: uint8 with zero point 0.
        let implicit = try GraphBuilding.runNode("QuantizeLinear", [x, scale], opset: 13, constantInputs: [1])
        #expect(implicit.uint8s == [1, 3, 5, 0, 0, 0, 255, 255, 255, 0, 1, 0])
    }

    @Test("QuantizeLinear and DequantizeLinear per axis use each channel's scale and zero point")
    func perAxis() throws {
        let x = Tensor(shape: [2, 3], floats: [1.0, 2.5, -3.0, 0.25, -0.75, 5.0])
        let scales = Tensor(shape: [2], floats: [0.5, 0.25]), zeros = Tensor(shape: [2], uint8s: [128, 10])
        let q = try GraphBuilding.runNode("QuantizeLinear", [x, scales, zeros], attributes: ["axis": .int(0)], opset: 13, constantInputs: [1, 2])
        #expect(q.uint8s == [130, 133, 122, 11, 7, 30])
        let dq = try GraphBuilding.runNode("DequantizeLinear", [q, scales, zeros], attributes: ["axis": .int(0)], opset: 13, constantInputs: [1, 2])
        #expect(dq.floats == [1.0, 2.5, -3.0, 0.25, -0.75, 5.0])
        // int8 weights along the last axis, as a Gemm's [K, N] weight is quantized.
        let w = Tensor(shape: [2, 2], int8s: [-127, 5, 127, -3])
        let wScales = Tensor(shape: [2], floats: [0.01, 0.5])
        let dw = try GraphBuilding.runNode("DequantizeLinear", [w, wScales, Tensor(shape: [2], int8s: [0, 0])],
                                           attributes: ["axis": .int(-1)], opset: 13, constantInputs: [1, 2])
        #expect(dw.floats == [-1.27, 2.5, 1.27, -1.5])
    }

    @Test("DequantizeLinear of int32 (a quantized bias) and of an int8 input without zero point")
    func dequantizeInt32() throws {
        let bias = Tensor(shape: [3], int64s: [-1000, 0, 70000])
        let y = try GraphBuilding.runNode("DequantizeLinear", [bias, Tensor(shape: [3], floats: [0.001, 1, 0.5])],
                                          attributes: ["axis": .int(0)], opset: 13, constantInputs: [1])
        #expect(y.floats == [-1, 0, 35000])
        let z = try GraphBuilding.runNode("DequantizeLinear", [Tensor(shape: [2], int8s: [-128, 127]), Tensor(shape: [], floats: [2])],
                                          opset: 10, constantInputs: [1])
        #expect(z.floats == [-256, 254])
    }

    @Test("malformed Q/DQ nodes fail clearly: missing scale, wrong zero-point type, mismatched axis")
    func malformed() throws {
        let x = Tensor(shape: [2, 3], floats: [Float](repeating: 1, count: 6))
        func message(_ body: () throws -> Tensor) -> String {
            do { _ = try body(); return "" } catch { return "\(error)" }
        }
        let missing = message { try GraphBuilding.runNode("QuantizeLinear", [x], opset: 13) }
        #expect(missing.contains("scale"))
        let wrongType = message {
            try GraphBuilding.runNode("QuantizeLinear", [x, Tensor(shape: [], floats: [1]), Tensor(shape: [], int64s: [0])],
                                      opset: 13, constantInputs: [1, 2])
        }
        #expect(wrongType.contains("zero point") && wrongType.contains("int64"))
        let mismatch = message {
            try GraphBuilding.runNode("DequantizeLinear", [Tensor(shape: [2], uint8s: [1, 2]), Tensor(shape: [], floats: [1]),
                                                           Tensor(shape: [], int8s: [0])], opset: 13, constantInputs: [1, 2])
        }
        #expect(mismatch.contains("int8") && mismatch.contains("uint8"))
        let axis = message {
            try GraphBuilding.runNode("QuantizeLinear", [x, Tensor(shape: [4], floats: [1, 1, 1, 1])],
                                      attributes: ["axis": .int(1)], opset: 13, constantInputs: [1])
        }
        #expect(axis.contains("per-axis"))
        let zeroScale = message {
            try GraphBuilding.runNode("QuantizeLinear", [x, Tensor(shape: [], floats: [0])], opset: 13, constantInputs: [1])
        }
        #expect(zeroScale.contains("positive"))
    }

    @Test("operators without quantized kernels refuse uint8 inputs by name instead of misreading them")
    func refusesQuantizedInputs() throws {
        let q = Tensor(shape: [4], uint8s: [1, 2, 3, 4])
        do {
            _ = try GraphBuilding.runNode("Relu", [q])
            Issue.record("Relu accepted a uint8 tensor")
        } catch {
            #expect("\(error)".contains("uint8") && "\(error)".contains("Relu"))
        }
        // Data movement is fine on quantized tensors.
        let flat = try GraphBuilding.runNode("Reshape", [Tensor(shape: [2, 2], uint8s: [1, 2, 3, 4]), Tensor(shape: [1], int64s: [4])],
                                             constantInputs: [1])
        #expect(flat.elementType == .uint8 && flat.uint8s == [1, 2, 3, 4])
    }

    @Test("uint8 and int8 tensors survive the ONNX encoder and decoder")
    func tensorRoundTrip() throws {
        let u = Tensor(shape: [2, 2], uint8s: [0, 1, 128, 255]), s = Tensor(shape: [3], int8s: [-128, 0, 127])
        let (_, u2) = try Tensor.decodeONNX(ONNXExport.serialize(tensor: u, name: "u"))
        let (_, s2) = try Tensor.decodeONNX(ONNXExport.serialize(tensor: s, name: "s"))
        #expect(u2.elementType == .uint8 && u2.shape == [2, 2] && u2.uint8s == [0, 1, 128, 255])
        #expect(s2.elementType == .int8 && s2.int8s == [-128, 0, 127])
    }
}
