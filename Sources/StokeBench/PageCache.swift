#if canImport(Glibc)
import Glibc
#endif
import StokeStore

/// The page cache, for cold measurements without root: evict a file with
/// `posix_fadvise(POSIX_FADV_DONTNEED)` and check with `mincore` how much of it is still resident.
public enum PageCache {
    /// Asks the kernel to drop the file's cached pages (clean pages go at once).
    public static func evict(_ path: String) throws(StoreError) {
        let descriptor = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", message: errorText()) }
        defer { close(descriptor) }
        _ = fdatasync(descriptor)
        let status = posix_fadvise(descriptor, 0, 0, POSIX_FADV_DONTNEED)
        guard status == 0 else { throw .io(path: path, operation: "posix_fadvise", message: unsafe String(cString: strerror(status))) }
    }

    /// Fraction (0…1) of the file's pages resident in the page cache.
    public static func residentFraction(_ path: String) throws(StoreError) -> Double {
        let descriptor = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(path: path, operation: "open", message: errorText()) }
        defer { close(descriptor) }
        var status = stat()
        guard unsafe fstat(descriptor, &status) == 0 else { throw .io(path: path, operation: "fstat", message: errorText()) }
        let size = Int(status.st_size)
        if size == 0 { return 0 }
        guard let mapping = unsafe mmap(nil, size, PROT_READ, MAP_SHARED, descriptor, 0), unsafe mapping != MAP_FAILED else {
            throw .io(path: path, operation: "mmap", message: errorText())
        }
        defer { unsafe munmap(mapping, size) }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let pages = (size + page - 1) / page
        var vector = [UInt8](repeating: 0, count: pages)
        guard unsafe mincore(mapping, size, &vector) == 0 else { throw .io(path: path, operation: "mincore", message: errorText()) }
        return Double(vector.reduce(0) { $0 + Int($1 & 1) }) / Double(pages)
    }

    private static func errorText() -> String { unsafe String(cString: strerror(errno)) }
}
