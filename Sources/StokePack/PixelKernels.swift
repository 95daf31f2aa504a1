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
