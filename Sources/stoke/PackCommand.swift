import ArgumentParser
import Foundation
import StokePack
import StokeStore

struct Pack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pack a dataset (NPY, NPZ, IDX, CSV) into a compressed HDF5 store.",
        discussion: """
            Examples:
              stoke pack --from idx train-images-idx3-ubyte.gz --labels train-labels-idx1-ubyte.gz -o train.h5
              stoke pack --from npy images.npy --labels labels.npy -o train.h5 --codec lz4
              stoke pack --from npz arrays.npz -o arrays.h5          (one field per array)
              stoke pack --from csv table.csv --label-column species -o table.h5
            Rerunning the same command on unchanged sources does nothing ("up to date"); --force rebuilds.
            """)

    enum SourceKind: String, ExpressibleByArgument, CaseIterable { case npy, npz, idx, csv }

    @Option(name: .long, help: "Source format: \(SourceKind.allCases.map(\.rawValue).joined(separator: ", ")).") var from: SourceKind
    @Argument(help: "The data file.") var input: String
    @Option(name: .long, help: "A labels file with the same number of samples (npy, idx).") var labels: String?
    @Option(name: .long, help: "csv: the column holding integer labels (stored as the label field).") var labelColumn: String?
    @Option(name: .shortAndLong, help: "The store to write.") var output: String
    @Option(name: .long, help: "lz4, lz4-shuffle, deflate[:LEVEL] or none.") var codec: String = "lz4"
    @Option(name: .long, help: "Bytes per chunk (whole samples; default about 2 MiB).") var chunkBytes: Int?
    @Option(name: .long, help: "Samples per chunk.") var chunkSamples: Int?
    @Option(name: .long, help: "Name of the data field (default: data; image for idx).") var name: String?
    @Option(name: .long, help: "Name of the label field.") var labelName: String = "label"
    @Option(name: .long, help: "Compression threads (default: all cores).") var workers: Int?
    @Flag(name: .long, help: "Do not record a Fletcher-32 checksum per chunk.") var noChecksum = false
    @Flag(name: .long, help: "Rebuild even when the store is up to date; replace another command's store.") var force = false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func validate() throws {
        if chunkBytes != nil && chunkSamples != nil { throw ValidationError("give --chunk-bytes or --chunk-samples, not both") }
        if let chunkBytes, chunkBytes <= 0 { throw ValidationError("--chunk-bytes must be positive") }
        if let chunkSamples, chunkSamples <= 0 { throw ValidationError("--chunk-samples must be positive") }
        if Codec(parsing: codec) == nil { throw ValidationError("--codec '\(codec)' is not lz4, lz4-shuffle, deflate[:1-9] or none") }
        if let workers, workers <= 0 { throw ValidationError("--workers must be positive") }
        if labels != nil && ![.npy, .idx].contains(from) { throw ValidationError("--labels is for --from npy or idx") }
        if labelColumn != nil && from != .csv { throw ValidationError("--label-column is for --from csv") }
    }

    func run() throws {
        try reportingErrors {
            let started = Date()
            let arguments = Array(CommandLine.arguments.dropFirst())
            let sources = try ([input] + (labels.map { [$0] } ?? [])).map { path throws(SourceError) in try SourceRecord.file(path) }
            var overwrite = force
            if !force {
                switch ExistingStore.check(path: output, arguments: arguments, sources: sources) {
                case .absent: break
                case .upToDate:
                    if json {
                        printJSON(["path": output, "up_to_date": true])
                    } else {
                        print("\(output) is up to date (same command, unchanged sources); nothing to do. Use --force to rebuild.")
                    }
                    return
                case .stale(let reason):
                    if !json { print("\(output) is out of date: \(reason); rebuilding") }
                    overwrite = true
                case .different(let reason):
                    throw SourceError(path: output, reason: "\(reason) (use --force to replace it)".replacingOccurrences(of: "\(output) ", with: ""))
                }
            }
            var options = StoreWriteOptions()
            options.codec = Codec(parsing: codec)!
            if let chunkBytes { options.chunking = .bytes(chunkBytes) }
            if let chunkSamples { options.chunking = .samples(chunkSamples) }
            if let workers { options.workers = workers }
            options.checksum = !noChecksum
            options.overwrite = overwrite

            let fields = try packFields()
            var recipe: [String: Any] = ["source": from.rawValue, "fields": fields.map { ["name": $0.name, "from": $0.source.path] }]
            if from == .csv, let labelColumn { recipe["label_column"] = labelColumn }
            if from == .idx { recipe["transforms"] = [["op": "reshape", "to": "[N,1,H,W] for [N,H,W] images"], ["op": "labels_to_int64"]] }
            let provenance = ProvenanceDocument(arguments: arguments, command: CommandLine.arguments.joined(separator: " "), sources: sources)
            let progress = ProgressLine(total: fields[0].source.count, label: "packing")
            let summary = try ArrayPacker.pack(
                fields: fields, to: output, options: options, metadata: [("provenance", provenance.json()), ("recipe", jsonText(recipe))],
                progress: { progress.update($0) })
            progress.finish()
            report(summary, seconds: Date().timeIntervalSince(started), skipped: [])
        }
    }

    private func jsonText(_ object: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The fields each source kind produces.
    private func packFields() throws -> [PackField] {
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

    private func report(_ summary: StoreSummary, seconds: Double, skipped: [SkippedFile]) {
        let raw = summary.fields.reduce(0) { $0 + $1.rawBytes }
        let stored = summary.fields.reduce(0) { $0 + $1.storedBytes }
        if json {
            printJSON([
                "path": output, "samples": summary.samples, "raw_bytes": raw, "stored_bytes": stored, "up_to_date": false,
                "seconds": seconds, "samples_per_s": Double(summary.samples) / max(seconds, 1e-9),
                "fields": summary.fields.map { ["name": $0.name, "raw_bytes": $0.rawBytes, "stored_bytes": $0.storedBytes, "chunks": $0.chunks] },
                "skipped": skipped.map { ["path": $0.path, "reason": $0.reason] },
            ])
        } else {
            print("packed \(summary.samples) samples into \(output): \(formatBytes(raw)) -> \(formatBytes(stored)) "
                + String(format: "(ratio %.2f) in %.2f s, %.0f samples/s", Double(raw) / Double(max(stored, 1)), seconds,
                         Double(summary.samples) / max(seconds, 1e-9)))
            if !skipped.isEmpty {
                print("skipped \(skipped.count) bad file(s):")
                for file in skipped { print("  \(file.path): \(file.reason)") }
            }
        }
    }
}
