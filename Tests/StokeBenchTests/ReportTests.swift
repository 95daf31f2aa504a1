import Foundation
import StokeBench
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif

@Suite("Report charts")
struct ReportTests {
    @Test("the Pareto front keeps the points no other beats on both axes, by rising x")
    func paretoFront() {
        let points = [
            Report.ScatterPoint(name: "slow accurate", x: 10, y: 0.9, kind: "FP32"),
            Report.ScatterPoint(name: "dominated", x: 9, y: 0.8, kind: "FP32"),
            Report.ScatterPoint(name: "fast", x: 50, y: 0.85, kind: "INT8"),
            Report.ScatterPoint(name: "middle", x: 30, y: 0.87, kind: "pruned"),
            Report.ScatterPoint(name: "beaten by fast", x: 40, y: 0.84, kind: "INT8"),
        ]
        #expect(Report.paretoFront(points).map(\.name) == ["slow accurate", "middle", "fast"])
    }

    @Test("scatter, horizontal bars and stacked documents are well-formed SVG with a marker per point and kind")
    func scatterAndDocument() throws {
        let points = (0..<6).map { Report.ScatterPoint(name: "v<\($0)>", x: Double($0 + 1) * 1000, y: 0.85 - Double($0) * 0.005, kind: ["FP32", "INT8", "pruned"][$0 % 3]) }
        let scatter = Report.scatterChart(title: "a", xLabel: "samples/s", yLabel: "accuracy", points: points)
        #expect(XMLParser(data: Data(scatter.utf8)).parse())
        #expect(scatter.contains("class='pareto'"))
        #expect(scatter.contains("v&lt;0&gt;"))
        // Two points per kind plus one legend marker per kind, each shape its own element.
        #expect(scatter.components(separatedBy: "<circle").count - 1 == 3)
        #expect(scatter.components(separatedBy: "<polygon").count - 1 == 3)
        let bars = Report.horizontalBarChart(title: "size", xLabel: "bytes", bars: [("a", 10), ("b", 20)], kinds: ["x", "y"])
        #expect(XMLParser(data: Data(bars.utf8)).parse())
        let document = Report.svgDocument([scatter, bars])
        #expect(XMLParser(data: Data(document.utf8)).parse())
        #expect(document.hasPrefix("<svg xmlns='http://www.w3.org/2000/svg' width='720.0' height='520.0'"))
        #expect(document.contains("<svg x='0' y='400.0' "))
    }
}
