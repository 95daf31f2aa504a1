import CStokeKernels
import Testing

// The static-quantization kernels (requantizing GEMM epilogue, u8 convolution, u8 max pooling) are
// bit-exact against scalar references on every kernel level, odd shapes and K % 4 != 0 included.

private struct Bits {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
}

/// Every level the CPU has, plus portable.
/// Every kernel set this machine supports (within STOKE_CPU), so each path is checked where it can run.
private let levels: [Int32] = (0..<Int32(STOKE_CPU_LEVEL_COUNT)).filter { stoke_cpu_level_supported($0) != 0 }

/// B packed for `level`, at a 64-byte aligned offset inside the returned array (and that offset).
private func packedWeights(_ b: [Int8], k: Int, n: Int, level: Int32) -> (bytes: [UInt8], offset: Int) {
    var buffer = [UInt8](repeating: 0, count: stoke_int8_packed_bytes(k, n, level) + 64)
    let offset = buffer.withUnsafeMutableBytes { (64 - Int(bitPattern: $0.baseAddress!) % 64) % 64 }
    b.withUnsafeBufferPointer { source in
        buffer.withUnsafeMutableBytes { target in
            stoke_int8_pack_b(source.baseAddress!, n, k, n, level, target.baseAddress!.advanced(by: offset))
        }
    }
    return (buffer, offset)
}

/// The requantization in plain Swift: s32 product, bias, one f32 multiply, round half to even.
private func requantized(_ acc: Int32, multiplier: Float, bias: Int32, zero: Int32, lo: Int32, hi: Int32) -> UInt8 {
    let q = Int32((Float(acc + bias) * multiplier).rounded(.toNearestOrEven)) + zero
    return UInt8(max(lo, min(hi, q)))
}

@Test("requantizing GEMM epilogue is bit-exact on every level (bias, ReLU clamp, odd M/N, K % 4 != 0)",
      arguments: [(1, 1, 1), (3, 5, 7), (7, 17, 9), (13, 33, 144), (6, 64, 13), (25, 10, 130)])
func requantizingGemm(shape: (Int, Int, Int)) throws {
    let (m, n, k) = shape
    var bits = Bits(state: UInt64(m * 7919 + n * 104_729 + k) | 1)
    let a = (0..<(m * k)).map { index in index % 5 == 0 ? UInt8(255) : UInt8(truncatingIfNeeded: bits.next()) }
    let b = (0..<(k * n)).map { index in index % 7 == 0 ? Int8(-127) : Int8(truncatingIfNeeded: bits.next()) }
    let multiplier = (0..<n).map { Float(1 + $0 % 5) / Float(64 * k) }
    let bias = (0..<n).map { Int32($0 * 37) - 300 }
    let zeroA: Int32 = 31
    for (zero, lo, hi): (Int32, Int32, Int32) in [(128, 0, 255), (17, 17, 255)] {
        var expected = [UInt8](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var acc: Int32 = 0
                for t in 0..<k { acc += (Int32(a[i * k + t]) - zeroA) * Int32(b[t * n + j]) }
                expected[i * n + j] = requantized(acc, multiplier: multiplier[j], bias: bias[j], zero: zero, lo: lo, hi: hi)
            }
        }
        for level in levels {
            let (weights, offset) = packedWeights(b, k: k, n: n, level: level)
            var c = [UInt8](repeating: 7, count: m * n)
            weights.withUnsafeBytes { w in
                stoke_int8_gemm_u8(m, n, k, a, k, w.baseAddress!.advanced(by: offset), zeroA, multiplier, bias, zero, lo, hi, &c, n)
            }
            #expect(c == expected, "level \(level), \(m)x\(n)x\(k), zero point \(zero), clamp \(lo)...\(hi)")
        }
    }
    // The C scalar reference agrees with the Swift one on ties too (x.5 products).
    let ties: [Int32] = [1, 3, 5, -1, -3, 255, 257]
    var out = [UInt8](repeating: 0, count: ties.count)
    stoke_requantize_reference(1, ties.count, ties, [Float](repeating: 0.5, count: ties.count), nil, 10, 0, 255, &out)
    #expect(out == [10, 12, 12, 10, 8, 138, 138])
}

