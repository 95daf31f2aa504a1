/// Checks, from the file's own bytes, what libhdf5 will dereference when it reads a variable-length
/// string attribute, before `H5Aread` is called (issue 19).
///
/// A variable-length string attribute holds, in its object header message, a 16-byte element: the
/// string's length (u32), the address of a global heap collection (u64) and an object index in that
/// collection (u32). `H5Aread` loads the collection and copies the object into a buffer sized from the
/// length. libhdf5 1.10.8 only `assert`s the index and trusts the collection's object sizes, so a
/// corrupt element or collection makes it read out of bounds (SEGV in `H5HG_read`), walk past the
/// collection, or allocate what the length says (2 GB). This check finds the attribute message by
/// walking the object header (`ChunkBTree.walkMessages`), reads the element and walks the whole
/// collection the way the library will, and refuses anything the library would mishandle.
enum VariableStringCheck {
    /// Global heap collection header: "GCOL", version 1, 3 reserved bytes, collection size (8 bytes).
    static let collectionHeaderBytes: UInt64 = 16
    /// Global heap object header: index (2), reference count (2), reserved (4), object size (8).
    static let objectHeaderBytes: UInt64 = 16

    /// Throws unless the variable-length string attribute `name` of the object whose header is at
    /// `objectHeader` (an address relative to the superblock's base, as `H5Oget_info2` gives it) can be
    /// read safely: its message is found in the object header (not in dense storage, not shared), its
    /// datatype is a variable-length string, and its element points at an object of exactly its
    /// length inside a well-formed global heap collection inside the file.
    static func validate(
        file: MappedFile, objectHeader: UInt64, attribute name: String, path: String,
        budget: MemoryBudget = .current
    ) throws(StoreError) {
        func refuse(_ reason: String) -> StoreError {
            .invalidStore(path: path, reason: "attribute '\(name)': \(reason)")
        }
        var reader = ChunkBTree.FileReader(file: file, base: 0)
        let elements: [(length: UInt64, collection: UInt64, index: UInt64)]
        do throws(ChunkBTree.ScanError) {
            try reader.checkSuperblock()
            elements = try findElements(reader, objectHeader: objectHeader, name: name)
        } catch {
            throw error.unsupported
                ? .unsupported(path: path, reason: "attribute '\(name)': variable-length string not read: \(error.reason)")
                : refuse("object header is corrupt: \(error.reason)")
        }
        for element in elements {
            try validate(element, reader: reader, attribute: name, path: path, budget: budget)
        }
    }

    private static func validate(
        _ element: (length: UInt64, collection: UInt64, index: UInt64), reader: ChunkBTree.FileReader,
        attribute name: String, path: String, budget: MemoryBudget
    ) throws(StoreError) {
        func refuse(_ reason: String) -> StoreError {
            .invalidStore(path: path, reason: "attribute '\(name)': \(reason)")
        }
        // A null reference (address 0) is an empty string: the library does not touch the heap.
        guard element.collection != 0 else { return }
        // HDF5 allocates the length (plus a terminator) for the conversion and again for the string.
        guard element.length <= UInt64(Int.max / 4) else {
            throw refuse("variable-length string of \(element.length) bytes")
        }
        do throws(MemoryBudgetError) {
            try budget.check(2 * Int(element.length) + 2, for: "\(path): attribute '\(name)'")
        } catch {
            throw refuse("variable-length string of \(element.length) bytes is over the memory budget (\(error))")
        }
        do throws(ChunkBTree.ScanError) {
            try checkCollection(reader, address: element.collection, index: element.index, length: element.length)
        } catch {
            throw refuse("global heap collection at address \(element.collection): \(error.reason)")
        }
    }

