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
}
