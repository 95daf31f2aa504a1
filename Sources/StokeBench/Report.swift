import Foundation

/// SVG charts and an HTML page for benchmark results: no dependencies, readable in any browser.
public enum Report {
    /// A line chart of (x, y) series with optional horizontal reference lines.
    public static func lineChart(
        title: String, xLabel: String, yLabel: String, series: [(name: String, points: [(Double, Double)])],
        references: [(name: String, value: Double)] = [], width: Double = 720, height: Double = 360, zeroBased: Bool = true,
        legendRight: Bool = false
    ) -> String {
        let left = 70.0, right = 20.0, top = 36.0, bottom = 48.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let allPoints = series.flatMap(\.points)
        let maxX = max(allPoints.map(\.0).max() ?? 1, 1e-9)
        let values = allPoints.map(\.1) + references.map(\.value)
        let highest = values.max() ?? 1, lowest = values.min() ?? 0
        // Zero-based for rates; otherwise a margin around the data so small differences show.
        let minY = zeroBased ? 0 : lowest - max((highest - lowest) * 0.5, abs(highest) * 0.01)
        let maxY = zeroBased ? max(highest, 1e-9) * 1.1 : highest + max((highest - lowest) * 0.5, abs(highest) * 0.01)
        func x(_ value: Double) -> Double { left + value / maxX * plotWidth * 0.95 }
        func y(_ value: Double) -> Double { top + plotHeight - (value - minY) / max(maxY - minY, 1e-12) * plotHeight }
        var svg = header(width: width, height: height, title: title)
        svg += axes(left: left, top: top, plotWidth: plotWidth, plotHeight: plotHeight, maxX: maxX / 0.95, minY: minY, maxY: maxY, xLabel: xLabel, yLabel: yLabel)
        for (index, reference) in references.enumerated() {
            let color = "#888"
            svg += "<line x1='\(f(left))' y1='\(f(y(reference.value)))' x2='\(f(left + plotWidth))' y2='\(f(y(reference.value)))' stroke='\(color)' stroke-dasharray='6,4'/>"
            svg += "<text x='\(f(left + plotWidth - 4))' y='\(f(y(reference.value) - 4 - Double(index % 2) * 12))' text-anchor='end' font-size='11' fill='\(color)'>\(escape(reference.name))</text>"
        }
        for (index, line) in series.enumerated() where !line.points.isEmpty {
            let color = palette[index % palette.count]
            let path = line.points.map { "\(f(x($0.0))),\(f(y($0.1)))" }.joined(separator: " ")
            svg += "<polyline fill='none' stroke='\(color)' stroke-width='2' points='\(path)'/>"
            if line.points.count <= 50 {
                for point in line.points { svg += "<circle cx='\(f(x(point.0)))' cy='\(f(y(point.1)))' r='4' fill='\(color)'/>" }
            }
            let legendX = legendRight ? left + plotWidth - 8 : left + 8
            svg += "<text x='\(f(legendX))' y='\(f(top + 14 + Double(index) * 14))' text-anchor='\(legendRight ? "end" : "start")' font-size='11' fill='\(color)'>\(escape(line.name))</text>"
        }
        return svg + "</svg>"
    }

    /// A bar chart of named values.
    public static func barChart(title: String, yLabel: String, bars: [(name: String, value: Double)], width: Double = 720, height: Double = 360) -> String {
        let left = 70.0, right = 20.0, top = 36.0, bottom = 80.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let maxY = max(bars.map(\.value).max() ?? 1, 1e-9) * 1.1
        var svg = header(width: width, height: height, title: title)
        svg += axes(left: left, top: top, plotWidth: plotWidth, plotHeight: plotHeight, maxX: nil, minY: 0, maxY: maxY, xLabel: "", yLabel: yLabel)
        let slot = plotWidth / Double(max(bars.count, 1))
        for (index, bar) in bars.enumerated() {
            let barHeight = bar.value / maxY * plotHeight
            let x = left + Double(index) * slot + slot * 0.15
            svg += "<rect x='\(f(x))' y='\(f(top + plotHeight - barHeight))' width='\(f(slot * 0.7))' height='\(f(barHeight))' fill='\(palette[0])'/>"
            svg += "<text x='\(f(x + slot * 0.35))' y='\(f(top + plotHeight - barHeight - 4))' text-anchor='middle' font-size='10'>\(compact(bar.value))</text>"
            svg += "<text x='\(f(x + slot * 0.35))' y='\(f(top + plotHeight + 14))' text-anchor='middle' font-size='10'>\(escape(bar.name))</text>"
        }
        return svg + "</svg>"
    }

