import ArgumentParser
import Foundation
import StokeStore

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a store (fields, chunking, codecs, sizes) or a model (inputs, outputs, operators, parameters, MACs).")

    @Argument(help: "A store (.h5) or a model (.onnx).") var store: String
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() throws {
        try reportingErrors {
            if FileManager.default.fileExists(atPath: store) && !isStore(store) {
                let report = try ModelReport(path: store)
                if json { printJSON(report.json) } else { report.printTable() }
                return
            }
            let report = try InspectReport(path: store)
            if json { printJSON(report.json) } else { report.printTable() }
        }
    }
}

/// What `stoke inspect` prints, shared with `stoke demo`.
struct InspectReport {
    struct FieldRow {
        var name: String, dtype: String, shape: [Int], chunkShape: [Int], codec: String
        var storedBytes: Int, rawBytes: Int, checksum: Bool
    }
    let path: String
    let samples: Int
    let chunkIndex: Bool
    /// Per chunked field: where its chunk locations come from (persisted, built at open, stale…).
    let indexSources: [(field: String, source: String)]
    let fields: [FieldRow]
    let attributes: [String: String]

    init(path: String) throws {
        let store = try Store(path: path)
        self.path = path
        samples = store.sampleCount
        chunkIndex = store.hasChunkIndex
        indexSources = store.fields.filter { $0.chunkIndexSource != .notApplicable }.map { ($0.name, $0.chunkIndexSource.description) }
        attributes = store.attributes
        fields = try store.fields.map { field in
            FieldRow(
                name: field.name, dtype: field.dtype.rawValue, shape: [field.rows] + field.sampleShape,
                chunkShape: field.chunkShape, codec: field.codecName, storedBytes: try field.storedBytes(),
                rawBytes: field.rawBytes, checksum: field.hasChecksum)
        }
    }

    var json: [String: Any] {
        [
            "path": path, "samples": samples, "chunk_index": chunkIndex,
            "chunk_index_source": Dictionary(indexSources.map { ($0.field, $0.source) }) { first, _ in first },
            "fields": fields.map {
                [
                    "name": $0.name, "dtype": $0.dtype, "shape": $0.shape, "chunk_shape": $0.chunkShape, "codec": $0.codec,
                    "stored_bytes": $0.storedBytes, "raw_bytes": $0.rawBytes, "checksum": $0.checksum ? "fletcher32" : "none",
                    "ratio": Double($0.rawBytes) / Double(max($0.storedBytes, 1)),
                ] as [String: Any]
            },
            "attributes": attributes,
        ]
    }

    func printTable() {
        let distinct = Set(indexSources.map(\.source))
        let index = distinct.count == 1 ? distinct.first! : indexSources.map { "\($0.field): \($0.source)" }.joined(separator: "; ")
        print("\(path): \(samples) samples, chunk index: \(indexSources.isEmpty ? "not needed" : index)")
        StokeCLI.printTable(
            ["field", "dtype", "shape", "chunk", "codec", "checksum", "stored", "raw", "ratio"],
            fields.map {
                [
                    $0.name, $0.dtype, $0.shape.map(String.init).joined(separator: "x"),
                    $0.chunkShape.isEmpty ? "-" : $0.chunkShape.map(String.init).joined(separator: "x"), $0.codec,
                    $0.checksum ? "fletcher32" : "none", formatBytes($0.storedBytes), formatBytes($0.rawBytes),
                    String(format: "%.2f", Double($0.rawBytes) / Double(max($0.storedBytes, 1))),
                ]
            })
        for (name, value) in attributes.sorted(by: { $0.key < $1.key }) where name != "stoke" {
            print("\(name): \(value)")
        }
    }
}

enum StokeCLI {
    static func printTable(_ header: [String], _ rows: [[String]]) { stoke.printTable(header, rows) }
}
