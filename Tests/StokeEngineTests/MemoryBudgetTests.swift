import Foundation
import StokeStore
import Testing
@testable import StokeEngine

/// Shapes a model computes from a few bytes of attributes (pads, repeats, shapes) are checked against
/// the memory budget before anything of that size is allocated, and `inspect`-style planning
/// (costs, memory plans) allocates no activations at all.
@Suite("memory budget of plans")
struct MemoryBudgetTests {
    /// 1 GiB: far below what the hostile models below ask for, far above what the small ones need.
    static let budget = MemoryBudget(bytes: 1 << 30)

    static func model(_ node: Node, initializers: [String: Tensor]) throws -> Model {
        try Model(graph: GraphBuilding.graph([node], inputs: ["x"], outputs: ["y"], initializers: initializers), opset: 13)
    }

    static let image = Tensor(shape: [2, 3, 8, 8], floats: [Float](repeating: 0.5, count: 2 * 3 * 8 * 8))

    /// Asserts that `body` throws `.memoryBudget` naming `node` and `op`.
    static func expectBudgetError(node: String, op: String, sourceLocation: SourceLocation = #_sourceLocation,
                                  _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("no error", sourceLocation: sourceLocation)
        } catch let error as EngineError {
            guard case let .memoryBudget(errorOp, errorNode, budget) = error else {
                Issue.record("expected a memory budget error, got \(error)", sourceLocation: sourceLocation)
                return
            }
            #expect(errorOp == op && errorNode == node, sourceLocation: sourceLocation)
            #expect(budget.budgetBytes == Self.budget.bytes, sourceLocation: sourceLocation)
            #expect("\(error)".hasPrefix("\(op) node '\(node)': "), sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("a Conv whose pads make a 51 GB output and a 600 GB im2col workspace is refused by name, not allocated")
    func hugeConvPads() throws {
        let conv = Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: ["pads": .ints([20_000, 20_000, 20_000, 20_000])])
        let model = try Self.model(conv, initializers: ["w": Tensor(shape: [4, 3, 3, 3], floats: [Float](repeating: 1, count: 108))])
        Self.expectBudgetError(node: "conv", op: "Conv") { _ = try Session(model: model, memoryBudget: Self.budget).run(["x": Self.image]) }
        // The same Conv with small pads runs under the same budget.
        let small = Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: ["pads": .ints([1, 1, 1, 1])])
        let smallModel = try Self.model(small, initializers: ["w": Tensor(shape: [4, 3, 3, 3], floats: [Float](repeating: 1, count: 108))])
        #expect(try Session(model: smallModel, memoryBudget: Self.budget).run(["x": Self.image])["y"]?.shape == [2, 4, 8, 8])
    }

    @Test("Pad and Tile outputs of tens of GB are refused by name under the budget")
    func padAndTile() throws {
        let pad = Node(name: "pad", opType: "Pad", inputs: ["x", "p"], outputs: ["y"])
        let padModel = try Self.model(pad, initializers: ["p": Tensor(shape: [8], int64s: [0, 0, 0, 0, 0, 0, 40_000, 40_000])])
        Self.expectBudgetError(node: "pad", op: "Pad") { _ = try Session(model: padModel, memoryBudget: Self.budget).run(["x": Self.image]) }
        let tile = Node(name: "tile", opType: "Tile", inputs: ["x", "r"], outputs: ["y"])
        let tileModel = try Self.model(tile, initializers: ["r": Tensor(shape: [4], int64s: [1, 1, 4000, 4000])])
        Self.expectBudgetError(node: "tile", op: "Tile") { _ = try Session(model: tileModel, memoryBudget: Self.budget).run(["x": Self.image]) }
        let expand = Node(name: "expand", opType: "Expand", inputs: ["x", "s"], outputs: ["y"])
        let expandModel = try Self.model(expand, initializers: ["s": Tensor(shape: [5], int64s: [1_000_000, 1, 1, 1, 1])])
        Self.expectBudgetError(node: "expand", op: "Expand") { _ = try Session(model: expandModel, memoryBudget: Self.budget).run(["x": Self.image]) }
    }

    @Test("a ConstantOfShape folded at plan time is checked before its values are made")
    func constantOfShape() throws {
        let node = Node(name: "fill", opType: "ConstantOfShape", inputs: ["x"], outputs: ["y"])
        let model = try Model(graph: GraphBuilding.graph([node], inputs: ["x"], outputs: ["y"]), opset: 13)
        Self.expectBudgetError(node: "fill", op: "ConstantOfShape") {
            _ = try Session(model: model, memoryBudget: Self.budget).run(["x": Tensor(shape: [2], int64s: [100_000, 100_000])])
        }
    }

    @Test("outputs that each fit but together exceed the budget are refused for the plan as a whole")
    func wholeArena() throws {
        let relu = Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["a"])
        let neg = Node(name: "neg", opType: "Neg", inputs: ["x"], outputs: ["b"])
        let model = try Model(graph: GraphBuilding.graph([relu, neg], inputs: ["x"], outputs: ["a", "b"]), opset: 13)
        let x = Tensor(shape: [1, 150_000], floats: [Float](repeating: 1, count: 150_000))
        let small = MemoryBudget(bytes: 1 << 20)
        do {
            _ = try Session(model: model, memoryBudget: small).run(["x": x])
            Issue.record("no error")
        } catch {
            let described = "\(error)"
            if case let .memoryBudget(op, node, budget) = error {
                #expect(op.isEmpty && node.isEmpty && budget.requestedBytes >= 1_200_000 && budget.budgetBytes == 1 << 20)
            } else {
                Issue.record("expected a memory budget error, got \(described)")
            }
            #expect(described.hasPrefix("the activations of 'test' for input shapes [1, 150000] needs 1.1 MiB"), "\(described)")
        }
        #expect(try Session(model: model, memoryBudget: MemoryBudget(bytes: 2 << 20)).run(["x": x])["b"]?.floats.first == -1)
    }

    @Test("declared input extents beyond any tensor, and Tile repeats that overflow, are refused instead of trapping")
    func overflowingShapes() throws {
        let tile = Node(name: "tile", opType: "Tile", inputs: ["x", "r"], outputs: ["y"])
        let model = try Model(graph: GraphBuilding.graph([tile], inputs: ["x"], outputs: ["y"],
                                                         initializers: ["r": Tensor(shape: [2], int64s: [1, 1 << 40])]), opset: 13)
        let session = Session(model: model, memoryBudget: Self.budget)
        #expect(throws: EngineError.shapeMismatch(op: "Tile", node: "tile", detail: "repeats [1, 1099511627776] of shape [1, 1073741824] overflow")) {
            try session.costs(inputShapes: ["x": [1, 1 << 30]])
        }
        #expect(throws: EngineError.badInput("'x' has shape [1, 4611686018427387904]: negative or more than 17179869184 elements")) {
            try session.memoryPlan(inputShapes: ["x": [1, 1 << 62]])
        }
    }

    @Test("costs and memory plans are planned for shapes only: a 19 GB Pad is described, not allocated")
    func shapesOnlyPlanning() throws {
        let pad = Node(name: "pad", opType: "Pad", inputs: ["x", "p"], outputs: ["y"])
        let model = try Self.model(pad, initializers: ["p": Tensor(shape: [8], int64s: [0, 0, 0, 0, 0, 0, 40_000, 40_000])])
        let session = Session(model: model, memoryBudget: Self.budget)
        let start = ContinuousClock.now
        let memory = try session.memoryPlan(inputShapes: ["x": [1, 3, 8, 8]])
        #expect(memory.arenaBytes >= 3 * 40_008 * 40_008 * 4)
        #expect(try session.costs(inputShapes: ["x": [1, 3, 8, 8]]).map(\.opType) == ["Pad"])
        // Zero-filling 19 GB would take seconds (and fail the budget); describing it takes microseconds.
        #expect(start.duration(to: .now) < .seconds(2))
        let conv = Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: ["pads": .ints([10_000, 10_000, 10_000, 10_000])])
        let convModel = try Self.model(conv, initializers: ["w": Tensor(shape: [4, 3, 3, 3], floats: [Float](repeating: 1, count: 108))])
        let macs = try Session(model: convModel, memoryBudget: Self.budget).costs(inputShapes: ["x": [1, 3, 8, 8]]).reduce(0) { $0 + $1.macs }
        #expect(macs == 4 * 20_006 * 20_006 * 27)
    }
}
