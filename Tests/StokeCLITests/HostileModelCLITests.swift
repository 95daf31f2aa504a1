import Foundation
import Testing

/// `stoke inspect`, `run`, `infer` and `quantize` on the models and options of the hostile-input
/// campaign (issue 19): one clear error and a non-zero exit, or the right answer, never a trap.
@Suite("hostile models and options on the command line")
struct HostileModelCLITests {
    /// Runs a Python snippet with the working directory as `sys.argv[1]`.
    static func python(_ code: String, in directory: String) throws {
        let made = try execute(venvPython, ["-c", "import sys, os; os.chdir(sys.argv[1])\n" + code, directory])
        try #require(made.status == 0, "\(made.stderr)")
    }

    static let header = """
        import numpy as np, onnx
        from onnx import helper as h, TensorProto as T, numpy_helper as nh
        def save(name, nodes, inits=(), inputs=None, outputs=None, opset=13):
            g = h.make_graph(nodes, name, inputs or [h.make_tensor_value_info('x', T.FLOAT, ['N', 3, 8, 8])],
                             outputs or [h.make_tensor_value_info('y', T.FLOAT, None)], initializer=[nh.from_array(v, k) for k, v in inits])
            m = h.make_model(g, opset_imports=[h.make_opsetid('', opset)]); m.ir_version = 8; onnx.save(m, name + '.onnx')

        """

    static func errorLines(_ output: ProcessOutput) -> [Substring] {
        output.stderr.split(separator: "\n").filter { !$0.isEmpty }
    }

