import Foundation
import StokePack
import StokeStore
import Testing

/// Largest absolute difference between two byte arrays of the same length (Int.max when lengths differ).
private func maxDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
    guard a.count == b.count else { return Int.max }
    return zip(a, b).map { abs(Int($0) - Int($1)) }.max() ?? 0
}

/// HWC bytes → CHW bytes.
private func chw(_ hwc: [UInt8], height: Int, width: Int, channels: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: hwc.count)
    for c in 0..<channels { for p in 0..<(height * width) { out[c * height * width + p] = hwc[p * channels + c] } }
    return out
}

@Suite("image decode and transforms against Pillow")
struct ImageTests {
    let directory = scratchDirectory("stoke-images")

    /// Writes test images with Pillow and, next to each, Pillow's reference pixels as raw bytes.
    private func makeImages() throws {
        try runPython("""
            import sys, numpy as np
            from PIL import Image, ImageEnhance
            d = sys.argv[1]
            rng = np.random.default_rng(21)
            # Smooth content (gradients + noise) so JPEG and resampling behave as on photos.
            yy, xx = np.mgrid[0:37, 0:53]
            rgb = np.stack([(xx * 4) % 256, (yy * 6) % 256, (xx * yy) % 256], -1).astype(np.int32)
            rgb = np.clip(rgb + rng.integers(-20, 20, size=rgb.shape), 0, 255).astype(np.uint8)
            gray = rgb[..., 1].copy()
            im = Image.fromarray(rgb); g = Image.fromarray(gray)
            def raw(image, name): np.asarray(image).tofile(f'{d}/{name}.raw')
            im.save(d + '/rgb.png'); g.save(d + '/gray.png')
            im.save(d + '/rgb.ppm'); g.save(d + '/gray.pgm')
            with open(d + '/ascii.ppm', 'w') as f:
                f.write('P3\\n# a comment\\n53 37\\n255\\n' + ' '.join(str(v) for v in rgb.reshape(-1)) + '\\n')
            im.save(d + '/rgb.jpg', quality=92)
            raw(Image.open(d + '/rgb.jpg'), 'jpg')
            raw(im, 'rgb'); raw(g, 'gray')
            raw(im.convert('L'), 'to_gray')
            for name, f in [('bilinear', Image.BILINEAR), ('area', Image.BOX)]:
                for (w, h) in [(20, 15), (100, 70), (31, 37)]:
                    raw(im.resize((w, h), f), f'{name}_{w}x{h}')
            # torchvision-style Resize(24) then CenterCrop(20): shorter side 24, crop offsets round half to even.
            w, h = im.size; s = 24
            ow, oh = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
            r = im.resize((ow, oh), Image.BILINEAR)
            top, left = int(round((oh - 20) / 2.0)), int(round((ow - 20) / 2.0))
            raw(r.crop((left, top, left + 20, top + 20)), 'short_crop')
            raw(ImageEnhance.Brightness(im).enhance(1.3), 'brightness')
            raw(ImageEnhance.Contrast(im).enhance(0.6), 'contrast')
            raw(ImageEnhance.Color(im).enhance(1.5), 'saturation')
            # Corrupt files: a JPEG cut in the middle of its scan, a PNG whose IDAT CRC is wrong.
            data = open(d + '/rgb.jpg', 'rb').read()
            open(d + '/truncated.jpg', 'wb').write(data[: len(data) * 2 // 3])
            png = bytearray(open(d + '/rgb.png', 'rb').read())
            i = png.index(b'IDAT'); n = int.from_bytes(png[i - 4:i], 'big')
            png[i + 4 + n] ^= 0xFF
            open(d + '/badcrc.png', 'wb').write(bytes(png))
            open(d + '/notimage.png', 'wb').write(b'hello world, not an image')
            """, [directory])
    }

