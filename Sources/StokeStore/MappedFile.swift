#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file. The pointer never escapes except as bounds-checked buffer
/// views that live no longer than the map's owner; the map is unmapped when the owner goes away.
/// Immutable after `init`, so readers on any thread may share it.
@safe public final class MappedFile: @unchecked Sendable {
    public let path: String
    /// File size in bytes when it was mapped.
    public let size: Int
    private let base: UnsafeRawPointer?

    public init(path: String) throws(StoreError) {
        self.path = path
        let descriptor = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", message: systemError()) }
        defer { _ = close(descriptor) }
        var status = stat()
        guard unsafe fstat(descriptor, &status) == 0 else {
            throw .io(path: path, operation: "fstat", message: systemError())
        }
        size = Int(status.st_size)
        if size == 0 {
            unsafe base = nil
            return
        }
        let mapping = unsafe mmap(nil, size, PROT_READ, MAP_SHARED, descriptor, 0)
        guard let mapping = unsafe mapping, unsafe mapping != MAP_FAILED else {
            throw .io(path: path, operation: "mmap", message: systemError())
        }
        unsafe base = UnsafeRawPointer(mapping)
    }

    deinit {
        if let base = unsafe base { _ = unsafe munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }

    /// The bytes `[offset, offset + count)`, or nil when any of them lies past the end of the file.
    public func bytes(at offset: UInt64, count: Int) -> UnsafeRawBufferPointer? {
        guard count >= 0, offset <= UInt64(size), UInt64(count) <= UInt64(size) - offset else { return nil }
        guard let base = unsafe base else { return unsafe UnsafeRawBufferPointer(start: nil, count: 0) }
        return unsafe UnsafeRawBufferPointer(start: base.advanced(by: Int(offset)), count: count)
    }

    /// Drops this process's mappings of the file's pages (they fault back in on the next access), so
    /// that evicting the file from the page cache can succeed: pages mapped by a process stay resident.
    public func dropMappedPages() {
        if let base = unsafe base { _ = unsafe madvise(UnsafeMutableRawPointer(mutating: base), size, MADV_DONTNEED) }
    }

    /// Turns off the kernel's readahead around page faults of this map (`MADV_RANDOM`): for readers
    /// that read ahead themselves and drop what they have read, so faults do not read back dropped pages.
    public func adviseRandomAccess() {
        if let base = unsafe base { _ = unsafe madvise(UnsafeMutableRawPointer(mutating: base), size, MADV_RANDOM) }
    }

    /// Tells the kernel the whole file will be read soon (readahead); a hint, never an error.
    public func adviseWillNeed() {
        if let base = unsafe base { _ = unsafe madvise(UnsafeMutableRawPointer(mutating: base), size, MADV_WILLNEED) }
    }
}

func systemError() -> String {
    unsafe String(cString: strerror(errno))
}
