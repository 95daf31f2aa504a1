import Dispatch
import Synchronization
import Testing
@testable import StokeEngine

/// Sessions and trainers hold their own `ExecutionContext`: thread counts and GEMM backends of one
/// never reach another in the same process, and `fromEnvironment` refuses bad values by name.
@Suite("ExecutionContext")
struct ExecutionContextTests {
    /// The benchmark CNN (c16k3p1-relu-mp2-c32k3p1-relu-mp2-fc10) and MLP (784-512-256-10), with the
    /// batches they are fed: large enough that 2 threads split their GEMMs, convolutions and pooling.
    static func models() throws -> [(name: String, model: Model, input: Tensor)] {
        let cnnLayers = try ArchitectureSpec.layers("cnn:c16k3p1-relu-mp2-c32k3p1-relu-mp2-fc10", sampleShape: [1, 28, 28])
        let cnn = try SequentialModel(layers: cnnLayers, sampleShape: [1, 28, 28], seed: 3).model()
        let mlpLayers = try ArchitectureSpec.layers("mlp:784-512-256-10", sampleShape: [784])
        let mlp = try SequentialModel(layers: mlpLayers, sampleShape: [784], seed: 4).model()
        return [("cnn", cnn, GraphBuilding.random([8, 1, 28, 28], seed: 11)), ("mlp", mlp, GraphBuilding.random([64, 784], seed: 12))]
    }

    /// The contexts compared: 1 and 2 threads on the default backend, and every backend this
    /// machine's kernel set can run (at 2 threads).
    static func contexts() -> [ExecutionContext] {
        [ExecutionContext.default.with(threads: 1), ExecutionContext.default.with(threads: 2)]
            + GemmBackend.allCases.filter(\.isAvailable).map { ExecutionContext(threads: 2, gemm: .backend($0), conv: ExecutionContext.default.conv) }
    }

    static func output(_ model: Model, _ input: Tensor, _ context: ExecutionContext) throws -> [Float] {
        let session = Session(model: model, context: context)
        #expect(session.context == context && session.threads == context.threads)
        return try #require(try session.run([model.inputs[0].name: input]).values.first).floats
    }

