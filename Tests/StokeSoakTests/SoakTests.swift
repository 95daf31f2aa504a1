import Foundation
import StokeTestSupport
import Testing

/// The `stoke-soak` executable, built next to the test bundle.
private let soakBinary: String = {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [bundle, bundle.deletingLastPathComponent()] {
        let path = candidate.appendingPathComponent("stoke-soak").path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return repositoryRoot.appendingPathComponent(".build/debug/stoke-soak").path
}()

@Suite("soak")
struct SoakTests {
    /// Runs in its own process so the resident-memory, descriptor and thread counts are the loader's alone.
    @Test("100 loader epochs keep resident memory flat; 1,000 store and loader cycles leak no descriptors or threads")
    func soak() throws {
        let result = try execute(soakBinary, ["--epochs", "100", "--cycles", "1000"])
        print(result.stdout, terminator: "")  // the RSS, descriptor and thread figures, for the test log
        #expect(result.status == 0, "stoke-soak failed:\n\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("soak: ok"))
        #expect(result.stdout.components(separatedBy: "RSS after epoch 1").count == 3, "both orders report RSS")
    }
}
