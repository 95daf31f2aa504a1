import Foundation
import StokeLoader
import StokeStore

#if canImport(Glibc)
import Glibc
#endif

// One of the two files of the C ABI that hold unsafe pointer code (with Exports.swift): C strings the
// handles own, the thread-local last error, and the batch lease whose pointers C callers read.

/// NUL-terminated copies of strings, owned by a handle and freed with it, so `const char *` results
/// stay valid as long as the handle.
@safe final class CStringTable: @unchecked Sendable {
    private let pointers: [UnsafeMutablePointer<CChar>]

    init(_ strings: [String]) {
        unsafe pointers = strings.map { unsafe strdup($0)! }
    }

    deinit { for unsafe pointer in unsafe pointers { unsafe free(pointer) } }

    var count: Int { unsafe pointers.count }

    func pointer(_ index: Int) -> UnsafePointer<CChar>? {
        guard unsafe pointers.indices.contains(index) else { return nil }
        return unsafe UnsafePointer(pointers[index])
    }
}

/// The last error message per thread: a malloc'ed C string behind a pthread key, freed when the thread
/// exits or the next error replaces it.
enum LastError {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let created = unsafe pthread_key_create(&key) { pointer in unsafe free(pointer) }
        precondition(created == 0, "pthread_key_create failed: \(created)")
        return key
    }()

    private static let empty: StaticString = ""

    static func set(_ message: String) {
        let previous = unsafe pthread_getspecific(key)
        unsafe pthread_setspecific(key, strdup(message))
        unsafe free(previous)
    }

    static var current: UnsafePointer<CChar> {
        if let pointer = unsafe pthread_getspecific(key) { return unsafe UnsafePointer(pointer.assumingMemoryBound(to: CChar.self)) }
        return unsafe UnsafeRawPointer(empty.utf8Start).assumingMemoryBound(to: CChar.self)
    }
}

/// A loader batch handed to C: the lease (which keeps the pinned buffer out of the pool until the
/// handle is released) and the addresses of its fields and indices inside that buffer.
@safe final class BatchHandle {
    /// Held only for its lifetime: releasing the handle returns the buffer to the loader.
    private var lease: Batch?
    let count: Int
    let number: Int
    let layouts: [BatchFieldLayout]
    /// Start of each field's samples in the pinned buffer (valid while `lease` is held).
    let fieldData: [UnsafeRawPointer]
    let indices: UnsafePointer<Int64>

    init(batch: consuming Batch, layouts: [BatchFieldLayout]) {
        count = batch.count
        number = batch.number
        self.layouts = layouts
        var data: [UnsafeRawPointer] = unsafe []
        for layout in layouts {
            // The view outlives the closure on purpose: the buffer stays leased (unchanged, not reused)
            // until this handle drops `lease`, and C callers are told the pointer dies with the batch.
            let address = unsafe try? batch.withField(layout.name) { bytes, _ in bytes.baseAddress! }
            unsafe data.append(address!)
        }
        unsafe fieldData = data
        unsafe indices = batch.withIndices { $0.baseAddress! }
        lease = consume batch
    }

    /// Shape of field `index` with the batch axis first.
    func shape(_ index: Int) -> [Int] { [count] + layouts[index].sampleShape }
}
