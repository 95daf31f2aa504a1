import Foundation
import StokeEngine
import StokeLoader
import StokeStore

#if canImport(Glibc)
import Glibc
#endif

// The C ABI of include/stoke.h: every @_cdecl function, and with CStrings.swift the only unsafe
// pointer code of the library. Handles are retained Swift objects passed as opaque pointers
// (Unmanaged); every function catches every error, records its message for stoke_last_error() and
// returns the status code.

/// Most axes a shape may have (STOKE_MAX_DIMS).
let maxDims = 16

/// Runs `body`, turning a thrown error into its status code and the thread's last error message.
private func guarded(_ body: () throws -> Int32) -> Int32 {
    do {
        return try body()
    } catch {
        let (code, message) = Status.of(error)
        LastError.set(message)
        return code
    }
}

private func object<T: AnyObject>(_ pointer: UnsafeRawPointer?, _ type: T.Type, _ what: String) throws(CAPIError) -> T {
    guard let pointer = unsafe pointer else { throw CAPIError("\(what) handle is NULL") }
    return unsafe Unmanaged<T>.fromOpaque(pointer).takeUnretainedValue()
}

private func give<T: AnyObject>(_ value: T, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) {
    unsafe out?.pointee = Unmanaged.passRetained(value).toOpaque()
}

private func release<T: AnyObject>(_ pointer: UnsafeMutableRawPointer?, _ type: T.Type) {
    guard let pointer = unsafe pointer else { return }
    unsafe Unmanaged<T>.fromOpaque(pointer).release()
}

private func string(_ pointer: UnsafePointer<CChar>?, _ what: String) throws(CAPIError) -> String {
    guard let pointer = unsafe pointer else { throw CAPIError("\(what) is NULL") }
    return unsafe String(cString: pointer)
}

private func optionalString(_ pointer: UnsafePointer<CChar>?) -> String? {
    guard let pointer = unsafe pointer else { return nil }
    return unsafe String(cString: pointer)
}

private func requireOut(_ pointer: UnsafeMutableRawPointer?, _ what: String) throws(CAPIError) {
    guard unsafe pointer != nil else { throw CAPIError("output pointer \(what) is NULL") }
}

/// Writes a shape to a C array of STOKE_MAX_DIMS values.
private func writeShape(_ shape: [Int], _ ndim: UnsafeMutablePointer<Int32>?, _ values: UnsafeMutablePointer<Int64>?) throws(CAPIError) {
    guard shape.count <= maxDims else { throw CAPIError("shape \(shape) has more than \(maxDims) axes") }
    unsafe ndim?.pointee = Int32(shape.count)
    if let values = unsafe values {
        for (axis, size) in shape.enumerated() { unsafe values[axis] = Int64(size) }
    }
}

private func readShape(_ ndim: Int32, _ values: UnsafePointer<Int64>?) throws(CAPIError) -> [Int] {
    guard ndim >= 0, Int(ndim) <= maxDims else { throw CAPIError("ndim \(ndim) is outside 0…\(maxDims)") }
    guard unsafe ndim == 0 || values != nil else { throw CAPIError("shape is NULL") }
    var shape: [Int] = []
    for axis in 0..<Int(ndim) {
        let size = unsafe values![axis]
        guard size >= 0 else { throw CAPIError("shape axis \(axis) is negative (\(size))") }
        shape.append(Int(size))
    }
    return shape
}

private func duplicate(_ text: String, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) throws(CAPIError) {
    guard let out = unsafe out else { throw CAPIError("output string pointer is NULL") }
    unsafe out.pointee = strdup(text)
}

// MARK: - Errors and strings

private let versionString = CStringTable([StokeVersion.string])

@_cdecl("stoke_last_error")
public func stoke_last_error() -> UnsafePointer<CChar> { unsafe LastError.current }

@_cdecl("stoke_version")
public func stoke_version() -> UnsafePointer<CChar>? { unsafe versionString.pointer(0) }

