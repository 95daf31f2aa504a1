import ArgumentParser
import Foundation
import StokeBench
import StokeEngine
import StokeStore

struct Distill: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a small student from a teacher's soft targets (knowledge distillation).",
        discussion: """
            Loss: alpha · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · CE(labels); the teacher's logits come \
            from the engine on the same batches. With --eval it also trains the same student alone (same seed \
            and epochs) and reports teacher, student-alone and distilled accuracies.
            Example: stoke distill train.h5 --teacher teacher.h5 --arch mlp:784-64-10 -o student.h5 --eval test.h5
            """)

    @Argument(help: "The training store.") var store: String
    @Option(name: .long, help: "The teacher (.onnx or Stoke .h5 model).") var teacher: String
    @Option(name: .long, help: "The student: mlp:IN-H1-…-OUT or cnn:TOKENS (as stoke train).") var arch: String
    @Option(name: .shortAndLong, help: "The student model file to write (.h5).") var output: String
    @Option(name: .long, help: "Softmax temperature T.") var temperature: Float = DistillationDefaults.temperature
    @Option(name: .long, help: "Weight of the distillation term (1 − alpha weighs the labels).") var alpha: Float = DistillationDefaults.alpha
    @Option(name: .long, help: "Epochs.") var epochs = DistillationDefaults.epochs
    @Option(name: .long, help: "Samples per batch.") var batchSize = 128
    @Option(name: .long, help: "Learning rate (Adam).") var lr: Float = DistillationDefaults.learningRate
    @Option(name: .long, help: "Seed for weights and shuffling.") var seed: UInt64 = 0
    @Option(name: .long, help: "A test store: report teacher, student-alone and distilled accuracies.") var eval: String?
    @Flag(name: .long, help: "Run the teacher in dynamic INT8.") var teacherInt8 = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    func validate() throws {
        guard epochs > 0, batchSize > 0, lr > 0 else { throw UsageError("--epochs, --batch-size and --lr must be positive") }
        guard temperature > 0, (0...1).contains(alpha) else { throw UsageError("--temperature must be positive and --alpha in [0, 1]") }
        try Train.validateArch(arch)
        try checkOutputPath(output, inputs: [store, teacher, eval])
    }

    func run() throws {
        try reportingErrors {
            let teacherModel = teacherInt8 ? try loadModel(teacher).quantizedDynamic() : try loadModel(teacher)
            let trainStore = try Store(path: store)
            let field = try trainingField(of: trainStore, path: store)
            if let eval { try checkEvalStore(eval, field: field.name, sampleShape: field.sampleShape) }
            let layers = try Train.layers(arch, sampleShape: field.sampleShape, dropout: 0)
            guard let teacherInput = teacherModel.inputs.first?.name, let teacherOutput = teacherModel.outputs.first?.name else {
                throw UsageError("\(teacher): the teacher has no input or output")
            }
            let session = Session(model: teacherModel, context: processContext)
            var results: [String: Any] = ["epochs": epochs, "temperature": temperature, "alpha": alpha]

            func trainStudent(distilled: Bool) throws -> Trainer {
                var options = TrainingOptions()
                options.learningRate = lr
                options.schedule = .cosine(epochs: epochs)
                options.seed = seed
                return try fineTune(SequentialModel(layers: layers, sampleShape: field.sampleShape, seed: seed), store: store, options: options,
                                    epochs: epochs, seed: seed, batchSize: batchSize,
                                    teacher: distilled ? (session, teacherInput, teacherOutput, temperature, alpha) : nil) { epochNumber in
                    "\(distilled ? "distilling" : "student alone") \(epochNumber + 1)/\(epochs)"
                }
            }

            let distilled = try trainStudent(distilled: true)
            try distilled.model().save(to: output, metadata: ["distilled_from": teacher, "temperature": "\(temperature)", "alpha": "\(alpha)"])
            if let eval {
                var options = StreamingInference.Options()
                options.context = processContext
                options.batchSize = 512
                let teacherResult = try StreamingInference.run(model: teacherModel, storePath: eval, options: options)
                let alone = try trainStudent(distilled: false)
                results["teacher_accuracy"] = teacherResult.accuracy ?? 0
                results["student_alone_accuracy"] = try evaluateAccuracy(alone, storePath: eval, field: field.name, workers: 1)
                results["distilled_accuracy"] = try evaluateAccuracy(distilled, storePath: eval, field: field.name, workers: 1)
            }
            results["model"] = output
            if json {
                printJSON(results)
            } else {
                print("saved \(output)")
                if let teacherAccuracy = results["teacher_accuracy"] as? Double, let alone = results["student_alone_accuracy"] as? Double,
                   let distilledAccuracy = results["distilled_accuracy"] as? Double {
                    print(String(format: "accuracy: teacher %.2f%%, student alone %.2f%%, distilled student %.2f%%",
                                 teacherAccuracy * 100, alone * 100, distilledAccuracy * 100))
                }
            }
        }
    }
}
