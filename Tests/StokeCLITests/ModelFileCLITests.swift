import Foundation
import StokeEngine
import Testing

@Test("stoke inspect and stoke run take Stoke HDF5 model files as well as ONNX")
func hdf5ModelFiles() throws {
    let directory = temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let native = try SequentialModel(
        layers: [.flatten, .linear(inFeatures: 12, outFeatures: 5), .relu, .linear(inFeatures: 5, outFeatures: 3)], sampleShape: [1, 3, 4], seed: 7)
    try native.save(to: directory + "/model.h5")
    let inspect = try execute(stokeBinary, ["inspect", directory + "/model.h5", "--json"])
    #expect(inspect.status == 0, "\(inspect.stderr)")
    #expect(jsonObject(inspect.stdout)?["parameters"] as? Int == 12 * 5 + 5 + 5 * 3 + 3)
    let made = try execute(venvPython, ["-c", "import numpy as np, sys; np.save(sys.argv[1], np.arange(24, dtype=np.float32).reshape(2, 1, 3, 4) / 24)", directory + "/x.npy"])
    try #require(made.status == 0)
    let model = try Model.load(path: directory + "/model.h5")
    let input = try #require(model.inputs.first?.name)
    let run = try execute(stokeBinary, ["run", directory + "/model.h5", "--input", "\(input)=\(directory)/x.npy", "--output-dir", directory + "/out", "--json"])
    #expect(run.status == 0, "\(run.stderr)")
    let outputs = jsonObject(run.stdout)?["outputs"] as? [[String: Any]]
    #expect(outputs?.first?["shape"] as? [Int] == [2, 3])
}
