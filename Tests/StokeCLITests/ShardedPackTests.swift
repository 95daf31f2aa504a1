import Foundation
import Testing

private let stoke = stokeBinary

/// An ImageFolder of `count` small JPEGs of mixed sizes in three classes, made with Pillow.
private func makeImageFolder(_ root: String, count: Int) throws {
    let made = try execute(venvPython, ["-c", """
        import sys, os, numpy as np
        from PIL import Image
        root, count = sys.argv[1], int(sys.argv[2])
        rng = np.random.default_rng(3)
        for i in range(count):
            folder = os.path.join(root, ['cat', 'dog', 'eel'][i % 3])
            os.makedirs(folder, exist_ok=True)
            h, w = int(rng.integers(24, 48)), int(rng.integers(24, 48))
            y, x = np.mgrid[0:h, 0:w]
            pixels = np.stack([(x * 5 + i) % 256, (y * 3 + 2 * i) % 256, ((x + y) * 2) % 256], -1).astype(np.uint8)
            Image.fromarray(pixels).save(os.path.join(folder, f'{i:05d}.jpg'), quality=90)
        """, root, String(count)])
    try #require(made.status == 0, "\(made.stderr)")
}

/// h5py: the joined store's fields are virtual datasets equal, sample for sample, to the single-file store's.
private func expectSameAsSingle(_ joined: String, _ single: String, samples: Int) throws {
    let check = try execute(venvPython, ["-c", """
        import sys, h5py, hdf5plugin, numpy as np
        joined, single, n = h5py.File(sys.argv[1], 'r'), h5py.File(sys.argv[2], 'r'), int(sys.argv[3])
        for name in ('image', 'label'):
            assert joined[name].is_virtual, name
            assert joined[name].shape[0] == n, (name, joined[name].shape)
            assert joined[name].dtype == single[name].dtype, name
            assert np.array_equal(joined[name][...], single[name][...]), name
        assert joined.attrs['recipe'] == single.attrs['recipe']
        """, joined, single, String(samples)])
    #expect(check.status == 0, "\(check.stderr)")
}

@Suite("stoke pack --shard, stoke join, mpirun")
struct ShardedPackTests {
    static let recipe = ["--resize", "20x20", "--chunk-samples", "16"]

    @Test("--shard I/N packs chunk-aligned slices; join equals the single-file pack; reruns are up to date; inspect/verify/bench io take the joined store; launcher variables pick the shard")
    func shardAndJoin() throws {
        let directory = temporaryDirectory("stoke-shard-")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let images = directory + "/images"
        try makeImageFolder(images, count: 150)
        let single = try execute(stoke, ["pack", "--from", "images", images] + Self.recipe + ["-o", directory + "/single.h5"])
        try #require(single.status == 0, "\(single.stderr)")

        let template = directory + "/part-{shard}.h5"
        for index in 0..<3 {
            let run = try execute(stoke, ["pack", "--from", "images", images] + Self.recipe + ["--shard", "\(index)/3", "-o", template, "--json"])
            try #require(run.status == 0, "\(run.stderr)")
        }
        let parts = (0..<3).map { directory + "/part-0000\($0)-of-00003.h5" }
        // 150 samples = 10 chunks of 16 (the last partial): shards of 3, 3 and 4 chunks.
        let place = try execute(venvPython, ["-c", """
            import sys, json, h5py
            print(' '.join(str(json.loads(h5py.File(p, 'r').attrs['shard'])['start']) for p in sys.argv[1:]))
            """] + parts)
        #expect(place.stdout == "0 48 96\n", "\(place.stderr)")
        let again = try execute(stoke, ["pack", "--from", "images", images] + Self.recipe + ["--shard", "1/3", "-o", template])
        #expect(again.status == 0 && again.stdout.contains("up to date"), "\(again.stdout) \(again.stderr)")

        let joined = directory + "/joined.h5"
        let join = try execute(stoke, ["join"] + parts.reversed() + ["-o", joined])
        try #require(join.status == 0, "\(join.stderr)")
        #expect(join.stdout.contains("joined 3 shard(s), 150 samples"))
        try expectSameAsSingle(joined, directory + "/single.h5", samples: 150)

        let model = directory + "/model.h5"
        for command in [["inspect", joined], ["verify", joined], ["bench", "io", joined, "--workers", "1", "--batch-size", "32"],
                        ["train", joined, "--arch", "mlp:1200-16-3", "-o", model, "--epochs", "1"], ["infer", model, joined]] {
            let run = try execute(stoke, command)
            #expect(run.status == 0, "stoke \(command.joined(separator: " ")): \(run.stderr)")
        }
        let refused = try execute(stoke, ["join", parts[0], parts[2], "-o", directory + "/bad.h5"])
        #expect(refused.status != 0 && refused.stderr.contains(parts[0]) && refused.stderr.contains("of 3, but 2 shard(s) were given"), "\(refused.stderr)")

        // The launchers' variables: a Slurm job array task and srun's task number.
        for (environment, index) in [(["SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"], 2),
                                     (["SLURM_PROCID": "0", "SLURM_NTASKS": "3"], 0), (["PMI_RANK": "1", "PMI_SIZE": "3"], 1)] {
            let out = directory + "/env-\(index)-{shard}.h5"
            let run = try execute(stoke, ["pack", "--from", "images", images] + Self.recipe + ["-o", out], environment: environment)
            #expect(run.status == 0, "\(environment): \(run.stderr)")
            let expected = out.replacingOccurrences(of: "{shard}", with: "0000\(index)-of-00003")
            let same = try execute(venvPython, ["-c", """
                import sys, h5py, hdf5plugin, numpy as np
                a, b = h5py.File(sys.argv[1], 'r'), h5py.File(sys.argv[2], 'r')
                assert all(np.array_equal(a[n][...], b[n][...]) for n in ('image', 'label'))
                """, expected, parts[index]])
            #expect(same.status == 0, "\(environment): \(same.stderr)")
        }
    }

