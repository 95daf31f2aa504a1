import StokeStore

/// One store field fed from an array source. `sampleShape` may reshape the source's samples (IDX images
/// `[28, 28]` become `[1, 28, 28]`) but must hold the same number of elements.
public struct PackField: Sendable {
    public var name: String
    public var source: any ArraySource
    public var sampleShape: [Int]

    public init(name: String, source: any ArraySource, sampleShape: [Int]? = nil) {
        self.name = name
        self.source = source
        self.sampleShape = sampleShape ?? source.sampleShape
    }
}

/// Packs array sources (NPY, NPZ, IDX, CSV) field by field: the bytes go to the writer as they are, in
/// batches of about 8 MiB, so memory stays bounded by the batch and the writer's chunks in flight.
public enum ArrayPacker {
    /// Writes the store; `metadata` are root JSON attributes (`provenance`, `recipe`…); `progress` gets
    /// the samples done of the first field.
    public static func pack(
        fields: [PackField], to path: String, options: StoreWriteOptions, metadata: [(name: String, json: String)],
        progress: (Int) -> Void = { _ in }
    ) throws -> StoreSummary {
        try pack(fields: fields, to: path, options: options, metadata: metadata, validation: nil, progress: progress).train
    }

    /// Where the validation samples of a split go, and that store's root attributes.
    public struct Validation {
        public var split: SampleSplit
        public var path: String
        public var metadata: [(name: String, json: String)]
        public init(split: SampleSplit, path: String, metadata: [(name: String, json: String)]) {
            self.split = split
            self.path = path
            self.metadata = metadata
        }
    }

    /// Writes the store and, with `validation`, a second store holding the samples the split assigns to
    /// validation (the first store then holds the rest). Both keep source order.
    public static func pack(
        fields: [PackField], to path: String, options: StoreWriteOptions, metadata: [(name: String, json: String)],
        validation: Validation?, progress: (Int) -> Void = { _ in }
    ) throws -> (train: StoreSummary, validation: StoreSummary?) {
        guard let first = fields.first else { throw SourceError(path: path, reason: "nothing to pack") }
        for field in fields {
            guard field.source.count == first.source.count else {
                throw SourceError(path: field.source.path, reason: "has \(field.source.count) samples, \(first.source.path) has \(first.source.count)")
            }
            guard field.sampleShape.reduce(1, *) == field.source.sampleShape.reduce(1, *) else {
                throw SourceError(path: field.source.path, reason: "samples of shape \(field.source.sampleShape) cannot be reshaped to \(field.sampleShape)")
            }
        }
        let specs = fields.map { FieldSpec(name: $0.name, dtype: $0.source.dtype, sampleShape: $0.sampleShape) }
        var validationWriter: StoreWriter?
        if let validation {
            let held = (0..<first.source.count).filter(validation.split.isValidation).count
            guard held > 0, held < first.source.count else {
                throw SourceError(path: validation.path, reason: "a validation fraction of \(validation.split.fraction) leaves \(held) of \(first.source.count) samples for validation; both stores need samples")
            }
            validationWriter = try StoreWriter(path: validation.path, fields: specs, options: options)
        }
        let writer = try StoreWriter(path: path, fields: specs, options: options)
        for (index, field) in fields.enumerated() {
            let batchRows = max(1, (8 << 20) / max(1, field.source.sampleBytes))
            let sampleBytes = field.source.sampleBytes
            try unsafe field.source.forEachBatch(batchRows: batchRows) { rows, bytes in
                if let validation, let validationWriter {
                    // Append runs of consecutive rows that go to the same store.
                    var runStart = rows.lowerBound
                    while runStart < rows.upperBound {
                        let toValidation = validation.split.isValidation(runStart)
                        var runEnd = runStart + 1
                        while runEnd < rows.upperBound && validation.split.isValidation(runEnd) == toValidation { runEnd += 1 }
                        let slice = unsafe UnsafeRawBufferPointer(
                            rebasing: bytes[((runStart - rows.lowerBound) * sampleBytes)..<((runEnd - rows.lowerBound) * sampleBytes)])
                        try unsafe (toValidation ? validationWriter : writer).append(field.name, bytes: slice)
                        runStart = runEnd
                    }
                } else {
                    try unsafe writer.append(field.name, bytes: bytes)
                }
                if index == 0 { progress(rows.upperBound) }
            }
        }
        for (name, json) in metadata { try writer.setMetadata(name, json: json) }
        if let validation, let validationWriter {
            for (name, json) in validation.metadata { try validationWriter.setMetadata(name, json: json) }
            // Both stores appear together or neither does.
            let summaries = try StoreWriter.finishTogether([writer, validationWriter])
            return (summaries[0], summaries[1])
        }
        return (try writer.finish(), nil)
    }
}
