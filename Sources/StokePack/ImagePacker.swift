import Foundation
import StokeStore
import Synchronization

/// The image files to pack, in sample order, with their labels.
public struct ImageList: Sendable {
    /// The folder or CSV list the images came from.
    public var root: String
    /// Paths as opened (root-relative paths joined to the root).
    public var paths: [String]
    public var labels: [Int64]
    /// Class names by label, when labels are names (ImageFolder, or a CSV list with non-numeric labels).
    public var classes: [String]?

    /// File name extensions the decoders read (compared case-insensitively).
    public static let extensions: Set<String> = ["jpg", "jpeg", "png", "ppm", "pgm", "pnm"]

    /// The ImageFolder layout: `root/<class>/<file>` (any depth below the class folder). Classes are the
    /// sorted folder names and labels their indices, as torchvision's `ImageFolder`; files sort by path.
    public static func folder(_ root: String) throws(SourceError) -> ImageList {
        let manager = FileManager.default
        func isDirectory(_ path: String) -> Bool {
            (try? URL(fileURLWithPath: path).resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true
        }
        guard isDirectory(root) else {
            throw SourceError(path: root, reason: "not a directory")
        }
        let names: [String]
        do { names = try manager.contentsOfDirectory(atPath: root) } catch {
            throw SourceError(path: root, reason: "cannot list: \(error.localizedDescription)")
        }
        let classes = names.filter { !$0.hasPrefix(".") && isDirectory(root + "/" + $0) }.sorted()
        guard !classes.isEmpty else { throw SourceError(path: root, reason: "no class folders (expected root/<class>/<image>)") }
        var list = ImageList(root: root, paths: [], labels: [], classes: classes)
        for (label, name) in classes.enumerated() {
            let folder = root + "/" + name
            let files = (manager.enumerator(atPath: folder)?.allObjects as? [String] ?? [])
                .filter { !($0 as NSString).lastPathComponent.hasPrefix(".") && extensions.contains(($0 as NSString).pathExtension.lowercased()) }
                .sorted()
            for file in files {
                list.paths.append(folder + "/" + file)
                list.labels.append(Int64(label))
            }
        }
        guard !list.paths.isEmpty else { throw SourceError(path: root, reason: "the class folders hold no .jpg/.jpeg/.png/.ppm/.pgm files") }
        return list
    }

    /// A CSV list of `path,label` lines. A first line that names no image (its path has no image
    /// extension, no such file exists, and its label is not an integer, such as `path,label` or `filename,target`) is a header
    /// and is skipped. Relative paths are relative to the list's folder. Labels are either all integers
    /// (kept as they are) or all class names (sorted, stored as their indices), as the first data line
    /// decides; a line that breaks the rule is refused with its number, never reinterpreted.
    public static func csv(_ listPath: String) throws(SourceError) -> ImageList {
        let file = try SourceBytes(mapping: listPath)
        let text = unsafe String(decoding: file.bytes(at: 0, count: file.count)!, as: UTF8.self)
        let base = (listPath as NSString).deletingLastPathComponent
        var rows: [(path: String, label: String)] = []
        var numeric: Bool?
        var firstLine = true
        for (number, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard let comma = line.lastIndex(of: ",") else {
                throw SourceError(path: listPath, reason: "line \(number + 1): expected 'path,label'")
            }
            let path = line[..<comma].trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\"")))
            let label = line[line.index(after: comma)...].trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\"")))
            let isInteger = Int64(label) != nil
            if firstLine {
                firstLine = false
                let resolved = path.hasPrefix("/") || base.isEmpty ? path : base + "/" + path
                let namesImage = extensions.contains((path as NSString).pathExtension.lowercased())
                    || FileManager.default.fileExists(atPath: resolved)
                if !namesImage && !isInteger { continue }  // a header line
            }
            guard !path.isEmpty, !label.isEmpty else { throw SourceError(path: listPath, reason: "line \(number + 1): empty path or label") }
            switch numeric {
            case nil:
                numeric = isInteger
            case true? where !isInteger:
                throw SourceError(
                    path: listPath,
                    reason: "line \(number + 1): label '\(label)' is not an integer, and the labels before it are; a list uses integer labels or class names, not both")
            case false? where isInteger:
                throw SourceError(
                    path: listPath,
                    reason: "line \(number + 1): label '\(label)' is an integer, and the labels before it are class names; a list uses integer labels or class names, not both")
            default:
                break
            }
            rows.append((path.hasPrefix("/") || base.isEmpty ? path : base + "/" + path, label))
        }
        guard !rows.isEmpty else { throw SourceError(path: listPath, reason: "the list names no images") }
        if numeric == true {
            return ImageList(root: listPath, paths: rows.map(\.path), labels: rows.map { Int64($0.label)! }, classes: nil)
        }
        let classes = Array(Set(rows.map(\.label))).sorted()
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, Int64($0)) })
        return ImageList(root: listPath, paths: rows.map(\.path), labels: rows.map { index[$0.label]! }, classes: classes)
    }
}

