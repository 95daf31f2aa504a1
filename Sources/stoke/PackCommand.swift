import ArgumentParser
import Foundation
import StokePack
import StokeStore

struct Pack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pack arrays into a compressed HDF5 store.",
        discussion: "Example: stoke pack --from npy images.npy --labels labels.npy -o train.h5 --codec lz4")

    enum SourceKind: String, ExpressibleByArgument { case npy }

    @Option(name: .long, help: "Source format (npy).") var from: SourceKind
    @Argument(help: "The data file.") var input: String
    @Option(name: .long, help: "A labels file with the same number of samples.") var labels: String?
    @Option(name: .shortAndLong, help: "The store to write.") var output: String
    @Option(name: .long, help: "lz4, lz4-shuffle, deflate[:LEVEL] or none.") var codec: String = "lz4"
    @Option(name: .long, help: "Bytes per chunk (whole samples; default about 2 MiB).") var chunkBytes: Int?
    @Option(name: .long, help: "Samples per chunk.") var chunkSamples: Int?
    @Option(name: .long, help: "Name of the data field.") var name: String = "data"
    @Option(name: .long, help: "Name of the label field.") var labelName: String = "label"
    @Option(name: .long, help: "Compression threads (default: all cores).") var workers: Int?
    @Flag(name: .long, help: "Do not record a Fletcher-32 checksum per chunk.") var noChecksum = false
    @Flag(name: .long, help: "Replace an existing store.") var force = false
    @Flag(name: .long, help: "Print the result as JSON.") var json = false

    func validate() throws {
        if chunkBytes != nil && chunkSamples != nil { throw UsageError("give --chunk-bytes or --chunk-samples, not both") }
        if let chunkBytes, chunkBytes <= 0 { throw UsageError("--chunk-bytes must be positive") }
        if let chunkSamples, chunkSamples <= 0 { throw UsageError("--chunk-samples must be positive") }
        if Codec(parsing: codec) == nil { throw UsageError("--codec '\(codec)' is not lz4, lz4-shuffle, deflate[:1-9] or none") }
        if let workers, workers <= 0 { throw UsageError("--workers must be positive") }
    }

    func run() throws {
        try reportingErrors {
            let started = Date()
            let data = try NPYArray(path: input)
            let labelArray = try labels.map { try NPYArray(path: $0) }
            if let labelArray, labelArray.count != data.count {
                throw SourceError(path: labelArray.path, reason: "has \(labelArray.count) samples, \(input) has \(data.count)")
            }
            var options = StoreWriteOptions()
            options.codec = Codec(parsing: codec)!
            if let chunkBytes { options.chunking = .bytes(chunkBytes) }
            if let chunkSamples { options.chunking = .samples(chunkSamples) }
            if let workers { options.workers = workers }
            options.checksum = !noChecksum
            options.overwrite = force
            var specs = [FieldSpec(name: name, dtype: data.dtype, sampleShape: data.sampleShape)]
            if let labelArray { specs.append(FieldSpec(name: labelName, dtype: labelArray.dtype, sampleShape: labelArray.sampleShape)) }
            let writer = try StoreWriter(path: output, fields: specs, options: options)
            let progress = ProgressLine(total: data.count, label: "packing")
            let batchRows = max(1, (8 << 20) / max(1, data.sampleBytes))
            unsafe try data.forEachBatch(batchRows: batchRows) { rows, bytes in
                unsafe try writer.append(name, bytes: bytes)
                progress.update(rows.upperBound)
            }
            if let labelArray {
                unsafe try labelArray.forEachBatch(batchRows: max(1, (8 << 20) / max(1, labelArray.sampleBytes))) { _, bytes in
                    unsafe try writer.append(labelName, bytes: bytes)
                }
            }
            try writer.setMetadata("provenance", json: provenanceJSON(sources: [input] + (labels.map { [$0] } ?? [])))
            let summary = try writer.finish()
            progress.finish()
            let seconds = Date().timeIntervalSince(started)
            let raw = summary.fields.reduce(0) { $0 + $1.rawBytes }
            let stored = summary.fields.reduce(0) { $0 + $1.storedBytes }
            if json {
                printJSON([
                    "path": output, "samples": summary.samples, "raw_bytes": raw, "stored_bytes": stored,
                    "seconds": seconds, "samples_per_s": Double(summary.samples) / max(seconds, 1e-9),
                    "fields": summary.fields.map { ["name": $0.name, "raw_bytes": $0.rawBytes, "stored_bytes": $0.storedBytes, "chunks": $0.chunks] },
                ])
            } else {
                print("packed \(summary.samples) samples into \(output): \(formatBytes(raw)) -> \(formatBytes(stored)) "
                    + String(format: "(ratio %.2f) in %.2f s", Double(raw) / Double(max(stored, 1)), seconds))
            }
        }
    }

    private func provenanceJSON(sources: [String]) -> String {
        let document: [String: Any] = [
            "command": CommandLine.arguments.joined(separator: " "),
            "sources": sources.map { path -> [String: Any] in
                let attributes = try? FileManager.default.attributesOfItem(atPath: path)
                return ["path": path, "bytes": (attributes?[.size] as? Int) ?? 0]
            },
        ]
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