@_cdecl("stoke_free_string")
public func stoke_free_string(_ text: UnsafeMutablePointer<CChar>?) { unsafe free(text) }

// MARK: - Stores

@_cdecl("stoke_store_open")
public func stoke_store_open(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
    guarded {
        try unsafe requireOut(out, "store")
        unsafe out!.pointee = nil
        let handle = try StoreHandle(path: try unsafe string(path, "store path"))
        unsafe give(handle, out)
        return Status.ok
    }
}

@_cdecl("stoke_store_samples")
public func stoke_store_samples(_ pointer: UnsafeRawPointer?, _ samples: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, StoreHandle.self, "store")
        unsafe samples?.pointee = Int64(handle.store.sampleCount)
        return Status.ok
    }
}

@_cdecl("stoke_store_field_count")
public func stoke_store_field_count(_ pointer: UnsafeRawPointer?, _ count: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, StoreHandle.self, "store")
        unsafe count?.pointee = Int32(handle.store.fields.count)
        return Status.ok
    }
}

@_cdecl("stoke_store_field")
public func stoke_store_field(
    _ pointer: UnsafeRawPointer?, _ index: Int32, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
    _ dtype: UnsafeMutablePointer<Int32>?, _ rows: UnsafeMutablePointer<Int64>?, _ ndim: UnsafeMutablePointer<Int32>?,
    _ shape: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, StoreHandle.self, "store")
        let fields = handle.store.fields
        guard fields.indices.contains(Int(index)) else {
            throw CAPIError("\(handle.store.path): field index \(index) is outside 0..<\(fields.count)")
        }
        let field = fields[Int(index)]
        try unsafe writeShape(field.sampleShape, ndim, shape)
        unsafe name?.pointee = handle.names.pointer(Int(index))
        unsafe dtype?.pointee = field.dtype.code
        unsafe rows?.pointee = Int64(field.rows)
        return Status.ok
    }
}

@_cdecl("stoke_store_attribute")
public func stoke_store_attribute(
    _ pointer: UnsafeRawPointer?, _ name: UnsafePointer<CChar>?, _ value: UnsafeMutablePointer<UnsafePointer<CChar>?>?
) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, StoreHandle.self, "store")
        let key = try unsafe string(name, "attribute name")
        guard let value = unsafe value else { throw CAPIError("output pointer value is NULL") }
        guard let text = handle.store.attributes[key] else {
            unsafe value.pointee = nil
            return Status.ok
        }
        let table = handle.attributes[key] ?? CStringTable([text])
        handle.attributes[key] = table
        unsafe value.pointee = table.pointer(0)
        return Status.ok
    }
}

@_cdecl("stoke_store_close")
public func stoke_store_close(_ pointer: UnsafeMutableRawPointer?) { unsafe release(pointer, StoreHandle.self) }

// MARK: - Loader

@_cdecl("stoke_loader_open")
public func stoke_loader_open(
    _ store: UnsafeRawPointer?, _ options: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> Int32 {
    guarded {
        try unsafe requireOut(out, "loader")
        unsafe out!.pointee = nil
        let storeHandle = try unsafe object(store, StoreHandle.self, "store")
        let loaderOptions = try Options.loader(unsafe optionalString(options))
        let handle = try LoaderHandle(store: storeHandle.store, options: loaderOptions)
        unsafe give(handle, out)
        return Status.ok
    }
}

@_cdecl("stoke_loader_samples")
public func stoke_loader_samples(_ pointer: UnsafeRawPointer?, _ samples: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, LoaderHandle.self, "loader")
        unsafe samples?.pointee = Int64(handle.loader.sampleCount)
        return Status.ok
    }
}

@_cdecl("stoke_loader_batch_count")
public func stoke_loader_batch_count(_ pointer: UnsafeRawPointer?, _ epoch: Int64, _ count: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, LoaderHandle.self, "loader")
        guard epoch >= 0 else { throw CAPIError("epoch \(epoch) is negative") }
        unsafe count?.pointee = Int64(handle.loader.plan(epoch: Int(epoch)).batchCount)
        return Status.ok
    }
}

