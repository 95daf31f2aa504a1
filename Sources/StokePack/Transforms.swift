import Foundation
import StokeStore

/// The offline transforms applied to every decoded image, in this fixed order: color conversion, resize,
/// center crop, brightness, contrast, saturation, scaling/normalization, layout. Recorded in the store's
/// `recipe` attribute. Sizes are in pixels; factors are unitless (1 leaves the image as it is); mean and
/// std are per channel on the 0–1 scale, as torchvision's `Normalize`.
public struct ImageRecipe: Codable, Sendable, Equatable {
    public enum Color: String, Codable, Sendable, CaseIterable { case rgb, gray }
    /// `bilinear`: Pillow's `BILINEAR` (a triangle filter widened when shrinking, so it antialiases, as
    /// torchvision with `antialias=True`); `area`: Pillow's `BOX`, the area average of the covered pixels.
    public enum Interpolation: String, Codable, Sendable, CaseIterable { case bilinear, area }
    public enum Layout: String, Codable, Sendable, CaseIterable { case chw, hwc }

    public var color: Color = .rgb
    /// Resize to exactly `resize_height` x `resize_width`…
    public var resize_height: Int?
    public var resize_width: Int?
    /// …or scale so the shorter side is this long (the other side is `Int(S * long / short)`, as torchvision).
    public var resize_shorter: Int?
    public var interpolation: Interpolation = .bilinear
    public var crop_height: Int?
    public var crop_width: Int?
    public var brightness: Float = 1
    public var contrast: Float = 1
    public var saturation: Float = 1
    public var layout: Layout = .chw
    /// u8 keeps 0–255; f16/f32 hold 0–1 (or normalized values with `bake_normalize`).
    public var dtype: DType = .u8
    public var mean: [Float]?
    public var std: [Float]?
    /// Write `(x - mean) / std` instead of recording mean/std for the loader.
    public var bake_normalize = false

    public init() {}

    public var channels: Int { color == .rgb ? 3 : 1 }

    /// Checks the combination; the message names the option at fault.
    /// The largest resize or crop side, in pixels (a 16384² RGB f32 sample is already 3 GiB).
    public static let maximumSide = 16384

