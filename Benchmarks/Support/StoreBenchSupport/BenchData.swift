import Foundation
import StokeStore

/// The array both writers store: uint8 samples of shape [3, 96, 96] that look like small images.
///
/// Each sample has, per channel, a posterized gradient background (runs of 8 equal bytes, which LZ4
/// compresses well) and one textured rectangle of random noise (which it cannot), so the LZ4 ratio is
/// a few ×, in the range of real image stores, not the 100× of constant data. Deterministic in `seed`.
public enum BenchData {
    public static let sampleShape = [3, 96, 96]
    public static let sampleBytes = sampleShape.reduce(1, *)
    /// The name of the field both writers create.
    public static let fieldName = "image"

    /// Whole samples in about `mebibytes` MiB.
    public static func samples(mebibytes: Int) -> Int { max(1, (mebibytes << 20) / sampleBytes) }

    /// Generates `samples` samples (`samples * sampleBytes` bytes).
    public static func imageLike(samples: Int, seed: UInt64 = 0x5EED) -> [UInt8] {
        let (channels, height, width) = (sampleShape[0], sampleShape[1], sampleShape[2])
        return [UInt8](unsafeUninitializedCapacity: samples * sampleBytes) { buffer, initialized in
            var rng = SplitMix64(seed: seed)
            var offset = 0
            for _ in 0..<samples {
                let x0 = Int(rng.next() % 48), y0 = Int(rng.next() % 48)
                let x1 = x0 + 32 + Int(rng.next() % 48), y1 = y0 + 32 + Int(rng.next() % 48)
                for _ in 0..<channels {
                    let base = Int(rng.next() & 0xFF)
                    let gx = Int(rng.next() % 7) - 3, gy = Int(rng.next() % 7) - 3
                    var noise = rng.next()
                    var noiseBits = 64
                    for y in 0..<height {
                        let row = base + gy * (y >> 3)
                        let textured = y >= y0 && y < y1
                        for x in 0..<width {
                            var value = row + gx * (x >> 3)
                            if textured && x >= x0 && x < x1 {
                                if noiseBits < 5 { noise = rng.next(); noiseBits = 64 }
                                value += Int(noise & 31)
                                noise >>= 5
                                noiseBits -= 5
                            }
                            buffer[offset] = UInt8(truncatingIfNeeded: value)
                            offset += 1
                        }
                    }
                }
            }
            initialized = offset
        }
    }
}

/// Where benchmark files go: `$STOKE_BENCH_DIR`, else a fresh folder in the temporary directory.
/// Removed with everything in it by `remove()`.
public final class ScratchDirectory: @unchecked Sendable {
    // Immutable after init.
    public let path: String

    public init() throws {
        if let configured = ProcessInfo.processInfo.environment["STOKE_BENCH_DIR"], !configured.isEmpty {
            path = configured + "/stoke-bench-\(getpid())"
        } else {
            path = NSTemporaryDirectory() + "stoke-bench-\(getpid())"
        }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func file(_ name: String) -> String { path + "/" + name }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Monotonic seconds.
public func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}

/// Decimal megabytes per second.
public func megabytesPerSecond(bytes: Int, seconds: Double) -> Double { Double(bytes) / seconds / 1e6 }

/// A benchmark setup failure with a readable message.
public struct BenchError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
