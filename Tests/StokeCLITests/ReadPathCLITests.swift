import Foundation
import Testing

/// The read path from the command line: userblock files, checksums on by default, careless sizes.
@Suite("read path from the CLI")
struct ReadPathCLITests {
    @Test("inspect and infer read an h5py file with a userblock; its rows come out right")
    func userblock() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try execute(venvPython, ["-c", """
            import sys, h5py, numpy as np, onnx
            from onnx import helper as h, TensorProto as T
            x = np.random.default_rng(0).random((200, 1, 8, 8), dtype=np.float32)
            with h5py.File(sys.argv[1] + '/ub.h5', 'w', userblock_size=512) as f:
                f.create_dataset('data', data=x, chunks=(16, 1, 8, 8))
            g = h.make_graph([h.make_node('Flatten', ['x'], ['y'], axis=1)], 'id',
                             [h.make_tensor_value_info('x', T.FLOAT, ['N', 1, 8, 8])], [h.make_tensor_value_info('y', T.FLOAT, None)])
            m = h.make_model(g, opset_imports=[h.make_opsetid('', 13)]); m.ir_version = 8; onnx.save(m, sys.argv[1] + '/id.onnx')
            """, directory])
        try #require(made.status == 0, "\(made.stderr)")
        let inspect = try execute(stokeBinary, ["inspect", directory + "/ub.h5"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(inspect.stdout.contains("200 samples"), "\(inspect.stdout)")
        #expect(!(inspect.stdout + inspect.stderr).contains("ONNX"))
        #expect(try execute(stokeBinary, ["index", directory + "/ub.h5"]).status == 0)
        let infer = try execute(stokeBinary, ["infer", directory + "/id.onnx", directory + "/ub.h5", "--output", directory + "/out.h5",
                                              "--workers", "1", "--threads", "1"])
        try #require(infer.status == 0, "\(infer.stderr)")
        let check = try execute(venvPython, ["-c", """
            import sys, h5py, hdf5plugin, numpy as np
            ref = h5py.File(sys.argv[1] + '/ub.h5')['data'][()].reshape(200, -1)
            got = h5py.File(sys.argv[1] + '/out.h5')['logits'][()]
            assert np.array_equal(ref, got), int((ref != got).any(1).sum())
            """, directory])
        #expect(check.status == 0, "\(check.stderr)")
    }

    @Test("infer refuses a flipped byte in a raw-stored chunk unless --no-verify-checksums")
    func inferChecksums() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try execute(venvPython, ["-c", """
            import sys, numpy as np, onnx
            from onnx import helper as h, TensorProto as T
            np.save(sys.argv[1] + '/x.npy', np.random.default_rng(0).random((200, 64), dtype=np.float32))
            g = h.make_graph([h.make_node('Identity', ['x'], ['y'])], 'id', [h.make_tensor_value_info('x', T.FLOAT, ['N', 64])],
                             [h.make_tensor_value_info('y', T.FLOAT, ['N', 64])])
            m = h.make_model(g, opset_imports=[h.make_opsetid('', 13)]); m.ir_version = 8; onnx.save(m, sys.argv[1] + '/id.onnx')
            """, directory])
        try #require(made.status == 0, "\(made.stderr)")
        let store = directory + "/s.h5"
        try #require(try execute(stokeBinary, ["pack", "--from", "npy", directory + "/x.npy", "-o", store, "--chunk-samples", "16"]).status == 0)
        let flip = try execute(venvPython, ["-c", """
            import sys, h5py, hdf5plugin
            with h5py.File(sys.argv[1]) as f: ci = f['data'].id.get_chunk_info(2)
            b = bytearray(open(sys.argv[1], 'rb').read()); b[ci.byte_offset + 200] ^= 0x40; open(sys.argv[1], 'wb').write(b)
            """, store])
        try #require(flip.status == 0, "\(flip.stderr)")
        let checked = try execute(stokeBinary, ["infer", directory + "/id.onnx", store, "--workers", "1", "--threads", "1"])
        #expect(checked.status != 0)
        #expect(checked.stderr.contains("chunk 2"), "\(checked.stderr)")
        let unchecked = try execute(stokeBinary, ["infer", directory + "/id.onnx", store, "--workers", "1", "--threads", "1", "--no-verify-checksums"])
        #expect(unchecked.status == 0, "\(unchecked.stderr)")
        let bench = try execute(stokeBinary, ["bench", "io", store, "--workers", "1"])
        #expect(bench.status != 0 && bench.stderr.contains("chunk 2"), "\(bench.stderr)")
    }

    @Test("careless sizes for bench io give one clear error, never a trap or a hang")
    func carelessSizes() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try execute(venvPython, ["-c", "import sys, numpy as np; np.save(sys.argv[1], np.zeros((200, 1, 8, 8), np.float32))", directory + "/x.npy"])
        try #require(made.status == 0, "\(made.stderr)")
        let store = directory + "/s.h5"
        try #require(try execute(stokeBinary, ["pack", "--from", "npy", directory + "/x.npy", "-o", store]).status == 0)
        for arguments in [["--workers", "100000"], ["--prefetch", "1000000000"], ["--sweep", "prefetch=1,1000000"],
                          ["--sweep", "workers=1,100000"], ["--io-prefetch-mb", "-1"], ["--memory-limit", "lots"]] {
            let result = try execute(stokeBinary, ["bench", "io", store] + arguments)
            #expect(result.status == 64 || result.status == 1, "\(arguments): \(result.status) \(result.stderr)")
            #expect(!result.stderr.isEmpty)
        }
        let huge = try execute(stokeBinary, ["bench", "io", store, "--batch-size", "100000000", "--workers", "1", "--json"])
        #expect(huge.status == 0, "\(huge.stderr)")
        #expect((jsonObject(huge.stdout)?["samples"] as? Int) == 200)
    }
}
