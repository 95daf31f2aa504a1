import Foundation
import StokeStore
import Testing

/// Issue 19: stores written by other tools are read correctly or refused with one clear line.
@Suite("store reliability (issue 19)")
struct StoreReliabilityTests {
    @Test("r21: fields of unequal length are refused at open, naming the fields and their lengths")
    func unequalLengths() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("d.h5")
        let made = try python("""
            import sys, h5py, numpy as np
            with h5py.File(sys.argv[1], 'w') as f:
                f.create_dataset('data', data=np.zeros((200, 4), np.float32), chunks=(16, 4))
                f.create_dataset('label', data=np.zeros(150, np.int64), chunks=(16,))
            """, [path])
        try #require(made.status == 0, "\(made.output)")
        let error = #expect(throws: StoreError.self) { try Store(path: path) }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains("'data' 200") && text.contains("'label' 150") && text.contains("differ in length"), "\(text)")
    }
}
