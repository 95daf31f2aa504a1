import ArgumentParser
import Foundation
import StokeEngine
import StokeStore

@main
struct Stoke: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stoke",
        abstract: "Keeps a model fed: packs data into compressed HDF5 stores and streams them back.",
        version: StokeVersion.string,
        subcommands: [Pack.self, Join.self, Inspect.self, Verify.self, Index.self, Bench.self, Run.self, Infer.self, Train.self, Distill.self, Prune.self, Quantize.self, Demo.self])

    /// Reads the environment once, before any command runs (`environmentRequest`): the whole process
    /// uses the kernel set `STOKE_CPU` names, and commands run the engine on `processContext` with their
    /// `--threads`. A value it refuses exits with status 2 and a message naming the variable and the
    /// accepted values.
    static func main() {
        switch environmentRequest {
        case let .failure(problem):
            FileHandle.standardError.write(Data("stoke: error: \(problem)\n".utf8))
            Foundation.exit(2)
        case let .success(request):
            request.kernelSet.restrictProcess()
        }
        Self.main(nil)
    }
}

/// `STOKE_CPU`, `STOKE_GEMM` and `STOKE_CONV`, read and checked once at start-up (`Stoke.main`).
let environmentRequest: Result<ExecutionContext.EnvironmentRequest, ExecutionContextError> = Result {
    () throws(ExecutionContextError) in try ExecutionContext.parseEnvironment()
}

/// The engine's execution context: `environmentRequest` with one thread, made once, when a command first
/// runs the engine (an automatic GEMM choice is measured then, not by commands that never multiply);
/// commands pass `processContext.with(threads:)` down.
let processContext: ExecutionContext = {
    switch environmentRequest {
    case let .success(request): request.context()
    case .failure: ExecutionContext.default
    }
}()

/// The kernel set the process runs on (`environmentRequest`'s, which `processContext` records), for
/// reports of commands that do not run the engine.
var processKernelSet: KernelSet {
    switch environmentRequest {
    case let .success(request): request.kernelSet
    case .failure: KernelSet.current
    }
}

/// Runs a command body; any error becomes one line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    // Ctrl-C and SIGTERM remove the partial files of writers in progress (exit 130 / 143).
    PartialFiles.installSignalHandlers()
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        // Names and bytes from hostile files must not reach the terminal as control sequences.
        FileHandle.standardError.write(Data("stoke: error: \(escapedForTerminal(String(describing: error)))\n".utf8))
        throw ExitCode(1)
    }
}

/// Prints a JSON document with sorted keys.
func printJSON(_ object: Any) {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])) ?? Data("{}".utf8)
    print(String(decoding: data, as: UTF8.self))
}

/// Formats a byte count for people (KiB, MiB, GiB).
func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}

/// Prints rows as a left-aligned text table.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    func line(_ cells: [String]) -> String {
        zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
    }
    print(line(header))
    print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
    rows.forEach { print(line($0)) }
}

/// A one-line progress bar on stderr, shown only when stderr is a terminal.
struct ProgressLine {
    let total: Int
    let label: String
    private let start = Date()
    private let enabled = isatty(STDERR_FILENO) == 1

    init(total: Int, label: String) {
        self.total = total
        self.label = label
    }

    func update(_ done: Int) {
        guard enabled else { return }
        let elapsed = max(Date().timeIntervalSince(start), 1e-9)
        let rate = Double(done) / elapsed
        let remaining = rate > 0 ? Double(total - done) / rate : 0
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let filled = Int(fraction * 30)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled)
        let text = String(format: "\r%@ [%@] %d/%d samples  %.0f samples/s  ETA %.0fs", label, bar, done, total, rate, remaining)
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Progress in steps (runs of a sweep) rather than samples.
    func updateSteps(_ done: Int, _ total: Int) {
        guard enabled else { return }
        let filled = total > 0 ? done * 30 / total : 30
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(done)/\(total) runs".utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

/// A bad argument: printed as one line (no usage block), exit status 64.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Checks, before any work starts, that `output` can be written: its folder exists and is writable,
/// and it is none of the command's inputs (writing a model over its training store, or a quantized
/// model over its source, would destroy the input).
func checkOutputPath(_ output: String, option: String = "-o", inputs: [String?]) throws {
    let url = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath()
    let folder = url.deletingLastPathComponent().path
    var isDirectory: ObjCBool = false
    guard unsafe FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw UsageError("\(option) \(output): the folder \(folder) does not exist")
    }
    guard FileManager.default.isWritableFile(atPath: folder) else {
        throw UsageError("\(option) \(output): the folder \(folder) is not writable")
    }
    for input in inputs.compactMap({ $0 }) where URL(fileURLWithPath: input).standardizedFileURL.resolvingSymlinksInPath() == url {
        throw UsageError("\(option) \(output) is also an input of this command; write the result to another file")
    }
}