    @Test("sessions with different threads and GEMM backends, run concurrently, match each run alone bit for bit")
    func concurrentSessionsMatchEachAlone() throws {
        let models = try Self.models(), contexts = Self.contexts()
        // Alone, one after another.
        var alone: [[Float]] = []
        for (_, model, input) in models { for context in contexts { alone.append(try Self.output(model, input, context)) } }
        // Backends round differently, and so may thread counts (OpenBLAS's MLP outputs differ in the
        // last bits between 1 and 2 threads), so each is compared with itself alone: before contexts,
        // a 1-thread session planned beside a 2-thread one took the other's count.
        // All at once: every (model, context) pair on its own thread, each running several times.
        struct Job: @unchecked Sendable { let model: Model; let input: Tensor; let context: ExecutionContext; let expected: [Float]; let label: String }
        let jobs: [Job] = models.enumerated().flatMap { modelIndex, entry in
            contexts.enumerated().map { contextIndex, context in
                Job(model: entry.model, input: entry.input, context: context, expected: alone[modelIndex * contexts.count + contextIndex],
                    label: "\(entry.name) threads=\(context.threads) gemm=\(context.gemm.rawValue)")
            }
        }
        let mismatches = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: jobs.count) { index in
            let job = jobs[index]
            do {
                let session = Session(model: job.model, context: job.context)
                for round in 0..<4 {
                    let result = try session.run([job.model.inputs[0].name: job.input]).values.first?.floats ?? []
                    if result != job.expected { mismatches.withLock { $0.append("\(job.label) round \(round)") } }
                }
            } catch {
                mismatches.withLock { $0.append("\(job.label): \(error)") }
            }
        }
        #expect(mismatches.withLock { $0 }.isEmpty, "\(mismatches.withLock { $0 })")
    }

    @Test("a trainer with 1 thread next to a session with 2 changes neither's results")
    func trainerBesideSession() throws {
        let layers = try ArchitectureSpec.layers("cnn:c16k3p1-relu-mp2-c32k3p1-relu-mp2-fc10", sampleShape: [1, 28, 28])
        let samples = 32
        let x = GraphBuilding.randomFloats(samples * 784, seed: 21)
        let labels = (0..<samples).map { Int64($0 % 10) }
        @Sendable func train() throws -> [Float] {
            let trainer = try Trainer(model: try SequentialModel(layers: layers, sampleShape: [1, 28, 28], seed: 5),
                                      context: ExecutionContext.default.with(threads: 1))
            #expect(trainer.context.threads == 1)
            try x.withUnsafeBufferPointer { input in
                try labels.withUnsafeBufferPointer { labels in
                    for _ in 0..<3 { try trainer.step(input: input, labels: labels, count: samples) }
                }
            }
            return try trainer.model().parameters.keys.sorted().flatMap { try #require(try trainer.model().parameters[$0]).floats }
        }
        let (_, model, input) = try Self.models()[0]
        let sessionContext = ExecutionContext.default.with(threads: 2)
        let trainedAlone = try train()
        let inferredAlone = try Self.output(model, input, sessionContext)

        struct Shared: @unchecked Sendable { let model: Model; let input: Tensor }
        let shared = Shared(model: model, input: input)
        let results = Mutex<(trained: [Float], inferred: [[Float]])>(([], []))
        DispatchQueue.concurrentPerform(iterations: 2) { index in
            if index == 0 {
                let trained = (try? train()) ?? []
                results.withLock { $0.trained = trained }
            } else {
                let session = Session(model: shared.model, context: sessionContext)
                for _ in 0..<6 {
                    let output = (try? session.run([shared.model.inputs[0].name: shared.input]).values.first?.floats) ?? []
                    results.withLock { $0.inferred.append(output) }
                }
            }
        }
        let (trained, inferred) = results.withLock { ($0.trained, $0.inferred) }
        #expect(trained == trainedAlone)
        #expect(inferred.count == 6 && inferred.allSatisfy { $0 == inferredAlone })
    }

    @Test("fromEnvironment reads STOKE_CPU, STOKE_GEMM and STOKE_CONV, and refuses bad values by name")
    func fromEnvironment() throws {
        let plain = try ExecutionContext.fromEnvironment([:], threads: 3)
        #expect(plain.threads == 3 && plain.conv == .direct && plain.gemm == GemmBackend.measuredFastest)
        #expect(try ExecutionContext.fromEnvironment(["STOKE_CONV": "im2col", "STOKE_GEMM": "openblas"]).conv == .im2col)
        #expect(try ExecutionContext.fromEnvironment(["STOKE_GEMM": "openblas", "STOKE_CONV": ""]).gemm == .openBLAS)
        let portable = try ExecutionContext.fromEnvironment(["STOKE_CPU": "portable", "STOKE_GEMM": "openblas"])
        #expect(portable.kernelSet.name == "portable" && portable.kernelSet.features.isEmpty)
        #expect(ExecutionContext(threads: 0).threads == 1)

        func refusal(_ environment: [String: String]) -> ExecutionContextError? {
            do { _ = try ExecutionContext.fromEnvironment(environment); return nil } catch { return error }
        }
        let cpu = refusal(["STOKE_CPU": "avx3"])
        #expect(cpu?.variable == "STOKE_CPU" && cpu?.value == "avx3")
        #expect(cpu?.description.hasPrefix("STOKE_CPU=avx3 is not a kernel set") == true && cpu?.description.contains("avx512-vnni") == true)
        let gemm = refusal(["STOKE_GEMM": "mkl"])
        #expect(gemm?.variable == "STOKE_GEMM" && gemm?.description.contains("stoke-avx512") == true, "\(String(describing: gemm))")
        let conv = refusal(["STOKE_CONV": "winograd"])
        #expect(conv?.variable == "STOKE_CONV" && conv?.description.contains("im2col") == true, "\(String(describing: conv))")
        // A backend the (forced) kernel set cannot run is refused too.
        let unavailable = refusal(["STOKE_CPU": "portable", "STOKE_GEMM": "stoke-avx2"])
        #expect(unavailable?.variable == "STOKE_GEMM" && unavailable?.description.contains("portable") == true, "\(String(describing: unavailable))")
    }
}