@_cdecl("stoke_loader_field_count")
public func stoke_loader_field_count(_ pointer: UnsafeRawPointer?, _ count: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, LoaderHandle.self, "loader")
        unsafe count?.pointee = Int32(handle.loader.layouts.count)
        return Status.ok
    }
}

@_cdecl("stoke_loader_field")
public func stoke_loader_field(
    _ pointer: UnsafeRawPointer?, _ index: Int32, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
    _ dtype: UnsafeMutablePointer<Int32>?, _ ndim: UnsafeMutablePointer<Int32>?, _ shape: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, LoaderHandle.self, "loader")
        let layouts = handle.loader.layouts
        guard layouts.indices.contains(Int(index)) else { throw CAPIError("loader field index \(index) is outside 0..<\(layouts.count)") }
        try unsafe writeShape(layouts[Int(index)].sampleShape, ndim, shape)
        unsafe name?.pointee = handle.names.pointer(Int(index))
        unsafe dtype?.pointee = layouts[Int(index)].dtype.code
        return Status.ok
    }
}

@_cdecl("stoke_loader_pinning")
public func stoke_loader_pinning(
    _ pointer: UnsafeRawPointer?, _ pinned: UnsafeMutablePointer<Int32>?, _ reason: UnsafeMutablePointer<UnsafePointer<CChar>?>?
) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, LoaderHandle.self, "loader")
        unsafe pinned?.pointee = handle.loader.pinning.pinned ? 1 : 0
        unsafe reason?.pointee = handle.pinningReason.pointer(0)
        return Status.ok
    }
}

@_cdecl("stoke_loader_start")
public func stoke_loader_start(_ pointer: UnsafeRawPointer?, _ epoch: Int64, _ startBatch: Int64) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, LoaderHandle.self, "loader")
        try handle.start(epoch: Int(epoch), at: Int(startBatch))
        return Status.ok
    }
}

@_cdecl("stoke_loader_next")
public func stoke_loader_next(_ pointer: UnsafeRawPointer?, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
    guarded {
        try unsafe requireOut(out, "batch")
        unsafe out!.pointee = nil
        let handle = try unsafe object(pointer, LoaderHandle.self, "loader")
        guard let batch = try handle.next() else { return Status.end }
        unsafe give(batch, out)
        return Status.ok
    }
}

@_cdecl("stoke_loader_stop")
public func stoke_loader_stop(_ pointer: UnsafeRawPointer?) -> Int32 {
    guarded {
        try unsafe object(pointer, LoaderHandle.self, "loader").epoch = nil
        return Status.ok
    }
}

@_cdecl("stoke_loader_position")
public func stoke_loader_position(
    _ pointer: UnsafeRawPointer?, _ epoch: UnsafeMutablePointer<Int64>?, _ nextBatch: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, LoaderHandle.self, "loader")
        unsafe epoch?.pointee = Int64(handle.epochNumber)
        unsafe nextBatch?.pointee = Int64(handle.nextBatch)
        return Status.ok
    }
}

@_cdecl("stoke_loader_state")
public func stoke_loader_state(_ pointer: UnsafeRawPointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, LoaderHandle.self, "loader")
        try unsafe duplicate(handle.state.json, out)
        return Status.ok
    }
}

@_cdecl("stoke_loader_restore")
public func stoke_loader_restore(_ pointer: UnsafeRawPointer?, _ json: UnsafePointer<CChar>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, LoaderHandle.self, "loader")
        try handle.restore(try LoaderState(json: try unsafe string(json, "loader state")))
        return Status.ok
    }
}

@_cdecl("stoke_loader_stats")
public func stoke_loader_stats(_ pointer: UnsafeRawPointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, LoaderHandle.self, "loader")
        try unsafe duplicate(handle.statsJSON, out)
        return Status.ok
    }
}

