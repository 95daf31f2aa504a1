import Testing
@testable import StokeEngine

/// Models a file could hold that the passes and kernels must refuse (or survive), never trap on.
@Suite("hostile models")
struct HostileModelTests {
    @Test("Stoke's internal fused operators and stoke.* attributes are refused when a file spells them")
    func internalOperatorsRefused() throws {
        let fused = Node(name: "fused", opType: "StokeQLinearGemm", inputs: ["x", "w"], outputs: ["y"],
                         attributes: ["stoke.x_zero_point": .int(1 << 40)])
        let bytes = ONNXExport.serialize(graph: GraphBuilding.graph([fused], inputs: ["x"], outputs: ["y"],
                                                                    initializers: ["w": GraphBuilding.random([4, 4], seed: 1)]), opset: 17)
        #expect(throws: EngineError.unsupportedOperator(op: "StokeQLinearGemm", domain: "", node: "fused")) { try Model.load(onnxBytes: bytes) }
        let relu = Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["y"], attributes: ["stoke.y_zero_point": .int(300)])
        let tagged = ONNXExport.serialize(graph: GraphBuilding.graph([relu], inputs: ["x"], outputs: ["y"]), opset: 17)
        #expect(throws: EngineError.invalidModel("node 'relu' (Relu): attribute 'stoke.y_zero_point' is internal to Stoke")) {
            try Model.load(onnxBytes: tagged)
        }
    }

    @Test("a node without its first input or without an output is refused by name")
    func missingInputsAndOutputs() throws {
        let noInput = Node(name: "flat", opType: "Flatten", inputs: [], outputs: ["y"])
        #expect(throws: EngineError.invalidModel("node 'flat' (Flatten) has no first input")) {
            try Model(graph: GraphBuilding.graph([noInput], inputs: ["x"], outputs: ["y"]), opset: 17)
        }
        let relu = Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["y"])
        #expect(throws: EngineError.invalidModel("graph output 'ghost' is never produced")) {
            try Model(graph: GraphBuilding.graph([relu], inputs: ["x"], outputs: ["ghost"]), opset: 17)
        }
        let noOutput = Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: [])
        #expect(throws: EngineError.invalidModel("node 'relu' (Relu) has no output")) {
            try Model(graph: GraphBuilding.graph([noOutput], inputs: ["x"], outputs: ["y"]), opset: 17)
        }
    }

    @Test("a value defined twice (two nodes, or a node and an input or initializer) and an output listed twice are refused by name")
    func duplicateDefinitions() throws {
        let relu = Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["y"])
        let sigmoid = Node(name: "sigmoid", opType: "Sigmoid", inputs: ["x"], outputs: ["y"])
        let twice = ONNXExport.serialize(graph: GraphBuilding.graph([relu, sigmoid], inputs: ["x"], outputs: ["y"]), opset: 13)
        #expect(throws: EngineError.invalidModel("value 'y' is defined twice: by node 'relu' (Relu) and by node 'sigmoid' (Sigmoid)")) {
            try Model.load(onnxBytes: twice)
        }
        let overInput = Node(name: "neg", opType: "Neg", inputs: ["x"], outputs: ["x"])
        #expect(throws: EngineError.invalidModel("value 'x' is defined twice: by graph input 'x' and by node 'neg' (Neg)")) {
            try Model(graph: GraphBuilding.graph([overInput], inputs: ["x"], outputs: ["x"]), opset: 13)
        }
        let overWeight = Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["w"])
        #expect(throws: EngineError.invalidModel("value 'w' is defined twice: by initializer 'w' and by node 'relu' (Relu)")) {
            try Model(graph: GraphBuilding.graph([overWeight], inputs: ["x"], outputs: ["w"], initializers: ["w": GraphBuilding.random([4], seed: 3)]), opset: 13)
        }
        #expect(throws: EngineError.invalidModel("graph output 'y' is listed twice")) {
            try Model(graph: GraphBuilding.graph([relu], inputs: ["x"], outputs: ["y", "y"]), opset: 13)
        }
    }

    @Test("histogram calibration of values near the smallest floats gives a finite range", arguments: [CalibrationMethod.percentile(99.9), .mse])
    func tinyValuesCalibrate(method: CalibrationMethod) throws {
        let gemm = Node(name: "fc", opType: "Gemm", inputs: ["x", "w"], outputs: ["y"], attributes: ["transB": .int(1)])
        let model = try Model(graph: GraphBuilding.graph([gemm], inputs: ["x"], outputs: ["y"],
                                                         initializers: ["w": GraphBuilding.random([3, 4], seed: 2)]), opset: 17)
        let calibrator = try Calibrator(model: model, method: method)
        try calibrator.observe(["x": Tensor(shape: [2, 4], floats: [1e-38, -2e-38, 0, 3e-38, 1.5e-38, 0, -1e-38, 3e-38])])
        for range in try calibrator.table().ranges.values {
            #expect(range.lowerBound.isFinite && range.upperBound.isFinite && range.contains(0))
        }
    }
}