    /// One point of a scatter plot: a named result at (x, y) of a kind (the kinds get distinct markers
    /// and one legend entry each).
    public struct ScatterPoint: Sendable {
        public var name: String
        public var x: Double
        public var y: Double
        public var kind: String
        public init(name: String, x: Double, y: Double, kind: String) {
            self.name = name
            self.x = x
            self.y = y
            self.kind = kind
        }
    }

    /// The points no other point beats on both axes (higher x and higher y are better), by rising x.
    public static func paretoFront(_ points: [ScatterPoint]) -> [ScatterPoint] {
        let front = points.filter { point in
            !points.contains { other in other.x >= point.x && other.y >= point.y && (other.x > point.x || other.y > point.y) }
        }
        return front.sorted { $0.x < $1.x }
    }

    /// A scatter plot: each point a marker (shape and color by kind, a legend entry per kind) numbered
    /// by its position in `points` (so a table can refer to it), with the Pareto front (higher is better
    /// on both axes) drawn as a dashed step line.
    public static func scatterChart(
        title: String, xLabel: String, yLabel: String, points: [ScatterPoint], width: Double = 720, height: Double = 400
    ) -> String {
        let left = 70.0, right = 170.0, top = 36.0, bottom = 48.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let maxX = max(points.map(\.x).max() ?? 1, 1e-9) * 1.08
        let highest = points.map(\.y).max() ?? 1, lowest = points.map(\.y).min() ?? 0
        let margin = max((highest - lowest) * 0.15, abs(highest) * 0.005, 1e-9)
        let minY = lowest - margin, maxY = highest + margin
        func x(_ value: Double) -> Double { left + value / maxX * plotWidth }
        func y(_ value: Double) -> Double { top + plotHeight - (value - minY) / max(maxY - minY, 1e-12) * plotHeight }
        var svg = header(width: width, height: height, title: title)
        svg += axes(left: left, top: top, plotWidth: plotWidth, plotHeight: plotHeight, maxX: maxX, minY: minY, maxY: maxY, xLabel: xLabel, yLabel: yLabel)
        let front = paretoFront(points)
        if front.count > 1 {
            var path = "M\(f(x(front[0].x))),\(f(y(front[0].y)))"
            for (previous, point) in zip(front, front.dropFirst()) {
                path += " L\(f(x(point.x))),\(f(y(previous.y))) L\(f(x(point.x))),\(f(y(point.y)))"
            }
            svg += "<path class='pareto' d='\(path)' fill='none' stroke='#555' stroke-width='1.5' stroke-dasharray='5,3'/>"
        }
        var kinds: [String] = []
        for point in points where !kinds.contains(point.kind) { kinds.append(point.kind) }
        for (index, point) in points.enumerated() {
            let kind = kinds.firstIndex(of: point.kind)!
            let onFront = front.contains { $0.name == point.name && $0.x == point.x && $0.y == point.y }
            svg += marker(kind: kind, x: x(point.x), y: y(point.y), size: 6, color: palette[kind % palette.count], emphasized: onFront,
                          title: "\(index + 1). \(point.name): \(compact(point.x)) \(xLabel), \(compact(point.y)) \(yLabel)")
            svg += "<text x='\(f(x(point.x) + 8))' y='\(f(y(point.y) - 6))' font-size='10'>\(index + 1)</text>"
        }
        for (index, kind) in kinds.enumerated() {
            let legendY = top + 10 + Double(index) * 18
            svg += marker(kind: index, x: left + plotWidth + 20, y: legendY, size: 6, color: palette[index % palette.count], emphasized: false, title: kind)
            svg += "<text x='\(f(left + plotWidth + 32))' y='\(f(legendY + 4))' font-size='11'>\(escape(kind))</text>"
        }
        if front.count > 1 {
            let legendY = top + 10 + Double(kinds.count) * 18
            svg += "<line x1='\(f(left + plotWidth + 12))' y1='\(f(legendY))' x2='\(f(left + plotWidth + 28))' y2='\(f(legendY))' stroke='#555' stroke-dasharray='5,3'/>"
            svg += "<text x='\(f(left + plotWidth + 32))' y='\(f(legendY + 4))' font-size='11'>Pareto front</text>"
        }
        return svg + "</svg>"
    }