@_cdecl("stoke_loader_shutdown")
public func stoke_loader_shutdown(_ pointer: UnsafeRawPointer?) -> Int32 {
    guarded {
        try unsafe object(pointer, LoaderHandle.self, "loader").shutdown()
        return Status.ok
    }
}

@_cdecl("stoke_loader_close")
public func stoke_loader_close(_ pointer: UnsafeMutableRawPointer?) {
    guard let pointer = unsafe pointer else { return }
    unsafe Unmanaged<LoaderHandle>.fromOpaque(pointer).takeUnretainedValue().shutdown()
    unsafe release(pointer, LoaderHandle.self)
}

// MARK: - Batches

@_cdecl("stoke_batch_info")
public func stoke_batch_info(_ pointer: UnsafeRawPointer?, _ count: UnsafeMutablePointer<Int64>?, _ number: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let batch = try unsafe object(pointer, BatchHandle.self, "batch")
        unsafe count?.pointee = Int64(batch.count)
        unsafe number?.pointee = Int64(batch.number)
        return Status.ok
    }
}

@_cdecl("stoke_batch_field")
public func stoke_batch_field(
    _ pointer: UnsafeRawPointer?, _ index: Int32, _ data: UnsafeMutablePointer<UnsafeRawPointer?>?,
    _ dtype: UnsafeMutablePointer<Int32>?, _ ndim: UnsafeMutablePointer<Int32>?, _ shape: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let batch = try unsafe object(pointer, BatchHandle.self, "batch")
        guard batch.layouts.indices.contains(Int(index)) else {
            throw CAPIError("batch field index \(index) is outside 0..<\(batch.layouts.count)")
        }
        try unsafe writeShape(batch.shape(Int(index)), ndim, shape)
        unsafe data?.pointee = batch.fieldData[Int(index)]
        unsafe dtype?.pointee = batch.layouts[Int(index)].dtype.code
        return Status.ok
    }
}

@_cdecl("stoke_batch_indices")
public func stoke_batch_indices(_ pointer: UnsafeRawPointer?, _ indices: UnsafeMutablePointer<UnsafePointer<Int64>?>?) -> Int32 {
    guarded {
        let batch = try unsafe object(pointer, BatchHandle.self, "batch")
        unsafe indices?.pointee = batch.indices
        return Status.ok
    }
}

@_cdecl("stoke_batch_addresses")
public func stoke_batch_addresses(
    _ pointer: UnsafeRawPointer?, _ capacity: Int32, _ addresses: UnsafeMutablePointer<UnsafeRawPointer?>?,
    _ count: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let batch = try unsafe object(pointer, BatchHandle.self, "batch")
        guard Int(capacity) > batch.layouts.count, let addresses = unsafe addresses else {
            throw CAPIError("batch addresses: room for \(batch.layouts.count + 1) addresses is needed, not \(capacity)")
        }
        for unsafe (index, address) in unsafe batch.fieldData.enumerated() { unsafe addresses[index] = address }
        unsafe addresses[batch.layouts.count] = UnsafeRawPointer(batch.indices)
        unsafe count?.pointee = Int64(batch.count)
        return Status.ok
    }
}

@_cdecl("stoke_batch_release")
public func stoke_batch_release(_ pointer: UnsafeMutableRawPointer?) { unsafe release(pointer, BatchHandle.self) }

// MARK: - Writer

