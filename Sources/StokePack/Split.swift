/// A deterministic train/validation split: sample `i` goes to validation when a seeded hash of `i` falls
/// below `fraction`. The assignment depends only on the index and the seed, never on threads, batch sizes
/// or other samples, so reruns and `--skip-bad` keep every surviving sample on the same side.
public struct SampleSplit: Sendable, Equatable {
    /// Expected share of samples in the validation store, in (0, 1).
    public var fraction: Double
    public var seed: UInt64

    public init(fraction: Double, seed: UInt64 = 0) {
        self.fraction = fraction
        self.seed = seed
    }

    public func isValidation(_ index: Int) -> Bool {
        // SplitMix64's finalizer: consecutive indices map to independent-looking 64-bit values.
        var z = seed &+ UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(UInt64(1) << 53) < fraction
    }

    /// How the split is recorded in each store's recipe.
    public func recipe(role: String) -> [String: Any] {
        ["role": role, "validation_fraction": fraction, "seed": seed, "rule": "splitmix64(seed + index * 0x9E3779B97F4A7C15) / 2^64 < fraction"]
    }
}
