// Array's `withUnsafe*Bytes` rethrow untyped errors; these keep `throws(StoreError)` intact.

public func withBytes<Element, Result>(
    of array: [Element], _ body: (UnsafeRawBufferPointer) throws(StoreError) -> Result
) throws(StoreError) -> Result {
    let outcome: Swift.Result<Result, StoreError> = unsafe array.withUnsafeBytes { bytes in
        Swift.Result { () throws(StoreError) -> Result in try unsafe body(bytes) }
    }
    return try outcome.get()
}

public func withMutableBytes<Element, Result>(
    of array: inout [Element], _ body: (UnsafeMutableRawBufferPointer) throws(StoreError) -> Result
) throws(StoreError) -> Result {
    let outcome: Swift.Result<Result, StoreError> = unsafe array.withUnsafeMutableBytes { bytes in
        Swift.Result { () throws(StoreError) -> Result in try unsafe body(bytes) }
    }
    return try outcome.get()
}
