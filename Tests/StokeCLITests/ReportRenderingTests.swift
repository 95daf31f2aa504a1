import Foundation
import Testing

/// The reports (`stoke demo`'s report.html, `stoke bench io --report`, `stoke infer --sweep --report`)
/// rendered by a real browser: Debian's headless Chromium, installed by scripts/setup. A screenshot must
/// not be blank, and every SVG plot must lay out with a non-zero box and drawn marks.
@Suite("Reports render in headless Chromium", .serialized)
struct ReportRenderingTests {
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// One SVG plot as Chromium laid it out: its box in CSS pixels and the marks (circles, rects,
    /// polygons, polylines, paths) with a non-zero box inside it.
    struct Plot: Decodable {
        var width: Double
        var height: Double
        var marks: Int
    }

    /// Runs Chromium headless (as root it needs --no-sandbox; --disable-gpu: no GPU process here) with
    /// its own profile folder under `directory`.
    private func chromium(_ arguments: [String], in directory: String) throws -> ProcessOutput {
        let browser = try #require(Self.chromium, "chromium is not installed: run scripts/setup")
        return try execute(browser, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                     "--user-data-dir=\(directory)/chromium-profile"] + arguments)
    }

    /// The plots of `html` as Chromium lays them out. The report has no script; a copy gets one that
    /// writes each SVG's box and mark count into the page, read back with --dump-dom.
    private func plots(of html: String, in directory: String) throws -> [Plot] {
        let measure = """
            <script>
            const plots = [...document.querySelectorAll('body svg')].filter(s => !s.parentElement.closest('svg')).map(s => {
              const box = s.getBoundingClientRect();
              const marks = [...s.querySelectorAll('circle, rect, polygon, polyline, path, line')]
                .filter(e => { const b = e.getBBox(); return b.width > 0 || b.height > 0; }).length;
              return {width: box.width, height: box.height, marks: marks};
            });
            document.body.insertAdjacentHTML('beforeend', '<pre id="stoke-' + 'plots">' + JSON.stringify(plots) + '</pre>');
            </script>
            """
        let page = html.contains("</body>") ? html.replacingOccurrences(of: "</body>", with: measure + "</body>")
                                            : "<!doctype html><html><body>" + html + measure + "</body></html>"
        let path = "\(directory)/measure-\(UUID().uuidString).html"
        try page.write(toFile: path, atomically: true, encoding: .utf8)
        let dom = try chromium(["--dump-dom", "file://\(path)"], in: directory)
        #expect(dom.status == 0, "\(dom.stderr)")
        guard let start = dom.stdout.range(of: "<pre id=\"stoke-plots\">"),
              let end = dom.stdout.range(of: "</pre>", range: start.upperBound..<dom.stdout.endIndex) else {
            Issue.record("Chromium's DOM has no measurements: \(dom.stdout.suffix(500))")
            return []
        }
        return try JSONDecoder().decode([Plot].self, from: Data(dom.stdout[start.upperBound..<end.lowerBound].utf8))
    }

    /// A screenshot of `file` (HTML or SVG) and what Pillow sees in it: the fraction of pixels that are
    /// not near-white, and how many distinct colors there are.
    private func screenshot(_ file: String, to png: String, in directory: String, height: Int = 1400) throws -> (inked: Double, colors: Int) {
        let shot = try chromium(["--window-size=1000,\(height)", "--screenshot=\(png)", "file://\(file)"], in: directory)
        #expect(shot.status == 0 && FileManager.default.fileExists(atPath: png), "\(shot.stderr)")
        let analysis = try execute(venvPython, ["-c", """
            import json, sys
            from PIL import Image
            image = Image.open(sys.argv[1]).convert('RGB')
            pixels = list(image.getdata())
            inked = sum(1 for p in pixels if min(p) < 230) / len(pixels)
            print(json.dumps({"inked": inked, "colors": len(set(pixels))}))
            """, png])
        #expect(analysis.status == 0, "\(analysis.stderr)")
        let result = jsonObject(analysis.stdout) ?? [:]
        return (result["inked"] as? Double ?? 0, result["colors"] as? Int ?? 0)
    }

    /// Checks the plots of a report: `count` of them, each with a box and drawn marks; and that the page
    /// is self-contained (no script, nothing loaded from elsewhere).
    private func expectPlots(_ path: String, count: Int, in directory: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains("<script"), "\(path) must be readable without JavaScript")
        #expect(!text.contains("src=") && !text.contains("href=") && !text.contains("@import"), "\(path) must not load anything")
        let plots = try plots(of: text, in: directory)
        #expect(plots.count == count, "\(path): \(plots.count) plots, expected \(count)")
        for (index, plot) in plots.enumerated() {
            #expect(plot.width > 100 && plot.height > 100, "\(path) plot \(index): box \(plot.width)×\(plot.height)")
            #expect(plot.marks > 3, "\(path) plot \(index): only \(plot.marks) marks drawn")
        }
        let (inked, colors) = try screenshot(path, to: path + ".png", in: directory)
        // A blank page inks nothing; a 720×720 SVG of thin lines in a 1000×1400 window inks about 1%.
        #expect(inked > 0.002, "\(path): the screenshot is (nearly) blank: \(inked) of the pixels inked")
        #expect(colors > 16, "\(path): the screenshot has only \(colors) colors")
    }

    @Test("the demo, bench io and infer sweep reports show their plots in Chromium")
    func reportsRender() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let demo = try execute(stokeBinary, ["demo", "--generated", "--samples", "3000", "--directory", directory, "--quick", "--seeds", "1"])
        #expect(demo.status == 0, "\(demo.stderr)")
        // The demo: accuracy against samples/s, model size per variant, loader throughput over time.
        try expectPlots("\(directory)/report.html", count: 3, in: directory)

        let io = try execute(stokeBinary, ["bench", "io", "\(directory)/test.h5", "--report", "\(directory)/io.html", "--sweep", "workers=1,2"])
        #expect(io.status == 0, "\(io.stderr)")
        try expectPlots("\(directory)/io.html", count: 2, in: directory)

        for report in ["sweep.html", "sweep.svg"] {
            let sweep = try execute(stokeBinary, ["infer", "\(directory)/student.h5", "\(directory)/test.h5", "--sweep", "batch-size=16,64,256",
                                                  "--report", "\(directory)/\(report)"])
            #expect(sweep.status == 0, "\(sweep.stderr)")
        }
        try expectPlots("\(directory)/sweep.html", count: 2, in: directory)
        // The .svg report is one document: one root plot with both charts inside.
        try expectPlots("\(directory)/sweep.svg", count: 1, in: directory)
    }
}