    /// The first data element of every attribute message (versions 1 to 3) named `name`: a corrupt
    /// header may hold several, and the walk's order of continuation blocks need not be the library's,
    /// so each is checked.
    private static func findElements(
        _ reader: ChunkBTree.FileReader, objectHeader: UInt64, name: String
    ) throws(ChunkBTree.ScanError) -> [(length: UInt64, collection: UInt64, index: UInt64)] {
        let wanted = Array(name.utf8)
        var found: [(length: UInt64, collection: UInt64, index: UInt64)] = []
        var denseStorage = false
        var sharedMessages = false
        try ChunkBTree.walkMessages(reader, objectHeader: objectHeader) { (message) throws(ChunkBTree.ScanError) -> Bool in
            if message.type == 0x15 {  // attribute info: dense storage when the fractal heap address is defined
                if message.size >= 10, try reader.u8(message.data) == 0 {
                    let flags = try reader.u8(message.data + 1)
                    let heap = message.data + 2 + (flags & 0x01 != 0 ? 2 : 0)
                    if heap + 8 <= message.data + message.size, try reader.u64(heap) != UInt64.max { denseStorage = true }
                }
                return false
            }
            guard message.type == 0x0C else { return false }  // attribute
            if message.flags & 0x02 != 0 {  // the message itself is shared (kept elsewhere)
                sharedMessages = true
                return false
            }
            let start = message.data
            let end = message.data + message.size
            func field(_ offset: UInt64, _ count: UInt64, _ what: String) throws(ChunkBTree.ScanError) -> UInt64 {
                guard offset <= end, count <= end - offset else {
                    throw ChunkBTree.ScanError(reason: "attribute message's \(what) runs past the message", unsupported: false)
                }
                return offset
            }
            _ = try field(start, 8, "header")
            let version = try reader.u8(start)
            guard (1...3).contains(version) else {
                throw ChunkBTree.ScanError(reason: "attribute message version \(version)", unsupported: false)
            }
            let flags = version == 1 ? 0 : try reader.u8(start + 1)
            let nameSize = UInt64(try reader.u16(start + 2))
            let typeSize = UInt64(try reader.u16(start + 4))
            let spaceSize = UInt64(try reader.u16(start + 6))
            func padded(_ size: UInt64) -> UInt64 { version == 1 ? (size + 7) & ~7 : size }
            let namePosition = try field(start + (version == 3 ? 9 : 8), padded(nameSize), "name")
            var nameBytes = try reader.bytes(namePosition, Int(nameSize))
            while nameBytes.last == 0 { nameBytes.removeLast() }
            guard nameBytes == wanted else { return false }
            if flags & 0x01 != 0 {
                throw ChunkBTree.ScanError(reason: "its datatype is a shared (committed) datatype", unsupported: true)
            }
            let typePosition = try field(namePosition + padded(nameSize), padded(typeSize), "datatype")
            let spacePosition = try field(typePosition + padded(typeSize), padded(spaceSize), "dataspace")
            guard typeSize >= 8 else {
                throw ChunkBTree.ScanError(reason: "attribute datatype of \(typeSize) bytes", unsupported: false)
            }
            let typeClass = try reader.u8(typePosition) & 0x0F
            let vlenKind = try reader.u8(typePosition + 1) & 0x0F
            guard typeClass == 9, vlenKind == 1 else {
                throw ChunkBTree.ScanError(
                    reason: "the file's datatype (class \(typeClass)) is not a variable-length string", unsupported: false)
            }
            // The base type (one character) sizes the conversion buffer: length * base size. A corrupt
            // base size of 8 MB made a 261-byte string cost 2 GB.
            guard typeSize >= 16 else {
                throw ChunkBTree.ScanError(reason: "variable-length datatype of \(typeSize) bytes has no base type", unsupported: false)
            }
            let baseClass = try reader.u8(typePosition + 8) & 0x0F
            let baseSize = try reader.u32(typePosition + 12)
            guard baseClass == 0 || baseClass == 3, baseSize == 1 else {
                throw ChunkBTree.ScanError(
                    reason: "variable-length string of \(baseSize)-byte characters (class \(baseClass)); a character is 1 byte",
                    unsupported: false)
            }
            let dataPosition = try field(spacePosition + padded(spaceSize), 16, "data")
            found.append(
                (UInt64(try reader.u32(dataPosition)), try reader.u64(dataPosition + 4), UInt64(try reader.u32(dataPosition + 12))))
            return false
        }
        // With dense storage the library reads attributes from the fractal heap, not from the header.
        if denseStorage {
            throw ChunkBTree.ScanError(
                reason: "it is kept in dense attribute storage (a fractal heap), which Stoke does not check", unsupported: true)
        }
        if !found.isEmpty { return found }
        if sharedMessages {
            throw ChunkBTree.ScanError(reason: "its attribute message is shared, which Stoke does not check", unsupported: true)
        }
        throw ChunkBTree.ScanError(reason: "its attribute message is not in the object header", unsupported: true)
    }

