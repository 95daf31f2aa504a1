import Foundation
import Synchronization

// What every test target needs to drive real programs (the `stoke` binary, the venv's Python, h5dump,
// mpirun). Children are started with posix_spawn and reaped with waitpid, not with Foundation's
// Process: on Linux, Process.waitUntilExit() waits for the child's termination to be delivered to a run
// loop, and with many processes started concurrently from the test pool's threads that delivery can be
// missed, which left a CI run waiting forever for a child that had already exited. Here the thread that
// waits owns the child: it polls the child's pipes and calls waitpid itself, and gives up after a
// deadline with an error naming the command instead of hanging the suite.

/// The repository root, from this file's place in it.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The project venv's Python (made by scripts/setup: numpy, h5py, hdf5plugin, onnx, onnxruntime, Pillow).
public let venvPython = repositoryRoot.appendingPathComponent(".venv/bin/python3").path

/// How long one child may run before it is killed and its test fails, in seconds. A hang detector, not
/// a timing check: the slowest child in the suite takes well under a minute on a loaded machine.
/// `STOKE_TEST_PROCESS_TIMEOUT` overrides it (sanitizer builds run several times slower).
public let childTimeoutSeconds: Double = ProcessInfo.processInfo.environment["STOKE_TEST_PROCESS_TIMEOUT"].flatMap(Double.init) ?? 900

public struct ProcessOutput: Sendable {
    /// The exit status, or the signal number when the child was killed by a signal.
    public var status: Int32
    /// The signal that ended the child, if one did.
    public var signal: Int32?
    public var stdout: String
    public var stderr: String
}

public enum ChildProcessError: Error, CustomStringConvertible {
    case spawnFailed(command: String, errno: Int32)
    case timedOut(command: String, seconds: Double, stdout: String, stderr: String)
    case statusLost(command: String)

    public var description: String {
        switch self {
        case .spawnFailed(let command, let code):
            return "could not start \(command): errno \(code)"
        case .statusLost(let command):
            return "\(command) was reaped by another waitpid in this process; its exit status is lost"
        case .timedOut(let command, let seconds, let stdout, let stderr):
            return "\(command) was still running after \(Int(seconds)) s and was killed; its last output:\n"
                + String(stdout.suffix(2000)) + "\n--- stderr ---\n" + String(stderr.suffix(2000))
        }
    }
}

/// One child process, owned by the thread that started it: that thread signals it, waits for it and
/// reads its output. A child still running when its owner goes away is killed and reaped.
public final class ChildProcess {
    public let pid: pid_t
    public let commandLine: String
    private var stdoutFD: Int32
    private var stderrFD: Int32
    private var waitStatus: Int32?

