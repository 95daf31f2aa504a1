import Foundation
import Synchronization

/// The temporary files writers have open (`OUT.partial-PID-RAND`, and the `OUT.replaced-PID-RAND` links
/// that keep a replaced store until its successor is in place), so that Ctrl-C or SIGTERM removes them
/// before the process exits, and a later run can remove those a killed process left.
public enum PartialFiles {
    private static let registered = Mutex<Set<String>>([])
    private static let handlers = Mutex<[any DispatchSourceSignal]>([])
    /// Held while outputs are renamed into place, so an interrupt waits until a set of stores (train and
    /// validation) has either all appeared or been rolled back.
    static let commitLock = NSLock()

    /// Records a temporary file to remove if the process is interrupted.
    public static func register(_ path: String) { _ = registered.withLock { $0.insert(path) } }

    /// Forgets a temporary file (renamed into place or removed).
    public static func unregister(_ path: String) { _ = registered.withLock { $0.remove(path) } }

    /// The temporary files currently registered.
    public static var current: [String] { registered.withLock { Array($0) } }

    /// Removes every registered temporary file now.
    public static func removeAll() {
        for path in registered.withLock({ $0 }) { unsafe unlink(path) }
    }

    /// Makes SIGINT and SIGTERM remove the registered temporary files and exit with 128 + the signal
    /// (130, 143), printing one line. Idempotent. The handlers run on a dispatch queue, not in signal
    /// context, so they may take locks and allocate.
    public static func installSignalHandlers() {
        handlers.withLock { sources in
            guard sources.isEmpty else { return }
            for (signalNumber, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global(qos: .userInteractive))
                source.setEventHandler {
                    commitLock.lock()
                    let removed = registered.withLock { $0 }
                    for path in removed { unsafe unlink(path) }
                    let note = removed.isEmpty ? "" : "; removed \(removed.count) partial file\(removed.count == 1 ? "" : "s"): \(removed.sorted().joined(separator: ", "))"
                    FileHandle.standardError.write(Data("stoke: interrupted by \(name)\(escapedForTerminal(note))\n".utf8))
                    _exit(128 + signalNumber)
                }
                source.resume()
                sources.append(source)
            }
        }
    }

    /// A stale temporary file that was removed.
    public struct Stale: Sendable, Equatable {
        public var path: String
        /// The process that made it (no longer running).
        public var pid: Int32
    }

    /// Removes the temporary files next to `output` (`OUT.partial-PID-*`, `OUT.replaced-PID-*`) whose
    /// process is no longer running, and returns them. Files of live processes are left alone.
    public static func removeStale(near output: String) -> [Stale] {
        let directory = (output as NSString).deletingLastPathComponent
        let base = (output as NSString).lastPathComponent
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory) else { return [] }
        var removed: [Stale] = []
        for name in names {
            for marker in [".partial-", ".replaced-"] where name.hasPrefix(base + marker) {
                let rest = name.dropFirst(base.count + marker.count)
                guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0,
                      UInt32(rest[rest.index(after: dash)...]) != nil else { continue }
                // kill(pid, 0) fails with ESRCH when no such process exists.
                guard kill(pid, 0) != 0, errno == ESRCH else { continue }
                let path = directory.isEmpty ? name : directory + "/" + name
                if unsafe unlink(path) == 0 { removed.append(Stale(path: path, pid: pid)) }
            }
        }
        return removed.sorted { $0.path < $1.path }
    }
}