    @Test("PNG, PPM/PGM (binary and ASCII) decode exactly as Pillow; JPEG within ±1")
    func decodeMatchesPillow() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try makeImages()
        for (file, reference, channels) in [("rgb.png", "rgb", 3), ("gray.png", "gray", 1), ("rgb.ppm", "rgb", 3),
                                            ("gray.pgm", "gray", 1), ("ascii.ppm", "rgb", 3)] {
            let image = try ImageDecoder.decode(path: "\(directory)/\(file)")
            #expect(image.width == 53 && image.height == 37 && image.channels == channels, "\(file)")
            #expect(image.pixels == (try readBytes("\(directory)/\(reference).raw")), "\(file)")
        }
        let jpeg = try ImageDecoder.decode(path: directory + "/rgb.jpg")
        #expect(jpeg.channels == 3)
        #expect(maxDifference(jpeg.pixels, try readBytes(directory + "/jpg.raw")) <= 1)
    }

    @Test("resize (bilinear, area; down and up), shorter side + center crop, gray, brightness/contrast/saturation match Pillow")
    func transformsMatchPillow() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try makeImages()
        let image = try ImageDecoder.decode(path: directory + "/rgb.png")
        for interpolation in ImageRecipe.Interpolation.allCases {
            for (width, height) in [(20, 15), (100, 70), (31, 37)] {
                var recipe = ImageRecipe()
                (recipe.resize_height, recipe.resize_width, recipe.interpolation, recipe.layout) = (height, width, interpolation, .hwc)
                let ours = try recipe.apply(image, path: "rgb.png")
                let pillow = try readBytes("\(directory)/\(interpolation.rawValue)_\(width)x\(height).raw")
                #expect(maxDifference(ours, pillow) <= 1, "\(interpolation) \(width)x\(height)")
            }
        }
        var crop = ImageRecipe()
        (crop.resize_shorter, crop.crop_height, crop.crop_width) = (24, 20, 20)
        #expect(crop.outputShape(height: 37, width: 53) == [3, 20, 20])
        let cropped = try crop.apply(image, path: "rgb.png")
        #expect(maxDifference(cropped, chw(try readBytes(directory + "/short_crop.raw"), height: 20, width: 20, channels: 3)) <= 1)

        var gray = ImageRecipe()
        gray.color = .gray
        #expect(try gray.apply(image, path: "rgb.png") == (try readBytes(directory + "/to_gray.raw")))

        for (name, tolerance, configure) in [
            ("brightness", 1, { (r: inout ImageRecipe) in r.brightness = 1.3 }),
            ("contrast", 2, { (r: inout ImageRecipe) in r.contrast = 0.6 }),
            ("saturation", 2, { (r: inout ImageRecipe) in r.saturation = 1.5 }),
        ] as [(String, Int, (inout ImageRecipe) -> Void)] {
            var recipe = ImageRecipe()
            recipe.layout = .hwc
            configure(&recipe)
            #expect(maxDifference(try recipe.apply(image, path: "rgb.png"), try readBytes("\(directory)/\(name).raw")) <= tolerance, "\(name)")
        }
    }

    @Test("f32 output scales to 0-1; --bake-normalize applies (x - mean) / std per channel; gray → RGB replicates")
    func dtypeAndNormalize() throws {
        let image = Image(width: 2, height: 1, channels: 1, pixels: [0, 255])
        var recipe = ImageRecipe()
        (recipe.dtype, recipe.mean, recipe.std, recipe.bake_normalize) = (.f32, [0.5, 0.25, 0], [0.5, 0.25, 1], true)
        let bytes = try recipe.apply(image, path: "x")
        let values = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        // CHW: channel 0 (-1, 1), channel 1 (-1, 3), channel 2 (0, 1).
        #expect(values == [-1, 1, -1, 3, 0, 1])
        var half = ImageRecipe()
        (half.dtype, half.color) = (.f16, .gray)
        let halves = try half.apply(image, path: "x").withUnsafeBytes { Array($0.bindMemory(to: Float16.self)) }
        #expect(halves == [0, 1])
        var bad = ImageRecipe()
        bad.bake_normalize = true
        #expect(throws: SourceError.self) { try bad.validate() }
        bad.mean = [0.5]
        bad.std = [0.5]
        let error = #expect(throws: SourceError.self) { try bad.validate() }
        #expect(error?.reason.contains("f16 or f32") == true)
    }

    @Test("a truncated JPEG, a PNG with a bad CRC and a non-image are refused with the file named")
    func corruptFiles() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try makeImages()
        for (file, message) in [("truncated.jpg", "corrupt JPEG"), ("badcrc.png", "corrupt PNG"), ("notimage.png", "unknown magic bytes")] {
            let path = "\(directory)/\(file)"
            let error = #expect(throws: SourceError.self) { try ImageDecoder.decode(path: path) }
            #expect(error?.path == path)
            #expect(error?.reason.contains(message) == true, "\(file): \(String(describing: error))")
        }
        let crc = #expect(throws: SourceError.self) { try ImageDecoder.decode(path: directory + "/badcrc.png") }
        #expect(crc?.reason.lowercased().contains("crc") == true, "\(String(describing: crc))")
    }

    @Test("PNG variants: 16-bit gray scales to 8 bits, alpha is dropped (RGBA, gray+alpha), palettes expand, as Pillow")
    func pngVariants() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try runPython("""
            import sys, numpy as np
            from PIL import Image
            d = sys.argv[1]
            rng = np.random.default_rng(8)
            g16 = rng.integers(0, 65536, size=(9, 11), dtype=np.uint16)
            Image.fromarray(g16).save(d + '/g16.png')
            ((g16.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8).tofile(d + '/g16.raw')
            rgba = rng.integers(0, 256, size=(9, 11, 4), dtype=np.uint8)
            Image.fromarray(rgba, 'RGBA').save(d + '/rgba.png')
            np.asarray(Image.fromarray(rgba, 'RGBA').convert('RGB')).tofile(d + '/rgba.raw')
            la = Image.fromarray(rgba[..., :2].copy(), 'LA')
            la.save(d + '/la.png')
            np.asarray(la.convert('L')).tofile(d + '/la.raw')
            p = Image.fromarray(rgba[..., :3].copy()).quantize(colors=16)
            p.save(d + '/palette.png')
            np.asarray(p.convert('RGB')).tofile(d + '/palette.raw')
            """, [directory])
        for (name, channels) in [("g16", 1), ("rgba", 3), ("la", 1), ("palette", 3)] {
            let image = try ImageDecoder.decode(path: "\(directory)/\(name).png")
            #expect(image.channels == channels && image.width == 11 && image.height == 9, "\(name)")
            #expect(image.pixels == (try readBytes("\(directory)/\(name).raw")), "\(name)")
        }
    }
}