    /// Starts `executable` with `arguments`; stdin is /dev/null. With `captureOutput`, stdout and stderr
    /// come back from `waitForExit`; without it they go to /dev/null. `environment` entries are added
    /// to (and override) this process's environment.
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, captureOutput: Bool = true) throws {
        commandLine = ([executable] + arguments).joined(separator: " ")
        var merged = ProcessInfo.processInfo.environment
        if let environment { merged.merge(environment) { $1 } }
        let spawned: Result<(pid_t, Int32, Int32), SpawnFailure> = Self.spawnLock.withLock { _ in
            var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
            if captureOutput {
                guard unsafe pipe(&outPipe) == 0 else { return .failure(SpawnFailure(code: errno)) }
                guard unsafe pipe(&errPipe) == 0 else {
                    let code = errno
                    close(outPipe[0]); close(outPipe[1])
                    return .failure(SpawnFailure(code: code))
                }
                // Close-on-exec, under the lock every spawn takes: a child started at the same moment by
                // another test must not inherit these ends, or this child's output would not reach
                // end-of-file until that other child exits.
                for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            }
            let result = Self.spawn(executable, arguments, environment: merged, stdoutFD: outPipe[1], stderrFD: errPipe[1])
            if captureOutput { close(outPipe[1]); close(errPipe[1]) }
            switch result {
            case .success(let child): return .success((child, outPipe[0], errPipe[0]))
            case .failure(let failure):
                if captureOutput { close(outPipe[0]); close(errPipe[0]) }
                return .failure(failure)
            }
        }
        switch spawned {
        case .success(let (child, outFD, errFD)):
            pid = child
            stdoutFD = outFD
            stderrFD = errFD
        case .failure(let failure):
            throw ChildProcessError.spawnFailed(command: commandLine, errno: failure.code)
        }
    }

    private struct SpawnFailure: Error { var code: Int32 }
    /// glibc's posix_spawn_file_actions_addclosefrom_np (2.34+), which its headers declare only for
    /// _GNU_SOURCE builds, so Swift's Glibc module does not import it.
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let addCloseFrom: AddCloseFrom? = unsafe dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafe unsafeBitCast($0, to: AddCloseFrom.self) }
    /// A wait status no real one has (bits 0-6 = 0x7f with a stop signal of 0xff): the child was reaped
    /// by someone else's waitpid and its status is lost.
    private static let reapedElsewhere: Int32 = 0x7fff
    private static let spawnLock = Mutex(())

    /// The one call site of posix_spawn: file actions put /dev/null on stdin and the pipes (or
    /// /dev/null) on stdout and stderr.
    private static func spawn(_ executable: String, _ arguments: [String], environment: [String: String],
                              stdoutFD: Int32, stderrFD: Int32) -> Result<pid_t, SpawnFailure> {
        var actions = unsafe posix_spawn_file_actions_t()
        unsafe posix_spawn_file_actions_init(&actions)
        defer { unsafe posix_spawn_file_actions_destroy(&actions) }
        unsafe posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if stdoutFD >= 0 {
            unsafe posix_spawn_file_actions_adddup2(&actions, stdoutFD, 1)
            unsafe posix_spawn_file_actions_adddup2(&actions, stderrFD, 2)
        } else {
            unsafe posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            unsafe posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        // Then nothing else of this process reaches the child: an inherited descriptor of an HDF5 file
        // keeps that file's lock held for as long as the child lives, and another test cannot open it.
        guard let closeFrom = unsafe Self.addCloseFrom, unsafe closeFrom(&actions, 3) == 0 else { return .failure(SpawnFailure(code: ENOSYS)) }
        let argv: [UnsafeMutablePointer<CChar>?] = unsafe ([executable] + arguments).map { unsafe strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = unsafe environment.map { unsafe strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for unsafe pointer in unsafe argv { unsafe free(pointer) }
            for unsafe pointer in unsafe envp { unsafe free(pointer) }
        }
        // Every signal at its default and none blocked in the child, whatever this process inherited
        // (a test runner started as a background job ignores SIGINT, and so would its children).
        var attributes = posix_spawnattr_t()
        unsafe posix_spawnattr_init(&attributes)
        defer { unsafe posix_spawnattr_destroy(&attributes) }
        var all = sigset_t(), none = sigset_t()
        unsafe sigfillset(&all)
        unsafe sigemptyset(&none)
        unsafe posix_spawnattr_setsigdefault(&attributes, &all)
        unsafe posix_spawnattr_setsigmask(&attributes, &none)
        unsafe posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var child: pid_t = 0
        let code = unsafe posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        return code == 0 ? .success(child) : .failure(SpawnFailure(code: code))
    }

    deinit {
        if waitStatus == nil {
            kill(pid, SIGKILL)
            _ = reap(blocking: true)
        }
        if stdoutFD >= 0 { close(stdoutFD) }
        if stderrFD >= 0 { close(stderrFD) }
    }

    /// Sends `signal` to the child (nothing if it has been reaped already).
    public func send(_ signal: Int32) {
        if waitStatus == nil { kill(pid, signal) }
    }

    /// Whether the child has not exited yet; reaps it if it has.
    public var isRunning: Bool { !reap(blocking: false) }

    /// Reaps the child; returns whether it has exited (always true when `blocking`).
    private func reap(blocking: Bool) -> Bool {
        if waitStatus != nil { return true }
        var status: Int32 = 0
        while true {
            let result = unsafe waitpid(pid, &status, blocking ? 0 : WNOHANG)
            if result == pid { waitStatus = status; return true }
            if result == 0 { return false }
            if errno == EINTR { continue }
            waitStatus = Self.reapedElsewhere  // ECHILD: its status is lost; waitForExit says so
            return true
        }
    }

    /// Reads the child's output until it exits, then returns its status and output. Past `timeout`
    /// seconds the child is killed and `ChildProcessError.timedOut` names it.
    public func waitForExit(timeout: Double = childTimeoutSeconds) throws -> ProcessOutput {
        let deadline = Date().addingTimeInterval(timeout)
        var out = [UInt8](), err = [UInt8]()
        var exitedAt: Date?
        while true {
            if Date() > deadline {
                kill(pid, SIGKILL)
                _ = reap(blocking: true)
                throw ChildProcessError.timedOut(command: commandLine, seconds: timeout,
                                                 stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
            }
            let running = isRunning
            if stdoutFD < 0 && stderrFD < 0 {
                if !running { break }
                usleep(10_000)
                continue
            }
            // A grandchild that outlives the child (an MPI daemon, say) may hold the pipes open; once the
            // child itself has exited, what it wrote is read for a moment more and the rest is not waited for.
            if exitedAt == nil, !running { exitedAt = Date() }
            if let exitedAt, Date().timeIntervalSince(exitedAt) > 2 { break }
            drain(&out, &err, pollMilliseconds: 100)
        }
        _ = reap(blocking: true)
        let status = waitStatus ?? 0
        if status == Self.reapedElsewhere { throw ChildProcessError.statusLost(command: commandLine) }
        let signalled = status & 0x7f
        return ProcessOutput(
            status: signalled == 0 ? (status >> 8) & 0xff : signalled, signal: signalled == 0 ? nil : signalled,
            stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    /// One poll of the open pipes; appends what is readable and closes a pipe at end-of-file.
    private func drain(_ out: inout [UInt8], _ err: inout [UInt8], pollMilliseconds: Int32) {
        var fds = [pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0), pollfd(fd: stderrFD, events: Int16(POLLIN), revents: 0)]
        guard unsafe poll(&fds, 2, pollMilliseconds) > 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        for index in 0..<2 where fds[index].fd >= 0 && fds[index].revents != 0 {
            let count = unsafe buffer.withUnsafeMutableBytes { unsafe read(fds[index].fd, $0.baseAddress, $0.count) }
            if count > 0 {
                if index == 0 { out += buffer[..<count] } else { err += buffer[..<count] }
            } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                close(fds[index].fd)
                if index == 0 { stdoutFD = -1 } else { stderrFD = -1 }
            }
        }
    }
}

/// Runs a program to completion and returns its status and output (see `ChildProcess`).
@discardableResult
public func execute(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                    timeout: Double = childTimeoutSeconds) throws -> ProcessOutput {
    try ChildProcess(executable, arguments, environment: environment).waitForExit(timeout: timeout)
}

/// A fresh directory under the temporary directory; the caller removes it.
public func temporaryDirectory(_ prefix: String = "stoke-test-") -> String {
    let path = NSTemporaryDirectory() + prefix + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