/// Packs an image list: decode and transform on worker threads that run ahead of the appending thread,
/// which appends samples to the store in sample order (the writer compresses on its own threads). Memory
/// is bounded by the window (`workers * 8` samples decoded ahead) plus the writer's chunks in flight.
public enum ImagePacker {
    public struct Result: Sendable {
        public var summary: StoreSummary
        /// The validation store's summary when a split was asked for.
        public var validation: StoreSummary?
        public var skipped: [SkippedFile]
    }

    /// - Parameters:
    ///   - imageField/labelField: the store's field names.
    ///   - workers: decode threads.
    ///   - skipBad: leave out files that fail to read, decode or transform (listed in the result) instead
    ///     of stopping; without it the first such file stops the pack and nothing is written.
    ///   - validation: a split and the path of the store for its validation samples.
    ///   - metadata: root attributes per store (`role` is "train" or "validation"), given the skipped
    ///     files once they are known.
    ///   - progress: samples done (written or skipped).
    public static func pack(
        list: ImageList, recipe: ImageRecipe, to path: String, imageField: String = "image", labelField: String = "label",
        options: StoreWriteOptions, workers: Int, skipBad: Bool, validation: (split: SampleSplit, path: String)? = nil,
        metadata: (_ role: String, _ skipped: [SkippedFile]) -> [(name: String, json: String)], progress: (Int) -> Void = { _ in }
    ) throws -> Result {
        try recipe.validate()
        let workers = min(max(1, workers), StoreWriteOptions.maximumWorkers)
        let window = workers * 8
        var skipped: [SkippedFile] = []
        // Index 0: the main store; 1: the validation store. Each starts at its first sample.
        var writers: [StoreWriter?] = [nil, nil]
        var sampleShape: [Int]?
        try decodeStream(list: list, recipe: recipe, workers: workers, window: window) { index, outcome in
            var result = outcome
            if case .success(let sample) = result, let sampleShape, sample.shape != sampleShape {
                result = .failure(SourceError(
                    path: list.paths[index],
                    reason: "gives a sample of shape \(sample.shape), earlier images give \(sampleShape) (use --resize and/or --center-crop)"))
            }
            switch result {
            case .failure(let error):
                guard skipBad else { throw error }
                skipped.append(SkippedFile(path: list.paths[index], reason: error.reason))
            case .success(let sample):
                // The first good image fixes the sample shape.
                sampleShape = sample.shape
                let role = validation?.split.isValidation(index) == true ? 1 : 0
                if writers[role] == nil {
                    writers[role] = try StoreWriter(
                        path: role == 1 ? validation!.path : path,
                        fields: [
                            FieldSpec(name: imageField, dtype: recipe.dtype, sampleShape: sample.shape),
                            FieldSpec(name: labelField, dtype: .i64, sampleShape: []),
                        ],
                        options: options)
                }
                try writers[role]!.append(imageField, values: sample.bytes)
                try writers[role]!.append(labelField, values: [list.labels[index]])
            }
            if (index + 1) % window == 0 || index + 1 == list.paths.count { progress(index + 1) }
        }
        guard let writer = writers[0] else {
            throw SourceError(path: path, reason: "no image of the \(list.paths.count) in \(list.root) was usable for this store (all skipped or all held out for validation)")
        }
        for (name, json) in metadata("train", skipped) { try writer.setMetadata(name, json: json) }
        if let validation {
            guard let validationWriter = writers[1] else {
                throw SourceError(path: validation.path, reason: "the split holds out none of the usable images; raise the validation fraction")
            }
            for (name, json) in metadata("validation", skipped) { try validationWriter.setMetadata(name, json: json) }
            // Both stores appear together or neither does.
            let summaries = try StoreWriter.finishTogether([writer, validationWriter])
            return Result(summary: summaries[0], validation: summaries[1], skipped: skipped)
        }
        return Result(summary: try writer.finish(), validation: nil, skipped: skipped)
    }

