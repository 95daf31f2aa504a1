import CHDF5
import Foundation

// The one file that calls the HDF5 C library. Every call goes through `check` so a failure becomes a
// typed `StoreError.hdf5` carrying the library's error stack, the file and the object name. Handles are
// `~Copyable` owners that close in `deinit`.

/// What a handle owns, and how to close it.
protocol H5HandleKind {
    static func close(_ id: hid_t) -> herr_t
}
enum H5FileKind: H5HandleKind { static func close(_ id: hid_t) -> herr_t { H5Fclose(id) } }
enum H5GroupKind: H5HandleKind { static func close(_ id: hid_t) -> herr_t { H5Gclose(id) } }
enum H5DatasetKind: H5HandleKind { static func close(_ id: hid_t) -> herr_t { H5Dclose(id) } }
enum H5DataspaceKind: H5HandleKind { static func close(_ id: hid_t) -> herr_t { H5Sclose(id) } }
enum H5PropertyListKind: H5HandleKind { static func close(_ id: hid_t) -> herr_t { H5Pclose(id) } }
enum H5TypeKind: H5HandleKind { static func close(_ id: hid_t) -> herr_t { H5Tclose(id) } }
enum H5AttributeKind: H5HandleKind { static func close(_ id: hid_t) -> herr_t { H5Aclose(id) } }

/// An open HDF5 identifier of one kind; closed exactly once, when the owner goes away.
struct H5Handle<Kind: H5HandleKind>: ~Copyable {
    let id: hid_t
    init(owning id: hid_t) { self.id = id }
    deinit {
        // Error printing is per thread in thread-safe HDF5: keep it off wherever the owner goes away.
        chdf5_silence_errors()
        _ = Kind.close(id)
    }

    /// Closes now and returns the library's status, so a failing close is reported, not lost in `deinit`.
    consuming func close() -> herr_t {
        let status = Kind.close(id)
        discard self
        return status
    }
}
typealias H5File = H5Handle<H5FileKind>
typealias H5Group = H5Handle<H5GroupKind>
typealias H5Dataset = H5Handle<H5DatasetKind>
typealias H5Dataspace = H5Handle<H5DataspaceKind>
typealias H5PropertyList = H5Handle<H5PropertyListKind>
typealias H5Type = H5Handle<H5TypeKind>
typealias H5Attribute = H5Handle<H5AttributeKind>

/// Where a call happened, for error messages.
struct H5Context: Sendable {
    var path: String
    var object: String = ""
}

enum HDF5 {
    /// Silences the library's own error printing and registers Stoke's LZ4 filter, once per process.
    /// First of all it turns off the library's atexit handler: after a failed write (a full disk), the
    /// library's own shutdown flushed the failed file again and crashed (issue 19 r01). Stoke closes every
    /// handle itself, and a file whose close failed is removed anyway, so nothing is left to do at exit.
    static let ready: Void = {
        _ = H5dont_atexit()
        chdf5_silence_errors()
        LZ4Filter.register()
    }()

    /// The HDF5 library's version, `major.minor.release`.
    static var libraryVersion: String {
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        _ = unsafe H5get_libversion(&major, &minor, &release)
        return "\(major).\(minor).\(release)"
    }

    // MARK: - Errors