@Test("u8 convolution (NCHW and NHWC, padded patches, packed GEMM, requantize) is bit-exact on every level",
      arguments: [(1, 16, 28, 28, 3, 1, 1), (16, 32, 14, 14, 3, 1, 1), (3, 5, 9, 7, 3, 2, 0), (2, 3, 6, 5, 2, 1, 1), (5, 7, 8, 8, 1, 1, 0), (32, 8, 6, 6, 3, 1, 1)])
func quantizedConvolution(shape: (Int, Int, Int, Int, Int, Int, Int)) throws {
    let (channels, filters, height, width, kernel, stride, pad) = shape
    let outH = (height + 2 * pad - kernel) / stride + 1, outW = (width + 2 * pad - kernel) / stride + 1
    var g = stoke_window2d(in_h: Int64(height), in_w: Int64(width), kernel_h: Int64(kernel), kernel_w: Int64(kernel),
                           pad_top: Int64(pad), pad_left: Int64(pad), stride_h: Int64(stride), stride_w: Int64(stride),
                           dilation_h: 1, dilation_w: 1, out_h: Int64(outH), out_w: Int64(outW),
                           pad_bottom: Int64(pad), pad_right: Int64(pad))
    let images = 2, k = channels * kernel * kernel
    var bits = Bits(state: UInt64(channels * 31 + filters * 131 + height) | 1)
    let x = (0..<(images * channels * height * width)).map { _ in UInt8(truncatingIfNeeded: bits.next()) }
    let w = (0..<(filters * k)).map { _ in Int8(truncatingIfNeeded: bits.next() % 255) - 0 }
    // NCHW in and out, and NHWC in and out (weights then in (i, j, c) order).
    for layout: Int32 in [0, Int32(STOKE_QCONV_INPUT_NHWC | STOKE_QCONV_OUTPUT_NHWC)] {
    let nhwc = layout != 0
    func inputIndex(_ image: Int, _ c: Int, _ iy: Int, _ ix: Int) -> Int {
        nhwc ? ((image * height + iy) * width + ix) * channels + c : ((image * channels + c) * height + iy) * width + ix
    }
    func outputIndex(_ image: Int, _ f: Int, _ oy: Int, _ ox: Int) -> Int {
        nhwc ? ((image * outH + oy) * outW + ox) * filters + f : ((image * filters + f) * outH + oy) * outW + ox
    }
    // B = weights as [K rounded up to 4, filters], K in the patch order (i, j, c), zero rows after.
    let patch = stoke_qconv2d_patch_bytes(Int64(channels), &g)
    #expect(patch == (k + 3) / 4 * 4)
    var b = [Int8](repeating: 0, count: patch * filters)
    for f in 0..<filters {
        for c in 0..<channels {
            for i in 0..<kernel {
                for j in 0..<kernel {
                    b[((i * kernel + j) * channels + c) * filters + f] = w[f * k + (c * kernel + i) * kernel + j]
                }
            }
        }
    }
    let multiplier = (0..<filters).map { Float(1 + $0 % 3) / Float(32 * k) }
    let bias = (0..<filters).map { Int32($0 * 11) - 40 }
    let (zeroX, zeroY): (Int32, Int32) = (100, 3)
    var expected = [UInt8](repeating: 0, count: images * filters * outH * outW)
    for image in 0..<images {
        for f in 0..<filters {
            for oy in 0..<outH {
                for ox in 0..<outW {
                    var acc: Int32 = 0
                    for c in 0..<channels {
                        for i in 0..<kernel {
                            for j in 0..<kernel {
                                let iy = oy * stride - pad + i, ix = ox * stride - pad + j
                                let value = iy >= 0 && iy < height && ix >= 0 && ix < width
                                    ? Int32(x[inputIndex(image, c, iy, ix)]) : zeroX
                                acc += (value - zeroX) * Int32(w[f * k + (c * kernel + i) * kernel + j])
                            }
                        }
                    }
                    expected[outputIndex(image, f, oy, ox)] =
                        requantized(acc, multiplier: multiplier[f], bias: bias[f], zero: zeroY, lo: zeroY, hi: 255)
                }
            }
        }
    }
    for level in levels {
        let (weights, offset) = packedWeights(b, k: patch, n: filters, level: level)
        var workspace = [UInt8](repeating: 0, count: stoke_qconv2d_workspace_bytes(Int64(channels), &g, filters))
        var y = [UInt8](repeating: 0, count: expected.count)
        weights.withUnsafeBytes { packed in
            stoke_qconv2d_u8(x, images, Int64(channels), &g, filters, packed.baseAddress!.advanced(by: offset), zeroX,
                             multiplier, bias, zeroY, zeroY, 255, layout, &workspace, &y)
        }
        #expect(y == expected, "level \(level), shape \(shape), layout \(layout)")
    }
    }
}

