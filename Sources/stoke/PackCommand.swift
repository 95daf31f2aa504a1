import ArgumentParser
import Foundation
import StokePack
import StokeStore
import Synchronization

extension ImageRecipe.Interpolation: ExpressibleByArgument {}
extension ImageRecipe.Color: ExpressibleByArgument {}
extension ImageRecipe.Layout: ExpressibleByArgument {}

struct Pack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pack a dataset (NPY, NPZ, IDX, CSV, image folders) into a compressed HDF5 store.",
        discussion: """
            Examples:
              stoke pack --from idx train-images-idx3-ubyte.gz --labels train-labels-idx1-ubyte.gz -o train.h5
              stoke pack --from npy images.npy --labels labels.npy -o train.h5 --codec lz4
              stoke pack --from npz arrays.npz -o arrays.h5          (one field per array)
              stoke pack --from csv table.csv --label-column species -o table.h5
              stoke pack --from images photos/ --resize 256 --center-crop 224 --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 -o val.h5
            Rerunning the same command on unchanged sources does nothing ("up to date"); --force rebuilds.
            """)

    /// The most decode and compression threads `--workers` may ask for.
    static let maximumWorkers = 256

    enum SourceKind: String, ExpressibleByArgument, CaseIterable { case npy, npz, idx, csv, images }

    @Option(name: .long, help: "Source format: \(SourceKind.allCases.map(\.rawValue).joined(separator: ", ")).") var from: SourceKind
    @Argument(help: "The data file; for images, an ImageFolder root (root/<class>/<file>) or a CSV list of path,label.") var input: String
    @Option(name: .long, help: "A labels file with the same number of samples (npy, idx).") var labels: String?
    @Option(name: .long, help: "csv: the column holding integer labels (stored as the label field).") var labelColumn: String?
    @Option(name: .shortAndLong, help: "The store to write.") var output: String
    @Option(name: .long, help: "lz4, lz4-shuffle, deflate[:LEVEL] or none.") var codec: String = "lz4"
    @Option(name: .long, help: "Bytes per chunk (whole samples; default about 2 MiB).") var chunkBytes: Int?
    @Option(name: .long, help: "Samples per chunk.") var chunkSamples: Int?
    @Option(name: .long, help: "Name of the data field (default: data; image for idx and images).") var name: String?
    @Option(name: .long, help: "Name of the label field.") var labelName: String = "label"
    @Option(name: .long, help: "Decode (images) and compression threads (default: all cores).") var workers: Int?
    @Flag(name: .long, help: "Do not record a Fletcher-32 checksum per chunk.") var noChecksum = false
    @Option(name: .long, help: "images: resize to HxW, or the shorter side to S.") var resize: String?
    @Option(name: .long, help: "images: bilinear (antialiased when shrinking) or area.") var interpolation: ImageRecipe.Interpolation = .bilinear
    @Option(name: .long, help: "images: center crop to HxW or SxS (after resize).") var centerCrop: String?
    @Option(name: .long, help: "images: rgb or gray.") var color: ImageRecipe.Color = .rgb
    @Option(name: .long, help: "images: brightness factor (1 = unchanged).") var brightness: Float = 1
    @Option(name: .long, help: "images: contrast factor (1 = unchanged).") var contrast: Float = 1
    @Option(name: .long, help: "images: saturation factor (1 = unchanged).") var saturation: Float = 1
    @Option(name: .long, help: "images: chw or hwc.") var layout: ImageRecipe.Layout = .chw
    @Option(name: .long, help: "images: stored dtype u8 (0-255), f16 or f32 (0-1).") var dtype: String = "u8"
    @Option(name: .long, help: "images: per-channel mean on the 0-1 scale (M or M,M,M), recorded for the loader.") var mean: String?
    @Option(name: .long, help: "images: per-channel std on the 0-1 scale (S or S,S,S).") var std: String?
    @Flag(name: .long, help: "images: write normalized values ((x/255 - mean) / std; needs --dtype f16 or f32).") var bakeNormalize = false
    @Flag(name: .long, help: "images: skip unreadable or corrupt files (listed in the summary and the store) instead of stopping.") var skipBad = false
    @Option(name: .long, help: "Also write a validation store here, holding out --val-fraction of the samples.") var valOutput: String?
    @Option(name: .long, help: "Share of samples for --val-output, in (0, 1), chosen by a seeded hash of the sample index.") var valFraction: Double?
    @Option(name: .long, help: "Seed of the train/validation split.") var splitSeed: UInt64 = 0
    @Flag(name: .long, help: "Rebuild even when the store is up to date; replace another command's store.") var force = false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false
    @Option(name: .long, help: "Pack shard I of N (0-based): a contiguous, chunk-aligned slice of the sources, into the output path with {shard} replaced (default: from mpirun/srun/a Slurm job array).") var shard: String?
    @Flag(name: .long, help: "Under Open MPI's mpirun: after every rank packed its shard, rank 0 joins them into the output path without {shard}.") var join = false

    func validate() throws {
        if chunkBytes != nil && chunkSamples != nil { throw UsageError("give --chunk-bytes or --chunk-samples, not both") }
        if let chunkBytes, chunkBytes <= 0 { throw UsageError("--chunk-bytes must be positive") }
        if let chunkSamples, chunkSamples <= 0 { throw UsageError("--chunk-samples must be positive") }
        if Codec(parsing: codec) == nil { throw UsageError("--codec '\(codec)' is not lz4, lz4-shuffle, deflate[:1-9] or none") }
        if let workers, !(1...Pack.maximumWorkers).contains(workers) {
            throw UsageError("--workers \(workers) is outside 1–\(Pack.maximumWorkers)")
        }
        if labels != nil && ![.npy, .idx].contains(from) { throw UsageError("--labels is for --from npy or idx") }
        if labelColumn != nil && from != .csv { throw UsageError("--label-column is for --from csv") }
        if from != .images && (resize != nil || centerCrop != nil || mean != nil || std != nil || bakeNormalize || skipBad || dtype != "u8") {
            throw UsageError("image options (--resize, --center-crop, --mean, --std, --dtype, --bake-normalize, --skip-bad) are for --from images")
        }
        if from == .images { _ = try imageRecipe() }
        if (valOutput == nil) != (valFraction == nil) { throw UsageError("--val-output and --val-fraction go together") }
        if let valFraction, !(valFraction > 0 && valFraction < 1) { throw UsageError("--val-fraction must be between 0 and 1") }
        if let valOutput, valOutput == output { throw UsageError("--val-output must differ from --output") }
        if let shard, ShardSpec(parsing: shard) == nil { throw UsageError("--shard '\(shard)' is not I/N with 0 <= I < N") }
    }

    private var split: SampleSplit? { valFraction.map { SampleSplit(fraction: $0, seed: splitSeed) } }

    /// `HxW` or a single `S`.
    private func size(_ text: String, option: String) throws -> (Int, Int)? {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard !parts.isEmpty, parts.count <= 2, parts.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw UsageError("\(option) '\(text)' is not HxW or a positive size")
        }
        guard parts.allSatisfy({ $0! <= ImageRecipe.maximumSide }) else {
            throw UsageError("\(option) '\(text)': sides are at most \(ImageRecipe.maximumSide) pixels")
        }
        return parts.count == 2 ? (parts[0]!, parts[1]!) : nil
    }

    private func values(_ text: String, option: String) throws -> [Float] {
        let values = text.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { throw UsageError("\(option) '\(text)' is not a comma-separated list of numbers") }
        return values.map { $0! }
    }

    /// The transform recipe the image options describe.
    func imageRecipe() throws -> ImageRecipe {
        var recipe = ImageRecipe()
        recipe.color = color
        if let resize {
            if let (height, width) = try size(resize, option: "--resize") {
                (recipe.resize_height, recipe.resize_width) = (height, width)
            } else {
                recipe.resize_shorter = Int(resize)
            }
        }
        recipe.interpolation = interpolation
        if let centerCrop {
            let exact = try size(centerCrop, option: "--center-crop")
            (recipe.crop_height, recipe.crop_width) = exact ?? (Int(centerCrop)!, Int(centerCrop)!)
        }
        recipe.brightness = brightness
        recipe.contrast = contrast
        recipe.saturation = saturation
        recipe.layout = layout
        guard let type = DType(rawValue: dtype) else { throw UsageError("--dtype '\(dtype)' is not u8, f16 or f32") }
        recipe.dtype = type
        recipe.mean = try mean.map { try values($0, option: "--mean") }
        recipe.std = try std.map { try values($0, option: "--std") }
        recipe.bake_normalize = bakeNormalize
        do { try recipe.validate() } catch { throw UsageError(error.reason) }
        return recipe
    }

    func run() throws {
        try reportingErrors { try ShardedPack.run(self) }
    }

    /// Packs the sources, or with `shard` that shard's slice of them, into `output`.
    func packBody(shard: ShardSlice?) throws {
        do {
            let started = Date()
            let arguments = Array(CommandLine.arguments.dropFirst())
            // Partial files of packs that were killed (their process is gone) are removed, and said so.
            for path in [output] + (valOutput.map { [$0] } ?? []) {
                for stale in PartialFiles.removeStale(near: path) {
                    FileHandle.standardError.write(Data(
                        "stoke: removed \(escapedForTerminal(stale.path)), left by process \(stale.pid) which is no longer running\n".utf8))
                }
            }
            let imageList = from == .images ? try shard?.imageList ?? imageListFromInput() : nil
            let sources = try sourceRecords(imageList: imageList)
            var overwrite = force
            if !force {
                let outputs = [output] + (valOutput.map { [$0] } ?? [])
                let states = outputs.map { ExistingStore.check(path: $0, arguments: arguments, sources: sources) }
                for (path, state) in zip(outputs, states) {
                    if case .different(let reason) = state { throw SourceError(path: path, reason: "\(reason) (use --force to replace it)") }
                }
                if states.allSatisfy({ $0 == .upToDate }) {
                    if json {
                        printJSON(["path": output, "up_to_date": true])
                    } else {
                        print("\(outputs.joined(separator: " and ")) \(outputs.count > 1 ? "are" : "is") up to date (same command, unchanged sources); nothing to do. Use --force to rebuild.")
                    }
                    return
                }
                for (path, state) in zip(outputs, states) {
                    switch state {
                    case .stale(let reason):
                        if !json { print("\(path) is out of date: \(reason); rebuilding") }
                        overwrite = true
                    case .upToDate:
                        // Its partner is missing or stale: both are rewritten so they stay one split.
                        overwrite = true
                    case .absent, .different:
                        break
                    }
                }
            }
            var options = StoreWriteOptions()
            options.codec = Codec(parsing: codec)!
            if let chunkBytes { options.chunking = .bytes(chunkBytes) }
            if let chunkSamples { options.chunking = .samples(chunkSamples) }
            if let shard { options.chunking = .samples(shard.chunkSamples) }
            if let workers { options.workers = workers }
            options.checksum = !noChecksum
            options.overwrite = overwrite

            let command = CommandLine.arguments.joined(separator: " ")
            if let imageList {
                try packImages(imageList, options: options, arguments: arguments, command: command, sources: sources, started: started, shard: shard)
            } else {
                try packArrays(options: options, arguments: arguments, command: command, sources: sources, started: started, shard: shard)
            }
        }
    }

    private func packImages(
        _ imageList: ImageList, options: StoreWriteOptions, arguments: [String], command: String, sources: [SourceRecord], started: Date,
        shard: ShardSlice?
    ) throws {
        let recipe = try imageRecipe()
        let imageField = name ?? "image"
        let progress: ProgressLine? = json ? nil : ProgressLine(total: imageList.paths.count, label: "packing")
        var recipeDocument: [String: Any] = [
            "source": "images", "steps": recipe.steps, "classes": imageList.classes ?? NSNull(),
            "fields": [["name": imageField, "from": input], ["name": labelName, "from": input]],
            "output": ["dtype": recipe.dtype.rawValue, "layout": recipe.layout.rawValue,
                       "scale": recipe.dtype == .u8 ? "0-255" : (recipe.bake_normalize ? "normalized" : "0-1")],
        ]
        // HDF5 1.10 stores each attribute in the object header, 64 KiB at most: refuse before the work.
        let recipeBytes = jsonText(recipeDocument).utf8.count
        guard recipeBytes < 60_000 else {
            throw SourceError(
                path: input, reason: "the recipe with \(imageList.classes?.count ?? 0) class names needs \(recipeBytes / 1024) KiB; a store attribute holds at most 64 KiB")
        }
        // Mean/std not baked in are recorded for the loader, which applies them while it collates.
        var normalization: String?
        if !recipe.bake_normalize, let mean = recipe.mean, let std = recipe.std {
            normalization = jsonText([
                "field": imageField, "mean": mean.map(\.recorded), "std": std.map(\.recorded),
                "scale": recipe.dtype == .u8 ? 1.0 / 255.0 : 1.0, "formula": "(x * scale - mean[c]) / std[c]",
            ])
        }
        let result = try ImagePacker.pack(
            list: imageList, recipe: recipe, to: output, imageField: imageField, labelField: labelName,
            options: options, workers: workers ?? ProcessInfo.processInfo.activeProcessorCount, skipBad: skipBad,
            validation: split.map { ($0, valOutput!) },
            metadata: { role, skipped in
                if let split { recipeDocument["split"] = split.recipe(role: role) }
                return [
                    ("provenance", ProvenanceDocument(arguments: arguments, command: command, sources: sources, skipped: skipped).json()),
                    ("recipe", jsonText(recipeDocument)),
                ] + (normalization.map { [("normalization", $0)] } ?? []) + (shard.map { [(ShardPlace.attributeName, $0.place.json())] } ?? [])
            },
            progress: { progress?.update($0) })
        progress?.finish()
        report(result.summary, validation: result.validation, seconds: Date().timeIntervalSince(started), skipped: result.skipped)
    }

    private func packArrays(options: StoreWriteOptions, arguments: [String], command: String, sources: [SourceRecord], started: Date, shard: ShardSlice?) throws {
        var fields = try packFields()
        if let shard { fields = fields.map { PackField(name: $0.name, source: RowSlice($0.source, rows: shard.range), sampleShape: $0.sampleShape) } }
        var recipe: [String: Any] = ["source": from.rawValue, "fields": fields.map { ["name": $0.name, "from": $0.source.path] }]
        if from == .csv, let labelColumn { recipe["label_column"] = labelColumn }
        if from == .idx { recipe["transforms"] = [["op": "reshape", "to": "[N,1,H,W] for [N,H,W] images"], ["op": "labels_to_int64"]] }
        let provenance = ProvenanceDocument(arguments: arguments, command: command, sources: sources).json()
        let progress: ProgressLine? = json ? nil : ProgressLine(total: fields[0].source.count, label: "packing")
        func metadata(role: String) -> [(name: String, json: String)] {
            var document = recipe
            if let split { document["split"] = split.recipe(role: role) }
            return [("provenance", provenance), ("recipe", jsonText(document))] + (shard.map { [(ShardPlace.attributeName, $0.place.json())] } ?? [])
        }
        let summaries = try ArrayPacker.pack(
            fields: fields, to: output, options: options, metadata: metadata(role: "train"),
            validation: split.map { ArrayPacker.Validation(split: $0, path: valOutput!, metadata: metadata(role: "validation")) },
            progress: { progress?.update($0) })
        progress?.finish()
        report(summaries.train, validation: summaries.validation, seconds: Date().timeIntervalSince(started), skipped: [])
    }

    func imageListFromInput() throws(SourceError) -> ImageList {
        input.lowercased().hasSuffix(".csv") ? try ImageList.csv(input) : try ImageList.folder(input)
    }

    /// Content hashes of the sources: each file for arrays; for images, the list (when a CSV) and one
    /// record covering every image file (hashed on all cores).
    private func sourceRecords(imageList: ImageList?) throws -> [SourceRecord] {
        guard let imageList else {
            return try ([input] + (labels.map { [$0] } ?? [])).map { path throws(SourceError) in try SourceRecord.file(path) }
        }
        let paths = imageList.paths
        let hashes = Mutex<[(bytes: Int, sha256: String)]>(Array(repeating: (0, ""), count: paths.count))
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: max(1, min(workers ?? ProcessInfo.processInfo.activeProcessorCount, paths.count))) { _ in
            while true {
                let index = next.add(1, ordering: .relaxed).oldValue
                guard index < paths.count else { return }
                let record: (Int, String)
                do throws(SourceError) {
                    let file = try SourceRecord.file(paths[index])
                    record = (file.bytes, file.sha256)
                } catch {
                    // Unreadable now: hash the error, so the store is stale once the file is fixed.
                    record = (0, "unreadable: \(error.reason)")
                }
                hashes.withLock { $0[index] = record }
            }
        }
        let all = hashes.withLock { $0 }
        let rootPrefix = imageList.root.hasSuffix(".csv") ? "" : imageList.root + "/"
        let relative = paths.map { $0.hasPrefix(rootPrefix) ? String($0.dropFirst(rootPrefix.count)) : $0 }
        let lookup = Dictionary(zip(relative, all), uniquingKeysWith: { first, _ in first })
        var records = [SourceRecord.folder(imageList.root, files: relative, hashOf: { lookup[$0] ?? (0, "") })]
        if imageList.root.lowercased().hasSuffix(".csv") { records.insert(try SourceRecord.file(imageList.root), at: 0) }
        return records
    }

    private func jsonText(_ object: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The fields each source kind produces.
    func packFields() throws -> [PackField] {
        switch from {
        case .npy:
            let data = try NPYArray(path: input)
            var fields = [PackField(name: name ?? "data", source: data)]
            if let labels { fields.append(PackField(name: labelName, source: try NPYArray(path: labels))) }
            return fields
        case .npz:
            let archive = try NPZArchive(path: input)
            return archive.arrays.map { PackField(name: $0.name, source: $0.array) }
        case .csv:
            let table = try CSVTable(path: input, labelColumn: labelColumn)
            var fields = [PackField(name: name ?? "data", source: table.data)]
            if let labels = table.labels { fields.append(PackField(name: labelName, source: labels)) }
            return fields
        case .images:
            // Image sources go through ImagePacker (decode + transforms), not array fields.
            throw SourceError(path: input, reason: "image sources are not array fields")
        case .idx:
            let images = try IDXArray(path: input)
            // Images [N, H, W] get a channel axis: [N, 1, H, W], the layout models expect.
            let shape = images.sampleShape.count == 2 ? [1] + images.sampleShape : images.sampleShape
            var fields = [PackField(name: name ?? "image", source: images, sampleShape: shape)]
            if let labels {
                let labelFile = try IDXArray(path: labels)
                guard labelFile.sampleShape.isEmpty else {
                    throw SourceError(path: labels, reason: "labels must be one value per sample, the IDX shape is \(labelFile.shape)")
                }
                let values = try labelFile.int64Values()
                fields.append(PackField(
                    name: labelName, source: MemoryArray(path: labels, dtype: .i64, shape: [values.count], values: values)))
            }
            return fields
        }
    }

    private func report(_ summary: StoreSummary, validation: StoreSummary?, seconds: Double, skipped: [SkippedFile]) {
        // Under mpirun with --json, rank 0 prints one document for all ranks (ShardedPack).
        if json, case .success? = MPIRuntime.shared { return }
        func sizes(_ summary: StoreSummary) -> (raw: Int, stored: Int) {
            (summary.fields.reduce(0) { $0 + $1.rawBytes }, summary.fields.reduce(0) { $0 + $1.storedBytes })
        }
        func document(_ summary: StoreSummary) -> [String: Any] {
            let (raw, stored) = sizes(summary)
            return [
                "path": summary.path, "samples": summary.samples, "raw_bytes": raw, "stored_bytes": stored,
                "fields": summary.fields.map { ["name": $0.name, "raw_bytes": $0.rawBytes, "stored_bytes": $0.storedBytes, "chunks": $0.chunks] },
            ]
        }
        let samples = summary.samples + (validation?.samples ?? 0)
        if json {
            var result = document(summary)
            result["up_to_date"] = false
            result["seconds"] = seconds
            result["samples_per_s"] = Double(samples) / max(seconds, 1e-9)
            result["skipped"] = skipped.map { ["path": $0.path, "reason": $0.reason] }
            if let validation { result["validation"] = document(validation) }
            printJSON(result)
        } else {
            for store in [summary] + (validation.map { [$0] } ?? []) {
                let (raw, stored) = sizes(store)
                print("packed \(store.samples) samples into \(store.path): \(formatBytes(raw)) -> \(formatBytes(stored)) "
                    + String(format: "(ratio %.2f)", Double(raw) / Double(max(stored, 1))))
            }
            print(String(format: "%d samples in %.2f s, %.0f samples/s", samples, seconds, Double(samples) / max(seconds, 1e-9)))
            if !skipped.isEmpty {
                print("skipped \(skipped.count) bad file(s):")
                for file in skipped { print("  \(file.path): \(file.reason)") }
            }
        }
    }
}