    public func validate() throws(SourceError) {
        func fail(_ reason: String) -> SourceError { SourceError(path: "recipe", reason: reason) }
        guard [.u8, .f16, .f32].contains(dtype) else { throw fail("output dtype \(dtype.rawValue) is not u8, f16 or f32") }
        for size in [resize_height, resize_width, resize_shorter, crop_height, crop_width].compactMap({ $0 }) where size <= 0 {
            throw fail("sizes must be positive, got \(size)")
        }
        for size in [resize_height, resize_width, resize_shorter, crop_height, crop_width].compactMap({ $0 }) where size > ImageRecipe.maximumSide {
            throw fail("sizes must be at most \(ImageRecipe.maximumSide) pixels, got \(size)")
        }
        for factor in [brightness, contrast, saturation] where !(factor >= 0 && factor.isFinite) {
            throw fail("brightness, contrast and saturation factors must be finite and >= 0, got \(factor)")
        }
        if (resize_height == nil) != (resize_width == nil) { throw fail("resize_height and resize_width go together") }
        if resize_height != nil && resize_shorter != nil { throw fail("resize to HxW or the shorter side, not both") }
        if (crop_height == nil) != (crop_width == nil) { throw fail("crop_height and crop_width go together") }
        if (mean == nil) != (std == nil) { throw fail("--mean and --std go together") }
        if let mean, let std {
            guard mean.count == channels || mean.count == 1, std.count == mean.count else {
                throw fail("--mean and --std need 1 or \(channels) values each, got \(mean.count) and \(std.count)")
            }
            guard std.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw fail("--std values must be positive") }
        }
        if bake_normalize {
            guard mean != nil else { throw fail("--bake-normalize needs --mean and --std") }
            guard dtype != .u8 else { throw fail("--bake-normalize writes signed values: use --dtype f16 or f32") }
        }
    }

    /// Per-channel mean and std with a single value broadcast to every channel.
    func normalization() -> (mean: [Float], std: [Float])? {
        guard let mean, let std else { return nil }
        return mean.count == 1 ? (Array(repeating: mean[0], count: channels), Array(repeating: std[0], count: channels)) : (mean, std)
    }

    /// The recorded transform list, in application order, for the `recipe` attribute.
    public var steps: [[String: Any]] {
        var steps: [[String: Any]] = [["op": "decode", "to": "u8 HWC, gray or RGB as stored"], ["op": "color", "to": color.rawValue]]
        if let height = resize_height, let width = resize_width {
            steps.append(["op": "resize", "height": height, "width": width, "interpolation": interpolation.rawValue])
        } else if let shorter = resize_shorter {
            steps.append(["op": "resize", "shorter_side": shorter, "interpolation": interpolation.rawValue])
        }
        if let height = crop_height, let width = crop_width { steps.append(["op": "center_crop", "height": height, "width": width]) }
        if brightness != 1 { steps.append(["op": "brightness", "factor": brightness.recorded]) }
        if contrast != 1 { steps.append(["op": "contrast", "factor": contrast.recorded]) }
        if saturation != 1 { steps.append(["op": "saturation", "factor": saturation.recorded]) }
        if dtype != .u8 { steps.append(["op": "scale", "factor": "1/255"]) }
        if bake_normalize, let (mean, std) = normalization() {
            steps.append(["op": "normalize", "mean": mean.map(\.recorded), "std": std.map(\.recorded)])
        }
        steps.append(["op": "layout", "to": layout.rawValue])
        steps.append(["op": "dtype", "to": dtype.rawValue])
        return steps
    }

    /// The output sample shape for a source image of `height` x `width` (before any transform).
    public func outputShape(height: Int, width: Int) -> [Int] {
        var (h, w) = resizedSize(height: height, width: width)
        if let crop_height, let crop_width { (h, w) = (crop_height, crop_width) }
        return layout == .chw ? [channels, h, w] : [h, w, channels]
    }

    func resizedSize(height: Int, width: Int) -> (Int, Int) {
        if let resize_height, let resize_width { return (resize_height, resize_width) }
        if let shorter = resize_shorter {
            return width <= height ? (Int(Double(shorter) * Double(height) / Double(width)), shorter)
                : (shorter, Int(Double(shorter) * Double(width) / Double(height)))
        }
        return (height, width)
    }

    /// Runs every transform on one decoded image and returns the sample's bytes (little-endian `dtype`).
    public func apply(_ image: Image, path: String) throws(SourceError) -> [UInt8] {
        let converted = convertColor(image)
        let (height, width) = resizedSize(height: converted.height, width: converted.width)
        guard height > 0, width > 0 else {
            throw SourceError(path: path, reason: "resizing \(image.width)x\(image.height) gives an empty image")
        }
        var (cropHeight, cropWidth) = (height, width)
        if let crop_height, let crop_width {
            guard crop_height <= height, crop_width <= width else {
                throw SourceError(path: path, reason: "center crop \(crop_height)x\(crop_width) is larger than the image (\(height)x\(width) after resize)")
            }
            (cropHeight, cropWidth) = (crop_height, crop_width)
        }
        // Offsets round half to even, as torchvision's center_crop; only the cropped window is resampled.
        let top = Int((Double(height - cropHeight) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(width - cropWidth) / 2).rounded(.toNearestOrEven))
        var plane: FloatImage
        if width != converted.width && height != converted.height {
            // Both axes resized (the usual `--resize S --center-crop C`): vertical pass first, on the bytes,
            // over just the columns the cropped window needs; then the horizontal pass, straight to the
            // stored bytes when no later transform needs Floats.
            let across = Resampler.coefficients(input: converted.width, output: width, interpolation: interpolation, window: left..<(left + cropWidth))
            let down = Resampler.coefficients(input: converted.height, output: height, interpolation: interpolation, window: top..<(top + cropHeight))
            let first = across.starts.min()!, last = across.starts.max()! + across.taps
            let rows = PixelKernels.verticalBytes(converted, table: down, columns: first..<last)
            if dtype == .u8 && brightness == 1 && contrast == 1 && saturation == 1 {
                return PixelKernels.horizontalFloats(rows, table: across, columnOffset: first, target: .bytes(layout)).1!
            }
            plane = PixelKernels.horizontalFloats(rows, table: across, columnOffset: first, target: .floats).0!
        } else {
            if width != converted.width {
                let table = Resampler.coefficients(input: converted.width, output: width, interpolation: interpolation, window: left..<(left + cropWidth))
                plane = PixelKernels.horizontal(converted, table: table)
            } else {
                plane = FloatImage(converted)
            }
            if height != plane.height {
                let table = Resampler.coefficients(input: plane.height, output: height, interpolation: interpolation, window: top..<(top + cropHeight))
                plane = PixelKernels.vertical(plane, table: table)
            }
        }
        if plane.height != cropHeight || plane.width != cropWidth {
            // An axis that was not resized is cropped by slicing (the other is already the crop's size).
            plane = plane.window(top: plane.height == cropHeight ? 0 : top, left: plane.width == cropWidth ? 0 : left,
                                 height: cropHeight, width: cropWidth)
        }
        if brightness != 1 { plane.blend(with: { _, _ in 0 }, factor: brightness) }
        if contrast != 1 {
            let mean = plane.meanLuma()
            plane.blend(with: { _, _ in mean }, factor: contrast)
        }
        if saturation != 1 && plane.channels == 3 {
            let gray = plane.luma()
            plane.blend(with: { pixel, _ in gray[pixel] }, factor: saturation)
        }
        return PixelKernels.output(plane, dtype: dtype, layout: layout, normalization: bake_normalize ? normalization() : nil)
    }

    /// Gray ↔ RGB on 8-bit pixels. RGB → gray is ITU-R 601-2 luma with Pillow's fixed-point rounding
    /// (`convert("L")`), so the two agree exactly.
    func convertColor(_ image: Image) -> Image {
        switch (image.channels, channels) {
        case (3, 1):
            var gray = [UInt8](repeating: 0, count: image.width * image.height)
            for pixel in gray.indices {
                let r = UInt32(image.pixels[3 * pixel]), g = UInt32(image.pixels[3 * pixel + 1]), b = UInt32(image.pixels[3 * pixel + 2])
                gray[pixel] = UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
            }
            return Image(width: image.width, height: image.height, channels: 1, pixels: gray)
        case (1, 3):
            var rgb = [UInt8](repeating: 0, count: image.width * image.height * 3)
            for (pixel, value) in image.pixels.enumerated() {
                rgb[3 * pixel] = value
                rgb[3 * pixel + 1] = value
                rgb[3 * pixel + 2] = value
            }
            return Image(width: image.width, height: image.height, channels: 3, pixels: rgb)
        default:
            return image
        }
    }
}