@Test("u8 max pooling: 2x2 stride 2 and a padded 3x3 stride 1 window", arguments: [(2, 2, 0), (3, 1, 1)])
func quantizedMaxPool(window: (Int, Int, Int)) throws {
    let (kernel, stride, pad) = window
    let (planes, height, width) = (3, 7, 6)
    let outH = (height + 2 * pad - kernel) / stride + 1, outW = (width + 2 * pad - kernel) / stride + 1
    var g = stoke_window2d(in_h: Int64(height), in_w: Int64(width), kernel_h: Int64(kernel), kernel_w: Int64(kernel),
                           pad_top: Int64(pad), pad_left: Int64(pad), stride_h: Int64(stride), stride_w: Int64(stride),
                           dilation_h: 1, dilation_w: 1, out_h: Int64(outH), out_w: Int64(outW),
                           pad_bottom: Int64(pad), pad_right: Int64(pad))
    var bits = Bits(state: 12345)
    let x = (0..<(planes * height * width)).map { _ in UInt8(truncatingIfNeeded: bits.next()) }
    var expected = [UInt8](repeating: 0, count: planes * outH * outW)
    for p in 0..<planes {
        for oy in 0..<outH {
            for ox in 0..<outW {
                var best: UInt8 = 0
                for i in 0..<kernel {
                    for j in 0..<kernel {
                        let iy = oy * stride - pad + i, ix = ox * stride - pad + j
                        if iy >= 0 && iy < height && ix >= 0 && ix < width { best = max(best, x[(p * height + iy) * width + ix]) }
                    }
                }
                expected[(p * outH + oy) * outW + ox] = best
            }
        }
    }
    var y = [UInt8](repeating: 0, count: expected.count)
    stoke_maxpool2d_u8(x, Int64(planes), &g, &y)
    #expect(y == expected)
    // The same windows over NHWC images (the planes above as channels of 1 image... of 3 images here).
    var nhwcInput = [UInt8](repeating: 0, count: x.count), nhwcExpected = [UInt8](repeating: 0, count: expected.count)
    for p in 0..<planes {
        for index in 0..<(height * width) { nhwcInput[index * planes + p] = x[p * height * width + index] }
        for index in 0..<(outH * outW) { nhwcExpected[index * planes + p] = expected[p * outH * outW + index] }
    }
    var z = [UInt8](repeating: 0, count: expected.count)
    stoke_maxpool2d_nhwc_u8(nhwcInput, 1, Int64(planes), &g, &z)
    #expect(z == nhwcExpected)
}

@Test("QuantizeLinear's u8 kernel divides, rounds half to even, saturates and maps NaN to the zero point on every level")
func quantizeLinearKernel() throws {
    var values: [Float] = [0.5, 1.5, 2.5, -0.5, -1.5, 127.5, 128.5, 300, -300, 1e12, -1e12, .nan, .infinity, 0.3]
    values += (0..<37).map { Float($0) * 0.37 - 5 }
    let expected = values.map { value -> UInt8 in
        let v = value / 0.5
        if v.isNaN { return 3 }
        return UInt8(max(0, min(255, v.rounded(.toNearestOrEven) + 3)))
    }
    for level in levels {
        stoke_cpu_force(level)
        defer { stoke_cpu_force(-1) }
        var q = [UInt8](repeating: 0, count: values.count)
        stoke_quantize_linear_u8(values, values.count, 0.5, 3, &q)
        #expect(q == expected, "level \(level)")
    }
}