    /// The calling thread's HDF5 error stack as one line, innermost message first; clears the stack.
    static func takeErrorStack() -> String {
        final class Messages { var lines: [String] = [] }
        let messages = Messages()
        let walker: H5E_walk2_t = { _, description, client in
            guard let description = unsafe description, let client = unsafe client else { return 0 }
            let sink = unsafe Unmanaged<Messages>.fromOpaque(client).takeUnretainedValue()
            let text = unsafe description.pointee.desc.map { unsafe String(cString: $0) } ?? ""
            let function = unsafe description.pointee.func_name.map { unsafe String(cString: $0) } ?? "?"
            sink.lines.append(text.isEmpty ? function : "\(text) [\(function)]")
            return 0
        }
        unsafe _ = H5Ewalk2(0, H5E_WALK_DOWNWARD, walker, Unmanaged.passUnretained(messages).toOpaque())
        _ = H5Eclear2(0)
        withExtendedLifetime(messages) {}
        guard !messages.lines.isEmpty else { return "no message from the library" }
        // The outer three say what failed; the innermost says why (a newer format version, say), and a
        // system error (a full disk: errno 28) may lie between: add them.
        var shown = Array(messages.lines.prefix(3))
        if messages.lines.count > 3, let innermost = messages.lines.last, !innermost.contains("errno =") { shown.append(innermost) }
        if !shown.contains(where: { $0.contains("errno =") }),
           let system = messages.lines.dropFirst(3).first(where: { $0.contains("errno =") }),
           let start = system.range(of: "error message = '"),
           let end = system[start.upperBound...].firstIndex(of: "'") {
            let number = system.range(of: "errno = ").map { system[$0.upperBound...].prefix { $0.isNumber } } ?? ""
            shown.append("system error: \(system[start.upperBound..<end]) (errno \(number))")
        }
        return shown.joined(separator: "; ")
    }

    static func failure(_ call: String, _ context: H5Context) -> StoreError {
        .hdf5(call: call, path: context.path, object: context.object, message: takeErrorStack())
    }

    @discardableResult
    static func check(_ status: herr_t, _ call: String, _ context: H5Context) throws(StoreError) -> herr_t {
        if status < 0 { throw failure(call, context) }
        return status
    }

    static func checkID(_ id: hid_t, _ call: String, _ context: H5Context) throws(StoreError) -> hid_t {
        if id < 0 { throw failure(call, context) }
        return id
    }

    // MARK: - Files and groups

    /// - Parameter denseAttributes: write the 1.8 file format with the root's attributes in dense
    ///   storage, which holds attributes over the 64 KiB a compact (1.6 format) attribute may take.
    static func createFile(_ path: String, denseAttributes: Bool = false) throws(StoreError) -> H5File {
        _ = ready
        let context = H5Context(path: path)
        guard denseAttributes else {
            let id = unsafe H5Fcreate(path, chdf5_acc_excl(), h5Default, h5Default)
            return H5File(owning: try checkID(id, "H5Fcreate", context))
        }
        let access = try checkID(H5Pcreate(chdf5_plist_file_access()), "H5Pcreate", context)
        defer { H5Pclose(access) }
        try check(H5Pset_libver_bounds(access, H5F_LIBVER_V18, H5F_LIBVER_V18), "H5Pset_libver_bounds", context)
        let creation = try checkID(H5Pcreate(chdf5_plist_file_create()), "H5Pcreate", context)
        defer { H5Pclose(creation) }
        try check(H5Pset_attr_phase_change(creation, 0, 0), "H5Pset_attr_phase_change", context)
        let id = unsafe H5Fcreate(path, chdf5_acc_excl(), creation, access)
        return H5File(owning: try checkID(id, "H5Fcreate", context))
    }

    static func openFile(_ path: String, writable: Bool) throws(StoreError) -> H5File {
        _ = ready
        let flags = writable ? chdf5_acc_rdwr() : chdf5_acc_rdonly()
        // H5Fopen loads the root group's object header at whatever size it declares (2.7 GB, found by
        // the model-file fuzz target): check its blocks lie inside the file first.
        if !writable, let map = try? MappedFile(path: path) {
            try VariableStringCheck.checkRootHeader(file: map, path: path)
        }
        let id = unsafe H5Fopen(path, flags, h5Default)
        return H5File(owning: try checkID(id, "H5Fopen", H5Context(path: path)))
    }

    static func flush(_ file: borrowing H5File, _ context: H5Context) throws(StoreError) {
        try check(H5Fflush(file.id, H5F_SCOPE_GLOBAL), "H5Fflush", context)
    }

    /// Closes the file now, so that close-time write errors are reported instead of lost in `deinit`.
    static func close(_ file: consuming H5File, _ context: H5Context) throws(StoreError) {
        try check(file.close(), "H5Fclose", context)
    }

