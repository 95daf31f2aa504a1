import ArgumentParser
import Foundation
import StokeStore

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode every chunk, check its checksum and the chunk index against the file.")

    @Argument(help: "The store.") var store: String
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() throws {
        try reportingErrors {
            let opened = try Store(path: store, options: StoreReadOptions(verifyChecksums: true))
            var chunks = 0
            for field in opened.fields { chunks += try field.verify() }
            if json {
                printJSON(["path": store, "ok": true, "fields": opened.fields.count, "chunks": chunks])
            } else {
                print("\(store): ok, \(chunks) chunks in \(opened.fields.count) fields decode and match their checksums")
            }
        }
    }
}

struct Index: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add a chunk address index to a store written by another tool (in place).")

    @Argument(help: "The HDF5 file.") var store: String
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() throws {
        try reportingErrors {
            let reports = try ChunkIndexing.addIndex(to: store)
            if json {
                printJSON(["path": store, "fields": reports.map { ["name": $0.field, "chunks": $0.chunks, "method": $0.method, "previous": $0.previous] }])
            } else {
                for report in reports {
                    let before = report.previous == "stale" ? "; the index it replaces was STALE (the file changed after it was written)" : ""
                    print("\(report.field): indexed \(report.chunks) chunks (\(report.method))\(before)")
                }
                if reports.isEmpty { print("\(store): no field is chunked by whole samples; nothing to index") }
            }
        }
    }
}
