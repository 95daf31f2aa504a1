import CStokeKernels
import Testing

/// Scalar reference: exact int64 accumulation, then the zero-point correction.
private func reference(_ m: Int, _ n: Int, _ k: Int, _ a: [UInt8], _ b: [Int8], zeroPoint: Int32) -> [Int32] {
    var c = [Int32](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var acc: Int64 = 0
            for t in 0..<k { acc += (Int64(a[i * k + t]) - Int64(zeroPoint)) * Int64(b[t * n + j]) }
            c[i * n + j] = Int32(acc)
        }
    }
    return c
}

private struct Generator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
}

private func packed(_ b: [Int8], k: Int, n: Int, level: Int32) -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: stoke_int8_packed_bytes(k, n, level) + 64)
    // The packed layout wants 64-byte alignment: place it at an aligned offset inside the array.
    let offset = buffer.withUnsafeMutableBytes { (64 - Int(bitPattern: $0.baseAddress!) % 64) % 64 }
    b.withUnsafeBufferPointer { source in
        buffer.withUnsafeMutableBytes { target in
            stoke_int8_pack_b(source.baseAddress!, n, k, n, level, target.baseAddress!.advanced(by: offset))
        }
    }
    return Array(buffer[offset...])
}

/// Every kernel set this machine supports (within STOKE_CPU), so each path is checked where it can run.
private let levels: [Int32] = (0..<Int32(STOKE_CPU_LEVEL_COUNT)).filter { stoke_cpu_level_supported($0) != 0 }

@Test("u8 x s8 GEMM is bit-exact against the scalar reference on every kernel level",
      arguments: [(1, 1, 1), (3, 5, 7), (4, 16, 4), (5, 33, 13), (17, 40, 64), (9, 17, 255), (2, 100, 3), (8, 64, 784)])
func int8GemmExact(shape: (Int, Int, Int)) throws {
    let (m, n, k) = shape
    var generator = Generator(state: UInt64(m * 1_000_003 + n * 1009 + k) | 1)
    // Extremes included: 255 × -128 is the product that saturates vpmaddubsw.
    let a = (0..<(m * k)).map { index in index % 5 == 0 ? UInt8(255) : UInt8(truncatingIfNeeded: generator.next()) }
    let b = (0..<(k * n)).map { index in index % 7 == 0 ? Int8(-128) : Int8(truncatingIfNeeded: generator.next()) }
    for zeroPoint: Int32 in [0, 128, 37] {
        let expected = reference(m, n, k, a, b, zeroPoint: zeroPoint)
        for level in levels {
            let weights = packed(b, k: k, n: n, level: level)
            // The packing never uses a feature outside the set it was asked for.
            let packedLevel = weights.withUnsafeBytes { stoke_int8_packed_level($0.baseAddress!) }
            #expect(stoke_cpu_level_features(packedLevel) & ~stoke_cpu_level_features(level) == 0)
            var c = [Int32](repeating: -1, count: m * n)
            weights.withUnsafeBytes { w in
                stoke_int8_gemm_s32(m, n, k, a, k, w.baseAddress!, zeroPoint, &c, n)
            }
            #expect(c == expected, "level \(level), zero point \(zeroPoint), \(m)x\(n)x\(k)")
        }
    }
}

