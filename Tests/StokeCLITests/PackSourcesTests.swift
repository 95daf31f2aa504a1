import Foundation
import Testing

private let stoke = stokeBinary
private let fashion = "/usr/share/datasets/fashion-mnist"

private func scratch() -> String { temporaryDirectory("stoke-pack-") }

@Suite("stoke pack from real sources")
struct PackSourcesTests {
    @Test("IDX: Fashion-MNIST train packs byte-identical (checked by h5py); rerun is up to date; --force rebuilds; provenance")
    func idxFashionMNIST() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = directory + "/train.h5"
        let arguments = ["pack", "--from", "idx", "\(fashion)/train-images-idx3-ubyte.gz", "--labels", "\(fashion)/train-labels-idx1-ubyte.gz",
                         "-o", store]
        let first = try execute(stoke, arguments + ["--json"])
        try #require(first.status == 0, "\(first.stderr)")
        #expect(jsonObject(first.stdout)?["samples"] as? Int == 60000)
        let check = try execute(venvPython, ["-c", """
            import sys, gzip, json, hashlib, h5py, hdf5plugin, numpy as np
            store, images, labels = sys.argv[1:]
            f = h5py.File(store, 'r')
            x = np.frombuffer(gzip.open(images).read()[16:], np.uint8).reshape(60000, 1, 28, 28)
            y = np.frombuffer(gzip.open(labels).read()[8:], np.uint8)
            assert f['image'].dtype == np.uint8 and f['image'].shape == (60000, 1, 28, 28)
            assert f['label'].dtype == np.int64 and f['label'].shape == (60000,)
            assert np.array_equal(f['image'][...], x), 'images differ'
            assert np.array_equal(f['label'][...], y), 'labels differ'
            p = json.loads(f.attrs['provenance'])
            assert [s['path'] for s in p['sources']] == [images, labels], p
            for s in p['sources']:
                assert s['sha256'] == hashlib.sha256(open(s['path'], 'rb').read()).hexdigest(), s
            assert p['stoke_version'] and p['created'] and 'pack --from idx' in p['command'], p
            """, store, "\(fashion)/train-images-idx3-ubyte.gz", "\(fashion)/train-labels-idx1-ubyte.gz"])
        #expect(check.status == 0, "\(check.stderr)")

