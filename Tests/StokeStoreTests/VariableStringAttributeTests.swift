import Foundation
@testable import StokeStore
import Testing

/// Variable-length string attributes (issue 19): h5py writes `str` attributes as variable-length UTF-8,
/// whose bytes live in a global heap collection that libhdf5 1.10.8 trusts. Stoke checks the reference,
/// the collection and the length from the file's bytes before `H5Aread`; these files are made by h5py
/// and then hand-corrupted.
@Suite("variable-length string attributes")
struct VariableStringAttributeTests {
    /// Writes `ok.h5` (libver earliest and latest) with vlen attributes, then corrupted copies; prints
    /// nothing. Corruptions patch the 16-byte element (length u32, collection address u64, index u32)
    /// or the collection ("GCOL", version, size u64, objects of 16-byte header + data).
    static let script = #"""
        import sys, struct, h5py, numpy as np
        d = sys.argv[1]
        text = 'h\u00e9llo, ' + 'x' * 93
        for libver in ('earliest', 'latest'):
            with h5py.File(f'{d}/ok-{libver}.h5', 'w', libver=libver) as f:
                f['a'] = np.arange(6, dtype=np.float32)
                f.attrs['note'] = text
                f.attrs['empty'] = ''
                f.attrs['fixed'] = np.bytes_(b'fixed text')
                f.attrs['number'] = 3
        with h5py.File(f'{d}/list.h5', 'w') as f:
            f['a'] = np.arange(6, dtype=np.float32)
            f.attrs['list'] = ['one', 'two', 'three']
            f.attrs['note'] = 'kept'
        base = bytearray(open(f'{d}/ok-earliest.h5', 'rb').read())
        length = len(text.encode())
        gcol = base.index(b'GCOL')
        # The element: find it by its length and the collection address.
        element = base.index(struct.pack('<IQ', length, gcol))
        index = struct.unpack_from('<I', base, element + 12)[0]
        def save(name, patch):
            b = bytearray(base)
            patch(b)
            open(f'{d}/{name}.h5', 'wb').write(b)
        save('bad-index', lambda b: struct.pack_into('<I', b, element + 12, index + 40))
        save('zero-index', lambda b: struct.pack_into('<I', b, element + 12, 0))
        save('bad-collection-size', lambda b: struct.pack_into('<Q', b, gcol + 8, 1 << 40))
        save('bad-length', lambda b: struct.pack_into('<I', b, element, 0x7fffffff))
        save('long-length', lambda b: struct.pack_into('<I', b, element, length + 1))
        save('bad-signature', lambda b: b.__setitem__(slice(gcol, gcol + 4), b'XCOL'))
        # The base type's size (one character): 8 MB characters made libhdf5 allocate 2 GB.
        name = base.index(b'note\0')
        datatype = name + 8 if base[name - 8] == 1 else name + 5
        assert base[datatype] & 0x0F == 9, base[datatype]
        save('bad-base-size', lambda b: struct.pack_into('<I', b, datatype + 12, 1 << 23))
        # A numeric attribute of 4 elements declared as 1000: its data would run past the message.
        with h5py.File(f'{d}/numbers.h5', 'w') as f:
            f['a'] = np.arange(6, dtype=np.float32)
            f.attrs['arr'] = np.arange(4, dtype='<i4')
        b = bytearray(open(f'{d}/numbers.h5', 'rb').read())
        at = b.index(b'arr\0')
        dims = b.index(struct.pack('<Q', 4), at)
        struct.pack_into('<Q', b, dims, 1000)
        open(f'{d}/data-past-message.h5', 'wb').write(b)
        # A compact dataset of 16 bytes whose layout message declares 1 byte.
        with h5py.File(f'{d}/compact.h5', 'w') as f:
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_layout(h5py.h5d.COMPACT)
            space = h5py.h5s.create_simple((4,))
            h5py.h5d.create(f.id, b'c', h5py.h5t.IEEE_F32LE, space, dcpl=dcpl).write(
                h5py.h5s.ALL, h5py.h5s.ALL, np.arange(4, dtype='<f4'))
        b = bytearray(open(f'{d}/compact.h5', 'rb').read())
        layout = b.index(struct.pack('<BBH', 3, 0, 16) + np.arange(4, dtype='<f4').tobytes())
        struct.pack_into('<H', b, layout + 2, 1)
        open(f'{d}/compact-size.h5', 'wb').write(b)
        # The object's own size field: far past the collection.
        def object_size(b):
            position = gcol + 16
            while True:
                i, = struct.unpack_from('<H', b, position)
                size, = struct.unpack_from('<Q', b, position + 8)
                if i == index:
                    struct.pack_into('<Q', b, position + 8, 1 << 32)
                    return
                position += 16 + (size + 7) // 8 * 8
        save('bad-object-size', object_size)
        """#

    static func makeFiles() throws -> TemporaryDirectory {
        let directory = TemporaryDirectory()
        let result = try python(script, [directory.path])
        try #require(result.status == 0, "\(result.output)")
        return directory
    }

    @Test("h5py's variable-length UTF-8 attributes read in compact storage (v1 and v2 object headers)")
    func h5pyAttributesRead() throws {
        let directory = try Self.makeFiles()
        defer { directory.cleanup() }
        for libver in ["earliest", "latest"] {
            let (arrays, attributes) = try ArrayFile.read(directory.file("ok-\(libver).h5"))
            #expect(arrays.map(\.name) == ["a"])
            #expect(attributes["note"] == "h\u{e9}llo, " + String(repeating: "x", count: 93), "\(libver)")
            #expect(attributes["empty"] == "", "\(libver)")
            #expect(attributes["fixed"] == "fixed text", "\(libver)")
            #expect(attributes["number"] == nil, "\(libver)")
        }
    }

    @Test("a Stoke store with variable-length attributes h5py added still opens and reads them")
    func storeWithH5pyAttributes() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("store.h5")
        let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "values", dtype: .i32, sampleShape: [3])])
        try writer.append("values", values: (0..<30).map { Int32($0) })
        try writer.finish()
        let result = try python("""
            import sys, h5py
            with h5py.File(sys.argv[1], 'a') as f:
                f.attrs['comment'] = 'added by h5py \\u2713'
                f.attrs['tags'] = ['a', 'b']
            """, [path])
        try #require(result.status == 0, "\(result.output)")
        let store = try Store(path: path)
        #expect(store.attributes["comment"] == "added by h5py \u{2713}")
        #expect(store.attributes["tags"] == nil)
        #expect(try store.field("values").read(0..<10, as: Int32.self)[9 * 3 + 2] == 29)
    }

    @Test("a variable-length string attribute holding several strings is not read into room for one")
    func nonScalarRefused() throws {
        let directory = try Self.makeFiles()
        defer { directory.cleanup() }
        let path = directory.file("list.h5")
        let (_, attributes) = try ArrayFile.read(path)
        #expect(attributes["list"] == nil)
        #expect(attributes["note"] == "kept")
        let file = try HDF5.openFile(path, writable: false)
        let context = H5Context(path: path)
        let root = try HDF5.openGroup(file.id, "/", context)
        do {
            _ = try HDF5.readStringAttribute(root.id, "list", context)
            Issue.record("a three-string attribute was read")
        } catch {
            guard case .unsupported = error else { Issue.record("\(error)"); return }
            #expect("\(error)".contains("attribute 'list' holds 3 strings"), "\(error)")
        }
    }

    @Test("a corrupt heap index, collection, object size or string length is refused before libhdf5 reads it")
    func corruptionsRefused() throws {
        let directory = try Self.makeFiles()
        defer { directory.cleanup() }
        let expected = [
            "bad-index": "does not hold",
            "zero-index": "object 0",
            "bad-collection-size": "past the end of the file",
            "bad-length": "length 2147483647",
            "long-length": "differs from its heap object",
            "bad-signature": "no global heap signature",
            "bad-object-size": "runs past the collection",
            "bad-base-size": "8388608-byte characters",
        ]
        for (name, reason) in expected.sorted(by: { $0.key < $1.key }) {
            let path = directory.file(name + ".h5")
            do {
                _ = try ArrayFile.read(path)
                Issue.record("\(name): read")
            } catch {
                let message = "\(error)"
                guard case .invalidStore = error else { Issue.record("\(name): \(message)"); continue }
                #expect(message.hasPrefix(path), "\(name): \(message)")
                // Corrupting the collection also corrupts the empty string's reference ('empty' reads first).
                #expect(message.contains("attribute 'note'") || message.contains("attribute 'empty'"), "\(name): \(message)")
                #expect(message.contains(reason), "\(name): \(message)")
            }
        }
    }

    @Test("an attribute message whose data runs past it is refused before libhdf5 decodes it")
    func attributeDataPastMessage() throws {
        let directory = try Self.makeFiles()
        defer { directory.cleanup() }
        let path = directory.file("data-past-message.h5")
        do {
            _ = try ArrayFile.read(path)
            Issue.record("read")
        } catch {
            guard case .invalidStore = error else { Issue.record("\(error)"); return }
            #expect("\(error)".hasPrefix(path + ": attribute message is corrupt"), "\(error)")
            #expect("\(error)".contains("1000 elements of 4 bytes runs past its message"), "\(error)")
        }
    }

    @Test("a compact dataset whose declared size differs from its dataspace is refused before H5Dread")
    func compactSizeMismatch() throws {
        let directory = try Self.makeFiles()
        defer { directory.cleanup() }
        #expect(try ArrayFile.read(directory.file("compact.h5")).arrays.first?.values(as: Float.self) == [0, 1, 2, 3])
        let path = directory.file("compact-size.h5")
        do {
            _ = try ArrayFile.read(path)
            Issue.record("read")
        } catch {
            #expect("\(error)" == "\(path): array 'c': storage is corrupt: compact data of 1 bytes for an array of 16 bytes")
        }
    }

    @Test("the model-file fuzz findings (corrupt global heap, a 2 GB vlen length, attribute data past its message, compact size, a 2.7 GB root header) give one clear error")
    func fuzzFindings() throws {
        let inputs = StoreFuzzRegressionTests.regressionInputs("model-file").filter { $0.hasSuffix(".h5") }
        #expect(inputs.count >= 5)
        for input in inputs {
            do {
                _ = try ArrayFile.read(input)
                Issue.record("\(input): read")
            } catch {
                let message = "\(error)"
                #expect(message.hasPrefix(input + ": attribute") || message.hasPrefix(input + ": array '")
                    || message.hasPrefix(input + ": root group's object header is corrupt"), "\(message)")
            }
        }
    }
}
