import CHDF5
import Foundation

/// A named n-dimensional array, as stored in an `ArrayFile`.
public struct NamedArray: Sendable, Equatable {
    /// Dataset name (no `/`).
    public var name: String
    public var dtype: DType
    /// Full shape (empty for a scalar).
    public var shape: [Int]
    /// Little-endian, C-order element bytes: `shape.reduce(1, *) * dtype.size` of them.
    public var bytes: [UInt8]

    public init(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// Typed values (their byte layout is little-endian on every platform Stoke runs on).
    public init<T: BitwiseCopyable>(name: String, dtype: DType, shape: [Int], values: [T]) {
        self.init(name: name, dtype: dtype, shape: shape, bytes: unsafe values.withUnsafeBytes { unsafe Array($0) })
    }

    /// The elements as `T` (whose size must match the dtype).
    public func values<T: BitwiseCopyable>(as: T.Type = T.self) throws(StoreError) -> [T] {
        guard MemoryLayout<T>.stride == dtype.size else {
            throw .invalidArgument("array '\(name)' holds \(dtype.rawValue); \(T.self) does not match")
        }
        return unsafe bytes.withUnsafeBytes { unsafe Array($0.assumingMemoryBound(to: T.self)) }
    }
}

/// Small HDF5 files of named arrays plus JSON string attributes: model weights, quantization tables,
/// predictions. Each array is a contiguous dataset at the root (h5py reads them as they are); the file is
/// written under a temporary name and renamed when complete, like stores.
public enum ArrayFile {
    /// Writes `arrays` and root string `attributes` to `path` atomically.
    public static func write(
        _ arrays: [NamedArray], attributes: [String: String], to path: String, overwrite: Bool = true
    ) throws(StoreError) {
        var seen = Set<String>()
        for array in arrays {
            guard !array.name.isEmpty, !array.name.contains("/"), seen.insert(array.name).inserted else {
                throw .invalidArgument("\(path): array name '\(array.name)' is empty, has '/' or is given twice")
            }
            guard array.shape.allSatisfy({ $0 >= 0 }), array.bytes.count == array.shape.reduce(array.dtype.size, *) else {
                throw .invalidArgument("\(path): array '\(array.name)' has \(array.bytes.count) bytes for shape \(array.shape) of \(array.dtype.rawValue)")
            }
        }
        if !overwrite && FileManager.default.fileExists(atPath: path) {
            throw .invalidArgument("\(path) already exists")
        }
        let temporary = path + ".partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let context = H5Context(path: temporary)
        do throws(StoreError) {
            // An attribute over 64 KiB (a graph model's JSON of thousands of nodes) needs dense storage.
            let file = try HDF5.createFile(temporary, denseAttributes: attributes.values.contains { $0.utf8.count > 60_000 })
            do {
                let root = try HDF5.openGroup(file.id, "/", context)
                for array in arrays {
                    let arrayContext = H5Context(path: path, object: array.name)
                    let type = try HDF5.type(for: array.dtype, arrayContext)
                    let space = try HDF5.simpleSpace(array.shape.map { UInt64($0) }, arrayContext)
                    let creation = try HDF5.datasetCreationList(arrayContext)
                    let dataset = try HDF5.createDataset(root.id, array.name, type: type, space: space, creation: creation, arrayContext)
                    if !array.bytes.isEmpty {
                        unsafe try withBytes(of: array.bytes) { (bytes) throws(StoreError) in
                            try unsafe HDF5.writeAll(dataset, memoryType: type, bytes: bytes, arrayContext)
                        }
                    }
                }
                for (name, value) in attributes.sorted(by: { $0.key < $1.key }) {
                    try HDF5.writeStringAttribute(root.id, name, value, context)
                }
            }
            try HDF5.close(file, context)
            guard unsafe rename(temporary, path) == 0 else {
                throw .io(path: path, operation: "rename from \(temporary)", message: systemError())
            }
        } catch {
            unsafe unlink(temporary)
            throw error
        }
    }

    /// Reads every root dataset and root string attribute of `path`.
    public static func read(_ path: String) throws(StoreError) -> (arrays: [NamedArray], attributes: [String: String]) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw .io(path: path, operation: "open", message: "No such file or directory")
        }
        let context = H5Context(path: path)
        let file = try HDF5.openFile(path, writable: false)
        let root = try HDF5.openGroup(file.id, "/", context)
        var arrays: [NamedArray] = []
        // No dataset can hold more than deflate's best ratio (about 1032:1) times the whole file: a
        // larger dataspace (unwritten, or a hostile header) is refused before its bytes are allocated.
        let fileBytes = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        let scaled = fileBytes.multipliedReportingOverflow(by: 1032)
        let largestArray = min(1 << 40, max(1 << 26, scaled.overflow ? Int.max : scaled.partialValue))
        for name in try HDF5.datasetNames(in: root.id, context) {
            let arrayContext = H5Context(path: path, object: name)
            let dataset = try HDF5.openDataset(root.id, name, arrayContext)
            let fileType = try HDF5.type(of: dataset, arrayContext)
            guard let (dtype, _) = HDF5.dtype(of: fileType) else {
                throw .unsupported(path: path, reason: "array '\(name)' has an element type Stoke does not read")
            }
            let dims = try HDF5.dims(try HDF5.space(of: dataset, arrayContext), arrayContext).map { Int($0) }
            let (count, overflow) = dims.reduce((dtype.size, false)) { partial, dimension in
                let product = partial.0.multipliedReportingOverflow(by: dimension)
                return (product.partialValue, partial.1 || product.overflow)
            }
            guard !overflow, count <= largestArray else {
                throw .invalidStore(path: path, reason: "array '\(name)' of shape \(dims) is larger than a file of \(fileBytes) bytes can hold")
            }
            var bytes = [UInt8](repeating: 0, count: count)
            if count > 0 {
                let memoryType = try HDF5.type(for: dtype, arrayContext)
                unsafe try withMutableBytes(of: &bytes) { (buffer) throws(StoreError) in
                    try unsafe HDF5.readAll(dataset, memoryType: memoryType, into: buffer, arrayContext)
                }
            }
            arrays.append(NamedArray(name: name, dtype: dtype, shape: dims, bytes: bytes))
        }
        // String attributes only (a number h5py added is not Stoke's); a corrupt one is an error.
        let attributes = try HDF5.readStringAttributes(of: root.id, context)
        return (arrays, attributes)
    }
}
