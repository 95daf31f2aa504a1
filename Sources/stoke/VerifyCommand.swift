import ArgumentParser
import Foundation
import StokeStore

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every chunk against its checksum and the chunk index against the file; say what was checked per field.",
        discussion: """
            Per field, one of: decoded and Fletcher-32 checksums matched; checksums matched without decoding
            (a filter Stoke does not decode, such as Zstd or Blosc, lies under the checksum); decoded with no
            checksum to compare; or nothing (no checksum, contiguous data, or a foreign filter outside the
            checksum). Exit status: 0 when at least one field was verified against checksums and nothing is
            wrong; 1 when a chunk or the index is wrong; 2 when nothing could be verified.
            """)

    @Argument(help: "The store.") var store: String
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() throws {
        var nothingVerified = false
        try reportingErrors {
            let opened = try Store(path: store, options: StoreReadOptions(verifyChecksums: true))
            var checks: [FieldCheck] = []
            for field in opened.fields { checks.append(try field.check()) }
            let chunks = checks.reduce(0) { $0 + $1.chunks }
            let verified = checks.filter(\.verified)
            nothingVerified = verified.isEmpty
            if json {
                printJSON([
                    "path": store, "ok": !nothingVerified, "verified": !nothingVerified, "fields": opened.fields.count, "chunks": chunks,
                    "checks": checks.map {
                        ["field": $0.field, "check": $0.level.rawValue, "verified": $0.verified, "chunks": $0.chunks,
                         "unwritten_chunks": $0.unwrittenChunks, "note": $0.note] as [String: Any]
                    },
                ])
            } else {
                for check in checks {
                    print("  \(escapedForTerminal(check.field)): \(check.chunks) chunk\(check.chunks == 1 ? "" : "s") \(escapedForTerminal(check.note))")
                }
                let unverified = checks.filter { !$0.verified }.map { "'\(escapedForTerminal($0.field))'" }
                if nothingVerified {
                    FileHandle.standardError.write(Data(
                        "stoke: error: \(store): nothing could be verified: no field has checksums Stoke can check (see above)\n".utf8))
                } else if unverified.isEmpty {
                    print("\(store): ok, \(chunks) chunks in \(checks.count) fields: every field verified against its checksums")
                } else {
                    print("\(store): ok for \(verified.count) of \(checks.count) fields (\(verified.reduce(0) { $0 + $1.chunks }) chunks verified against checksums); not verified: \(unverified.joined(separator: ", "))")
                }
            }
        }
        if nothingVerified { throw ExitCode(2) }
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
