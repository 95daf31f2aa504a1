/// A fixed-size heap buffer the trainer's passes read and write through one stable pointer (arrays
/// would hand out pointers that are only valid inside a closure, and every layer pass needs several
/// buffers at once). The trainer's pointer code lives in this file and in the layer passes.
@safe final class TrainingBuffer<Element: BitwiseCopyable> {
    let pointer: UnsafeMutablePointer<Element>
    let count: Int

    init(count: Int, value: Element) {
        self.count = count
        unsafe pointer = UnsafeMutablePointer<Element>.allocate(capacity: max(count, 1))
        unsafe pointer.initialize(repeating: value, count: max(count, 1))
    }

    init(_ values: [Element]) {
        count = values.count
        unsafe pointer = UnsafeMutablePointer<Element>.allocate(capacity: max(count, 1))
        for (index, value) in values.enumerated() { unsafe (pointer + index).initialize(to: value) }
    }

    deinit { unsafe pointer.deallocate() }

    subscript(index: Int) -> Element {
        get { unsafe pointer[index] }
        set { unsafe pointer[index] = newValue }
    }

    var array: [Element] { unsafe Array(UnsafeBufferPointer(start: pointer, count: count)) }

    func fill(_ value: Element, count n: Int? = nil) { unsafe pointer.update(repeating: value, count: n ?? count) }

    func copy(from other: TrainingBuffer<Element>) { unsafe pointer.update(from: other.pointer, count: min(count, other.count)) }
}