    /// Walks every object of the global heap collection at `address` as the library will, and checks
    /// that object `index` exists and holds exactly `length` bytes (the library copies the whole object
    /// into a buffer sized from the length).
    private static func checkCollection(
        _ reader: ChunkBTree.FileReader, address: UInt64, index: UInt64, length: UInt64
    ) throws(ChunkBTree.ScanError) {
        guard try reader.bytes(address, 4) == Array("GCOL".utf8) else {
            throw ChunkBTree.ScanError(reason: "no global heap signature", unsupported: false)
        }
        let version = try reader.u8(address + 4)
        guard version == 1 else {
            throw ChunkBTree.ScanError(reason: "global heap version \(version)", unsupported: false)
        }
        let size = try reader.u64(address + 8)
        guard size >= collectionHeaderBytes else {
            throw ChunkBTree.ScanError(reason: "collection size \(size) is smaller than its header", unsupported: false)
        }
        let end = try reader.block(address, size, "collection", version2: false).end
        // Every byte of the collection must be readable: `block` compares with the file size, `bytes`
        // adds the superblock's base.
        _ = try reader.bytes(end - 1, 1)
        guard index != 0 else {
            throw ChunkBTree.ScanError(reason: "the string refers to object 0 (the collection's free space)", unsupported: false)
        }
        var objectSize: UInt64?
        var position = address + collectionHeaderBytes
        while position < end {
            guard end - position >= objectHeaderBytes else { break }  // too small for an object: free space
            let objectIndex = UInt64(try reader.u16(position))
            let declared = try reader.u64(position + 8)
            let need: UInt64
            if objectIndex == 0 {
                // The free-space object's size counts its own header.
                guard declared >= objectHeaderBytes else {
                    throw ChunkBTree.ScanError(
                        reason: "free-space object at \(position) declares \(declared) bytes, less than its header", unsupported: false)
                }
                need = declared
            } else {
                guard declared <= UInt64.max - 7 - objectHeaderBytes else {
                    throw ChunkBTree.ScanError(reason: "object \(objectIndex) declares \(declared) bytes", unsupported: false)
                }
                need = objectHeaderBytes + ((declared + 7) & ~7)
            }
            guard need <= end - position else {
                throw ChunkBTree.ScanError(
                    reason: "object \(objectIndex) at \(position) of \(declared) bytes runs past the collection's \(size) bytes",
                    unsupported: false)
            }
            if objectIndex == index { objectSize = declared }
            position += need
        }
        guard let objectSize else {
            throw ChunkBTree.ScanError(reason: "the string refers to object \(index), which the collection does not hold", unsupported: false)
        }
        guard objectSize == length else {
            throw ChunkBTree.ScanError(
                reason: "the string's length \(length) differs from its heap object's \(objectSize) bytes", unsupported: false)
        }
    }

    // MARK: - Every attribute message, before the library decodes them

    /// Throws unless every attribute message in the object header at `objectHeader` decodes within its
    /// own bytes. libhdf5 1.10.8 decodes all of an object's attribute messages whenever it lists, finds
    /// or opens one (`H5Aiterate2`, `H5Aexists`), and trusts them: the name is copied with `strdup`,
    /// the datatype's member names with `strlen`, and the data size (elements × element size) is only
    /// compared with the whole message's size, so a corrupt message reads past the header block (a
    /// heap-buffer-overflow found by the model-file fuzz target). This check walks the same messages
    /// with bounds: a terminated name, a datatype and dataspace that fit their fields, and data that
    /// fits the message. Attributes in dense storage are not in the header and are not checked here.
    static func checkAttributeMessages(file: MappedFile, objectHeader: UInt64, path: String) throws(StoreError) {
        var reader = ChunkBTree.FileReader(file: file, base: 0)
        do throws(ChunkBTree.ScanError) {
            try reader.checkSuperblock()
            try ChunkBTree.walkMessages(reader, objectHeader: objectHeader) { (message) throws(ChunkBTree.ScanError) -> Bool in
                if message.type == 0x0C, message.flags & 0x02 == 0 { try checkAttributeMessage(reader, message) }
                return false
            }
        } catch {
            throw error.unsupported
                ? .unsupported(path: path, reason: "attributes not read: \(error.reason)")
                : .invalidStore(path: path, reason: "attribute message is corrupt: \(error.reason)")
        }
    }