    /// The POSIX descriptor of a file opened with the default (sec2) driver, or nil.
    static func descriptor(ofFile fileID: hid_t) -> Int32? {
        var handle: UnsafeMutableRawPointer? = nil
        guard unsafe H5Fget_vfd_handle(fileID, h5Default, &handle) >= 0, let handle = unsafe handle else {
            _ = H5Eclear2(0)
            return nil
        }
        return unsafe handle.load(as: Int32.self)
    }

    static func linkExists(_ location: hid_t, _ name: String, _ context: H5Context) throws(StoreError) -> Bool {
        let status = unsafe H5Lexists(location, name, h5Default)
        return try check(status, "H5Lexists", context) > 0
    }

    static func createGroup(_ location: hid_t, _ name: String, _ context: H5Context) throws(StoreError) -> H5Group {
        let id = unsafe H5Gcreate2(location, name, h5Default, h5Default, h5Default)
        return H5Group(owning: try checkID(id, "H5Gcreate2", context))
    }

    static func openGroup(_ location: hid_t, _ name: String, _ context: H5Context) throws(StoreError) -> H5Group {
        let id = unsafe H5Gopen2(location, name, h5Default)
        return H5Group(owning: try checkID(id, "H5Gopen2", context))
    }

    /// Names of the datasets directly under a group, in name order.
    static func datasetNames(in location: hid_t, _ context: H5Context) throws(StoreError) -> [String] {
        final class Names { var list: [String] = [] }
        let names = Names()
        let visit: H5L_iterate_t = { group, name, _, client in
            guard let name = unsafe name, let client = unsafe client else { return 0 }
            var info = H5O_info_t()
            guard unsafe H5Oget_info_by_name2(group, name, &info, UInt32(H5O_INFO_BASIC), h5Default) >= 0
            else { return -1 }
            if info.type == H5O_TYPE_DATASET {
                unsafe Unmanaged<Names>.fromOpaque(client).takeUnretainedValue().list.append(String(cString: name))
            }
            return 0
        }
        var index: hsize_t = 0
        let status = unsafe H5Literate(
            location, H5_INDEX_NAME, H5_ITER_INC, &index, visit, Unmanaged.passUnretained(names).toOpaque())
        withExtendedLifetime(names) {}
        try check(status, "H5Literate", context)
        return names.list
    }

