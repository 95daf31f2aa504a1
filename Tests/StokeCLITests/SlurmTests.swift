import Foundation
import Testing

/// Whether Slurm (slurm-wlm) and munge are installed: scripts/slurm-run starts a single-node cluster with them.
private let slurmInstalled = ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch", "/usr/sbin/munged"]
    .allSatisfy(FileManager.default.isExecutableFile(atPath:))

@Suite("Slurm: the docs' job-array and srun scripts on a single-node Slurm the test starts")
struct SlurmTests {
    @Test("sbatch --array and srun pack shards that join into the single-process pack",
          .enabled(if: slurmInstalled, "slurm-wlm and munge are not installed"))
    func arrayAndSrun() throws {
        let directory = temporaryDirectory("stoke-slurm-")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let images = directory + "/images"
        let made = try execute(venvPython, ["-c", """
            import sys, os, numpy as np
            from PIL import Image
            rng = np.random.default_rng(5)
            for i in range(90):
                folder = os.path.join(sys.argv[1], 'abc'[i % 3])
                os.makedirs(folder, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(f'{folder}/{i:04d}.jpg', quality=90)
            """, images])
        try #require(made.status == 0, "\(made.stderr)")
        let recipe = "--resize 16x16 --chunk-samples 8"
        let single = try execute(stokeBinary, ["pack", "--from", "images", images] + recipe.split(separator: " ").map(String.init) + ["-o", directory + "/single.h5"])
        try #require(single.status == 0, "\(single.stderr)")

        // scripts/slurm-run starts slurmctld and slurmd for the command and stops them after it.
        let scripts = repositoryRoot.appendingPathComponent("docs/scale-out").path
        for name in ["array", "srun"] { try FileManager.default.createDirectory(atPath: directory + "/" + name, withIntermediateDirectories: true) }
        let jobs = """
            set -e
            cd "$WORK"
            sbatch --wait --array=0-2 --export=ALL,OUT="$WORK/array" "$SCRIPTS/pack-array.sbatch"
            "$STOKE" join "$WORK"/array/train-0000[0-2]-of-00003.h5 -o "$WORK/array/train.h5"
            sbatch --wait --ntasks=2 --export=ALL,OUT="$WORK/srun" "$SCRIPTS/pack-srun.sh"
            """
        let run = try execute(repositoryRoot.appendingPathComponent("scripts/slurm-run").path, [directory + "/cluster", "bash", "-c", jobs],
                              environment: ["STOKE": stokeBinary, "IMAGES": images, "RECIPE": recipe, "WORK": directory, "SCRIPTS": scripts])
        let logs = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".out") }
            .compactMap { try? String(contentsOfFile: directory + "/" + $0, encoding: .utf8) }.joined(separator: "\n")
        try #require(run.status == 0, "\(run.stdout)\n\(run.stderr)\n\(logs)")
        for name in ["array", "srun"] {
            let out = directory + "/" + name
            let check = try execute(venvPython, ["-c", """
                import sys, h5py, hdf5plugin, numpy as np
                a, b = h5py.File(sys.argv[1], 'r'), h5py.File(sys.argv[2], 'r')
                for n in ('image', 'label'):
                    assert a[n].is_virtual and np.array_equal(a[n][...], b[n][...]), n
                """, out + "/train.h5", directory + "/single.h5"])
            #expect(check.status == 0, "\(name): \(check.stderr)")
        }
    }
}