    /// A marker shape per kind index: circle, square, triangle, diamond, then again. A point on the
    /// Pareto front gets a dark outline.
    private static func marker(kind: Int, x: Double, y: Double, size: Double, color: String, emphasized: Bool, title: String) -> String {
        let stroke = emphasized ? " stroke='black' stroke-width='1.5'" : ""
        let tooltip = "<title>\(escape(title))</title>"
        switch kind % 4 {
        case 0: return "<circle cx='\(f(x))' cy='\(f(y))' r='\(f(size))' fill='\(color)'\(stroke)>\(tooltip)</circle>"
        case 1: return "<rect x='\(f(x - size))' y='\(f(y - size))' width='\(f(2 * size))' height='\(f(2 * size))' fill='\(color)'\(stroke)>\(tooltip)</rect>"
        case 2:
            return "<polygon points='\(f(x)),\(f(y - size * 1.2)) \(f(x - size * 1.1)),\(f(y + size * 0.8)) \(f(x + size * 1.1)),\(f(y + size * 0.8))' fill='\(color)'\(stroke)>\(tooltip)</polygon>"
        default:
            return "<polygon points='\(f(x)),\(f(y - size * 1.3)) \(f(x + size)),\(f(y)) \(f(x)),\(f(y + size * 1.3)) \(f(x - size)),\(f(y))' fill='\(color)'\(stroke)>\(tooltip)</polygon>"
        }
    }

    /// A horizontal bar chart of named values (room for long names), colored by kind when given.
    public static func horizontalBarChart(
        title: String, xLabel: String, bars: [(name: String, value: Double)], kinds: [String] = [], width: Double = 720,
        format: (Double) -> String = compact
    ) -> String {
        let left = 300.0, right = 70.0, top = 36.0, bottom = 40.0, row = 22.0
        let height = top + bottom + row * Double(max(bars.count, 1))
        let plotWidth = width - left - right
        let maxX = max(bars.map(\.value).max() ?? 1, 1e-9)
        var distinct: [String] = []
        for kind in kinds where !distinct.contains(kind) { distinct.append(kind) }
        var svg = header(width: width, height: height, title: title)
        svg += "<line x1='\(f(left))' y1='\(f(top))' x2='\(f(left))' y2='\(f(height - bottom))' stroke='black'/>"
        for (index, bar) in bars.enumerated() {
            let barY = top + Double(index) * row + 3
            let barWidth = max(bar.value / maxX * plotWidth, 1)
            let color = index < kinds.count ? palette[(distinct.firstIndex(of: kinds[index]) ?? 0) % palette.count] : palette[0]
            svg += "<rect x='\(f(left))' y='\(f(barY))' width='\(f(barWidth))' height='\(f(row - 6))' fill='\(color)'><title>\(escape(bar.name))</title></rect>"
            svg += "<text x='\(f(left - 6))' y='\(f(barY + row / 2 + 1))' text-anchor='end' font-size='11'>\(escape(bar.name))</text>"
            svg += "<text x='\(f(left + barWidth + 4))' y='\(f(barY + row / 2 + 1))' font-size='10'>\(escape(format(bar.value)))</text>"
        }
        svg += "<text x='\(f(left + plotWidth / 2))' y='\(f(height - 12))' text-anchor='middle' font-size='12'>\(escape(xLabel))</text>"
        return svg + "</svg>"
    }

    /// Charts stacked top to bottom in one standalone SVG document (for `--report x.svg`).
    public static func svgDocument(_ charts: [String]) -> String {
        var offset = 0.0, width = 0.0, body = ""
        for chart in charts {
            let (chartWidth, chartHeight) = size(of: chart)
            body += chart.replacingOccurrences(of: "<svg ", with: "<svg x='0' y='\(f(offset))' ", options: [], range: chart.range(of: "<svg "))
            offset += chartHeight
            width = max(width, chartWidth)
        }
        return "<svg xmlns='http://www.w3.org/2000/svg' width='\(f(width))' height='\(f(offset))' viewBox='0 0 \(f(width)) \(f(offset))'>\(body)</svg>"
    }

