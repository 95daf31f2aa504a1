import Foundation
import StokePack
import Testing

@Suite("image lists")
struct ImageListTests {
    @Test("ImageFolder: sorted class folders are labels 0..n-1, files sorted by path at any depth, other files and hidden entries ignored")
    func folderLayout() throws {
        let root = scratchDirectory("stoke-list")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for file in ["zebra/b.JPG", "zebra/a.png", "ant/deep/x.ppm", "ant/c.pgm", "ant/notes.txt", "ant/.hidden.png", ".cache/z.png", "loose.png"] {
            let path = root + "/" + file
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data([1]).write(to: URL(fileURLWithPath: path))
        }
        let list = try ImageList.folder(root)
        #expect(list.classes == ["ant", "zebra"])
        #expect(list.paths == ["ant/c.pgm", "ant/deep/x.ppm", "zebra/a.png", "zebra/b.JPG"].map { root + "/" + $0 })
        #expect(list.labels == [0, 0, 1, 1])
        let empty = scratchDirectory("stoke-list")
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let error = #expect(throws: SourceError.self) { try ImageList.folder(empty) }
        #expect(error?.reason.contains("no class folders") == true)
    }

    @Test("CSV lists: header skipped, paths relative to the list, integer labels kept, names become sorted classes")
    func csvLists() throws {
        let directory = scratchDirectory("stoke-list")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("path,label\nimgs/a.png,7\n/abs/b.jpg, 3\r\n\n".utf8).write(to: URL(fileURLWithPath: directory + "/numeric.csv"))
        let numeric = try ImageList.csv(directory + "/numeric.csv")
        #expect(numeric.paths == [directory + "/imgs/a.png", "/abs/b.jpg"])
        #expect(numeric.labels == [7, 3])
        #expect(numeric.classes == nil)
        try Data("x.png,dog\ny.png,cat\nz.png,dog\n".utf8).write(to: URL(fileURLWithPath: directory + "/named.csv"))
        let named = try ImageList.csv(directory + "/named.csv")
        #expect(named.classes == ["cat", "dog"])
        #expect(named.labels == [1, 0, 1])
        try Data("just-a-path\n".utf8).write(to: URL(fileURLWithPath: directory + "/bad.csv"))
        let error = #expect(throws: SourceError.self) { try ImageList.csv(directory + "/bad.csv") }
        #expect(error?.description == "\(directory)/bad.csv: line 1: expected 'path,label'")
    }
}
