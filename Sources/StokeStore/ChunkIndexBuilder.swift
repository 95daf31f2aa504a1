import CHDF5

/// Builds, writes and loads the persisted chunk address index.
enum ChunkIndexBuilder {
    /// How an index was obtained, for reports and the documentation of the choice.
    enum Method: String, Sendable { case btreeScan = "b-tree scan", libraryQuery = "H5Dget_chunk_info" }

    /// Every chunk's location for a dataset chunked by whole samples along axis 0: from the file's B-tree
    /// in O(chunks), or, for layouts the scanner does not read, from the library in O(chunks²).
    static func locations(
        dataset: borrowing H5Dataset, map: MappedFile, rows: Int, chunkRows: Int, rank: Int, context: H5Context
    ) throws(StoreError) -> [ChunkLocation] {
        try locationsWithMethod(dataset: dataset, map: map, rows: rows, chunkRows: chunkRows, rank: rank, context: context).locations
    }

    static func locationsWithMethod(
        dataset: borrowing H5Dataset, map: MappedFile, rows: Int, chunkRows: Int, rank: Int, context: H5Context
    ) throws(StoreError) -> (locations: [ChunkLocation], method: Method) {
        let chunkCount = (rows + chunkRows - 1) / chunkRows
        try checkIndexBudget(chunkCount: chunkCount, field: context.object, path: context.path)
        let address = try HDF5.objectAddress(dataset.id, context)
        do {
            let found = try ChunkBTree.scan(
                file: map, objectHeader: address, rank: rank, chunkRows: UInt64(chunkRows), chunkCount: chunkCount)
            return (found, .btreeScan)
        } catch let error where error.unsupported {
            // Fall through to the library, which reads every layout.
        } catch {
            throw .badIndex(path: context.path, field: context.object, reason: error.reason)
        }
        var locations = [ChunkLocation](repeating: ChunkLocation(offset: 0, size: 0, filterMask: 0), count: chunkCount)
        let allocated = try HDF5.chunkCount(dataset, context)
        for index in 0..<allocated {
            let info = try HDF5.chunkInfo(dataset, index: index, rank: rank, context)
            guard info.offset.dropFirst().allSatisfy({ $0 == 0 }) else {
                throw .unsupported(path: context.path, reason: "field '\(context.object)' splits samples across chunks")
            }
            let number = Int(info.offset[0]) / chunkRows
            if number < chunkCount {
                locations[number] = ChunkLocation(offset: info.address, size: info.size, filterMask: info.filterMask)
            }
        }
        return (locations, .libraryQuery)
    }

    /// Writes one `uint64 [chunks, 3]` dataset per field under `_stoke_index`, replacing any already there.
    static func write(indices: [[ChunkLocation]], names: [String], file: borrowing H5File, context: H5Context) throws(StoreError) {
        let group: H5Group
        if try HDF5.linkExists(file.id, ChunkIndexFile.groupName, context) {
            group = try HDF5.openGroup(file.id, ChunkIndexFile.groupName, context)
        } else {
            group = try HDF5.createGroup(file.id, ChunkIndexFile.groupName, context)
        }
        for (locations, name) in zip(indices, names) {
            let fieldContext = H5Context(path: context.path, object: "\(ChunkIndexFile.groupName)/\(name)")
            if try HDF5.linkExists(group.id, name, fieldContext) {
                try HDF5.check(unsafe H5Ldelete(group.id, name, h5Default), "H5Ldelete", fieldContext)
            }
            var values: [UInt64] = []
            values.reserveCapacity(locations.count * ChunkIndexFile.columns)
            for location in locations { values += [location.offset, location.size, UInt64(location.filterMask)] }
            let type = try HDF5.type(for: .i64, fieldContext)
            let space = try HDF5.simpleSpace([UInt64(locations.count), UInt64(ChunkIndexFile.columns)], fieldContext)
            let creation = try HDF5.datasetCreationList(fieldContext)
            let dataset = try HDF5.createDataset(group.id, name, type: type, space: space, creation: creation, fieldContext)
            if !values.isEmpty {
                unsafe try withBytes(of: values) { (bytes) throws(StoreError) in
                    try unsafe HDF5.writeAll(dataset, memoryType: type, bytes: bytes, fieldContext)
                }
            }
        }
    }

