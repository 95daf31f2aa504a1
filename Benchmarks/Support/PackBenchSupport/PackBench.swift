import Foundation
import StokePack
import StokeStore
import StoreBenchSupport
import Synchronization

/// The image-pack comparison of issue 3: a generated ImageFolder of JPEGs packed by Stoke (the StokePack
/// API, exactly what `stoke pack --from images` calls) and by a single-process Python script doing the
/// same decode + resize + crop + HDF5 write with Pillow, numpy, h5py and hdf5plugin.
public enum PackBench {
    /// What both sides do to every image: shorter side to `resize` pixels (bilinear, antialiased, as
    /// Pillow's `BILINEAR`), center crop `crop` x `crop`, u8 CHW; LZ4 chunks of `chunkSamples` samples
    /// with Fletcher-32.
    public struct Setup: Sendable {
        public var resize = 256
        public var crop = 224
        public var chunkSamples: Int { max(1, (2 << 20) / sampleBytes) }
        public var sampleBytes: Int { 3 * crop * crop }
        public init() {}

        public var recipe: ImageRecipe {
            var recipe = ImageRecipe()
            recipe.resize_shorter = resize
            recipe.crop_height = crop
            recipe.crop_width = crop
            return recipe
        }
    }

    /// `$STOKE_BENCH_PYTHON`, else `<repo>/.venv/bin/python3`.
    public static func pythonPath() -> String {
        if let configured = ProcessInfo.processInfo.environment["STOKE_BENCH_PYTHON"], !configured.isEmpty { return configured }
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path + "/.venv/bin/python3"
    }

    /// Runs `script` with `arguments` in the Python at `pythonPath()` and returns its last stdout line.
    public static func runPython(script: String, arguments: [String], scratch: String) throws -> String {
        let python = pythonPath()
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw PackBenchError("no Python at \(python): create it with `python3 -m venv .venv && .venv/bin/pip install numpy h5py hdf5plugin pillow` in the repository root, or set STOKE_BENCH_PYTHON")
        }
        let scriptPath = scratch + "/script-\(abs(script.hashValue)).py"
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [scriptPath] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw PackBenchError("\(python) \(scriptPath) exited with \(process.terminationStatus)") }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
    }

    /// Writes `count` JPEGs (`width` x `height`, quality 90, Pillow's default 4:2:0 subsampling) into
    /// `root/class_<k>/img_<n>.jpg` across `classes` folders. Deterministic for a seed. Returns total bytes.
    public static func generate(root: String, count: Int, width: Int, height: Int, classes: Int, scratch: String) throws -> Int {
        let line = try runPython(script: generateScript, arguments: [root, "\(count)", "\(width)", "\(height)", "\(classes)"], scratch: scratch)
        guard let bytes = Int(line) else { throw PackBenchError("generator printed '\(line)'") }
        return bytes
    }

    /// One Stoke pack, as `stoke pack --from images ROOT -o PATH --resize R --center-crop C --workers N`:
    /// list the folder, hash every file for the provenance record (on `workers` threads, as the command
    /// does), then `ImagePacker.pack` with `workers` decode threads and `workers` compression threads.
    public struct StokeRun: Sendable {
        /// Seconds, wall clock, listing + hashing + packing (the store synced and renamed into place).
        public var seconds: Double
        /// Seconds of the above spent listing and hashing.
        public var hashSeconds: Double
        /// CPU seconds of this process over the same span (every thread).
        public var cpuSeconds: Double
        public var samples: Int
    }

    public static func stokePack(root: String, to path: String, setup: Setup, workers: Int) throws -> StokeRun {
        let start = now(), cpu = processCPUSeconds()
        let list = try ImageList.folder(root)
        let next = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: min(workers, list.paths.count)) { _ in
            while true {
                let index = next.add(1, ordering: .relaxed).oldValue
                guard index < list.paths.count else { return }
                if (try? SourceRecord.file(list.paths[index])) == nil { failures.add(1, ordering: .relaxed) }
            }
        }
        guard failures.load(ordering: .relaxed) == 0 else { throw PackBenchError("could not hash every image") }
        let hashed = now()
        var options = StoreWriteOptions()
        options.codec = .lz4
        options.chunking = .samples(setup.chunkSamples)
        options.workers = workers
        options.overwrite = true
        let result = try ImagePacker.pack(
            list: list, recipe: setup.recipe, to: path, options: options, workers: workers, skipBad: false,
            metadata: { _, _ in [] })
        return StokeRun(seconds: now() - start, hashSeconds: hashed - start, cpuSeconds: processCPUSeconds() - cpu, samples: result.summary.samples)
    }

    /// One run of the Python baseline (a fresh interpreter; its own timer starts after the imports).
    public struct PythonRun: Sendable {
        public var seconds: Double
        /// The interpreter's CPU seconds over the same span (all its threads).
        public var cpuSeconds: Double
        public var samples: Int
        /// Largest |Stoke − Pillow| over every stored value, when a Stoke store was given to compare with.
        public var maxDifference: Int?
    }

    public static func python(root: String, to path: String, setup: Setup, compareWith stokeStore: String?, scratch: String) throws -> PythonRun {
        let line = try runPython(
            script: baselineScript,
            arguments: [root, path, "\(setup.resize)", "\(setup.crop)", "\(setup.chunkSamples)", stokeStore ?? ""], scratch: scratch)
        let fields = line.split(separator: " ")
        guard fields.count == 4, let seconds = Double(fields[0]), let samples = Int(fields[1]), let cpu = Double(fields[3]) else {
            throw PackBenchError("baseline printed '\(line)'")
        }
        return PythonRun(seconds: seconds, cpuSeconds: cpu, samples: samples, maxDifference: Int(fields[2]))
    }

    static let generateScript = #"""
