import Foundation
import StokePack
import Testing

@Suite("provenance document")
struct ProvenanceTests {
    @Test("content arguments drop --force, --json and --workers N; the skipped list is capped in count and bytes, the count is exact")
    func argumentsAndCaps() throws {
        #expect(ProvenanceDocument.contentArguments(["pack", "--force", "x", "--workers", "3", "--json", "--workers=2", "-o", "s.h5"])
            == ["pack", "x", "-o", "s.h5"])
        let many = (0..<500).map { SkippedFile(path: "/data/" + String(repeating: "d", count: 300) + "/\($0).jpg", reason: "corrupt JPEG (data): premature end") }
        let document = ProvenanceDocument(arguments: ["pack"], command: "stoke pack", sources: [], skipped: many)
        #expect(document.skipped_count == 500)
        #expect(!document.skipped.isEmpty && document.skipped.count < 200)
        #expect(document.json().utf8.count < 40_000)
        let parsed = try #require(ProvenanceDocument.parse(document.json()))
        #expect(parsed == document)
        let few = ProvenanceDocument(arguments: ["pack"], command: "stoke pack", sources: [], skipped: Array(many.prefix(3)))
        #expect(few.skipped == Array(many.prefix(3)))
    }
}
