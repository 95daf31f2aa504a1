import CHDF5

// HDF5 virtual datasets (H5Pset_virtual, HDF5 >= 1.10): the only HDF5 calls the join makes beyond
// HDF5.swift's wrappers. Kept in their own file so the join's C surface is in one place.

extension HDF5 {
    /// One source of a virtual dataset: all of dataset `dataset` in file `file` (a path relative to the
    /// virtual dataset's own file, which HDF5 resolves against that file's folder), mapped to rows
    /// `start..<start + rows` of the virtual dataset.
    struct VirtualSource {
        var file: String
        var dataset: String
        var start: UInt64
        var rows: UInt64
    }

    /// Creates dataset `name` at `location` of element type `type` (copied from a source) and shape
    /// `[rows] + sampleDims`, whose rows are the sources' rows, in the order given.
    static func createVirtualDataset(
        _ location: hid_t, _ name: String, type: borrowing H5Type, rows: UInt64, sampleDims: [UInt64],
        sources: [VirtualSource], _ context: H5Context
    ) throws(StoreError) {
        let creation = try datasetCreationList(context)
        let space = try simpleSpace([rows] + sampleDims, context)
        for source in sources {
            let sourceSpace = try simpleSpace([source.rows] + sampleDims, context)
            try selectRows(space, start: [source.start] + sampleDims.map { _ in 0 }, count: [source.rows] + sampleDims, context)
            try check(
                unsafe H5Pset_virtual(creation.id, space.id, source.file, source.dataset, sourceSpace.id),
                "H5Pset_virtual(\(source.file):\(source.dataset))", context)
        }
        // The selection on `space` was only for the mappings: the dataset itself has the full extent.
        try check(H5Sselect_all(space.id), "H5Sselect_all", context)
        _ = try createDataset(location, name, type: type, space: space, creation: creation, context)
    }

    /// The element type of `name` at `location`, for copying into another file.
    static func datasetType(_ location: hid_t, _ name: String, _ context: H5Context) throws(StoreError) -> H5Type {
        let dataset = try openDataset(location, name, context)
        return try type(of: dataset, context)
    }
}
