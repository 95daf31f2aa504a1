import CStokeKernels
import Testing

/// Relu(NaN) is NaN (ONNX, onnxruntime): every fused or plain ReLU keeps it, on every kernel set.
@Suite("ReLU keeps NaN on every kernel set")
struct ReluNaNTests {
    static func check(_ y: [Float], nanAt: Set<Int>, _ label: String) {
        for (index, value) in y.enumerated() {
            if nanAt.contains(index) { #expect(value.isNaN, "\(label): index \(index) gave \(value)") }
            else { #expect(!value.isNaN && value >= 0, "\(label): index \(index) gave \(value)") }
        }
    }

    @Test("stoke_unary_f32 and stoke_bias_activation_f32", arguments: supportedKernelSets)
    func elementwise(level: Int32) {
        stoke_cpu_force(level)
        defer { stoke_cpu_force(-1) }
        var x = (0..<37).map { Float($0 % 5) - 2 }
        x[0] = .nan; x[17] = .nan; x[36] = .nan
        var y = [Float](repeating: 7, count: x.count)
        stoke_unary_f32(Int32(STOKE_UNARY_RELU.rawValue), x, &y, x.count, 0, 0)
        Self.check(y, nanAt: [0, 17, 36], "unary, set \(level)")
        stoke_bias_activation_f32(&x, 1, 37, nil, 0, Int32(STOKE_UNARY_RELU.rawValue), 0, 0)
        Self.check(x, nanAt: [0, 17, 36], "bias_activation, set \(level)")
    }

    @Test("the AVX2 and AVX-512 SGEMMs' fused ReLU", arguments: supportedKernelSets)
    func sgemm(level: Int32) {
        stoke_cpu_force(level)
        defer { stoke_cpu_force(-1) }
        let (m, n, k) = (9, 40, 5)
        var a = (0..<(m * k)).map { Float(($0 * 7) % 11) - 5 }
        a[2 * k] = .nan  // row 2 is NaN everywhere
        let b = (0..<(k * n)).map { Float(($0 * 3) % 7) - 3 }
        var c2 = [Float](repeating: 0, count: m * n)
        if stoke_sgemm_avx2_fused(0, 0, m, n, k, 1, a, k, b, n, 0, &c2, n, nil, nil, 1) == 0 {
            Self.check(c2, nanAt: Set((0..<n).map { 2 * n + $0 }), "avx2 sgemm, set \(level)")
        }
        var c = [Float](repeating: 0, count: m * n)
        let status = stoke_sgemm_avx512_fused(0, 0, m, n, k, 1, a, k, b, n, 0, &c, n, nil, nil, 1)
        guard status == 0 else { return }  // no AVX-512F in this set: the engine uses another GEMM
        Self.check(c, nanAt: Set((0..<n).map { 2 * n + $0 }), "sgemm, set \(level)")
        var p = [Float](repeating: 0, count: m * n)
        #expect(stoke_sgemm_avx512_prepacked(m, n, k, a, k, nil, 0, 0, b, n, nil, 0, 0, &p, n, nil, nil, 1) == 0)
        Self.check(p, nanAt: Set((0..<n).map { 2 * n + $0 }), "prepacked sgemm, set \(level)")
    }

    @Test("the direct convolution's fused ReLU", arguments: supportedKernelSets)
    func directConv(level: Int32) {
        stoke_cpu_force(level)
        defer { stoke_cpu_force(-1) }
        // 1x1 kernel, 2 channels, 8 filters on a 4x20 image: a NaN pixel makes that pixel NaN in every filter.
        var g = stoke_window2d(in_h: 4, in_w: 20, kernel_h: 1, kernel_w: 1, pad_top: 0, pad_left: 0, stride_h: 1, stride_w: 1,
                               dilation_h: 1, dilation_w: 1, out_h: 4, out_w: 20, pad_bottom: 0, pad_right: 0)
        let (channels, filters, plane) = (2, 8, 80)
        var x = (0..<(channels * plane)).map { Float($0 % 9) - 4 }
        x[21] = .nan
        let w = (0..<(filters * channels)).map { Float($0 % 3) - 1 }
        var packed = [Float](repeating: 0, count: stoke_conv2d_direct_packed_count(Int64(filters), Int64(channels), 1, 1))
        stoke_conv2d_direct_pack(w, Int64(filters), Int64(channels), 1, 1, &packed)
        var workspace = [Float](repeating: 0, count: stoke_conv2d_direct_workspace_count(Int64(channels), &g))
        var y = [Float](repeating: 0, count: filters * plane)
        #expect(stoke_conv2d_direct_f32(x, 1, Int64(channels), Int64(filters), &g, packed, nil, 1, 0, &workspace, &y) == 0)
        Self.check(y, nanAt: Set((0..<filters).map { $0 * plane + 21 }), "direct conv, set \(level)")
    }

    @Test("the INT8 GEMM's dequantizing ReLU (NaN bias)", arguments: supportedKernelSets)
    func int8(level: Int32) {
        stoke_cpu_force(level)
        defer { stoke_cpu_force(-1) }
        let (m, n, k) = (7, 33, 12)
        let a = (0..<(m * k)).map { UInt8(truncatingIfNeeded: $0 * 37) }
        let b = (0..<(k * n)).map { Int8(truncatingIfNeeded: ($0 * 13) % 127 - 63) }
        var packed = [UInt8](repeating: 0, count: stoke_int8_packed_bytes(k, n, level) + 64)
        let offset = packed.withUnsafeMutableBytes { (64 - Int(bitPattern: $0.baseAddress!) % 64) % 64 }
        var bias = (0..<n).map { Float($0) - 16 }
        bias[3] = .nan; bias[32] = .nan
        let scales = [Float](repeating: 0.01, count: n)
        var c = [Float](repeating: 0, count: m * n)
        packed.withUnsafeMutableBytes { raw in
            let p = raw.baseAddress!.advanced(by: offset)
            stoke_int8_pack_b(b, n, k, n, level, p)
            stoke_int8_gemm_f32(m, n, k, a, k, p, 3, 0.5, scales, bias, 1, &c, n)
        }
        Self.check(c, nanAt: Set((0..<m).flatMap { [$0 * n + 3, $0 * n + 32] }), "int8 gemm, set \(level)")
    }
}
