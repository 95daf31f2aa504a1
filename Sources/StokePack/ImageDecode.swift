import CPNG
import CTurboJPEG
import Foundation

/// An 8-bit image in HWC order (row-major, channels interleaved): 1 channel (gray) or 3 (RGB).
public struct Image: Sendable, Equatable {
    /// Pixels.
    public var width: Int
    /// Pixels.
    public var height: Int
    /// 1 (gray) or 3 (RGB).
    public var channels: Int
    /// `height * width * channels` bytes.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels, "pixel buffer does not match the size")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }
}

/// Decodes JPEG (TurboJPEG), PNG (libpng's simplified API) and binary or ASCII PPM/PGM (here), chosen by
/// the file's magic bytes, to 8-bit gray or RGB as stored (color conversion is a recorded transform, not a
/// decoder side effect). Every failure, warnings included (a truncated JPEG, a PNG chunk with a bad CRC),
/// is a `SourceError` naming the file. This file and `SourceBytes.swift` hold StokePack's pointer code.
public enum ImageDecoder {
    /// Images larger than this many pixels (134 M, e.g. 16384 x 8192) are refused before any allocation.
    public static let maximumPixels = 1 << 27

    public static func decode(path: String) throws(SourceError) -> Image {
        let file = try SourceBytes(mapping: path)
        guard let bytes = unsafe file.bytes(at: 0, count: file.count), bytes.count >= 3 else {
            throw SourceError(path: path, reason: "file is empty or too short to be an image")
        }
        if unsafe bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF { return try unsafe decodeJPEG(bytes, path: path) }
        if unsafe bytes.count >= 8 && Array(bytes[0..<8]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] {
            return try unsafe decodePNG(bytes, path: path)
        }
        if unsafe bytes[0] == UInt8(ascii: "P"), unsafe (UInt8(ascii: "2")...UInt8(ascii: "6")).contains(bytes[1]), unsafe bytes[1] != UInt8(ascii: "4") {
            return try unsafe decodePNM(bytes, path: path)
        }
        throw SourceError(path: path, reason: "not a JPEG, PNG, PPM or PGM file (unknown magic bytes)")
    }

    /// Refuses empty or oversized images, and sizes the file cannot hold: `pixelsPerByte` is the most
    /// pixels one file byte can encode (a decompression-bomb guard applied before the pixel buffer is
    /// allocated, so a forged header cannot make a worker allocate gigabytes).
    private static func checkedSize(_ width: Int, _ height: Int, fileBytes: Int, pixelsPerByte: Int, path: String) throws(SourceError) {
        guard width > 0, height > 0, width <= maximumPixels / height else {
            throw SourceError(path: path, reason: "image size \(width)x\(height) is empty or larger than \(maximumPixels) pixels")
        }
        guard width * height <= fileBytes * pixelsPerByte else {
            throw SourceError(path: path, reason: "header declares \(width)x\(height) pixels, more than a \(fileBytes)-byte file can encode")
        }
    }

    static func decodeJPEG(_ bytes: UnsafeRawBufferPointer, path: String) throws(SourceError) -> Image {
        guard let handle = unsafe tjInitDecompress() else { throw SourceError(path: path, reason: "TurboJPEG could not start a decoder") }
        defer { _ = unsafe tjDestroy(handle) }
        func failure(_ stage: String) -> SourceError {
            SourceError(path: path, reason: "corrupt JPEG (\(stage)): \(unsafe String(cString: tjGetErrorStr2(handle)))")
        }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let source = unsafe bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        guard unsafe tjDecompressHeader3(handle, source, UInt(bytes.count), &width, &height, &subsampling, &colorspace) == 0 else {
            throw failure("header")
        }
        // Every 8x8 block costs at least a DC and an end-of-block code, so a JPEG byte holds at most a few
        // thousand pixels.
        try checkedSize(Int(width), Int(height), fileBytes: bytes.count, pixelsPerByte: 4096, path: path)
        let channels = colorspace == ctj_cs_gray() ? 1 : 3
        // Uninitialized: TurboJPEG writes every pixel when it succeeds (zero-filling 0.5 MB per photo cost
        // about 3% of a pack), and on failure the buffer is dropped unread.
        let count = Int(width) * Int(height) * channels
        var status: Int32 = 0
        let pixels = unsafe [UInt8](unsafeUninitializedCapacity: count) { output, initialized in
            status = unsafe tjDecompress2(
                handle, source, UInt(bytes.count), output.baseAddress, width, 0, height,
                channels == 1 ? ctj_pf_gray() : ctj_pf_rgb(), ctj_strict_flags())
            initialized = count
        }
        guard status == 0 else { throw failure("data") }
        return Image(width: Int(width), height: Int(height), channels: channels, pixels: pixels)
    }