    private static func checkAttributeMessage(_ reader: ChunkBTree.FileReader, _ message: ChunkBTree.HeaderMessage) throws(ChunkBTree.ScanError) {
        let start = message.data
        let end = message.data + message.size
        func corrupt(_ reason: String) -> ChunkBTree.ScanError { ChunkBTree.ScanError(reason: reason, unsupported: false) }
        guard message.size >= 8 else { throw corrupt("attribute message of \(message.size) bytes") }
        let version = try reader.u8(start)
        guard (1...3).contains(version) else { throw corrupt("attribute message version \(version)") }
        let flags = version == 1 ? 0 : try reader.u8(start + 1)
        let nameSize = UInt64(try reader.u16(start + 2))
        let typeSize = UInt64(try reader.u16(start + 4))
        let spaceSize = UInt64(try reader.u16(start + 6))
        func padded(_ size: UInt64) -> UInt64 { version == 1 ? (size + 7) & ~7 : size }
        var position = start + (version == 3 ? 9 : 8)
        func take(_ count: UInt64, _ what: String) throws(ChunkBTree.ScanError) -> UInt64 {
            guard position <= end, count <= end - position else { throw corrupt("attribute \(what) runs past its message") }
            defer { position += count }
            return position
        }
        let name = try take(padded(nameSize), "name")
        guard nameSize >= 1, try reader.bytes(name, Int(nameSize)).contains(0) else {
            throw corrupt("attribute name is not terminated within its \(nameSize) bytes")
        }
        let type = try take(padded(typeSize), "datatype")
        let space = try take(padded(spaceSize), "dataspace")
        guard flags & 0x03 == 0 else {
            throw ChunkBTree.ScanError(reason: "an attribute has a shared datatype or dataspace, which Stoke does not check", unsupported: true)
        }
        let typeEnd = try datatypeEnd(reader, at: type, limit: type + typeSize, depth: 0, topLevel: true)
        _ = typeEnd
        let elements = try dataspaceElements(reader, at: space, limit: space + spaceSize)
        let typeClass = try reader.u8(type) & 0x0F
        // A variable-length element is stored as length (4), heap address (8) and index (4).
        let elementSize = typeClass == 9 ? 16 : UInt64(try reader.u32(type + 4))
        let (dataSize, overflow) = elements.multipliedReportingOverflow(by: elementSize)
        guard !overflow, position <= end, dataSize <= end - position else {
            throw corrupt("attribute data of \(elements) elements of \(elementSize) bytes runs past its message")
        }
    }

    /// The number of elements a dataspace message (version 1 or 2) describes, checked to fit `limit`.
    private static func dataspaceElements(_ reader: ChunkBTree.FileReader, at start: UInt64, limit: UInt64) throws(ChunkBTree.ScanError) -> UInt64 {
        func corrupt(_ reason: String) -> ChunkBTree.ScanError { ChunkBTree.ScanError(reason: reason, unsupported: false) }
        guard limit >= start, limit - start >= 4 else { throw corrupt("attribute dataspace of \(limit &- start) bytes") }
        let version = try reader.u8(start)
        let rank = UInt64(try reader.u8(start + 1))
        let flags = try reader.u8(start + 2)
        guard version == 1 || version == 2 else { throw corrupt("dataspace version \(version)") }
        guard rank <= 32 else { throw corrupt("dataspace of rank \(rank)") }
        if version == 2, try reader.u8(start + 3) == 2 { return 0 }  // null dataspace
        let dims = start + (version == 1 ? 8 : 4)
        let need = rank * 8 * (flags & 0x01 != 0 ? 2 : 1)
        guard dims <= limit, need <= limit - dims else { throw corrupt("dataspace dimensions run past their field") }
        var count: UInt64 = 1
        for index in 0..<rank {
            let (product, overflow) = count.multipliedReportingOverflow(by: try reader.u64(dims + 8 * index))
            guard !overflow else { throw corrupt("dataspace holds more elements than 2^64") }
            count = product
        }
        return count
    }