@_cdecl("stoke_writer_open")
public func stoke_writer_open(
    _ path: UnsafePointer<CChar>?, _ options: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> Int32 {
    guarded {
        try unsafe requireOut(out, "writer")
        unsafe out!.pointee = nil
        let handle = try WriterHandle(path: try unsafe string(path, "store path"), json: unsafe optionalString(options))
        unsafe give(handle, out)
        return Status.ok
    }
}

@_cdecl("stoke_writer_append")
public func stoke_writer_append(
    _ pointer: UnsafeRawPointer?, _ field: UnsafePointer<CChar>?, _ data: UnsafeRawPointer?, _ bytes: Int64
) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, WriterHandle.self, "writer")
        let name = try unsafe string(field, "field name")
        guard bytes >= 0 else { throw CAPIError("field '\(name)': byte count \(bytes) is negative") }
        guard unsafe bytes == 0 || data != nil else { throw CAPIError("field '\(name)': data is NULL") }
        try unsafe handle.writer.append(name, bytes: UnsafeRawBufferPointer(start: data, count: Int(bytes)))
        return Status.ok
    }
}

@_cdecl("stoke_writer_set_metadata")
public func stoke_writer_set_metadata(_ pointer: UnsafeRawPointer?, _ name: UnsafePointer<CChar>?, _ json: UnsafePointer<CChar>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, WriterHandle.self, "writer")
        try handle.writer.setMetadata(try unsafe string(name, "attribute name"), json: try unsafe string(json, "attribute JSON"))
        return Status.ok
    }
}

@_cdecl("stoke_writer_finish")
public func stoke_writer_finish(_ pointer: UnsafeRawPointer?, _ samples: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, WriterHandle.self, "writer")
        let summary = try handle.writer.finish()
        unsafe samples?.pointee = Int64(summary.samples)
        return Status.ok
    }
}

@_cdecl("stoke_writer_close")
public func stoke_writer_close(_ pointer: UnsafeMutableRawPointer?) { unsafe release(pointer, WriterHandle.self) }

@_cdecl("stoke_pack_files")
public func stoke_pack_files(_ path: UnsafePointer<CChar>?, _ options: UnsafePointer<CChar>?, _ samples: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let count = try packFiles(path: try unsafe string(path, "store path"), json: unsafe optionalString(options))
        unsafe samples?.pointee = Int64(count)
        return Status.ok
    }
}

// MARK: - Session

@_cdecl("stoke_session_open")
public func stoke_session_open(
    _ path: UnsafePointer<CChar>?, _ threads: Int32, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> Int32 {
    guarded {
        try unsafe requireOut(out, "session")
        unsafe out!.pointee = nil
        let handle = try SessionHandle(path: try unsafe string(path, "model path"), threads: Int(threads))
        unsafe give(handle, out)
        return Status.ok
    }
}

@_cdecl("stoke_session_io")
public func stoke_session_io(_ pointer: UnsafeRawPointer?, _ inputs: UnsafeMutablePointer<Int32>?, _ outputs: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, SessionHandle.self, "session")
        unsafe inputs?.pointee = Int32(handle.inputNames.count)
        unsafe outputs?.pointee = Int32(handle.outputNames.count)
        return Status.ok
    }
}

@_cdecl("stoke_session_input_name")
public func stoke_session_input_name(_ pointer: UnsafeRawPointer?, _ index: Int32, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, SessionHandle.self, "session")
        guard let text = unsafe handle.inputNames.pointer(Int(index)) else { throw CAPIError("input index \(index) is outside 0..<\(handle.inputNames.count)") }
        unsafe name?.pointee = text
        return Status.ok
    }
}

@_cdecl("stoke_session_output_name")
public func stoke_session_output_name(_ pointer: UnsafeRawPointer?, _ index: Int32, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, SessionHandle.self, "session")
        guard let text = unsafe handle.outputNames.pointer(Int(index)) else { throw CAPIError("output index \(index) is outside 0..<\(handle.outputNames.count)") }
        unsafe name?.pointee = text
        return Status.ok
    }
}