    @Test("r07/r14: a Conv with huge pads, a 152-byte Pad and a Tile model: inspect describes them without allocating, run refuses them by node")
    func memoryBombs() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.python(Self.header + """
            I = lambda *v: np.array(v, np.int64)
            save('conv_huge_pads', [h.make_node('Conv', ['x', 'W'], ['y'], name='conv', pads=[100000] * 4)], [('W', np.ones((4, 3, 3, 3), np.float32))])
            save('pad_40k', [h.make_node('Pad', ['x', 'p'], ['y'], name='pad')], [('p', I(0, 0, 0, 0, 0, 0, 40000, 40000))])
            save('tile_4000', [h.make_node('Tile', ['x', 'r'], ['y'], name='tile')], [('r', I(1, 1, 4000, 4000))])
            np.save('x.npy', np.zeros((2, 3, 8, 8), np.float32))
            """, in: directory)
        let budget = ["STOKE_MEMORY_BUDGET": "1G"]
        for (name, node, op) in [("conv_huge_pads", "conv", "Conv"), ("pad_40k", "pad", "Pad"), ("tile_4000", "tile", "Tile")] {
            let start = ContinuousClock.now
            let inspect = try execute(stokeBinary, ["inspect", "\(directory)/\(name).onnx"], environment: budget)
            #expect(inspect.status == 0, "\(name): \(inspect.stderr)")
            #expect(start.duration(to: .now) < .seconds(20), "\(name): inspect took \(start.duration(to: .now))")
            let run = try execute(stokeBinary, ["run", "\(directory)/\(name).onnx", "--input", "x=\(directory)/x.npy", "--output-dir", "\(directory)/out"],
                                  environment: budget)
            #expect(run.status == 1, "\(name): \(run.status) \(run.stderr)")
            #expect(Self.errorLines(run).count == 1 && run.stderr.contains("\(op) node '\(node)'"), "\(name): \(run.stderr)")
        }
        let pad = try execute(stokeBinary, ["inspect", "\(directory)/pad_40k.onnx"], environment: budget)
        #expect(pad.stdout.contains("activations: 17.9 GiB per sample (more than the memory budget of 1.0 GiB"), "\(pad.stdout)")
        let conv = try execute(stokeBinary, ["inspect", "\(directory)/conv_huge_pads.onnx"], environment: budget)
        #expect(conv.stdout.contains("MACs: unknown: Conv node 'conv'"), "\(conv.stdout)")
        let quantize = try execute(stokeBinary, ["quantize", "\(directory)/tile_4000.onnx", "-o", "\(directory)/q.h5"], environment: budget)
        #expect(quantize.status == 1 && Self.errorLines(quantize).count == 1 && quantize.stderr.contains("Tile node 'tile'"), "\(quantize.stderr)")
    }

    @Test("r08: run --input with an empty name or file is one usage error; --threads beyond 4 per core is clamped with a note")
    func runOptions() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.python(Self.header + """
            save('relu', [h.make_node('Relu', ['x'], ['y'])], inputs=[h.make_tensor_value_info('x', T.FLOAT, ['N', 4])])
            np.save('x.npy', np.array([[-1, 2, -3, 4]], np.float32))
            """, in: directory)
        for entry in ["=\(directory)/x.npy", "x=", "=", "x=\(directory)/x.npy,x"] {
            let result = try execute(stokeBinary, ["run", "\(directory)/relu.onnx", "--input", entry])
            #expect(result.status != 0 && result.status < 128, "\(entry): \(result.status)")
            #expect(!result.stderr.contains("Fatal error"), "\(entry): \(result.stderr)")
        }
        let twice = try execute(stokeBinary, ["run", "\(directory)/relu.onnx", "--input", "x=\(directory)/x.npy", "--input", "x=\(directory)/x.npy"])
        #expect(twice.status != 0 && twice.stderr.contains("given twice"), "\(twice.stderr)")
        let many = try execute(stokeBinary, ["run", "\(directory)/relu.onnx", "--input", "x=\(directory)/x.npy", "--threads", "1000000", "--json"])
        #expect(many.status == 0, "\(many.stderr)")
        #expect(many.stderr.contains("--threads 1000000 is more than 4 per core"), "\(many.stderr)")
        let threads = jsonObject(many.stdout)?["threads"] as? Int ?? 0
        #expect(threads >= 8 && threads <= max(8, 4 * ProcessInfo.processInfo.activeProcessorCount), "\(threads)")
    }

    @Test("r16: a value defined twice is refused by name; outputs whose names sanitize alike get their own files")
    func duplicateNames() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.python(Self.header + """
            x = h.make_tensor_value_info('x', T.FLOAT, ['N', 4])
            save('dup', [h.make_node('Relu', ['x'], ['y'], name='relu'), h.make_node('Sigmoid', ['x'], ['y'], name='sigmoid')], inputs=[x])
            save('collide', [h.make_node('Relu', ['x'], ['a/b']), h.make_node('Neg', ['x'], ['a_b'])], inputs=[x],
                 outputs=[h.make_tensor_value_info('a/b', T.FLOAT, None), h.make_tensor_value_info('a_b', T.FLOAT, None)])
            np.save('x.npy', np.array([[-1, 2, -3, 4]], np.float32))
            """, in: directory)
        let dup = try execute(stokeBinary, ["run", "\(directory)/dup.onnx", "--input", "x=\(directory)/x.npy", "--output-dir", "\(directory)/o1"])
        #expect(dup.status == 1 && Self.errorLines(dup).count == 1, "\(dup.stderr)")
        #expect(dup.stderr.contains("value 'y' is defined twice: by node 'relu' (Relu) and by node 'sigmoid' (Sigmoid)"), "\(dup.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/o1/y.npy"))
        let collide = try execute(stokeBinary, ["run", "\(directory)/collide.onnx", "--input", "x=\(directory)/x.npy", "--output-dir", "\(directory)/o2"])
        #expect(collide.status == 0, "\(collide.stderr)")
        #expect(collide.stderr.contains("output 'a_b' is written to a_b-2.npy"), "\(collide.stderr)")
        let check = try execute(venvPython, ["-c", """
            import sys, numpy as np
            d = sys.argv[1]
            assert np.load(d + '/a_b.npy').tolist() == [[0, 2, 0, 4]], np.load(d + '/a_b.npy')
            assert np.load(d + '/a_b-2.npy').tolist() == [[1, -2, 3, -4]], np.load(d + '/a_b-2.npy')
            """, "\(directory)/o2"])
        #expect(check.status == 0, "\(check.stderr)")
    }

    @Test("r12: quantize measures and calibrates a model with a fixed batch size (1 and 4) at that batch")
    func fixedBatchQuantize() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.python(Self.header + """
            import h5py
            W = np.random.default_rng(0).standard_normal((5, 30)).astype(np.float32)
            for name, b in (('b1', 1), ('b4', 4)):
                save(name, [h.make_node('Gemm', ['x', 'W'], ['y'], transB=1)], [('W', W)],
                     inputs=[h.make_tensor_value_info('x', T.FLOAT, [b, 30])], outputs=[h.make_tensor_value_info('y', T.FLOAT, [b, 5])])
            r = np.random.default_rng(1)
            with h5py.File('s.h5', 'w') as f:
                f.create_dataset('data', data=r.random((10, 30), dtype=np.float32)); f.create_dataset('label', data=r.integers(0, 5, 10).astype('u1'))
            """, in: directory)
        for name in ["b1", "b4"] {
            let dynamic = try execute(stokeBinary, ["quantize", "\(directory)/\(name).onnx", "-o", "\(directory)/\(name)-dyn.h5", "--json"])
            #expect(dynamic.status == 0, "\(name): \(dynamic.stderr)")
            // 10 samples at a fixed batch of 4: the last batch of 2 is padded, and u8 labels are read.
            let evaluated = try execute(stokeBinary, ["quantize", "\(directory)/\(name).onnx", "-o", "\(directory)/\(name)-static.h5", "--calibrate",
                                                      "\(directory)/s.h5", "--eval", "\(directory)/s.h5", "--json"])
            #expect(evaluated.status == 0, "\(name): \(evaluated.stderr)")
            let before = jsonObject(evaluated.stdout)?["before"] as? [String: Any]
            #expect(before?["accuracy"] is Double && before?["macs"] as? Int == 150, "\(name): \(evaluated.stdout)")
            let infer = try execute(stokeBinary, ["infer", "\(directory)/\(name).onnx", "\(directory)/s.h5", "--json"])
            #expect(infer.status == 0 && jsonObject(infer.stdout)?["samples"] as? Int == 10, "\(name): \(infer.stderr)")
        }
    }

    @Test("r22: infer reads u8, i8, u16, i16, i32 and i64 labels, checks each is a class of the model, and refuses float labels; i32 and f64 data feed a float model")
    func integerLabels() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.python(Self.header + """
            import h5py
            r = np.random.default_rng(0); x = r.random((40, 8), dtype=np.float32); y = r.integers(0, 4, 40)
            save('id', [h.make_node('Identity', ['x'], ['y'])], inputs=[h.make_tensor_value_info('x', T.FLOAT, ['N', 8])])
            for t in ('u1', 'i1', 'u2', 'i2', 'i4', 'i8'):
                with h5py.File(t + '.h5', 'w') as f: f.create_dataset('data', data=x, chunks=(8, 8)); f.create_dataset('label', data=y.astype(t), chunks=(8,))
            with h5py.File('big.h5', 'w') as f: f.create_dataset('data', data=x); f.create_dataset('label', data=np.full(40, 300, 'u2'))
            with h5py.File('float.h5', 'w') as f: f.create_dataset('data', data=x); f.create_dataset('label', data=y.astype('f4'))
            np.save('expected.npy', np.array([(x.argmax(1) == y).mean()]))
            xi = (x * 1e6).astype('i4')
            with h5py.File('i4data.h5', 'w') as f: f.create_dataset('data', data=xi, chunks=(8, 8)); f.create_dataset('label', data=y, chunks=(8,))
            with h5py.File('f8data.h5', 'w') as f: f.create_dataset('data', data=x.astype('f8'), chunks=(8, 8)); f.create_dataset('label', data=y, chunks=(8,))
            np.save('expected_i4.npy', np.array([(xi.argmax(1) == y).mean()]))
            """, in: directory)
        // r22: integer and f64 data feed a float model (widened by the loader).
        for (type, file) in [("i4data", "expected_i4.npy"), ("f8data", "expected.npy")] {
            let want = try execute(venvPython, ["-c", "import sys, numpy as np; print(np.load(sys.argv[1])[0])", "\(directory)/\(file)"])
            let infer = try execute(stokeBinary, ["infer", "\(directory)/id.onnx", "\(directory)/\(type).h5", "--json"])
            #expect(infer.status == 0, "\(type): \(infer.stderr)")
            let got = jsonObject(infer.stdout)?["accuracy"] as? Double ?? -1
            #expect(abs(got - (Double(want.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -2)) < 1e-9, "\(type): \(infer.stdout)")
        }
        let expected = try execute(venvPython, ["-c", "import sys, numpy as np; print(np.load(sys.argv[1])[0])", "\(directory)/expected.npy"])
        let accuracy = Double(expected.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        for type in ["u1", "i1", "u2", "i2", "i4", "i8"] {
            let infer = try execute(stokeBinary, ["infer", "\(directory)/id.onnx", "\(directory)/\(type).h5", "--json"])
            #expect(infer.status == 0, "\(type): \(infer.stderr)")
            #expect(abs((jsonObject(infer.stdout)?["accuracy"] as? Double ?? -1) - accuracy) < 1e-9, "\(type): \(infer.stdout)")
        }
        let big = try execute(stokeBinary, ["infer", "\(directory)/id.onnx", "\(directory)/big.h5"])
        #expect(big.status == 1 && big.stderr.contains("label 300 of sample 0") && big.stderr.contains("outside the model's 8 classes"), "\(big.stderr)")
        let float = try execute(stokeBinary, ["infer", "\(directory)/id.onnx", "\(directory)/float.h5"])
        #expect(float.status == 1 && float.stderr.contains("label field 'label' is f32; labels must be integers"), "\(float.stderr)")
    }

    @Test("r13: a 5,000-node graph (JSON over 64 KiB) is saved as a graph model file that Stoke and h5py read")
    func largeGraphModelFile() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.python(Self.header + """
            nodes = [h.make_node('Relu', ['x'], ['t0'])] + [h.make_node('Relu', ['t%d' % i], ['t%d' % (i + 1)]) for i in range(5000)]
            nodes.append(h.make_node('Identity', ['t5000'], ['y']))
            save('chain', nodes, inputs=[h.make_tensor_value_info('x', T.FLOAT, ['N', 4])])
            np.save('x.npy', np.array([[-1, 2, -3, 4]], np.float32))
            """, in: directory)
        let quantize = try execute(stokeBinary, ["quantize", "\(directory)/chain.onnx", "-o", "\(directory)/q.h5"])
        #expect(quantize.status == 0, "\(quantize.stderr)")
        let run = try execute(stokeBinary, ["run", "\(directory)/q.h5", "--input", "x=\(directory)/x.npy", "--output-dir", "\(directory)/o"])
        #expect(run.status == 0, "\(run.stderr)")
        let check = try execute(venvPython, ["-c", """
            import sys, json, h5py, numpy as np
            d = sys.argv[1]
            text = h5py.File(d + '/q.h5', 'r').attrs['stoke_model']
            assert len(json.loads(text)['nodes']) == 5002
            assert np.load(d + '/o/y.npy').tolist() == [[0, 2, 0, 4]]
            """, directory])
        #expect(check.status == 0, "\(check.stderr)")
    }
}