@Test("dequantized output: scale, per-column scale, bias and ReLU match the formula")
func int8GemmFloat() throws {
    let (m, n, k) = (6, 21, 50)
    var generator = Generator(state: 99)
    let a = (0..<(m * k)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
    let b = (0..<(k * n)).map { _ in Int8(truncatingIfNeeded: generator.next()) }
    let bScale = (0..<n).map { Float($0 + 1) * 0.001 }
    let bias = (0..<n).map { Float($0) - 10 }
    let exact = reference(m, n, k, a, b, zeroPoint: 120)
    for level in levels {
        let weights = packed(b, k: k, n: n, level: level)
        for relu: Int32 in [0, 1] {
            var c = [Float](repeating: .nan, count: m * n)
            weights.withUnsafeBytes { w in
                stoke_int8_gemm_f32(m, n, k, a, k, w.baseAddress!, 120, 0.05, bScale, bias, relu, &c, n)
            }
            for index in 0..<(m * n) {
                var value = 0.05 * bScale[index % n] * Float(exact[index]) + bias[index % n]
                if relu == 1 { value = max(0, value) }
                #expect(abs(c[index] - value) <= 1e-5 * max(1, abs(value)), "level \(level) index \(index)")
            }
        }
    }
}

/// Tests that force the process-wide kernel level run one at a time.
@Suite("kernel level forcing", .serialized)
struct ForcedLevelTests {
@Test("forcing a kernel level is clamped to the CPU and can be undone")
func forcedLevels() {
    let probed = stoke_cpu_probe()
    stoke_cpu_force(0)
    #expect(stoke_cpu_active() == STOKE_CPU_PORTABLE)
    stoke_cpu_force(99)
    #expect(stoke_cpu_active() == probed)
    stoke_cpu_force(-1)
    #expect(stoke_cpu_active() == probed)
}

@Test("fused normalize matches (x/255 - mean)/std for CHW and HWC layouts on every level")
func normalizeKernel() {
    let source = (0..<(3 * 37)).map { UInt8(truncatingIfNeeded: $0 * 11) }
    let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
    let scale = zip(mean, std).map { 1 / (255 * $0.1) }, bias = zip(mean, std).map { -$0.0 / $0.1 }
    for level in levels {
        stoke_cpu_force(level)
        defer { stoke_cpu_force(-1) }
        for (inner, channelOf) in [(37, { (i: Int) in i / 37 }), (1, { (i: Int) in i % 3 })] {
            var output = [Float](repeating: 0, count: source.count)
            stoke_normalize_u8_f32(source, &output, source.count, inner, 3, scale, bias)
            for index in source.indices {
                let c = channelOf(index)
                let expected = (Float(source[index]) / 255 - mean[c]) / std[c]
                #expect(abs(output[index] - expected) < 1e-4, "level \(level) inner \(inner) index \(index)")
            }
        }
    }
}
}

@Test("shuffle and unshuffle invert each other for any element size and a ragged tail")
func shuffleRoundTrip() {
    for elementSize in [1, 2, 3, 4, 8, 16] {
        let bytes = (0..<1003).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var shuffled = [UInt8](repeating: 0, count: bytes.count)
        var back = [UInt8](repeating: 0, count: bytes.count)
        stoke_shuffle(bytes, &shuffled, bytes.count, elementSize)
        stoke_unshuffle(shuffled, &back, bytes.count, elementSize)
        #expect(back == bytes)
        if elementSize == 2 { #expect(shuffled[1] == bytes[2]) }
    }
}

@Test("streaming row copy equals memcpy for any size and alignment")
func streamingCopy() {
    let source = (0..<20000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
    for (offset, count) in [(0, 0), (1, 100), (3, 4096), (7, 5000), (64, 12345), (0, 19000)] {
        var target = [UInt8](repeating: 0xAA, count: 20000)
        source.withUnsafeBytes { s in
            target.withUnsafeMutableBytes { t in
                stoke_copy_rows_streaming(t.baseAddress!.advanced(by: offset), s.baseAddress!, count)
            }
        }
        #expect(Array(target[offset..<(offset + count)]) == Array(source[0..<count]))
        #expect(target[..<offset].allSatisfy { $0 == 0xAA })
        #expect(target[(offset + count)...].allSatisfy { $0 == 0xAA })
    }
}

@Test("vectorized Fletcher-32 equals HDF5's scalar algorithm, wraparound included")
func fletcherMatchesReference() {
    var state: UInt64 = 12345
    for count in [0, 1, 2, 3, 31, 32, 33, 719, 720, 721, 5000, 100_003] {
        let random = (0..<count).map { _ -> UInt8 in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
        // All-0xFF data drives the uint32 sums past 2^32 within a 360-word block.
        for bytes in [random, [UInt8](repeating: 0xFF, count: count)] {
            #expect(stoke_fletcher32(bytes, bytes.count) == stoke_fletcher32_reference(bytes, bytes.count), "\(count) bytes")
        }
    }
}

/// The table entry each kernel set picks, for weights that meet the u8s8 pair bound and for any s8 weights.
private func expectedKernel(level: Int32, bounded: Bool) -> String {
    switch level {
    case Int32(STOKE_CPU_AVX512_VNNI.rawValue): return "avx512-vnni"
    case Int32(STOKE_CPU_AVX_VNNI.rawValue): return "avx-vnni"
    case Int32(STOKE_CPU_AVX512.rawValue): return bounded ? "avx512-u8s8" : "avx2-s16"
    case Int32(STOKE_CPU_AVX2.rawValue): return bounded ? "avx2-u8s8" : "avx2-s16"
    default: return "portable"
    }
}

@Test("the INT8 kernel table: each set picks its entry, every entry is exact and all give the same bytes",
      arguments: [(1, 1, 1), (4, 16, 4), (5, 17, 7), (13, 70, 33), (6, 64, 784), (25, 10, 130)])
func kernelTable(shape: (Int, Int, Int)) {
    let (m, n, k) = shape
    var generator = Generator(state: UInt64(m * 1000 + n * 10 + k))
    let a = (0..<(m * k)).map { index in index % 3 == 0 ? UInt8(255) : UInt8(truncatingIfNeeded: generator.next()) }
    // 7-bit weights with the worst pairs the bound allows (64 + 64, -64 - 64, 100 + 28), and 8-bit ones.
    let bounded = (0..<(k * n)).map { index -> Int8 in
        switch (index / n) % 6 {
        case 0, 1: return (index % n) % 2 == 0 ? 64 : -64
        case 2: return 100
        case 3: return -28
        default: return Int8(truncatingIfNeeded: generator.next() % 127) - 63
        }
    }
    let wide = (0..<(k * n)).map { index in index % 7 == 0 ? Int8(-128) : Int8(truncatingIfNeeded: generator.next()) }
    #expect(stoke_int8_pair_bounded(bounded, n, k, n) == 1)
    let multiplier = (0..<n).map { Float($0 % 5 + 1) * 1.7e-4 }
    let bias = (0..<n).map { Int32($0 * 37) - 500 }
    let bScale = (0..<n).map { Float($0 + 1) * 0.001 }
    let fBias = (0..<n).map { Float($0) - 10 }
    for (name, b) in [("7-bit", bounded), ("8-bit", wide)] {
        let isBounded = stoke_int8_pair_bounded(b, n, k, n) == 1
        let expected = reference(m, n, k, a, b, zeroPoint: 37)
        var firstU8: [UInt8]? = nil, firstF32: [UInt32]? = nil
        for level in levels {
            let weights = packed(b, k: k, n: n, level: level)
            let kernel = weights.withUnsafeBytes { String(cString: stoke_int8_packed_kernel($0.baseAddress!)) }
            #expect(kernel == expectedKernel(level: level, bounded: isBounded), "\(name) weights, set \(level)")
            var c = [Int32](repeating: -1, count: m * n)
            var u8 = [UInt8](repeating: 7, count: m * n)
            var f32 = [Float](repeating: .nan, count: m * n)
            weights.withUnsafeBytes { w in
                stoke_int8_gemm_s32(m, n, k, a, k, w.baseAddress!, 37, &c, n)
                stoke_int8_gemm_u8(m, n, k, a, k, w.baseAddress!, 37, multiplier, bias, 3, 3, 255, &u8, n)
                stoke_int8_gemm_f32(m, n, k, a, k, w.baseAddress!, 37, 0.05, bScale, fBias, 1, &f32, n)
            }
            #expect(c == expected, "\(name) weights on \(kernel), \(m)x\(n)x\(k)")
            if let firstU8 { #expect(u8 == firstU8, "\(name) weights on \(kernel): requantized bytes differ") } else { firstU8 = u8 }
            let bits = f32.map(\.bitPattern)
            if let firstF32 { #expect(bits == firstF32, "\(name) weights on \(kernel): dequantized floats differ") } else { firstF32 = bits }
        }
    }
}
