import StokeStore

/// The per-pixel loops of the image transforms (resampling passes, u8 → Float, output conversion). They
/// run over every pixel of every image, so they use unchecked buffer pointers; every index is derived
/// from the image dimensions and the coefficient tables, whose windows `Resampler.coefficients` keeps
/// inside the source. This file, `ImageDecode.swift` and `SourceBytes.swift` hold StokePack's pointer code.
enum PixelKernels {
    /// Rounds a value to the nearest byte (ties to even), clamping to 0–255. Adding 1.5 · 2²³ moves the
    /// rounded integer into the low mantissa bits, so this is branch-free bit arithmetic the compiler
    /// vectorizes, where `UInt8(Float)` checks its range on every call.
    @inline(__always)
    static func toByte(_ value: Float) -> UInt8 {
        UInt8(truncatingIfNeeded: (min(255, max(0, value)) + 12_582_912).bitPattern)
    }

    static func floats(_ pixels: [UInt8]) -> [Float] {
        unsafe [Float](unsafeUninitializedCapacity: pixels.count) { output, initialized in
            unsafe pixels.withUnsafeBufferPointer { input in
                for index in 0..<input.count { unsafe output[index] = Float(input[index]) }
            }
            initialized = pixels.count
        }
    }

    /// Resamples decoded 8-bit pixels along x (Pillow's horizontal pass, which also runs first there),
    /// reading the bytes directly: no Float copy of the full-size source.
    static func horizontal(_ image: Image, table: Resampler.Coefficients) -> FloatImage {
        unsafe image.pixels.withUnsafeBufferPointer { input in
            unsafe horizontalPass(input, width: image.width, height: image.height, channels: image.channels, table: table) { Float($0) }
        }
    }

    /// Both filters have non-negative weights summing to 1, so sums stay within 0–255 without a clamp.
    @inline(__always)
    private static func horizontalPass<Element>(
        _ input: UnsafeBufferPointer<Element>, width sourceWidth: Int, height: Int, channels: Int, table: Resampler.Coefficients,
        _ value: (Element) -> Float
    ) -> FloatImage {
        let width = table.starts.count
        let taps = table.taps, sourceRow = sourceWidth * channels
        var values = [Float](repeating: 0, count: height * width * channels)
        unsafe values.withUnsafeMutableBufferPointer { output in
            unsafe table.weights.withUnsafeBufferPointer { weights in
                unsafe table.starts.withUnsafeBufferPointer { starts in
                    for row in 0..<height {
                        let rowBase = row * sourceRow
                        for x in 0..<width {
                            let source = unsafe rowBase + starts[x] * channels
                            let kernel = x * taps
                            let target = (row * width + x) * channels
                            if channels == 3 {
                                var r: Float = 0, g: Float = 0, b: Float = 0
                                for tap in 0..<taps {
                                    let weight = unsafe weights[kernel + tap], at = source + 3 * tap
                                    r += unsafe weight * value(input[at])
                                    g += unsafe weight * value(input[at + 1])
                                    b += unsafe weight * value(input[at + 2])
                                }
                                unsafe output[target] = r
                                unsafe output[target + 1] = g
                                unsafe output[target + 2] = b
                            } else {
                                for channel in 0..<channels {
                                    var sum: Float = 0
                                    for tap in 0..<taps { sum += unsafe weights[kernel + tap] * value(input[source + tap * channels + channel]) }
                                    unsafe output[target + channel] = sum
                                }
                            }
                        }
                    }
                }
            }
        }
        return FloatImage(width: width, height: height, channels: channels, values: values)
    }

    /// Resamples along y (Pillow's vertical pass): whole rows are weighted and summed, so the inner loop
    /// is contiguous. Both filters have non-negative weights summing to 1, so the sums stay within 0–255
    /// (up to rounding, which `output` clamps) and need no clamp here.
    static func vertical(_ image: FloatImage, table: Resampler.Coefficients) -> FloatImage {
        let height = table.starts.count
        let rowLength = image.width * image.channels, taps = table.taps
        var values = [Float](repeating: 0, count: height * rowLength)
        unsafe values.withUnsafeMutableBytes { output in
            unsafe image.values.withUnsafeBytes { input in
                let stride = MemoryLayout<Float>.stride
                var rowTaps: [(weight: Float, offset: Int)] = []
                for y in 0..<height {
                    rowTaps.removeAll(keepingCapacity: true)
                    for tap in 0..<taps where table.weights[y * taps + tap] != 0 {
                        rowTaps.append((table.weights[y * taps + tap], (table.starts[y] + tap) * rowLength))
                    }
                    let target = y * rowLength
                    // Eight values at a time with explicit SIMD: the output and input buffers are distinct,
                    // but the compiler cannot prove it, so it would not vectorize a scalar loop.
                    var index = 0
                    while index + 8 <= rowLength {
                        var sum = SIMD8<Float>(repeating: 0)
                        for (weight, offset) in rowTaps {
                            sum += unsafe weight * input.loadUnaligned(fromByteOffset: (offset + index) * stride, as: SIMD8<Float>.self)
                        }
                        unsafe output.storeBytes(of: sum, toByteOffset: (target + index) * stride, as: SIMD8<Float>.self)
                        index += 8
                    }
                    while index < rowLength {
                        var sum: Float = 0
                        for (weight, offset) in rowTaps {
                            sum += unsafe weight * input.load(fromByteOffset: (offset + index) * stride, as: Float.self)
                        }
                        unsafe output.storeBytes(of: sum, toByteOffset: (target + index) * stride, as: Float.self)
                        index += 1
                    }
                }
            }
        }
        return FloatImage(width: image.width, height: height, channels: image.channels, values: values)
    }

