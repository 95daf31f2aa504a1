import Foundation
import StokeStore
import Testing

@Test("array files round trip arrays and JSON attributes, and h5py reads them")
func arrayFileRoundTrip() throws {
    let directory = TemporaryDirectory()
    defer { directory.cleanup() }
    let path = directory.file("model.h5")
    let arrays = [
        NamedArray(name: "layers.0.weight", dtype: .f32, shape: [3, 2], values: [Float(1), 2, 3, 4, 5, 6]),
        NamedArray(name: "layers.0.bias", dtype: .f32, shape: [3], values: [Float(0.5), -1, 2]),
        NamedArray(name: "steps", dtype: .i64, shape: [], values: [Int64(7)]),
        NamedArray(name: "empty", dtype: .u8, shape: [0, 4], bytes: []),
    ]
    try ArrayFile.write(arrays, attributes: ["stoke_model": #"{"layers": 1}"#], to: path)
    let (back, attributes) = try ArrayFile.read(path)
    #expect(Set(back.map(\.name)) == Set(arrays.map(\.name)))
    for array in arrays { #expect(back.first { $0.name == array.name } == array) }
    #expect(attributes["stoke_model"] == #"{"layers": 1}"#)
    #expect(try back.first { $0.name == "layers.0.bias" }!.values(as: Float.self) == [0.5, -1, 2])
    let check = try python("""
        import sys, h5py, numpy as np
        f = h5py.File(sys.argv[1], 'r')
        assert f['layers.0.weight'].shape == (3, 2) and f['layers.0.weight'][2, 1] == 6
        assert f['steps'][()] == 7
        print(f.attrs['stoke_model'])
        """, [path])
    #expect(check.status == 0, "\(check.output)")
    #expect(throws: StoreError.self) {
        try ArrayFile.write([NamedArray(name: "a", dtype: .f32, shape: [2], bytes: [1, 2, 3])], attributes: [:], to: path)
    }
    #expect(throws: StoreError.self) { try ArrayFile.write(arrays, attributes: [:], to: path, overwrite: false) }
    #expect(throws: StoreError.self) { try ArrayFile.read(directory.file("missing.h5")) }
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.h5"])
}
