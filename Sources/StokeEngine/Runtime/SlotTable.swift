/// Owns the array of buffer addresses a plan's kernels read through (`Slots`).
@safe
final class SlotTable {
    let count: Int
    private let table: UnsafeMutablePointer<UnsafeMutableRawPointer>
    /// Every slot starts at this placeholder until the planner or the run binds it.
    private let placeholder = TensorStorage(byteCount: 64)

    init(count: Int) {
        self.count = count
        unsafe table = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: max(count, 1))
        unsafe table.initialize(repeating: placeholder.pointer, count: max(count, 1))
    }

    deinit { unsafe table.deallocate() }

    var slots: Slots { unsafe Slots(base: table) }
}