    /// Names of an object's attributes, in name order.
    static func attributeNames(of object: hid_t, _ context: H5Context) throws(StoreError) -> [String] {
        final class Names { var list: [String] = [] }
        let names = Names()
        let visit: H5A_operator2_t = { _, name, _, client in
            guard let name = unsafe name, let client = unsafe client else { return 0 }
            unsafe Unmanaged<Names>.fromOpaque(client).takeUnretainedValue().list.append(String(cString: name))
            return 0
        }
        var index: hsize_t = 0
        let status = unsafe H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, &index, visit, Unmanaged.passUnretained(names).toOpaque())
        withExtendedLifetime(names) {}
        try check(status, "H5Aiterate2", context)
        return names.list
    }

    /// The file address of an object's header.
    static func objectAddress(_ object: hid_t, _ context: H5Context) throws(StoreError) -> UInt64 {
        var address: haddr_t = 0
        try check(unsafe chdf5_object_address(object, &address), "H5Oget_info2", context)
        return UInt64(address)
    }

    // MARK: - Property lists, types, dataspaces

    static func datasetCreationList(_ context: H5Context) throws(StoreError) -> H5PropertyList {
        H5PropertyList(owning: try checkID(H5Pcreate(chdf5_plist_dataset_create()), "H5Pcreate", context))
    }

    static func setChunk(_ plist: borrowing H5PropertyList, _ dims: [UInt64], _ context: H5Context) throws(StoreError) {
        let hdims = dims.map { hsize_t($0) }
        try check(unsafe H5Pset_chunk(plist.id, Int32(hdims.count), hdims), "H5Pset_chunk", context)
    }

    static func setFilter(
        _ plist: borrowing H5PropertyList, id: Int32, optional: Bool, values: [UInt32], _ context: H5Context
    ) throws(StoreError) {
        let flags = optional ? UInt32(H5Z_FLAG_OPTIONAL) : UInt32(H5Z_FLAG_MANDATORY)
        try check(unsafe H5Pset_filter(plist.id, H5Z_filter_t(id), flags, values.count, values), "H5Pset_filter", context)
    }

    static func setShuffle(_ plist: borrowing H5PropertyList, _ context: H5Context) throws(StoreError) {
        try check(H5Pset_shuffle(plist.id), "H5Pset_shuffle", context)
    }

    static func setDeflate(_ plist: borrowing H5PropertyList, level: Int, _ context: H5Context) throws(StoreError) {
        try check(H5Pset_deflate(plist.id, UInt32(level)), "H5Pset_deflate", context)
    }

    static func setFletcher32(_ plist: borrowing H5PropertyList, _ context: H5Context) throws(StoreError) {
        try check(H5Pset_fletcher32(plist.id), "H5Pset_fletcher32", context)
    }

    /// The filter pipeline recorded in a dataset creation property list, in application order.
    static func filters(_ plist: borrowing H5PropertyList, _ context: H5Context) throws(StoreError) -> [FilterSpec] {
        let count = try check(H5Pget_nfilters(plist.id), "H5Pget_nfilters", context)
        var result: [FilterSpec] = []
        for index in 0..<UInt32(count) {
            var flags: UInt32 = 0
            var valueCount = 16
            var values = [UInt32](repeating: 0, count: 16)
            var name = [CChar](repeating: 0, count: 64)
            var config: UInt32 = 0
            let id = unsafe H5Pget_filter2(plist.id, index, &flags, &valueCount, &values, 64, &name, &config)
            if id < 0 { throw failure("H5Pget_filter2", context) }
            let nameText = unsafe name.withUnsafeBufferPointer { unsafe String(cString: $0.baseAddress!) }
            result.append(FilterSpec(id: Int(id), name: nameText, values: Array(values.prefix(min(valueCount, 16)))))
        }
        return result
    }

    static func chunkDims(_ plist: borrowing H5PropertyList, rank: Int, _ context: H5Context) throws(StoreError) -> [UInt64] {
        var dims = [hsize_t](repeating: 0, count: max(rank, 1))
        try check(unsafe H5Pget_chunk(plist.id, Int32(rank), &dims), "H5Pget_chunk", context)
        return dims.prefix(rank).map { UInt64($0) }
    }

    static func layout(_ plist: borrowing H5PropertyList) -> H5D_layout_t { H5Pget_layout(plist.id) }

    static func simpleSpace(_ dims: [UInt64], max maxDims: [UInt64]? = nil, _ context: H5Context) throws(StoreError) -> H5Dataspace {
        let hdims = dims.map { hsize_t($0) }
        let id: hid_t
        if let maxDims {
            let hmax = maxDims.map { hsize_t($0) }
            id = unsafe H5Screate_simple(Int32(hdims.count), hdims, hmax)
        } else {
            id = unsafe H5Screate_simple(Int32(hdims.count), hdims, nil)
        }
        return H5Dataspace(owning: try checkID(id, "H5Screate_simple", context))
    }

    static func dims(_ space: borrowing H5Dataspace, _ context: H5Context) throws(StoreError) -> [UInt64] {
        let rank = try check(H5Sget_simple_extent_ndims(space.id), "H5Sget_simple_extent_ndims", context)
        var dims = [hsize_t](repeating: 0, count: Int(max(rank, 1)))
        try check(unsafe H5Sget_simple_extent_dims(space.id, &dims, nil), "H5Sget_simple_extent_dims", context)
        return dims.prefix(Int(rank)).map { UInt64($0) }
    }

    static func selectRows(_ space: borrowing H5Dataspace, start: [UInt64], count: [UInt64], _ context: H5Context) throws(StoreError) {
        let hstart = start.map { hsize_t($0) }, hcount = count.map { hsize_t($0) }
        try check(unsafe H5Sselect_hyperslab(space.id, H5S_SELECT_SET, hstart, nil, hcount, nil), "H5Sselect_hyperslab", context)
    }

    /// A file or memory type for a dtype (f16 is built as an IEEE half, as numpy stores it).
    static func type(for dtype: DType, _ context: H5Context) throws(StoreError) -> H5Type {
        let native: hid_t
        switch dtype {
        case .u8: native = chdf5_native_uint8()
        case .i8: native = chdf5_native_int8()
        case .u16: native = chdf5_native_uint16()
        case .i16: native = chdf5_native_int16()
        case .u32: native = chdf5_native_uint32()
        case .i32: native = chdf5_native_int32()
        case .i64: native = chdf5_native_int64()
        case .f32: native = chdf5_native_float()
        case .f64: native = chdf5_native_double()
        case .f16: return H5Type(owning: try checkID(chdf5_ieee_f16le(), "H5Tcopy(f16)", context))
        }
        return H5Type(owning: try checkID(H5Tcopy(native), "H5Tcopy", context))
    }

    /// The dtype of a dataset's file type and whether its bytes are little-endian; nil when Stoke has no dtype for it.
    static func dtype(of type: borrowing H5Type) -> (dtype: DType, littleEndian: Bool)? {
        let size = H5Tget_size(type.id)
        let order = H5Tget_order(type.id)
        let little = order == H5T_ORDER_LE || order == H5T_ORDER_NONE
        switch H5Tget_class(type.id) {
        case H5T_INTEGER:
            let signed = H5Tget_sign(type.id) == H5T_SGN_2
            switch (size, signed) {
            case (1, false): return (.u8, little)
            case (1, true): return (.i8, little)
            case (2, false): return (.u16, little)
            case (2, true): return (.i16, little)
            case (4, false): return (.u32, little)
            case (4, true): return (.i32, little)
            case (8, true): return (.i64, little)
            default: return nil
            }
        case H5T_FLOAT:
            switch size {
            case 2: return (.f16, little)
            case 4: return (.f32, little)
            case 8: return (.f64, little)
            default: return nil
            }
        case H5T_ENUM where size == 1:
            return (.u8, true)  // h5py's bool
        default:
            return nil
        }
    }

    // MARK: - Datasets

    static func createDataset(
        _ location: hid_t, _ name: String, type: borrowing H5Type, space: borrowing H5Dataspace,
        creation: borrowing H5PropertyList, _ context: H5Context
    ) throws(StoreError) -> H5Dataset {
        let id = unsafe H5Dcreate2(location, name, type.id, space.id, h5Default, creation.id, h5Default)
        return H5Dataset(owning: try checkID(id, "H5Dcreate2", context))
    }

    static func openDataset(_ location: hid_t, _ name: String, _ context: H5Context) throws(StoreError) -> H5Dataset {
        let id = unsafe H5Dopen2(location, name, h5Default)
        return H5Dataset(owning: try checkID(id, "H5Dopen2", context))
    }

    static func space(of dataset: borrowing H5Dataset, _ context: H5Context) throws(StoreError) -> H5Dataspace {
        H5Dataspace(owning: try checkID(H5Dget_space(dataset.id), "H5Dget_space", context))
    }

    static func type(of dataset: borrowing H5Dataset, _ context: H5Context) throws(StoreError) -> H5Type {
        H5Type(owning: try checkID(H5Dget_type(dataset.id), "H5Dget_type", context))
    }

    static func creationList(of dataset: borrowing H5Dataset, _ context: H5Context) throws(StoreError) -> H5PropertyList {
        H5PropertyList(owning: try checkID(H5Dget_create_plist(dataset.id), "H5Dget_create_plist", context))
    }

    static func setExtent(_ dataset: borrowing H5Dataset, _ dims: [UInt64], _ context: H5Context) throws(StoreError) {
        let hdims = dims.map { hsize_t($0) }
        try check(unsafe H5Dset_extent(dataset.id, hdims), "H5Dset_extent", context)
    }

    /// File address of a contiguous dataset's bytes, or nil when it has none (chunked, compact, unallocated).
    static func contiguousOffset(_ dataset: borrowing H5Dataset) -> UInt64? {
        let offset = H5Dget_offset(dataset.id)
        _ = H5Eclear2(0)
        return offset == chdf5_haddr_undef() ? nil : UInt64(offset)
    }

    /// Writes already-filtered chunk bytes at a chunk's coordinates (elements), bypassing the pipeline.
    static func writeChunk(
        _ dataset: borrowing H5Dataset, offset: [UInt64], filterMask: UInt32, bytes: UnsafeRawBufferPointer,
        _ context: H5Context
    ) throws(StoreError) {
        let hoffset = offset.map { hsize_t($0) }
        try check(
            unsafe H5Dwrite_chunk(dataset.id, h5Default, filterMask, hoffset, bytes.count, bytes.baseAddress),
            "H5Dwrite_chunk", context)
    }

    /// Stored bytes of the chunk at `offset` (0 when the chunk was never written, so it reads as the fill value).
    static func chunkStorageSize(_ dataset: borrowing H5Dataset, offset: [UInt64], _ context: H5Context) throws(StoreError) -> UInt64 {
        // H5Dget_chunk_storage_size fails for a chunk never written; the chunk's info says HADDR_UNDEF.
        let hoffset = offset.map { hsize_t($0) }
        var mask: UInt32 = 0
        var address: haddr_t = 0
        var size: hsize_t = 0
        try check(unsafe H5Dget_chunk_info_by_coord(dataset.id, hoffset, &mask, &address, &size), "H5Dget_chunk_info_by_coord", context)
        return address == chdf5_haddr_undef() ? 0 : UInt64(size)
    }

    /// Stored bytes of the chunk at `offset` and its filter mask, through the library (holds its lock).
    static func readChunk(
        _ dataset: borrowing H5Dataset, offset: [UInt64], _ context: H5Context
    ) throws(StoreError) -> (bytes: [UInt8], filterMask: UInt32) {
        let hoffset = offset.map { hsize_t($0) }
        var size: hsize_t = 0
        try check(unsafe H5Dget_chunk_storage_size(dataset.id, hoffset, &size), "H5Dget_chunk_storage_size", context)
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var mask: UInt32 = 0
        let status = unsafe bytes.withUnsafeMutableBytes { buffer in
            unsafe H5Dread_chunk(dataset.id, h5Default, hoffset, &mask, buffer.baseAddress)
        }
        try check(status, "H5Dread_chunk", context)
        return (bytes, mask)
    }

    /// Number of allocated chunks and the library's answer for chunk `index` (O(chunks) per call in 1.10).
    static func chunkCount(_ dataset: borrowing H5Dataset, _ context: H5Context) throws(StoreError) -> Int {
        let space = try space(of: dataset, context)
        var count: hsize_t = 0
        try check(unsafe H5Dget_num_chunks(dataset.id, space.id, &count), "H5Dget_num_chunks", context)
        return Int(count)
    }

    static func chunkInfo(
        _ dataset: borrowing H5Dataset, index: Int, rank: Int, _ context: H5Context
    ) throws(StoreError) -> (offset: [UInt64], address: UInt64, size: UInt64, filterMask: UInt32) {
        let space = try space(of: dataset, context)
        var offset = [hsize_t](repeating: 0, count: rank)
        var mask: UInt32 = 0
        var address: haddr_t = 0
        var size: hsize_t = 0
        try check(
            unsafe H5Dget_chunk_info(dataset.id, space.id, hsize_t(index), &offset, &mask, &address, &size),
            "H5Dget_chunk_info", context)
        return (offset.map { UInt64($0) }, UInt64(address), UInt64(size), mask)
    }

    /// Reads a hyperslab of whole rows `[start, start + count)` along axis 0 through the library pipeline,
    /// converted to `memoryType`.
    static func readRows(
        _ dataset: borrowing H5Dataset, memoryType: borrowing H5Type, start: UInt64, count: UInt64,
        sampleDims: [UInt64], into buffer: UnsafeMutableRawBufferPointer, _ context: H5Context
    ) throws(StoreError) {
        let fileSpace = try space(of: dataset, context)
        try selectRows(fileSpace, start: [start] + sampleDims.map { _ in 0 }, count: [count] + sampleDims, context)
        let memorySpace = try simpleSpace([count] + sampleDims, context)
        try check(
            unsafe H5Dread(dataset.id, memoryType.id, memorySpace.id, fileSpace.id, h5Default, buffer.baseAddress),
            "H5Dread", context)
    }

    /// Writes a whole dataset from memory (used for small metadata datasets such as the chunk index).
    static func writeAll(
        _ dataset: borrowing H5Dataset, memoryType: borrowing H5Type, bytes: UnsafeRawBufferPointer, _ context: H5Context
    ) throws(StoreError) {
        try check(
            unsafe H5Dwrite(dataset.id, memoryType.id, h5All, h5All, h5Default, bytes.baseAddress),
            "H5Dwrite", context)
    }

    static func readAll(
        _ dataset: borrowing H5Dataset, memoryType: borrowing H5Type, into buffer: UnsafeMutableRawBufferPointer,
        _ context: H5Context
    ) throws(StoreError) {
        // The library trusts a compact layout's declared size: check it against the dataspace first.
        let fileType = try type(of: dataset, context)
        let fileSpace = try space(of: dataset, context)
        let elements = H5Sget_simple_extent_npoints(fileSpace.id)
        guard elements >= 0 else { throw failure("H5Sget_simple_extent_npoints", context) }
        let (needed, overflow) = UInt64(elements).multipliedReportingOverflow(by: UInt64(H5Tget_size(fileType.id)))
        guard !overflow else { throw .invalidStore(path: context.path, reason: "array '\(context.object)' is larger than 2^64 bytes") }
        try VariableStringCheck.checkStorage(
            file: try MappedFile(path: context.path), objectHeader: try objectAddress(dataset.id, context),
            neededBytes: needed, path: context.path, dataset: context.object)
        try check(
            unsafe H5Dread(dataset.id, memoryType.id, h5All, h5All, h5Default, buffer.baseAddress),
            "H5Dread", context)
    }

    // MARK: - String attributes (JSON metadata)

    static func writeStringAttribute(_ object: hid_t, _ name: String, _ value: String, _ context: H5Context) throws(StoreError) {
        if try linkAttributeExists(object, name, context) {
            try check(unsafe H5Adelete(object, name), "H5Adelete", context)
        }
        let bytes = Array(value.utf8)
        let type = H5Type(owning: try checkID(H5Tcopy(chdf5_c_s1()), "H5Tcopy", context))
        try check(H5Tset_size(type.id, max(bytes.count, 1)), "H5Tset_size", context)
        let space = H5Dataspace(owning: try checkID(H5Screate(H5S_SCALAR), "H5Screate", context))
        let attribute = H5Attribute(
            owning: try checkID(unsafe H5Acreate2(object, name, type.id, space.id, h5Default, h5Default), "H5Acreate2", context))
        let padded = bytes.isEmpty ? [0] : bytes
        try check(unsafe padded.withUnsafeBytes { unsafe H5Awrite(attribute.id, type.id, $0.baseAddress) }, "H5Awrite", context)
    }

    /// Every string attribute of `object` by name. Attributes of other types, and string attributes
    /// Stoke does not read (`.unsupported`: several strings, or a variable-length string it cannot check
    /// before the library reads it), are not Stoke's and are left out; a corrupt one is an error.
    static func readStringAttributes(of object: hid_t, _ context: H5Context) throws(StoreError) -> [String: String] {
        // The library decodes every attribute message to list or open one: check them first.
        try VariableStringCheck.checkAttributeMessages(
            file: try MappedFile(path: context.path), objectHeader: try objectAddress(object, context), path: context.path)
        var attributes: [String: String] = [:]
        for name in try attributeNames(of: object, context) {
            do throws(StoreError) {
                if let value = try readStringAttribute(object, name, context) { attributes[name] = value }
            } catch {
                if case .unsupported = error { continue }
                throw error
            }
        }
        return attributes
    }

    static func linkAttributeExists(_ object: hid_t, _ name: String, _ context: H5Context) throws(StoreError) -> Bool {
        try check(unsafe H5Aexists(object, name), "H5Aexists", context) > 0
    }

    /// Reads a fixed- or variable-length string attribute holding one string; nil when it does not exist
    /// or is not a string (attributes of other types are not Stoke's).
    ///
    /// A variable-length string is read only after `VariableStringCheck` has checked, from the file's
    /// bytes, the global heap object `H5Aread` will copy: libhdf5 1.10.8 trusts a corrupt heap reference
    /// (SEGV in `H5HG_read`) and the length the file declares (a 2 GB allocation). An attribute whose
    /// message Stoke cannot find in the object header (dense storage, a shared datatype) is refused with
    /// `.unsupported` rather than handed to the library; fixed-length strings (what Stoke writes) are
    /// read from any storage.
    static func readStringAttribute(_ object: hid_t, _ name: String, _ context: H5Context) throws(StoreError) -> String? {
        guard try linkAttributeExists(object, name, context) else { return nil }
        let attribute = H5Attribute(owning: try checkID(unsafe H5Aopen(object, name, h5Default), "H5Aopen", context))
        let fileType = H5Type(owning: try checkID(H5Aget_type(attribute.id), "H5Aget_type", context))
        guard H5Tget_class(fileType.id) == H5T_STRING else { return nil }
        // Both paths below read into room for one string: H5Aread writes every element of the dataspace.
        let space = H5Dataspace(owning: try checkID(H5Aget_space(attribute.id), "H5Aget_space", context))
        let elements = H5Sget_simple_extent_npoints(space.id)
        guard elements >= 0 else { throw failure("H5Sget_simple_extent_npoints", context) }
        guard elements == 1 else {
            throw .unsupported(path: context.path, reason: "attribute '\(name)' holds \(elements) strings; Stoke reads attributes of one string")
        }
        if H5Tis_variable_str(fileType.id) > 0 {
            let map = try MappedFile(path: context.path)
            try VariableStringCheck.validate(
                file: map, objectHeader: try objectAddress(object, context), attribute: name, path: context.path)
            let memoryType = H5Type(owning: try checkID(H5Tcopy(chdf5_c_s1()), "H5Tcopy", context))
            try check(H5Tset_size(memoryType.id, Int(bitPattern: UInt(bitPattern: -1))), "H5Tset_size", context)
            // h5py writes str attributes as variable-length UTF-8; HDF5 will not convert UTF-8 to the
            // ASCII memory type, so the memory type takes the file's character set.
            try check(H5Tset_cset(memoryType.id, H5Tget_cset(fileType.id)), "H5Tset_cset", context)
            var pointer: UnsafeMutablePointer<CChar>? = nil
            try check(unsafe H5Aread(attribute.id, memoryType.id, &pointer), "H5Aread", context)
            defer { unsafe H5free_memory(pointer) }
            return unsafe pointer.map { unsafe String(cString: $0) } ?? ""
        }
        let size = H5Tget_size(fileType.id)
        guard size > 0 else { throw failure("H5Tget_size", context) }
        do throws(MemoryBudgetError) {
            try MemoryBudget.current.check(size + 1, for: "\(context.path): attribute '\(name)'")
        } catch {
            throw .invalidStore(path: context.path, reason: "attribute '\(name)': \(error)")
        }
        var bytes = [UInt8](repeating: 0, count: size + 1)
        try check(unsafe bytes.withUnsafeMutableBytes { unsafe H5Aread(attribute.id, fileType.id, $0.baseAddress) }, "H5Aread", context)
        let end = bytes.firstIndex(of: 0) ?? size
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}

/// One filter of a dataset's pipeline as HDF5 records it.
public struct FilterSpec: Sendable, Equatable {
    /// The registered filter id (1 deflate, 2 shuffle, 3 Fletcher-32, 32004 LZ4, …).
    public var id: Int
    public var name: String
    /// The filter's client data values (`cd_values`).
    public var values: [UInt32]
}

/// `H5P_DEFAULT` and `H5S_ALL` import as `Int32`; the API takes `hid_t`.
let h5Default: hid_t = 0
let h5All: hid_t = 0
