// Unsafe memory lives here and in Runtime/Arena.swift and Kernels/*: the rest of the engine sees
// `Tensor` values and slot indices.

/// A 64-byte aligned, zero-initialized heap block that frees itself.
///
/// The engine writes the block only while creating the tensor that owns it, and kernels read it
/// through `pointer` afterwards; that discipline is what makes the `@unchecked Sendable` sound.
@safe
final class TensorStorage: @unchecked Sendable {
    let byteCount: Int
    private let base: UnsafeMutableRawPointer

    init(byteCount: Int) {
        self.byteCount = byteCount
        // Allocate at least one cache line so empty tensors still have a valid, unique address.
        let size = max(byteCount, 64)
        unsafe base = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        unsafe base.initializeMemory(as: UInt8.self, repeating: 0, count: size)
    }

    deinit { unsafe base.deallocate() }

    /// The start of the block; valid while this object is alive.
    var pointer: UnsafeMutableRawPointer { unsafe base }

    func copy<T: BitwiseCopyable>(from values: [T]) {
        precondition(values.count * MemoryLayout<T>.stride <= byteCount)
        unsafe values.withUnsafeBytes { source in
            guard let from = source.baseAddress else { return }
            unsafe base.copyMemory(from: from, byteCount: source.count)
        }
    }

    /// Copies `count` bytes starting at `range.lowerBound` of `bytes` into the block.
    func copyBytes(_ bytes: [UInt8], range: Range<Int>) {
        precondition(range.count <= byteCount && range.upperBound <= bytes.count)
        unsafe bytes.withUnsafeBytes { source in
            guard let from = source.baseAddress, !range.isEmpty else { return }
            unsafe base.copyMemory(from: from + range.lowerBound, byteCount: range.count)
        }
    }

    func array<T: BitwiseCopyable>(of type: T.Type, count: Int) -> [T] {
        precondition(count * MemoryLayout<T>.stride <= byteCount)
        let typed = unsafe base.assumingMemoryBound(to: T.self)
        return unsafe Array(UnsafeBufferPointer(start: typed, count: count))
    }
}