        let modified = try FileManager.default.attributesOfItem(atPath: store)[.modificationDate] as? Date
        let again = try execute(stoke, arguments)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("up to date"))
        #expect(try FileManager.default.attributesOfItem(atPath: store)[.modificationDate] as? Date == modified)
        let againJSON = try execute(stoke, arguments + ["--json"])
        #expect(jsonObject(againJSON.stdout)?["up_to_date"] as? Bool == true)

        let forced = try execute(stoke, arguments + ["--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(forced.stdout.contains("packed 60000 samples"))

        // Another command may not silently replace the store.
        let other = try execute(stoke, ["pack", "--from", "idx", "\(fashion)/t10k-images-idx3-ubyte.gz", "-o", store])
        #expect(other.status != 0)
        #expect(other.stderr == "stoke: error: \(store): already exists, made by another command: stoke \(arguments.joined(separator: " ")) (use --force to replace it)\n",
                "\(other.stderr)")
        #expect(other.stderr.split(separator: "\n").count == 1)
    }

    @Test("a changed source makes the same command rebuild; a mismatched label count is refused and writes nothing")
    func staleAndMismatch() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try execute(venvPython, ["-c", """
            import sys, numpy as np
            d = sys.argv[1]
            np.save(d + '/x.npy', np.arange(60, dtype=np.float32).reshape(20, 3))
            np.save(d + '/y.npy', np.arange(20, dtype=np.int64))
            np.save(d + '/y5.npy', np.arange(5, dtype=np.int64))
            """, directory])
        try #require(made.status == 0, "\(made.stderr)")
        let store = directory + "/s.h5"
        let arguments = ["pack", "--from", "npy", directory + "/x.npy", "--labels", directory + "/y.npy", "-o", store]
        #expect(try execute(stoke, arguments).status == 0)
        #expect(try execute(stoke, arguments).stdout.contains("up to date"))
        // Thread counts change the speed, not the store: still up to date.
        #expect(try execute(stoke, arguments + ["--workers", "1"]).stdout.contains("up to date"))
        let changed = try execute(venvPython, ["-c", "import sys, numpy as np; np.save(sys.argv[1], np.arange(20, dtype=np.int64) * 2)", directory + "/y.npy"])
        try #require(changed.status == 0)
        let rebuilt = try execute(stoke, arguments)
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        #expect(rebuilt.stdout.contains("y.npy changed"), "\(rebuilt.stdout)")
        let check = try execute(venvPython, ["-c", "import sys, h5py, hdf5plugin, numpy as np; assert list(h5py.File(sys.argv[1])['label'][...]) == list(range(0, 40, 2))", store])
        #expect(check.status == 0, "\(check.stderr)")

        let bad = try execute(stoke, ["pack", "--from", "npy", directory + "/x.npy", "--labels", directory + "/y5.npy", "-o", directory + "/bad.h5"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("y5.npy: has 5 samples"), "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/bad.h5"))
    }

    @Test("NPZ and CSV through the CLI: h5py reads back every field; a bad CSV cell is one line naming line and column")
    func npzAndCSV() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try execute(venvPython, ["-c", """
            import sys, numpy as np
            d = sys.argv[1]
            rng = np.random.default_rng(11)
            np.savez_compressed(d + '/a.npz', image=rng.integers(0, 255, size=(50, 3, 8, 8), dtype=np.uint8),
                                label=np.arange(50, dtype=np.int64), weight=rng.random(50).astype(np.float64))
            rows = rng.random((40, 3)).astype(np.float32)
            with open(d + '/t.csv', 'w') as f:
                f.write('x0,x1,kind,x2\\n')
                for i, r in enumerate(rows):
                    f.write(f'{float(r[0])!r},{float(r[1])!r},{i % 3},{float(r[2])!r}\\n')
            np.save(d + '/rows.npy', rows)
            with open(d + '/bad.csv', 'w') as f:
                f.write('x0,kind\\n1,0\\n2,1\\nthree,2\\n')
            """, directory])
        try #require(made.status == 0, "\(made.stderr)")
        let npz = try execute(stoke, ["pack", "--from", "npz", directory + "/a.npz", "-o", directory + "/a.h5"])
        #expect(npz.status == 0, "\(npz.stderr)")
        let csv = try execute(stoke, ["pack", "--from", "csv", directory + "/t.csv", "--label-column", "kind", "-o", directory + "/t.h5"])
        #expect(csv.status == 0, "\(csv.stderr)")
        let check = try execute(venvPython, ["-c", """
            import sys, json, h5py, hdf5plugin, numpy as np
            d = sys.argv[1]
            src = np.load(d + '/a.npz')
            with h5py.File(d + '/a.h5') as f:
                for k in ['image', 'label', 'weight']:
                    assert f[k].dtype == src[k].dtype and np.array_equal(f[k][...], src[k]), k
            with h5py.File(d + '/t.h5') as f:
                assert np.array_equal(f['data'][...], np.load(d + '/rows.npy'))
                assert list(f['label'][...]) == [i % 3 for i in range(40)]
                assert json.loads(f.attrs['recipe'])['label_column'] == 'kind'
            """, directory])
        #expect(check.status == 0, "\(check.stderr)")
        let bad = try execute(stoke, ["pack", "--from", "csv", directory + "/bad.csv", "--label-column", "kind", "-o", directory + "/bad.h5"])
        #expect(bad.status == 1)
        #expect(bad.stderr == "stoke: error: \(directory)/bad.csv: line 4, column 1 'x0': 'three' is not a number (expected a plain decimal such as -1.5e3, or nan/inf)\n")
        #expect(!FileManager.default.fileExists(atPath: directory + "/bad.h5"))
    }

    @Test("image folder: JPEG/PNG/PGM classes, resize + crop; a corrupt file stops the pack, --skip-bad lists it; CSV list; up to date")
    func imageFolder() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try execute(venvPython, ["-c", """
            import sys, os, numpy as np
            from PIL import Image
            d = sys.argv[1]
            rng = np.random.default_rng(5)
            names = []
            for c, (cls, ext) in enumerate([('bird', 'png'), ('cat', 'jpg'), ('dog', 'pgm')]):
                os.makedirs(f'{d}/root/{cls}')
                for i in range(4):
                    a = rng.integers(0, 255, size=(30 + i, 40, 3), dtype=np.uint8)
                    im = Image.fromarray(a) if ext != 'pgm' else Image.fromarray(a).convert('L')
                    path = f'{d}/root/{cls}/{i:02d}.{ext}'
                    im.save(path, quality=95) if ext == 'jpg' else im.save(path)
                    names.append((f'root/{cls}/{i:02d}.{ext}', cls))
            with open(d + '/list.csv', 'w') as f:
                f.write('path,label\\n' + ''.join(f'{p},{c}\\n' for p, c in reversed(names)))
            good = open(f'{d}/root/cat/01.jpg', 'rb').read()
            open(f'{d}/root/cat/99_truncated.jpg', 'wb').write(good[: len(good) // 2])
            """, directory])
        try #require(made.status == 0, "\(made.stderr)")
        let store = directory + "/images.h5"
        let base = ["pack", "--from", "images", directory + "/root", "--resize", "24", "--center-crop", "20x22", "-o", store]

        let failed = try execute(stoke, base)
        #expect(failed.status == 1)
        #expect(failed.stderr.hasPrefix("stoke: error: \(directory)/root/cat/99_truncated.jpg: corrupt JPEG"), "\(failed.stderr)")
        #expect(failed.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: store))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).allSatisfy { !$0.contains(".partial-") })

        let skipping = base + ["--skip-bad", "--mean", "0.5,0.4,0.3", "--std", "0.2,0.2,0.2"]
        let packed = try execute(stoke, skipping + ["--json"])
        #expect(packed.status == 0, "\(packed.stderr)")
        let summary = jsonObject(packed.stdout)
        #expect(summary?["samples"] as? Int == 12)
        #expect((summary?["skipped"] as? [[String: Any]])?.first?["path"] as? String == "\(directory)/root/cat/99_truncated.jpg")
        let check = try execute(venvPython, ["-c", """
            import sys, json, h5py, hdf5plugin, numpy as np
            from PIL import Image
            d, store = sys.argv[1:]
            f = h5py.File(store, 'r')
            assert f['image'].shape == (12, 3, 20, 22) and f['image'].dtype == np.uint8, f['image'].shape
            assert list(f['label'][...]) == [0] * 4 + [1] * 4 + [2] * 4
            recipe = json.loads(f.attrs['recipe'])
            assert recipe['classes'] == ['bird', 'cat', 'dog'], recipe
            assert [s['op'] for s in recipe['steps']][:4] == ['decode', 'color', 'resize', 'center_crop'], recipe
            norm = json.loads(f.attrs['normalization'])
            assert norm['mean'] == [0.5, 0.4, 0.3] and norm['field'] == 'image', norm
            prov = json.loads(f.attrs['provenance'])
            assert prov['skipped_count'] == 1 and prov['skipped'][0]['path'].endswith('99_truncated.jpg'), prov
            assert prov['sources'][0]['files'] == 13, prov
            # Sample 0 is bird/00.png: Resize(24) on 30x40 gives 24x32, CenterCrop 20x22 -> top 2, left 5.
            im = Image.open(d + '/root/bird/00.png').resize((32, 24), Image.BILINEAR)
            ref = np.asarray(im)[2:22, 5:27].transpose(2, 0, 1).astype(int)
            assert np.abs(f['image'][0].astype(int) - ref).max() <= 1
            # dog images are gray PGM: replicated to RGB.
            assert np.array_equal(f['image'][8][0], f['image'][8][2])
            """, directory, store])
        #expect(check.status == 0, "\(check.stderr)")
        let again = try execute(stoke, skipping)
        #expect(again.stdout.contains("up to date"), "\(again.stdout) \(again.stderr)")
        // Fixing the bad file makes the store stale: the same command rebuilds it with 13 samples.
        try FileManager.default.removeItem(atPath: directory + "/root/cat/99_truncated.jpg")
        try FileManager.default.copyItem(atPath: directory + "/root/cat/01.jpg", toPath: directory + "/root/cat/99_truncated.jpg")
        let rebuilt = try execute(stoke, skipping)
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        #expect(rebuilt.stdout.contains("rebuilding") && rebuilt.stdout.contains("packed 13 samples"), "\(rebuilt.stdout)")

        // Sample order does not depend on the number of decode threads.
        let single = try execute(stoke, ["pack", "--from", "images", directory + "/root", "--resize", "24", "--center-crop", "20x22",
                                     "--workers", "1", "-o", directory + "/one.h5"])
        let double = try execute(stoke, ["pack", "--from", "images", directory + "/root", "--resize", "24", "--center-crop", "20x22",
                                     "--workers", "2", "-o", directory + "/two.h5"])
        #expect(single.status == 0 && double.status == 0, "\(single.stderr) \(double.stderr)")
        let same = try execute(venvPython, ["-c", """
            import sys, h5py, hdf5plugin, numpy as np
            a, b, c = (h5py.File(p, 'r') for p in sys.argv[1:])
            for k in ['image', 'label']:
                assert np.array_equal(a[k][...], b[k][...]) and np.array_equal(a[k][...], c[k][...]), k
            """, directory + "/one.h5", directory + "/two.h5", store])
        #expect(same.status == 0, "\(same.stderr)")

        // A split of the same folder: both stores are the full store's rows, each in source order.
        let split = try execute(stoke, ["pack", "--from", "images", directory + "/root", "--resize", "24", "--center-crop", "20x22",
                                    "-o", directory + "/split-train.h5", "--val-output", directory + "/split-val.h5", "--val-fraction", "0.5"])
        #expect(split.status == 0, "\(split.stderr)")
        let splitCheck = try execute(venvPython, ["-c", """
            import sys, h5py, hdf5plugin, numpy as np
            full, t, v = (h5py.File(p, 'r')['image'][...] for p in sys.argv[1:])
            assert len(t) + len(v) == len(full) and len(t) > 0 and len(v) > 0
            rows = [bytes(r) for r in full]
            assert sorted(rows) == sorted([bytes(r) for r in t] + [bytes(r) for r in v])
            for part in (t, v):
                # Each part is a subsequence of the full store (source order kept).
                i = 0
                for r in part:
                    while rows[i] != bytes(r): i += 1
                    i += 1
            """, store, directory + "/split-train.h5", directory + "/split-val.h5"])
        #expect(splitCheck.status == 0, "\(splitCheck.stderr)")

        // A CSV list with class names, in its own order; f32 output with baked normalization, HWC.
        let listed = try execute(stoke, ["pack", "--from", "images", directory + "/list.csv", "--resize", "16x16", "--dtype", "f32",
                                     "--mean", "0.5", "--std", "0.5", "--bake-normalize", "--layout", "hwc", "--color", "gray",
                                     "-o", directory + "/list.h5"])
        #expect(listed.status == 0, "\(listed.stderr)")
        let listCheck = try execute(venvPython, ["-c", """
            import sys, json, h5py, hdf5plugin, numpy as np
            f = h5py.File(sys.argv[1], 'r')
            assert f['image'].shape == (12, 16, 16, 1) and f['image'].dtype == np.float32
            assert list(f['label'][...]) == [2] * 4 + [1] * 4 + [0] * 4
            x = f['image'][...]
            from PIL import Image
            d = sys.argv[1].rsplit('/', 1)[0]
            paths = [line.split(',')[0] for line in open(d + '/list.csv').read().split()[1:]]
            for i, p in enumerate(paths):
                ref = np.asarray(Image.open(d + '/' + p).convert('L').resize((16, 16), Image.BILINEAR), np.float32)
                ref = (ref / 255 - 0.5) / 0.5
                assert np.abs(x[i, :, :, 0] - ref).max() <= 1.01 / 127.5, (p, np.abs(x[i, :, :, 0] - ref).max())
            assert 'normalization' not in f.attrs
            assert json.loads(f.attrs['recipe'])['classes'] == ['bird', 'cat', 'dog']
            """, directory + "/list.h5"])
        #expect(listCheck.status == 0, "\(listCheck.stderr)")
    }

    @Test("--val-output/--val-fraction: a seeded split into two stores that together hold every sample in order; reruns are up to date")
    func trainValidationSplit() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try execute(venvPython, ["-c", """
            import sys, numpy as np
            d = sys.argv[1]
            np.save(d + '/x.npy', np.arange(1000 * 6, dtype=np.int16).reshape(1000, 2, 3))
            np.save(d + '/y.npy', np.arange(1000, dtype=np.int64))
            """, directory])
        try #require(made.status == 0, "\(made.stderr)")
        let arguments = ["pack", "--from", "npy", directory + "/x.npy", "--labels", directory + "/y.npy", "-o", directory + "/train.h5",
                         "--val-output", directory + "/val.h5", "--val-fraction", "0.2", "--split-seed", "7", "--chunk-samples", "64"]
        let packed = try execute(stoke, arguments + ["--json"])
        #expect(packed.status == 0, "\(packed.stderr)")
        let document = jsonObject(packed.stdout)
        let trainCount = document?["samples"] as? Int ?? 0
        let validationCount = (document?["validation"] as? [String: Any])?["samples"] as? Int ?? 0
        #expect(trainCount + validationCount == 1000)
        #expect((150...250).contains(validationCount), "\(validationCount)")
        let check = try execute(venvPython, ["-c", """
            import sys, json, h5py, hdf5plugin, numpy as np
            t, v = (h5py.File(p, 'r') for p in sys.argv[1:])
            ty, vy = t['label'][...], v['label'][...]
            assert len(set(ty) & set(vy)) == 0 and sorted(list(ty) + list(vy)) == list(range(1000))
            assert list(ty) == sorted(ty) and list(vy) == sorted(vy)
            for f, y in [(t, ty), (v, vy)]:
                assert np.array_equal(f['data'][...], np.arange(6000, dtype=np.int16).reshape(1000, 2, 3)[y])
            assert json.loads(t.attrs['recipe'])['split']['role'] == 'train'
            assert json.loads(v.attrs['recipe'])['split']['role'] == 'validation'
            """, directory + "/train.h5", directory + "/val.h5"])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(try execute(stoke, arguments).stdout.contains("are up to date"))
        // Losing one half rewrites both, so they stay one split.
        try FileManager.default.removeItem(atPath: directory + "/val.h5")
        let rebuilt = try execute(stoke, arguments + ["--json"])
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        #expect(jsonObject(rebuilt.stdout)?["samples"] as? Int == trainCount)
        let other = try execute(stoke, arguments.map { $0 == "7" ? "8" : $0 })
        #expect(other.status != 0 && other.stderr.contains("made by another command"), "\(other.stderr)")
    }
}
