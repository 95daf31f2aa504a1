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

    /// An HTML page with a title, a table and charts.
    public static func html(title: String, table: (header: [String], rows: [[String]]), charts: [String], notes: [String] = []) -> String {
        var page = "<!doctype html><html><head><meta charset='utf-8'><title>\(escape(title))</title>"
        page += "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}</style></head><body>"
        page += "<h1>\(escape(title))</h1><table><tr>" + table.header.map { "<th>\(escape($0))</th>" }.joined() + "</tr>"
        for row in table.rows { page += "<tr>" + row.map { "<td>\(escape($0))</td>" }.joined() + "</tr>" }
        page += "</table>"
        for note in notes { page += "<p>\(escape(note))</p>" }
        for chart in charts { page += "<div>\(chart)</div>" }
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