    /// Resamples along y straight from the decoded bytes, over source columns `columns` only (the ones the
    /// horizontal pass of a center crop reads). Running this pass first, on bytes, is what makes it cheap:
    /// rows are contiguous, so eight bytes at a time are widened to Float and weighted with SIMD, and only
    /// the cropped rows are produced. Both orders compute the same separable sum (up to Float rounding).
    static func verticalBytes(_ image: Image, table: Resampler.Coefficients, columns: Range<Int>) -> FloatImage {
        let channels = image.channels, taps = table.taps, height = table.starts.count
        let sourceRow = image.width * channels, first = columns.lowerBound * channels
        let rowLength = columns.count * channels, count = height * rowLength
        // Per output row: the non-zero weights and the byte offsets of their source rows, hoisted out of
        // the inner loop (which then does only loads, widening and multiply-adds).
        let rowWeights = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, taps))
        let rowOffsets = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(1, taps))
        defer {
            unsafe rowWeights.deallocate()
            unsafe rowOffsets.deallocate()
        }
        let values = unsafe [Float](unsafeUninitializedCapacity: count) { output, initialized in
            unsafe image.pixels.withUnsafeBytes { input in
                let source = input.baseAddress!
                let target = UnsafeMutableRawPointer(output.baseAddress!)
                for y in 0..<height {
                    var used = 0
                    for tap in 0..<taps where table.weights[y * taps + tap] != 0 {
                        unsafe rowWeights[used] = table.weights[y * taps + tap]
                        unsafe rowOffsets[used] = (table.starts[y] + tap) * sourceRow + first
                        used += 1
                    }
                    let row = unsafe target + y * rowLength * MemoryLayout<Float>.stride
                    var index = 0
                    while index &+ 8 <= rowLength {
                        var sum = SIMD8<Float>(repeating: 0)
                        for tap in 0..<used {
                            let bytes = unsafe source.loadUnaligned(fromByteOffset: rowOffsets[tap] &+ index, as: SIMD8<UInt8>.self)
                            sum += unsafe rowWeights[tap] * SIMD8<Float>(bytes)
                        }
                        unsafe row.storeBytes(of: sum, toByteOffset: index &* 4, as: SIMD8<Float>.self)
                        index &+= 8
                    }
                    while index < rowLength {
                        var sum: Float = 0
                        for tap in 0..<used { sum += unsafe rowWeights[tap] * Float(source.load(fromByteOffset: rowOffsets[tap] + index, as: UInt8.self)) }
                        unsafe row.storeBytes(of: sum, toByteOffset: index * 4, as: Float.self)
                        index += 1
                    }
                }
            }
            initialized = count
        }
        return FloatImage(width: columns.count, height: height, channels: channels, values: values)
    }

    /// Where the horizontal pass of a fused resize writes: Float HWC for further transforms, or the final
    /// u8 sample in either layout (rounded as `output` does), which saves the output pass and its copy.
    enum HorizontalTarget {
        case floats
        case bytes(ImageRecipe.Layout)
    }

    /// `toByte` on four lanes at once, without the clamp: a resampled value is a weighted mean of bytes
    /// (weights non-negative, summing to 1), so it lies within 0–255 up to Float rounding (far below 0.5),
    /// and the rounding trick alone gives the right byte. (Swift's SIMD `replacing(where:)` clamp compiled
    /// to a per-lane branch here, the hottest part of the pass.)
    @inline(__always)
    static func toBytes(_ value: SIMD4<Float>) -> SIMD4<UInt32> {
        unsafe unsafeBitCast(value + 12_582_912, to: SIMD4<UInt32>.self)
    }

    /// The horizontal pass for RGB straight to bytes, as one flat loop over raw pointers (written out
    /// rather than shared with the Float target: the shared version kept its indices in memory, not
    /// registers). Output pixel `x` of a row is `Σ weight[tap] · source[starts[x] + tap]` as SIMD4 (R, G, B
    /// and one lane dropped); near the end of the buffer the three channels are loaded one by one.
    private static func rgbToBytes(
        _ input: UnsafeBufferPointer<Float>, sourceRow: Int, height: Int, starts: UnsafeBufferPointer<Int>,
        weights: UnsafeBufferPointer<Float>, taps: Int, columnOffset: Int, output: UnsafeMutablePointer<UInt8>,
        pixelStride: Int, channelStride: Int
    ) {
        let width = starts.count
        // The largest source index from which all `taps` four-lane loads stay inside the buffer.
        let limit = input.count - 3 * taps - 1
        let base = input.baseAddress!, kernels = weights.baseAddress!
        var out = unsafe output
        for row in 0..<height {
            let rowBase = row &* sourceRow
            for x in 0..<width {
                let source = unsafe rowBase &+ (starts[x] &- columnOffset) &* 3
                let kernel = unsafe kernels + x &* taps
                var sum = SIMD4<Float>(repeating: 0)
                if source <= limit {
                    var at = unsafe base + source
                    for tap in 0..<taps {
                        sum += unsafe kernel[tap] * UnsafeRawPointer(at).loadUnaligned(as: SIMD4<Float>.self)
                        unsafe at += 3
                    }
                } else {
                    for tap in 0..<taps {
                        let at = unsafe base + (source + 3 * tap)
                        sum += unsafe kernel[tap] * SIMD4<Float>(at[0], at[1], at[2], 0)
                    }
                }
                let rounded = toBytes(sum)
                unsafe out[0] = UInt8(truncatingIfNeeded: rounded[0])
                unsafe out[channelStride] = UInt8(truncatingIfNeeded: rounded[1])
                unsafe out[2 &* channelStride] = UInt8(truncatingIfNeeded: rounded[2])
                unsafe out += pixelStride
            }
        }
    }

    /// Resamples `image` (the columns from `columnOffset` on of the source the table was made for) along x.
    /// RGB pixels are weighted as SIMD4 (R, G, B and the next pixel's R, whose lane is dropped); the last
    /// pixels of a row, where that fourth lane would read past the buffer, take the scalar path.
    static func horizontalFloats(_ image: FloatImage, table: Resampler.Coefficients, columnOffset: Int, target: HorizontalTarget) -> (FloatImage?, [UInt8]?) {
        let channels = image.channels, taps = table.taps, width = table.starts.count, height = image.height
        let sourceRow = image.width * channels, count = height * width * channels, plane = height * width
        var floats: [Float]? = nil, bytes: [UInt8]? = nil
        unsafe image.values.withUnsafeBufferPointer { input in
            unsafe table.weights.withUnsafeBufferPointer { weights in
                unsafe table.starts.withUnsafeBufferPointer { starts in
                    let base = input.baseAddress!
                    /// The weighted sum for output pixel `x` of `row`, channel by channel in the SIMD lanes
                    /// (RGB), or nil where the scalar path must run.
                    @inline(__always)
                    func rgb(_ row: Int, _ x: Int) -> SIMD4<Float>? {
                        let source = unsafe row &* sourceRow &+ (starts[x] &- columnOffset) &* 3
                        guard source &+ 3 &* taps &+ 1 <= input.count else { return nil }
                        var sum = SIMD4<Float>(repeating: 0)
                        for tap in 0..<taps {
                            let lanes = unsafe UnsafeRawPointer(base + (source &+ 3 &* tap)).loadUnaligned(as: SIMD4<Float>.self)
                            sum += unsafe weights[x &* taps &+ tap] * lanes
                        }
                        return sum
                    }
                    @inline(__always)
                    func scalar(_ row: Int, _ x: Int, _ channel: Int) -> Float {
                        let source = unsafe row * sourceRow + (starts[x] - columnOffset) * channels
                        var sum: Float = 0
                        for tap in 0..<taps { sum += unsafe weights[x * taps + tap] * input[source + tap * channels + channel] }
                        return sum
                    }
                    switch target {
                    case .floats:
                        floats = unsafe [Float](unsafeUninitializedCapacity: count) { output, initialized in
                            for row in 0..<height {
                                for x in 0..<width {
                                    let pixel = row &* width &+ x
                                    if channels == 3, let sum = rgb(row, x) {
                                        unsafe output[3 &* pixel] = sum[0]
                                        unsafe output[3 &* pixel &+ 1] = sum[1]
                                        unsafe output[3 &* pixel &+ 2] = sum[2]
                                    } else {
                                        for channel in 0..<channels { unsafe output[pixel * channels + channel] = scalar(row, x, channel) }
                                    }
                                }
                            }
                            initialized = count
                        }
                    case .bytes(let layout):
                        // Element (pixel, channel) goes to `pixel * pixelStride + channel * channelStride`.
                        let pixelStride = layout == .hwc ? channels : 1, channelStride = layout == .hwc ? 1 : plane
                        bytes = unsafe [UInt8](unsafeUninitializedCapacity: count) { output, initialized in
                            if channels == 3 {
                                unsafe rgbToBytes(
                                    input, sourceRow: sourceRow, height: height, starts: starts, weights: weights, taps: taps,
                                    columnOffset: columnOffset, output: output.baseAddress!, pixelStride: pixelStride, channelStride: channelStride)
                                initialized = count
                                return
                            }
                            for row in 0..<height {
                                for x in 0..<width {
                                    let pixel = row &* width &+ x, at = pixel &* pixelStride
                                    if channels == 3, let sum = rgb(row, x) {
                                        let rounded = toBytes(sum)
                                        unsafe output[at] = UInt8(truncatingIfNeeded: rounded[0])
                                        unsafe output[at &+ channelStride] = UInt8(truncatingIfNeeded: rounded[1])
                                        unsafe output[at &+ 2 &* channelStride] = UInt8(truncatingIfNeeded: rounded[2])
                                    } else {
                                        for channel in 0..<channels { unsafe output[at + channel * channelStride] = toByte(scalar(row, x, channel)) }
                                    }
                                }
                            }
                            initialized = count
                        }
                    }
                }
            }
        }
        return (floats.map { FloatImage(width: width, height: height, channels: channels, values: $0) }, bytes)
    }

    /// Converts to the stored dtype and layout: u8 rounds to nearest; floats are scaled to 0–1 and then
    /// normalized per channel when `normalization` is given. Returns little-endian bytes.
    static func output(
        _ image: FloatImage, dtype: DType, layout: ImageRecipe.Layout, normalization: (mean: [Float], std: [Float])?
    ) -> [UInt8] {
        let channels = image.channels, plane = image.width * image.height
        // Element `index` of the output reads `values[sourceOf(pixel, channel)]`; in HWC the output index
        // is the source index, in CHW it is `channel * plane + pixel`.
        func targetIndex(_ pixel: Int, _ channel: Int) -> Int { layout == .hwc ? pixel * channels + channel : channel * plane + pixel }
        var offset = [Float](repeating: 0, count: channels), factor = [Float](repeating: 1 / 255, count: channels)
        if let normalization {
            for channel in 0..<channels {
                offset[channel] = normalization.mean[channel] / normalization.std[channel]
                factor[channel] = 1 / (255 * normalization.std[channel])
            }
        }
        switch dtype {
        case .u8:
            var bytes = [UInt8](repeating: 0, count: plane * channels)
            unsafe bytes.withUnsafeMutableBufferPointer { output in
                unsafe image.values.withUnsafeBufferPointer { input in
                    if layout == .hwc {
                        for index in 0..<(plane * channels) { unsafe output[index] = toByte(input[index]) }
                    } else {
                        for channel in 0..<channels {
                            let base = channel * plane
                            for pixel in 0..<plane { unsafe output[base + pixel] = toByte(input[pixel * channels + channel]) }
                        }
                    }
                }
            }
            return bytes
        case .f16:
            var halves = [Float16](repeating: 0, count: plane * channels)
            unsafe halves.withUnsafeMutableBufferPointer { output in
                unsafe image.values.withUnsafeBufferPointer { input in
                    for pixel in 0..<plane {
                        for channel in 0..<channels {
                            unsafe output[targetIndex(pixel, channel)] = Float16(min(255, max(0, input[pixel * channels + channel])) * factor[channel] - offset[channel])
                        }
                    }
                }
            }
            return unsafe halves.withUnsafeBytes { unsafe Array($0) }
        default:
            var floats = [Float](repeating: 0, count: plane * channels)
            unsafe floats.withUnsafeMutableBufferPointer { output in
                unsafe image.values.withUnsafeBufferPointer { input in
                    for pixel in 0..<plane {
                        for channel in 0..<channels {
                            unsafe output[targetIndex(pixel, channel)] = min(255, max(0, input[pixel * channels + channel])) * factor[channel] - offset[channel]
                        }
                    }
                }
            }
            return unsafe floats.withUnsafeBytes { unsafe Array($0) }
        }
    }
}
