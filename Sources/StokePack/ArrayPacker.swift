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
        guard let first = fields.first else { throw SourceError(path: path, reason: "nothing to pack") }
        for field in fields {
            guard field.source.count == first.source.count else {
                throw SourceError(path: field.source.path, reason: "has \(field.source.count) samples, \(first.source.path) has \(first.source.count)")
            }
            guard field.sampleShape.reduce(1, *) == field.source.sampleShape.reduce(1, *) else {
                throw SourceError(path: field.source.path, reason: "samples of shape \(field.source.sampleShape) cannot be reshaped to \(field.sampleShape)")
            }
        }
        let writer = try StoreWriter(
            path: path, fields: fields.map { FieldSpec(name: $0.name, dtype: $0.source.dtype, sampleShape: $0.sampleShape) },
            options: options)
        for (index, field) in fields.enumerated() {
            let batchRows = max(1, (8 << 20) / max(1, field.source.sampleBytes))
            try unsafe field.source.forEachBatch(batchRows: batchRows) { rows, bytes in
                try unsafe writer.append(field.name, bytes: bytes)
                if index == 0 { progress(rows.upperBound) }
            }
        }
        for (name, json) in metadata { try writer.setMetadata(name, json: json) }
        return try writer.finish()
    }
}