    /// Where a datatype message (as the library's 1.10 decoder reads it) ends; every property, member
    /// name and nested type must lie before `limit`.
    private static func datatypeEnd(
        _ reader: ChunkBTree.FileReader, at start: UInt64, limit: UInt64, depth: Int, topLevel: Bool
    ) throws(ChunkBTree.ScanError) -> UInt64 {
        func corrupt(_ reason: String) -> ChunkBTree.ScanError { ChunkBTree.ScanError(reason: reason, unsupported: false) }
        guard depth < 16 else { throw corrupt("datatype nested more than 16 deep") }
        guard start <= limit, limit - start >= 8 else { throw corrupt("attribute datatype runs past its field") }
        let header = try reader.bytes(start, 8)
        let typeClass = header[0] & 0x0F
        let version = header[0] >> 4
        let bits = UInt64(header[1]) | UInt64(header[2]) << 8 | UInt64(header[3]) << 16
        let size = UInt64(try reader.u32(start + 4))
        var position = start + 8
        func skip(_ count: UInt64) throws(ChunkBTree.ScanError) {
            guard position <= limit, count <= limit - position else { throw corrupt("datatype properties run past their field") }
            position += count
        }
        /// A NUL-terminated name inside the field; returns its length with the terminator.
        func name() throws(ChunkBTree.ScanError) -> UInt64 {
            var length: UInt64 = 0
            while true {
                guard position + length < limit else { throw corrupt("datatype member name is not terminated") }
                if try reader.u8(position + length) == 0 { return length + 1 }
                length += 1
            }
        }
        func nested() throws(ChunkBTree.ScanError) {
            position = try datatypeEnd(reader, at: position, limit: limit, depth: depth + 1, topLevel: false)
        }
        switch typeClass {
        case 0, 4: try skip(4)  // fixed-point, bitfield: offset, precision
        case 1: try skip(12)  // floating point
        case 2: try skip(2)  // time
        case 3, 7: break  // string, reference
        case 5: try skip(bits & 0xFF)  // opaque: tag
        case 6, 8:  // compound, enumeration
            let members = bits & 0xFFFF
            if typeClass == 8 { try nested() }
            let baseSize = typeClass == 8 ? UInt64(try reader.u32(start + 8 + 4)) : 0
            for _ in 0..<members {
                let length = try name()
                try skip(version < 3 ? (length + 7) / 8 * 8 : length)
                guard typeClass == 6 else { continue }
                if version >= 3 {
                    try skip(size < 1 << 8 ? 1 : size < 1 << 16 ? 2 : size < 1 << 24 ? 3 : 4)
                } else {
                    try skip(4)
                    if version == 1 { try skip(28) }
                }
                try nested()
            }
            if typeClass == 8 {
                let (values, overflow) = members.multipliedReportingOverflow(by: baseSize)
                guard !overflow else { throw corrupt("enumeration values overflow") }
                try skip(values)
            }
        case 9:  // variable-length: its disk size replaces the declared one only at the top level
            guard topLevel else {
                throw ChunkBTree.ScanError(reason: "an attribute nests a variable-length type, which Stoke does not check", unsupported: true)
            }
            try nested()
        case 10:  // array
            guard position < limit else { throw corrupt("array datatype runs past its field") }
            let rank = UInt64(try reader.u8(position))
            try skip(version < 3 ? 4 + 8 * rank : 1 + 4 * rank)
            try nested()
        default:
            throw corrupt("datatype class \(typeClass)")
        }
        return position
    }

    // MARK: - A dataset's storage, before H5Dread

