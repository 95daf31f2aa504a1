/// The range quantized weights use (symmetric, one scale per output channel or per tensor).
///
/// `s7` keeps weights in [-63, 63] (scale = max |w| / 63): every pair of consecutive weights then sums
/// to at most 126 in magnitude, so the u8 x s8 `vpmaddubsw` kernels of CPUs without VNNI (AVX2,
/// AVX-512 without VNNI) are exact and fast, as with onnxruntime's `reduce_range`. `s8` uses
/// [-127, 127] (one more bit of weight precision); without VNNI those models run on the exact but
/// slower s16 kernel. Either way every CPU gives the same output bytes. Model files record the
/// range as `weight_range`; files written before it existed read as `s8`.
public enum WeightRange: String, Sendable, CaseIterable, Codable {
    case s7
    case s8

    /// The largest quantized magnitude: 63 or 127.
    public var largest: Int {
        switch self {
        case .s7: 63
        case .s8: 127
        }
    }

    /// The node attribute of dynamically quantized nodes that carries the range.
    static let attribute = "stoke.weight_range"
}