/// An image as Float values on the 0–255 scale, HWC, for the transforms between decode and output.
struct FloatImage {
    var width: Int
    var height: Int
    var channels: Int
    var values: [Float]

    init(width: Int, height: Int, channels: Int, values: [Float]) {
        self.width = width
        self.height = height
        self.channels = channels
        self.values = values
    }

    init(_ image: Image) {
        self.init(width: image.width, height: image.height, channels: image.channels, values: PixelKernels.floats(image.pixels))
    }

    /// The `height` x `width` window whose top-left pixel is (`top`, `left`).
    func window(top: Int, left: Int, height newHeight: Int, width newWidth: Int) -> FloatImage {
        var result = [Float]()
        result.reserveCapacity(newHeight * newWidth * channels)
        for row in top..<(top + newHeight) {
            let start = (row * width + left) * channels
            result.append(contentsOf: values[start..<(start + newWidth * channels)])
        }
        return FloatImage(width: newWidth, height: newHeight, channels: channels, values: result)
    }

    /// Per-pixel luma (0.299 R + 0.587 G + 0.114 B), or the value itself for gray.
    func luma() -> [Float] {
        guard channels == 3 else { return values }
        return (0..<(width * height)).map { 0.299 * values[3 * $0] + 0.587 * values[3 * $0 + 1] + 0.114 * values[3 * $0 + 2] }
    }