    /// The width and height a chart of this file declares on its root element.
    static func size(of chart: String) -> (Double, Double) {
        func attribute(_ name: String) -> Double {
            guard let start = chart.range(of: " \(name)='") else { return 0 }
            let rest = chart[start.upperBound...]
            return Double(rest.prefix { $0 != "'" }) ?? 0
        }
        return (attribute("width"), attribute("height"))
    }

    /// An HTML page with a title, a table and charts, then notes and a footer line: self-contained (no
    /// script, style sheet or font from elsewhere).
    public static func html(
        title: String, table: (header: [String], rows: [[String]]), charts: [String], notes: [String] = [], footer: String? = nil
    ) -> String {
        var page = "<!doctype html><html><head><meta charset='utf-8'><title>\(escape(title))</title>"
        page += "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:1em}"
            + "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}td.text,th.text{text-align:left}"
            + "th{background:#f4f4f4}.chart{margin:1em 0}.footer{color:#555;font-size:90%}</style></head><body>"
        // Columns of words are left-aligned, columns of numbers right-aligned.
        let textColumns = Set(table.header.indices.filter { column in
            table.rows.contains { row in column < row.count && !(row[column].first.map { $0.isNumber || $0 == "-" || $0 == "+" } ?? true) }
        })
        let cell = { (tag: String, column: Int, text: String) in
            "<\(tag)\(textColumns.contains(column) ? " class='text'" : "")>\(escape(text))</\(tag)>"
        }
        page += "<h1>\(escape(title))</h1><table><tr>" + table.header.enumerated().map { cell("th", $0.offset, $0.element) }.joined() + "</tr>"
        for row in table.rows { page += "<tr>" + row.enumerated().map { cell("td", $0.offset, $0.element) }.joined() + "</tr>" }
        page += "</table>"
        if let footer { page += "<p class='footer'>\(escape(footer))</p>" }
        for note in notes { page += "<p>\(escape(note))</p>" }
        for chart in charts { page += "<div class='chart'>\(chart)</div>" }
        return page + "</body></html>"
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    private static func header(width: Double, height: Double, title: String) -> String {
        "<svg xmlns='http://www.w3.org/2000/svg' width='\(f(width))' height='\(f(height))' viewBox='0 0 \(f(width)) \(f(height))' font-family='sans-serif'>"
            + "<rect width='100%' height='100%' fill='white'/>"
            + "<text x='\(f(width / 2))' y='20' text-anchor='middle' font-size='14'>\(escape(title))</text>"
    }

    private static func axes(
        left: Double, top: Double, plotWidth: Double, plotHeight: Double, maxX: Double?, minY: Double, maxY: Double, xLabel: String, yLabel: String
    ) -> String {
        var svg = "<line x1='\(f(left))' y1='\(f(top + plotHeight))' x2='\(f(left + plotWidth))' y2='\(f(top + plotHeight))' stroke='black'/>"
        svg += "<line x1='\(f(left))' y1='\(f(top))' x2='\(f(left))' y2='\(f(top + plotHeight))' stroke='black'/>"
        for tick in 0...4 {
            let value = minY + (maxY - minY) * Double(tick) / 4
            let y = top + plotHeight - Double(tick) / 4 * plotHeight
            svg += "<text x='\(f(left - 6))' y='\(f(y + 4))' text-anchor='end' font-size='10'>\(compact(value))</text>"
            if let maxX {
                let xValue = maxX * Double(tick) / 4
                svg += "<text x='\(f(left + Double(tick) / 4 * plotWidth))' y='\(f(top + plotHeight + 16))' text-anchor='middle' font-size='10'>\(compact(xValue))</text>"
            }
        }
        svg += "<text x='\(f(left + plotWidth / 2))' y='\(f(top + plotHeight + 34))' text-anchor='middle' font-size='12'>\(escape(xLabel))</text>"
        svg += "<text transform='translate(16,\(f(top + plotHeight / 2))) rotate(-90)' text-anchor='middle' font-size='12'>\(escape(yLabel))</text>"
        return svg
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    /// 1234567 → "1.23M".
    public static func compact(_ value: Double) -> String {
        switch abs(value) {
        case 1e9...: String(format: "%.2fG", value / 1e9)
        case 1e6...: String(format: "%.2fM", value / 1e6)
        case 1e3...: String(format: "%.1fk", value / 1e3)
        case 1...: String(format: "%.1f", value)
        default: String(format: "%.3f", value)
        }
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "'", with: "&#39;")
    }
}