    @Test("default chunking: every field of a shard is cut at the first field's chunk size, so bench io reads the joined store chunk by chunk")
    func defaultChunking() throws {
        let directory = temporaryDirectory("stoke-shard-idx-")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fashion = "/usr/share/datasets/fashion-mnist"
        for index in 0..<2 {
            let run = try execute(stoke, ["pack", "--from", "idx", "\(fashion)/t10k-images-idx3-ubyte.gz", "--labels", "\(fashion)/t10k-labels-idx1-ubyte.gz",
                                          "--shard", "\(index)/2", "-o", directory + "/fm-{shard}.h5"])
            try #require(run.status == 0, "\(run.stderr)")
        }
        let join = try execute(stoke, ["join", directory + "/fm-00000-of-00002.h5", directory + "/fm-00001-of-00002.h5", "-o", directory + "/fm.h5"])
        try #require(join.status == 0, "\(join.stderr)")
        let bench = try execute(stoke, ["bench", "io", directory + "/fm.h5", "--workers", "1", "--json"])
        #expect(bench.status == 0, "\(bench.stderr)")
        #expect((jsonObject(bench.stdout)?["loader_state"] as? [String: Any])?["samples_consumed"] as? Int == 0)
        let chunks = try execute(venvPython, ["-c", "import sys, h5py, hdf5plugin; f = h5py.File(sys.argv[1], 'r'); print(f['image'].chunks[0], f['label'].chunks[0])",
                                              directory + "/fm-00000-of-00002.h5"])
        #expect(chunks.stdout == "2674 2674\n", "\(chunks.stdout) \(chunks.stderr)")
    }

    @Test("mpirun -np 2 stoke pack --join: the joined store equals the single-process pack")
    func mpirunPackAndJoin() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun") else {
            Issue.record("mpirun missing: scripts/setup installs openmpi-bin")
            return
        }
        let directory = temporaryDirectory("stoke-mpi-")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let images = directory + "/images"
        try makeImageFolder(images, count: 120)
        let single = try execute(stoke, ["pack", "--from", "images", images] + Self.recipe + ["-o", directory + "/single.h5"])
        try #require(single.status == 0, "\(single.stderr)")
        let run = try execute("/usr/bin/mpirun", ["--allow-run-as-root", "--oversubscribe", "-np", "2", stoke, "pack", "--from", "images", images]
                              + Self.recipe + ["--workers", "1", "-o", directory + "/data.h5", "--join", "--json"])
        try #require(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let document = try #require(jsonObject(run.stdout), "\(run.stdout)")
        #expect(document["samples"] as? Int == 120)
        #expect((document["ranks"] as? [[String: Any]])?.count == 2)
        #expect(FileManager.default.fileExists(atPath: directory + "/data-00001-of-00002.h5"))
        try expectSameAsSingle(directory + "/data.h5", directory + "/single.h5", samples: 120)
    }
}
