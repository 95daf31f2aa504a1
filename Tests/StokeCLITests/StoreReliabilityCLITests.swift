import Foundation
import Testing

/// Issue 19 through the command line: pack, verify and index never report more than they did, and
/// never leave a half-written output.
@Suite("store reliability through the CLI (issue 19)")
struct StoreReliabilityCLITests {
    private func makeArrays(_ directory: String, rows: Int = 200) throws {
        let made = try execute(venvPython, ["-c", """
            import sys, numpy as np
            r = np.random.default_rng(0)
            np.save(sys.argv[1] + '/x.npy', r.random((\(rows), 64), dtype=np.float32))
            np.save(sys.argv[1] + '/y.npy', r.integers(0, 10, \(rows)))
            """, directory])
        try #require(made.status == 0, "\(made.stderr)")
    }

    @Test("r19: verify of a store without checksums says nothing was verified and exits 2; a checksummed store says what it checked")
    func verifyWording() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try makeArrays(directory)
        let bare = try execute(stokeBinary, ["pack", "--from", "npy", "\(directory)/x.npy", "-o", "\(directory)/bare.h5", "--no-checksum", "--codec", "none"])
        try #require(bare.status == 0, "\(bare.stderr)")
        let unverified = try execute(stokeBinary, ["verify", "\(directory)/bare.h5"])
        #expect(unverified.status == 2, "\(unverified.stdout)\(unverified.stderr)")
        #expect(unverified.stderr.contains("nothing could be verified"))
        #expect(unverified.stdout.contains("no checksum recorded"))
        #expect(!unverified.stdout.contains("match their checksums"))

        let packed = try execute(stokeBinary, ["pack", "--from", "npy", "\(directory)/x.npy", "--labels", "\(directory)/y.npy", "-o", "\(directory)/s.h5"])
        try #require(packed.status == 0, "\(packed.stderr)")
        let verified = try execute(stokeBinary, ["verify", "\(directory)/s.h5", "--json"])
        #expect(verified.status == 0, "\(verified.stderr)")
        let checks = jsonObject(verified.stdout)?["checks"] as? [[String: Any]] ?? []
        #expect(checks.map { $0["check"] as? String } == ["decoded+checksum", "decoded+checksum"], "\(verified.stdout)")
    }

    @Test("r08/r23: pack --resize 100000, --workers 100000 and bench codecs --codecs '' are one clear line, exit 1, no file left")
    func boundedOptions() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try makeArrays(directory)
        let made = try execute(venvPython, ["-c", """
            import sys, os, numpy as np; from PIL import Image
            os.makedirs(sys.argv[1] + '/imgs/c')
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(sys.argv[1] + '/imgs/c/a.png')
            """, directory])
        try #require(made.status == 0, "\(made.stderr)")
        let cases: [([String], String)] = [
            (["pack", "--from", "images", "\(directory)/imgs", "-o", "\(directory)/big.h5", "--resize", "100000"], "at most 16384"),
            (["pack", "--from", "images", "\(directory)/imgs", "-o", "\(directory)/big.h5", "--center-crop", "20000x8"], "at most 16384"),
            (["pack", "--from", "npy", "\(directory)/x.npy", "-o", "\(directory)/w.h5", "--workers", "100000"], "outside 1–256"),
            (["bench", "codecs", "\(directory)/x.npy", "--codecs", ""], "--codecs is empty"),
        ]
        for (arguments, message) in cases {
            let result = try execute(stokeBinary, arguments)
            #expect(result.status != 0 && result.status < 128, "\(arguments): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(".h5") }
        #expect(left.isEmpty, "\(left)")
    }

    @Test("r20: SIGINT and SIGTERM during pack remove the partial file (exit 130, 143); a dead process's partials are removed next run")
    func interruptedPackCleansUp() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try makeArrays(directory, rows: 400_000)
        func partials() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.contains(".partial-") }
        }
        for (signalNumber, expected) in [(SIGINT, Int32(130)), (SIGTERM, Int32(143))] {
            let process = try ChildProcess(stokeBinary, ["pack", "--from", "npy", "\(directory)/x.npy", "-o", "\(directory)/o.h5", "--force", "--codec", "deflate:9"],
                                           captureOutput: false)
            let deadline = Date().addingTimeInterval(60)
            while partials().isEmpty && process.isRunning && Date() < deadline { usleep(5_000) }
            try #require(!partials().isEmpty, "the pack never started writing")
            process.send(signalNumber)
            let status = try process.waitForExit().status
            #expect(status == expected, "signal \(signalNumber): status \(status)")
            #expect(partials().isEmpty, "\(partials())")
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/o.h5"))
        }
        // A partial left by a process that no longer exists (a SIGKILL) is removed by the next run, which says so.
        var dead: Int32 = 4_000_000
        while kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        let stale = "\(directory)/s.h5.partial-\(dead)-12345"
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: stale))
        let small = try execute(stokeBinary, ["pack", "--from", "npy", "\(directory)/y.npy", "-o", "\(directory)/s.h5"])
        #expect(small.status == 0, "\(small.stderr)")
        #expect(small.stderr.contains("removed \(stale), left by process \(dead)"), "\(small.stderr)")
        #expect(!FileManager.default.fileExists(atPath: stale))
    }

    @Test("r01: pack into a file-size limit just short of the store (a nearly full disk) fails with one line, no crash, nothing left")
    func fullDisk() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try execute(venvPython, ["-c", """
            import sys, numpy as np
            r = np.random.default_rng(0)
            np.save(sys.argv[1] + '/x.npy', r.random((2500, 1000), dtype=np.float32)); np.save(sys.argv[1] + '/y.npy', r.integers(0, 10, 2500))
            """, directory])
        try #require(made.status == 0, "\(made.stderr)")
        let reference = try execute(stokeBinary, ["pack", "--from", "npy", "\(directory)/x.npy", "--labels", "\(directory)/y.npy", "-o", "\(directory)/ref.h5"])
        try #require(reference.status == 0, "\(reference.stderr)")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: "\(directory)/ref.h5")[.size] as? Int)
        // RLIMIT_FSIZE with SIGXFSZ ignored: writes past the limit fail with EFBIG, as ENOSPC on a full disk.
        for slackKiB in [-40, -18, -2, 0] {
            let limit = (size + slackKiB * 1024) / 1024
            let result = try execute("/bin/bash", ["-c", "trap '' XFSZ; ulimit -f \(limit); exec \"$0\" pack --from npy \"$1\"/x.npy --labels \"$1\"/y.npy -o \"$1\"/o.h5", stokeBinary, directory])
            #expect(result.status == 1, "slack \(slackKiB) KiB: status \(result.status) \(result.stderr)")
            #expect(result.stderr.hasPrefix("stoke: error: \(directory)/o.h5"), "\(result.stderr)")
            #expect(result.stderr.contains("File too large"), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
            let left = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("o.h5") }
            #expect(left.isEmpty, "slack \(slackKiB) KiB: \(left)")
        }
    }
}