    struct Sample: Sendable {
        var shape: [Int]
        var bytes: [UInt8]
    }

    /// Decodes and transforms every image on `workers` threads and hands the outcomes to `consume` in
    /// sample order, on the calling thread. Workers run ahead of the consumer by at most `window` samples
    /// (the memory bound) but never wait for each other: a slow image holds back only the consumer, where
    /// the earlier window-at-a-time scheme left every worker idle at each window's end and while the
    /// window was appended. If `consume` throws, the workers stop after their current image.
    static func decodeStream(
        list: ImageList, recipe: ImageRecipe, workers: Int, window: Int,
        consume: (Int, Swift.Result<Sample, SourceError>) throws -> Void
    ) throws {
        let count = list.paths.count
        guard count > 0 else { return }
        let queue = DecodeQueue(window: window)
        let paths = list.paths
        let threads = min(workers, count)
        let finished = DispatchGroup()
        for _ in 0..<threads {
            finished.enter()
            let thread = Thread {
                defer { finished.leave() }
                while let index = queue.claim(count: count) {
                    let path = paths[index]
                    let outcome = Swift.Result { () throws(SourceError) -> Sample in
                        let image = try ImageDecoder.decode(path: path)
                        let bytes = try recipe.apply(image, path: path)
                        return Sample(shape: recipe.outputShape(height: image.height, width: image.width), bytes: bytes)
                    }
                    queue.deliver(index, outcome)
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        defer {
            queue.stop()
            finished.wait()
        }
        for index in 0..<count {
            try consume(index, queue.take(index))
        }
    }
}

/// The hand-off between decode workers and the consumer: a ring of `window` slots, sample `i` in slot
/// `i % window`. A worker may claim sample `i` only when `i < consumed + window`, so its slot is free.
private final class DecodeQueue: @unchecked Sendable {
    // Every stored property below is read and written only with `condition` locked.
    private let condition = NSCondition()
    private let window: Int
    private var slots: [Swift.Result<ImagePacker.Sample, SourceError>?]
    private var nextClaim = 0
    private var consumed = 0
    private var stopped = false

    init(window: Int) {
        self.window = window
        slots = Array(repeating: nil, count: window)
    }

    /// The next sample to decode, or nil when all are claimed or the consumer stopped.
    func claim(count: Int) -> Int? {
        condition.lock()
        defer { condition.unlock() }
        while !stopped && nextClaim < count && nextClaim >= consumed + window { condition.wait() }
        guard !stopped && nextClaim < count else { return nil }
        nextClaim += 1
        return nextClaim - 1
    }

    func deliver(_ index: Int, _ outcome: Swift.Result<ImagePacker.Sample, SourceError>) {
        condition.lock()
        slots[index % window] = outcome
        condition.broadcast()
        condition.unlock()
    }

    /// Waits for sample `index` (taken in order) and frees its slot.
    func take(_ index: Int) -> Swift.Result<ImagePacker.Sample, SourceError> {
        condition.lock()
        defer { condition.unlock() }
        while slots[index % window] == nil { condition.wait() }
        let outcome = slots[index % window]!
        slots[index % window] = nil
        consumed = index + 1
        condition.broadcast()
        return outcome
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}