    /// The persisted index of a field, or nil when the store has none. Every entry is checked against the
    /// file size and the expected chunk count.
    static func load(
        file: borrowing H5File, field: String, chunkCount: Int, fileSize: Int, context: H5Context
    ) throws(StoreError) -> [ChunkLocation]? {
        guard try HDF5.linkExists(file.id, ChunkIndexFile.groupName, context) else { return nil }
        let group = try HDF5.openGroup(file.id, ChunkIndexFile.groupName, context)
        guard try HDF5.linkExists(group.id, field, context) else { return nil }
        let fieldContext = H5Context(path: context.path, object: "\(ChunkIndexFile.groupName)/\(field)")
        let dataset = try HDF5.openDataset(group.id, field, fieldContext)
        let dims = try HDF5.dims(try HDF5.space(of: dataset, fieldContext), fieldContext)
        guard dims.count == 2, dims[1] == UInt64(ChunkIndexFile.columns), dims[0] == UInt64(chunkCount) else {
            throw .badIndex(path: context.path, field: field, reason: "index shape \(dims), expected [\(chunkCount), 3]")
        }
        var values = [UInt64](repeating: 0, count: chunkCount * ChunkIndexFile.columns)
        if chunkCount > 0 {
            let type = try HDF5.type(for: .i64, fieldContext)
            unsafe try withMutableBytes(of: &values) { (buffer) throws(StoreError) in
                try unsafe HDF5.readAll(dataset, memoryType: type, into: buffer, fieldContext)
            }
        }
        var locations: [ChunkLocation] = []
        locations.reserveCapacity(chunkCount)
        for chunk in 0..<chunkCount {
            let offset = values[chunk * 3], size = values[chunk * 3 + 1], mask = values[chunk * 3 + 2]
            guard size == 0 || (offset <= UInt64(fileSize) && size <= UInt64(fileSize) - offset) else {
                throw .badIndex(path: context.path, field: field, reason: "chunk \(chunk) at \(offset)+\(size) lies past the end of the file (\(fileSize) bytes)")
            }
            guard mask <= UInt64(UInt32.max) else {
                throw .badIndex(path: context.path, field: field, reason: "chunk \(chunk) has filter mask \(mask)")
            }
            locations.append(ChunkLocation(offset: offset, size: size, filterMask: UInt32(mask)))
        }
        return locations
    }
}

/// Where a field's chunk locations come from when a store is opened.
public enum ChunkIndexSource: Sendable, Equatable, CustomStringConvertible {
    /// A persisted `_stoke_index` proven current: equal to the chunk B-tree scanned at open.
    case persisted
    /// No persisted index: the chunk B-tree was scanned when the store was opened.
    case scannedAtOpen
    /// A persisted index that disagrees with the chunk B-tree (the file was changed after `stoke index`):
    /// ignored, and the scanned locations used instead.
    case stale
    /// No index: the scanner does not read this layout (or found it inconsistent: `reason`), so stored
    /// chunks are read through the HDF5 library. A persisted index cannot be proven current and is unused.
    case library(reason: String)
    /// Not chunked by whole samples: nothing to index.
    case notApplicable

    public var description: String {
        switch self {
        case .persisted: "persisted, current"
        case .scannedAtOpen: "built at open (no persisted index)"
        case .stale: "persisted index is STALE (the file changed after `stoke index`): built at open instead"
        case .library(let reason): "none (\(reason)): chunks read through the HDF5 library"
        case .notApplicable: "not needed"
        }
    }
}

extension ChunkIndexBuilder {
    /// The chunk locations a reader may trust, found when a store is opened: the chunk B-tree is scanned
    /// (O(chunks), about 0.3 s for 32k chunks) and a persisted index is used only when it equals the scan.
    /// The index's size is checked against `MemoryBudget.current` first, so a small file declaring 10^9
    /// chunks is refused instead of allocating gigabytes.
    static func openIndex(
        file: borrowing H5File, dataset: borrowing H5Dataset, map: MappedFile, field: String, rows: Int, chunkRows: Int,
        rank: Int, context: H5Context
    ) throws(StoreError) -> (locations: [ChunkLocation]?, source: ChunkIndexSource) {
        let chunkCount = (rows + chunkRows - 1) / chunkRows
        // A written chunk costs the file at least a B-tree entry (≥ 40 bytes) and its bytes, so an index
        // far larger than the file describes mostly chunks never written: leave those to the library
        // rather than holding gigabytes of empty entries for a few-KB file.
        let indexBytes = chunkCount * MemoryLayout<ChunkLocation>.stride
        if indexBytes > max(64 << 20, 16 * map.size) {
            return (nil, .library(reason: "\(chunkCount) chunks declared, far more than a \(map.size)-byte file holds"))
        }
        try checkIndexBudget(chunkCount: chunkCount, field: field, path: context.path)
        let scanned: [ChunkLocation]
        do throws(ScanErrorBox) {
            let address: UInt64
            do { address = try HDF5.objectAddress(dataset.id, context) } catch { throw ScanErrorBox(reason: "\(error)") }
            do {
                scanned = try ChunkBTree.scan(
                    file: map, objectHeader: address, rank: rank, chunkRows: UInt64(chunkRows), chunkCount: chunkCount)
            } catch {
                throw ScanErrorBox(reason: error.reason)
            }
        } catch {
            return (nil, .library(reason: error.reason))
        }
        let persisted: [ChunkLocation]?
        do {
            persisted = try load(file: file, field: field, chunkCount: chunkCount, fileSize: map.size, context: context)
        } catch {
            return (scanned, .stale)  // a persisted index that does not even fit the file
        }
        guard let persisted else { return (scanned, .scannedAtOpen) }
        return (scanned, persisted == scanned ? .persisted : .stale)
    }