    static func decodePNG(_ bytes: UnsafeRawBufferPointer, path: String) throws(SourceError) -> Image {
        var image = unsafe png_image()
        unsafe image.version = cpng_image_version()
        defer { unsafe png_image_free(&image) }
        func failure(_ stage: String) -> SourceError {
            SourceError(path: path, reason: "corrupt PNG (\(stage)): \(unsafe String(cString: cpng_message(&image)))")
        }
        guard unsafe png_image_begin_read_from_memory(&image, bytes.baseAddress, bytes.count) != 0 else { throw failure("header") }
        let width = Int(unsafe image.width), height = Int(unsafe image.height)
        // 1-bit pixels (8 per byte) deflated at most 1032:1.
        try checkedSize(width, height, fileBytes: bytes.count, pixelsPerByte: 8 * 1032, path: path)
        // Read the samples as stored: the simplified API would otherwise composite alpha in linear light
        // and gamma-encode 16-bit data when reducing it to 8 bits. Stoke drops alpha (as Pillow's
        // convert("RGB")) and scales 16-bit samples to 8 bits itself.
        let native = unsafe image.format
        let color = native & cpng_format_flag_color() != 0
        let alpha = native & cpng_format_flag_alpha() != 0
        let wide = native & cpng_format_flag_linear() != 0
        unsafe image.format = (color ? cpng_format_flag_color() : 0) | (alpha ? cpng_format_flag_alpha() : 0) | (wide ? cpng_format_flag_linear() : 0)
        let channels = color ? 3 : 1
        let components = channels + (alpha ? 1 : 0)
        var stored = [UInt8](repeating: 0, count: width * height * components * (wide ? 2 : 1))
        let status = unsafe stored.withUnsafeMutableBytes { output in
            unsafe png_image_finish_read(&image, nil, output.baseAddress, 0, nil)
        }
        guard status != 0, unsafe cpng_failed(&image) == 0 else { throw failure("data") }
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        if wide {
            // 16-bit samples in native byte order; libpng premultiplies linear data by alpha, so undo that.
            let samples = unsafe stored.withUnsafeBytes { unsafe Array($0.bindMemory(to: UInt16.self)) }
            for pixel in 0..<(width * height) {
                let a = alpha ? Int(samples[pixel * components + channels]) : 65535
                for channel in 0..<channels {
                    var value = Int(samples[pixel * components + channel])
                    if alpha { value = a == 0 ? 0 : min(65535, (value * 65535 + a / 2) / a) }
                    pixels[pixel * channels + channel] = UInt8((value * 255 + 32767) / 65535)
                }
            }
        } else if alpha {
            for pixel in 0..<(width * height) {
                for channel in 0..<channels { pixels[pixel * channels + channel] = stored[pixel * components + channel] }
            }
        } else {
            pixels = stored
        }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// Netpbm: P2/P5 (gray) and P3/P6 (RGB), maxval up to 65535 (scaled to 8 bits, rounded), `#` comments.
    static func decodePNM(_ bytes: UnsafeRawBufferPointer, path: String) throws(SourceError) -> Image {
        let kind = unsafe bytes[1]
        let channels = kind == UInt8(ascii: "2") || kind == UInt8(ascii: "5") ? 1 : 3
        let ascii = kind == UInt8(ascii: "2") || kind == UInt8(ascii: "3")
        var at = 2
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
        func skipSpaceAndComments() {
            while at < bytes.count {
                if unsafe isSpace(bytes[at]) {
                    at += 1
                } else if unsafe bytes[at] == UInt8(ascii: "#") {
                    while at < bytes.count, unsafe bytes[at] != 0x0A { at += 1 }
                } else {
                    return
                }
            }
        }
        func number(_ what: String) throws(SourceError) -> Int {
            skipSpaceAndComments()
            var value = 0, digits = 0
            while at < bytes.count, unsafe (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) {
                value = value * 10 + Int(unsafe bytes[at] - UInt8(ascii: "0"))
                digits += 1
                at += 1
                guard value <= 1 << 30 else { throw SourceError(path: path, reason: "PNM \(what) is too large") }
            }
            guard digits > 0 else { throw SourceError(path: path, reason: "PNM \(what) is missing or not a number at byte \(at)") }
            return value
        }
        let width = try number("width"), height = try number("height"), maxval = try number("maxval")
        // Binary PNM stores every sample; ASCII needs at least two bytes per sample.
        try checkedSize(width, height, fileBytes: bytes.count, pixelsPerByte: 1, path: path)
        guard (1...65535).contains(maxval) else { throw SourceError(path: path, reason: "PNM maxval \(maxval) is outside 1–65535") }
        let samples = width * height * channels
        var pixels = [UInt8](repeating: 0, count: samples)
        func scaled(_ value: Int) throws(SourceError) -> UInt8 {
            guard value <= maxval else { throw SourceError(path: path, reason: "PNM sample \(value) exceeds maxval \(maxval)") }
            return maxval == 255 ? UInt8(value) : UInt8((value * 255 + maxval / 2) / maxval)
        }
        if ascii {
            for index in 0..<samples { pixels[index] = try scaled(number("sample \(index)")) }
        } else {
            // Exactly one whitespace byte separates the header from binary data.
            at += 1
            let width = maxval > 255 ? 2 : 1
            guard bytes.count - at >= samples * width else {
                throw SourceError(path: path, reason: "truncated PNM: \(samples * width) data bytes expected, \(max(0, bytes.count - at)) present")
            }
            for index in 0..<samples {
                let value = width == 1 ? Int(unsafe bytes[at + index]) : unsafe Int(bytes[at + 2 * index]) << 8 | Int(bytes[at + 2 * index + 1])
                pixels[index] = try scaled(value)
            }
        }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }
}