/// Runs `handle`'s model on `count` floats at `data` and hands back the output's address and shape.
private func run(
    _ handle: SessionHandle, input: String?, data: UnsafePointer<Float>, shape: [Int], output: String?,
    _ outData: UnsafeMutablePointer<UnsafePointer<Float>?>?, _ outNdim: UnsafeMutablePointer<Int32>?,
    _ outShape: UnsafeMutablePointer<Int64>?
) throws -> Int32 {
    let inputName = try handle.inputName(input)
    let outputName = try handle.outputName(output)
    guard let count = MemoryBudget.product(shape) else { throw CAPIError("input shape \(shape) overflows") }
    let start = ContinuousClock.now
    let buffer = unsafe UnsafeBufferPointer(start: data, count: count)
    let (address, shapeOut) = try unsafe handle.session.run(input: inputName, shape: shape, data: buffer.span) { outputs in
        guard let outShape = outputs.shape(outputName) else {
            throw CAPIError("the model has no output '\(outputName)' (outputs: \(outputs.names.joined(separator: ", ")))")
        }
        // The output lives in the session's arena until the next run; C callers are told so.
        let address = try unsafe outputs.withFloats(outputName) { span in unsafe span.withUnsafeBufferPointer { $0.baseAddress } }
        return unsafe (address, outShape)
    }
    let elapsed = ContinuousClock.now - start
    let parts = elapsed.components
    handle.seconds += Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    handle.samples += shape.first ?? 1
    try unsafe writeShape(shapeOut, outNdim, outShape)
    unsafe outData?.pointee = address
    return Status.ok
}

@_cdecl("stoke_session_run")
public func stoke_session_run(
    _ pointer: UnsafeRawPointer?, _ input: UnsafePointer<CChar>?, _ data: UnsafePointer<Float>?, _ ndim: Int32,
    _ shape: UnsafePointer<Int64>?, _ output: UnsafePointer<CChar>?, _ outData: UnsafeMutablePointer<UnsafePointer<Float>?>?,
    _ outNdim: UnsafeMutablePointer<Int32>?, _ outShape: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, SessionHandle.self, "session")
        guard let data = unsafe data else { throw CAPIError("input data is NULL") }
        let dims = try unsafe readShape(ndim, shape)
        return try unsafe run(handle, input: optionalString(input), data: data, shape: dims, output: optionalString(output), outData, outNdim, outShape)
    }
}

@_cdecl("stoke_session_run_batch")
public func stoke_session_run_batch(
    _ pointer: UnsafeRawPointer?, _ input: UnsafePointer<CChar>?, _ batchPointer: UnsafeRawPointer?, _ field: Int32,
    _ output: UnsafePointer<CChar>?, _ outData: UnsafeMutablePointer<UnsafePointer<Float>?>?,
    _ outNdim: UnsafeMutablePointer<Int32>?, _ outShape: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, SessionHandle.self, "session")
        let batch = try unsafe object(batchPointer, BatchHandle.self, "batch")
        guard batch.layouts.indices.contains(Int(field)) else {
            throw CAPIError("batch field index \(field) is outside 0..<\(batch.layouts.count)")
        }
        let layout = batch.layouts[Int(field)]
        guard layout.dtype == .f32 else {
            throw CAPIError("batch field '\(layout.name)' is \(layout.dtype.rawValue); the session runs f32 input (normalize it in the loader)")
        }
        let data = unsafe batch.fieldData[Int(field)].assumingMemoryBound(to: Float.self)
        return try unsafe run(handle, input: optionalString(input), data: data, shape: batch.shape(Int(field)),
                              output: optionalString(output), outData, outNdim, outShape)
    }
}

@_cdecl("stoke_session_stats")
public func stoke_session_stats(_ pointer: UnsafeRawPointer?, _ samples: UnsafeMutablePointer<Int64>?, _ seconds: UnsafeMutablePointer<Double>?) -> Int32 {
    guarded {
        let handle = try unsafe object(pointer, SessionHandle.self, "session")
        unsafe samples?.pointee = Int64(handle.samples)
        unsafe seconds?.pointee = handle.seconds
        return Status.ok
    }
}

@_cdecl("stoke_session_close")
public func stoke_session_close(_ pointer: UnsafeMutableRawPointer?) { unsafe release(pointer, SessionHandle.self) }
