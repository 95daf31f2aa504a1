import Testing
@testable import StokeEngine

@Suite("Dropout mask")
struct DropoutMaskTests {
    /// Dropout-7 (opsets 7-9, Caffe2 exports) types its mask like the input (float ones); from opset 10
    /// the mask is boolean, which the engine holds as int64 like every boolean.
    @Test("the inference mask is float ones before opset 10 and boolean (int64) ones from it", arguments: [(Int64(9), ElementType.float32), (13, .int64)])
    func maskType(opset: Int64, expected: ElementType) throws {
        let node = Node(name: "drop", opType: "Dropout", inputs: ["x"], outputs: ["y", "mask"])
        let model = try Model(graph: GraphBuilding.graph([node], inputs: ["x"], outputs: ["y", "mask"]), opset: opset)
        let x = GraphBuilding.random([2, 3], seed: 4)
        let outputs = try Session(model: model).run(["x": x])
        #expect(outputs["y"]?.floats == x.floats)
        let mask = try #require(outputs["mask"])
        #expect(mask.elementType == expected && mask.shape == [2, 3])
        #expect(expected == .float32 ? mask.floats == [Float](repeating: 1, count: 6) : mask.int64s == [Int64](repeating: 1, count: 6))
    }
}