import os, sys
import numpy as np
from PIL import Image
root, count, width, height, classes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rng = np.random.default_rng(0x5EED)
yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
total = 0
for c in range(classes):
    os.makedirs(f"{root}/class_{c:03d}", exist_ok=True)
for n in range(count):
    # Photo-like content: a smooth two-colour gradient, a few flat shapes and sensor-like noise, so the
    # files have the size and entropy of real photos (about 0.3-0.5 bytes per pixel at quality 90).
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, np.pi)
    t = ((np.cos(angle) * xx + np.sin(angle) * yy) / (width + height) + 0.5)[..., None]
    img = a * (1 - t) + b * t
    for _ in range(4):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(10, width / 3), rng.uniform(10, height / 3)
        mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
        img[mask] = rng.uniform(0, 255, 3)
    img += rng.standard_normal(img.shape, dtype=np.float32) * 6
    path = f"{root}/class_{n % classes:03d}/img_{n:05d}.jpg"
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
    total += os.path.getsize(path)
print(total)
"""#

    /// What a user's own script would do, single process: list the ImageFolder the way Stoke and
    /// torchvision do (sorted classes, sorted files), then per image Pillow open + convert("RGB") +
    /// resize(BILINEAR, antialiased; torchvision's size rule) + center crop (torchvision's rounding) +
    /// numpy CHW, collected a chunk at a time and written with h5py as LZ4 (hdf5plugin, one block per
    /// chunk) with Fletcher-32: the same store layout Stoke writes. No Pillow `draft` (DCT-domain
    /// downscaling) since Stoke decodes at full size too.
    static let baselineScript = #"""
import os, sys, time
import numpy as np, h5py, hdf5plugin
from PIL import Image
root, out, resize, crop, chunk, compare = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
start = time.perf_counter(); cpu = time.process_time()
classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
paths, labels = [], []
for label, name in enumerate(classes):
    folder = os.path.join(root, name)
    rel = sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder)
                 for f in files if f.lower().endswith((".jpg", ".jpeg", ".png")) and not f.startswith("."))
    paths += [os.path.join(folder, p) for p in rel]
    labels += [label] * len(rel)
n = len(paths)
with h5py.File(out, "w") as f:
    data = f.create_dataset("image", shape=(n, 3, crop, crop), dtype=np.uint8, chunks=(chunk, 3, crop, crop),
                            fletcher32=True, **hdf5plugin.LZ4(nbytes=0))
    batch = np.empty((chunk, 3, crop, crop), dtype=np.uint8)
    filled, at = 0, 0
    for path in paths:
        im = Image.open(path).convert("RGB")
        w, h = im.size
        size = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
        im = im.resize(size, Image.BILINEAR)
        left = int(round((size[0] - crop) / 2.0)); top = int(round((size[1] - crop) / 2.0))
        im = im.crop((left, top, left + crop, top + crop))
        batch[filled] = np.asarray(im).transpose(2, 0, 1)
        filled += 1
        if filled == chunk:
            data[at:at + filled] = batch
            at += filled; filled = 0
    if filled:
        data[at:at + filled] = batch[:filled]
    f.create_dataset("label", data=np.asarray(labels, dtype=np.int64), fletcher32=True, **hdf5plugin.LZ4(nbytes=0))
seconds = time.perf_counter() - start; cpu = time.process_time() - cpu
diff = "-"
if compare:
    with h5py.File(out) as a, h5py.File(compare) as b:
        assert np.array_equal(a["label"][:], b["label"][:]), "labels differ"
        diff = 0
        for i in range(0, n, 256):
            x = a["image"][i:i + 256].astype(np.int16); y = b["image"][i:i + 256].astype(np.int16)
            diff = max(diff, int(np.abs(x - y).max()))
print(f"{seconds} {n} {diff} {cpu}")
"""#
}

public struct PackBenchError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