    private struct ScanErrorBox: Error { var reason: String }

    /// Refuses an index whose entries (in memory and as read from a persisted index) exceed the budget.
    static func checkIndexBudget(chunkCount: Int, field: String, path: String) throws(StoreError) {
        let perChunk = MemoryLayout<ChunkLocation>.stride + 8 * ChunkIndexFile.columns
        do {
            try MemoryBudget.current.check(MemoryBudget.product([chunkCount, perChunk]) ?? -1,
                                           for: "the chunk index of field '\(field)' (\(chunkCount) chunks)")
        } catch {
            throw .invalidStore(path: path, reason: error.description)
        }
    }

    /// One element of the dataset's fill value in `dtype`'s native layout: what chunks that were never
    /// written read as (zeros when the file defines none).
    static func fillValue(creation: borrowing H5PropertyList, dtype: DType, context: H5Context) throws(StoreError) -> [UInt8] {
        var status = H5D_FILL_VALUE_UNDEFINED
        try HDF5.check(unsafe H5Pfill_value_defined(creation.id, &status), "H5Pfill_value_defined", context)
        var value = [UInt8](repeating: 0, count: dtype.size)
        guard status == H5D_FILL_VALUE_USER_DEFINED else { return value }
        let memoryType = try HDF5.type(for: dtype, context)
        try HDF5.check(
            unsafe value.withUnsafeMutableBytes { unsafe H5Pget_fill_value(creation.id, memoryType.id, $0.baseAddress) },
            "H5Pget_fill_value", context)
        return value
    }
}

/// Adding a chunk address index to stores written by other tools (h5py…), so readers can decode from the
/// memory map without the HDF5 lock.
public enum ChunkIndexing {
    /// What was indexed: per field, its chunk count and how the addresses were found.
    public struct Report: Sendable, Equatable {
        public var field: String
        public var chunks: Int
        public var method: String
        /// The persisted index found before: "none", "current" or "stale" (rebuilt).
        public var previous: String = "none"
    }

    /// Adds (or rebuilds) the index of every root field chunked by whole samples, in place.
    /// Fields chunked otherwise, or contiguous, need none and are skipped.
    public static func addIndex(to path: String) throws(StoreError) -> [Report] {
        let context = H5Context(path: path)
        let file = try HDF5.openFile(path, writable: true)
        let map = try MappedFile(path: path)
        let root = try HDF5.openGroup(file.id, "/", context)
        var reports: [Report] = []
        var indices: [[ChunkLocation]] = []
        var names: [String] = []
        for name in try HDF5.datasetNames(in: root.id, context) {
            let fieldContext = H5Context(path: path, object: name)
            let dataset = try HDF5.openDataset(file.id, name, fieldContext)
            let dims = try HDF5.dims(try HDF5.space(of: dataset, fieldContext), fieldContext)
            let creation = try HDF5.creationList(of: dataset, fieldContext)
            guard !dims.isEmpty, HDF5.layout(creation) == H5D_CHUNKED else { continue }
            let chunk = try HDF5.chunkDims(creation, rank: dims.count, fieldContext)
            guard Array(chunk.dropFirst()) == Array(dims.dropFirst()) else { continue }
            let (locations, method) = try ChunkIndexBuilder.locationsWithMethod(
                dataset: dataset, map: map, rows: Int(dims[0]), chunkRows: Int(chunk[0]), rank: dims.count, context: fieldContext)
            var previous = "none"
            do {
                if let persisted = try ChunkIndexBuilder.load(
                    file: file, field: name, chunkCount: locations.count, fileSize: map.size, context: fieldContext) {
                    previous = persisted == locations ? "current" : "stale"
                }
            } catch {
                previous = "stale"
            }
            indices.append(locations)
            names.append(name)
            reports.append(Report(field: name, chunks: locations.count, method: method.rawValue, previous: previous))
        }
        try ChunkIndexBuilder.write(indices: indices, names: names, file: file, context: context)
        _ = consume root
        try HDF5.close(file, context)
        return reports
    }
}