    /// Throws unless the data layout message of the dataset whose header is at `objectHeader` holds what
    /// reading `neededBytes` (elements × file element size) takes: libhdf5 1.10.8 copies a compact
    /// dataset's bytes out of the buffer its layout message declares without comparing its size with the
    /// dataspace (a heap-buffer-overflow in `H5VM_memcpyvv` found by the model-file fuzz target), and
    /// copies the declared compact size out of the message without comparing it with the message's size.
    static func checkStorage(
        file: MappedFile, objectHeader: UInt64, neededBytes: UInt64, path: String, dataset name: String
    ) throws(StoreError) {
        var reader = ChunkBTree.FileReader(file: file, base: 0)
        do throws(ChunkBTree.ScanError) {
            try reader.checkSuperblock()
            var checked = false
            try ChunkBTree.walkMessages(reader, objectHeader: objectHeader) { (message) throws(ChunkBTree.ScanError) -> Bool in
                guard message.type == 0x08 else { return false }
                checked = true
                try checkLayout(reader, message, neededBytes: neededBytes)
                return true
            }
            guard checked else { throw ChunkBTree.ScanError(reason: "no data layout message", unsupported: false) }
        } catch {
            throw error.unsupported
                ? .unsupported(path: path, reason: "array '\(name)': \(error.reason)")
                : .invalidStore(path: path, reason: "array '\(name)': storage is corrupt: \(error.reason)")
        }
    }

    private static func checkLayout(
        _ reader: ChunkBTree.FileReader, _ message: ChunkBTree.HeaderMessage, neededBytes: UInt64
    ) throws(ChunkBTree.ScanError) {
        func corrupt(_ reason: String) -> ChunkBTree.ScanError { ChunkBTree.ScanError(reason: reason, unsupported: false) }
        let start = message.data
        let end = message.data + message.size
        guard message.size >= 2 else { throw corrupt("data layout message of \(message.size) bytes") }
        let version = try reader.u8(start)
        let compactSize: UInt64
        let compactData: UInt64
        switch version {
        case 3, 4:
            let layoutClass = try reader.u8(start + 1)
            guard layoutClass == 0 else { return }  // contiguous and chunked data are read from the file
            guard message.size >= 4 else { throw corrupt("compact layout message of \(message.size) bytes") }
            compactSize = UInt64(try reader.u16(start + 2))
            compactData = start + 4
        case 1, 2:
            guard message.size >= 8 else { throw corrupt("data layout message of \(message.size) bytes") }
            let rank = UInt64(try reader.u8(start + 1))
            guard try reader.u8(start + 2) == 0 else { return }
            let sizeField = start + 8 + 4 * rank
            guard sizeField + 4 <= end else { throw corrupt("compact layout message runs past its size") }
            compactSize = UInt64(try reader.u32(sizeField))
            compactData = sizeField + 4
        default:
            throw corrupt("data layout message version \(version)")
        }
        guard compactSize <= end - min(end, compactData), compactData <= end else {
            throw corrupt("compact data of \(compactSize) bytes runs past its message")
        }
        guard compactSize == neededBytes else {
            throw corrupt("compact data of \(compactSize) bytes for an array of \(neededBytes) bytes")
        }
    }

    // MARK: - The root group's object header, before H5Fopen

    /// Throws when the root group's object header (found from the superblock, versions 0 to 3) or one
    /// of its continuation blocks runs past the end of the file: libhdf5 1.10.8 allocates the size an
    /// object header declares before reading it. Files this check cannot read (no signature, 4-byte
    /// offsets) are left to the library, which reports them.
    static func checkRootHeader(file: MappedFile, path: String) throws(StoreError) {
        guard HDF5Signature.superblockOffset(in: file) != nil else { return }
        var reader = ChunkBTree.FileReader(file: file, base: 0)
        do throws(ChunkBTree.ScanError) {
            try reader.checkSuperblock()
            let version = try reader.u8(8)
            let root: UInt64
            switch version {
            case 0: root = try reader.u64(64)
            case 1: root = try reader.u64(68)
            case 2, 3: root = try reader.u64(36)
            default: return
            }
            try ChunkBTree.walkMessages(reader, objectHeader: root) { _ throws(ChunkBTree.ScanError) -> Bool in false }
        } catch {
            guard !error.unsupported else { return }
            throw .invalidStore(path: path, reason: "root group's object header is corrupt: \(error.reason)")
        }
    }
}
