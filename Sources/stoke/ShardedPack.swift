import ArgumentParser
import Foundation
import StokePack
import StokeStore

/// The part of the sources one `stoke pack` process packs when sharding.
struct ShardSlice {
    var spec: ShardSpec
    /// Global sample range of this shard.
    var range: Range<Int>
    var place: ShardPlace
    /// Samples per chunk of every field of the shard: the slices are cut at multiples of it, so no chunk of
    /// the joined store straddles two shards (the label field too, whose byte-sized chunks would hold more
    /// samples than a shard).
    var chunkSamples: Int
    /// For image sources: this shard's images.
    var imageList: ImageList?
}

/// `stoke pack --shard I/N` and packing under a launcher (mpirun, srun, a Slurm job array): each process
/// packs its contiguous, chunk-aligned slice of the sources into its own shard store, records its place,
/// and, with `--join` under Open MPI, rank 0 joins the shards after every rank finished.
enum ShardedPack {
    static func run(_ pack: Pack) throws {
        var spec = pack.shard.flatMap(ShardSpec.init(parsing:))
        var launcher: ShardSpec.Launcher?
        if spec == nil, let found = try ShardSpec.fromEnvironment() { (spec, launcher) = (found.0, found.1) }
        guard let spec else {
            if pack.join { throw UsageError("--join joins the shards of a sharded pack: give --shard I/N or run under mpirun or srun") }
            try pack.packBody(shard: nil)
            return
        }
        if pack.valOutput != nil || pack.skipBad {
            throw UsageError("--val-output and --skip-bad are not available when packing shards (shard \(spec)\(launcher.map { " from \($0.rawValue)" } ?? ""))")
        }
        let mpi: MPIRuntime?
        switch MPIRuntime.shared {
        case .none: mpi = nil
        case .success(let runtime)?: mpi = runtime
        case .failure(let error)?:
            if pack.join { throw UsageError("--join needs Open MPI: \(error)") }
            mpi = nil
        }
        let started = Date()
        var failure: (any Error)?
        var samples = 0
        let shardPath = Sharding.path(pack.output, shard: spec)
        do {
            let slice = try plan(pack, spec: spec)
            samples = slice.range.count
            var shardPack = pack
            shardPack.output = shardPath
            try shardPack.packBody(shard: slice)
        } catch {
            failure = error
        }
        let seconds = Date().timeIntervalSince(started)
        guard let mpi else {
            if let failure { throw failure }
            if pack.join {
                guard spec.count == 1 else {
                    throw UsageError("--join needs every shard done: run under Open MPI's mpirun, or run `stoke join` after all \(spec.count) shards finished")
                }
                try join(pack, count: 1, json: pack.json, ranks: nil)
            }
            return
        }
        // Every rank reaches this gather, also one that failed, so that none waits forever.
        let all = mpi.allGather([seconds, Double(samples), failure == nil ? 0 : 1])
        mpi.finalize()
        if let failure { throw failure }
        let failed = all.indices.filter { all[$0][2] != 0 }
        guard mpi.rank == 0 else { return }
        let ranks = all.enumerated().map { rank, values in
            ["rank": rank, "path": Sharding.path(pack.output, shard: ShardSpec(index: rank, count: mpi.size)),
             "seconds": values[0], "samples": Int(values[1])] as [String: Any]
        }
        if !failed.isEmpty {
            throw ValidationError("rank(s) \(failed.map(String.init).joined(separator: ", ")) failed\(pack.join ? "; not joining" : "")")
        }
        if pack.join {
            try join(pack, count: mpi.size, json: pack.json, ranks: ranks)
        } else if pack.json {
            printJSON(["ranks": ranks, "seconds": all.map { $0[0] }.max() ?? 0])
        } else {
            for rank in ranks { print(String(format: "rank %d: %d samples in %.2f s -> %@", rank["rank"] as! Int, rank["samples"] as! Int, rank["seconds"] as! Double, rank["path"] as! String)) }
        }
    }