    func meanLuma() -> Float {
        let gray = luma()
        return gray.isEmpty ? 0 : Float(gray.reduce(0.0) { $0 + Double($1) } / Double(gray.count))
    }

    /// `factor * x + (1 - factor) * other(pixel, channel)`, clamped to 0–255 (torchvision's `_blend`).
    mutating func blend(with other: (Int, Int) -> Float, factor: Float) {
        for pixel in 0..<(width * height) {
            for channel in 0..<channels {
                let index = pixel * channels + channel
                values[index] = min(255, max(0, factor * values[index] + (1 - factor) * other(pixel, channel)))
            }
        }
    }
}

/// Separable resampling with Pillow's coefficients (`ImagingResample`): for output pixel `x` the source
/// window is centred on `(x + 0.5) * scale`; the filter is widened by `scale` when shrinking, so shrinking
/// averages every covered source pixel instead of skipping some.
enum Resampler {
    /// Per output pixel: the first source pixel and `taps` weights (zero-padded) in one flat array.
    struct Coefficients {
        var starts: [Int]
        var taps: Int
        var weights: [Float]
    }

    /// Coefficients for output positions `window` (default: all) of a resize from `input` to `output`.
    static func coefficients(input: Int, output: Int, interpolation: ImageRecipe.Interpolation, window: Range<Int>? = nil) -> Coefficients {
        let scale = Double(input) / Double(output)
        let filterScale = max(scale, 1)
        let baseSupport = interpolation == .bilinear ? 1.0 : 0.5
        let support = baseSupport * filterScale
        func filter(_ x: Double) -> Double {
            switch interpolation {
            case .bilinear: return abs(x) < 1 ? 1 - abs(x) : 0
            case .area: return x > -0.5 && x <= 0.5 ? 1 : 0
            }
        }
        // Two passes over flat arrays (windows, then weights): no array per output position, which cost
        // about a thousand allocations per image.
        let positions = window ?? 0..<output
        var starts = [Int](), ends = [Int]()
        starts.reserveCapacity(positions.count)
        ends.reserveCapacity(positions.count)
        for position in positions {
            let center = (Double(position) + 0.5) * scale
            // C's (int) cast truncates toward zero, as Pillow does.
            starts.append(max(Int(center - support + 0.5), 0))
            ends.append(min(Int(center + support + 0.5), input))
        }
        // Pad every kernel to the same tap count; a window that would run past the end starts earlier
        // with leading zero weights, so the kernels never read outside the source.
        let taps = zip(starts, ends).map { $1 - $0 }.max() ?? 0
        var weights = [Float](repeating: 0, count: taps * positions.count)
        for (index, position) in positions.enumerated() {
            let center = (Double(position) + 0.5) * scale
            let low = starts[index], high = ends[index]
            var total = 0.0
            for source in low..<high { total += filter((Double(source) - center + 0.5) / filterScale) }
            let shift = max(0, low + taps - input)
            for source in low..<high {
                let weight = filter((Double(source) - center + 0.5) / filterScale)
                weights[index * taps + shift + source - low] = Float(total != 0 ? weight / total : weight)
            }
            starts[index] -= shift
        }
        return Coefficients(starts: starts, taps: taps, weights: weights)
    }
}

extension Float {
    /// The value as written (0.4, not 0.4000000059604645) for JSON documents people read.
    public var recorded: Double { Double(description) ?? Double(self) }
}