    /// The shard's slice: the whole source list's size and hash, and the range cut at the chunk size of
    /// the first (largest) field, so that the shards' chunks are the joined store's chunks.
    static func plan(_ pack: Pack, spec: ShardSpec) throws -> ShardSlice {
        let chunking: Chunking = pack.chunkSamples.map { .samples($0) } ?? pack.chunkBytes.map { .bytes($0) } ?? StoreWriteOptions().chunking
        if pack.from == .images {
            let list = try pack.imageListFromInput()
            let recipe = try pack.imageRecipe()
            // The first image fixes the sample shape (every image must give the same one).
            let image = try ImageDecoder.decode(path: list.paths[0])
            let shape = recipe.outputShape(height: image.height, width: image.width)
            let alignment = chunking.samplesPerChunk(sampleBytes: shape.reduce(recipe.dtype.size, *))
            let range = try Sharding.range(of: spec, total: list.paths.count, alignment: alignment)
            let place = ShardPlace(index: spec.index, count: spec.count, start: range.lowerBound, end: range.upperBound,
                                   total: list.paths.count, sourcesSHA256: list.listHash)
            return ShardSlice(spec: spec, range: range, place: place, chunkSamples: alignment, imageList: list.slice(range))
        }
        let fields = try pack.packFields()
        let total = fields[0].source.count
        let alignment = chunking.samplesPerChunk(sampleBytes: fields[0].sampleShape.reduce(fields[0].source.dtype.size, *))
        let range = try Sharding.range(of: spec, total: total, alignment: alignment)
        let hash = Sharding.listHash(fields.map { "\($0.name)\t\($0.source.path)\t\($0.source.shape)" })
        let place = ShardPlace(index: spec.index, count: spec.count, start: range.lowerBound, end: range.upperBound, total: total, sourcesSHA256: hash)
        return ShardSlice(spec: spec, range: range, place: place, chunkSamples: alignment, imageList: nil)
    }

    /// Joins shards `0..<count` of `pack.output` into its joined path.
    static func join(_ pack: Pack, count: Int, json: Bool, ranks: [[String: Any]]?) throws {
        let shards = (0..<count).map { Sharding.path(pack.output, shard: ShardSpec(index: $0, count: count)) }
        let output = Sharding.joinedPath(pack.output)
        let summary = try JoinedStore.join(shards: shards, to: output, overwrite: pack.force || isJoinedStore(output))
        if json {
            var document: [String: Any] = ["path": summary.path, "samples": summary.samples, "shards": summary.shards]
            if let ranks {
                document["ranks"] = ranks
                document["seconds"] = ranks.compactMap { $0["seconds"] as? Double }.max() ?? 0
            }
            printJSON(document)
        } else {
            for rank in ranks ?? [] {
                print(String(format: "rank %d: %d samples in %.2f s -> %@", rank["rank"] as! Int, rank["samples"] as! Int, rank["seconds"] as! Double, rank["path"] as! String))
            }
            print("joined \(summary.shards.count) shard(s), \(summary.samples) samples, into \(summary.path)")
        }
    }

    /// Whether `path` is a joined store (which a new join may replace).
    static func isJoinedStore(_ path: String) -> Bool {
        guard FileManager.default.fileExists(atPath: path), let store = try? Store(path: path) else { return false }
        return store.attributes["joined"] != nil
    }
}

struct Join: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join the shard stores of a sharded pack into one store.",
        discussion: """
            Checks that the shards are one pack's (same recipe and fields, sample ranges that tile the whole)
            and writes a store whose fields are HDF5 virtual datasets over the shards' fields, with paths
            relative to the store's folder (keep the shards beside it). h5py reads it as one dataset; Stoke
            reads the shards' chunks directly.
            Example:
              stoke pack --from images photos/ --resize 64x64 --shard 0/2 -o 'train-{shard}.h5'   (and 1/2)
              stoke join train-00000-of-00002.h5 train-00001-of-00002.h5 -o train.h5
            """)

    @Argument(help: "The shard stores (any order).") var shards: [String]
    @Option(name: .shortAndLong, help: "The joined store to write.") var output: String
    @Flag(name: .long, help: "Replace an existing file at the output path.") var force = false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func run() throws {
        try reportingErrors {
            let summary = try JoinedStore.join(shards: shards, to: output, overwrite: force || ShardedPack.isJoinedStore(output))
            if json {
                printJSON(["path": summary.path, "samples": summary.samples, "shards": summary.shards, "fields": summary.fields])
            } else {
                print("joined \(summary.shards.count) shard(s), \(summary.samples) samples, into \(summary.path)")
            }
        }
    }
}
