import Foundation
import StokeStore

/// Decoded chunks shared by all loader workers, within a byte budget, so a chunk is decoded once while
/// it is still useful (once per epoch in chunk-shuffle order when the budget holds a window).
///
/// Each field has a fixed set of slots, each a chunk-sized buffer allocated once; a chunk→slot table
/// replaces a dictionary, so acquiring and releasing allocate nothing. A slot being decoded is waited
/// for by other workers that need the same chunk; eviction takes the least recently used slot nobody
/// holds. All bookkeeping is guarded by `condition` (hence `@unchecked Sendable`); decoding happens
/// outside it.
@safe final class ChunkCache: @unchecked Sendable {
    private enum State { case empty, decoding, ready }
    private struct Slot {
        var chunk = -1
        var state = State.empty
        var users = 0
        var lastUse: UInt64 = 0
    }

    @safe private final class FieldSlots {
        let chunkBytes: Int
        let memory: UnsafeMutableRawPointer
        var slots: [Slot]
        var slotOfChunk: [Int]
        var decodedThisEpoch: [Bool]
        init(chunkBytes: Int, slotCount: Int, chunkCount: Int) {
            self.chunkBytes = chunkBytes
            var pointer: UnsafeMutableRawPointer? = nil
            let status = unsafe posix_memalign(&pointer, 64, max(64, chunkBytes * slotCount))
            precondition(status == 0, "posix_memalign of \(chunkBytes * slotCount) bytes failed")
            unsafe memory = pointer!
            slots = Array(repeating: Slot(), count: slotCount)
            slotOfChunk = Array(repeating: -1, count: chunkCount)
            decodedThisEpoch = Array(repeating: false, count: chunkCount)
        }
        deinit { unsafe free(memory) }
        func buffer(_ slot: Int) -> UnsafeMutableRawBufferPointer {
            unsafe UnsafeMutableRawBufferPointer(start: memory.advanced(by: slot * chunkBytes), count: chunkBytes)
        }
    }

    private let condition = NSCondition()
    private let fields: [FieldSlots?]       // slots guarded by condition
    private var tick: UInt64 = 0            // guarded by condition
    private(set) var decodes = 0            // guarded by condition
    private(set) var redecodes = 0          // guarded by condition
    private(set) var hits = 0               // guarded by condition

    /// Slots per field: the budget split in proportion to chunk sizes, at least `minimumSlots`, at most
    /// the field's chunk count. Fields with `chunkBytes == 0` are not cached.
    init(chunkBytes: [Int], chunkCounts: [Int], budgetBytes: Int, minimumSlots: Int) {
        let total = max(1, chunkBytes.reduce(0, +))
        fields = zip(chunkBytes, chunkCounts).map { bytes, count in
            guard bytes > 0, count > 0 else { return nil }
            let share = Int(Double(budgetBytes) * Double(bytes) / Double(total))
            let slots = min(count, max(minimumSlots, share / bytes))
            return FieldSlots(chunkBytes: bytes, slotCount: slots, chunkCount: count)
        }
    }

    /// Slot counts per field (0 for uncached fields), for reports.
    var slotCounts: [Int] { fields.map { $0?.slots.count ?? 0 } }

    /// Resets the per-epoch decode record used to count re-decodes.
    func startEpoch() {
        condition.lock()
        for field in fields {
            guard let field else { continue }
            for index in field.decodedThisEpoch.indices { field.decodedThisEpoch[index] = false }
        }
        decodes = 0
        redecodes = 0
        hits = 0
        condition.unlock()
    }

    /// The decoded bytes of `chunk`, decoding it with `decode` if no slot holds it. The caller must
    /// `release` the returned slot when done reading. Without `wait`, returns nil instead of waiting
    /// for another worker that is decoding the chunk (so the caller can do other work first).
    func acquire(
        field: Int, chunk: Int, wait: Bool = true, decode: (UnsafeMutableRawBufferPointer) throws(StoreError) -> Void
    ) throws(StoreError) -> (slot: Int, bytes: UnsafeRawBufferPointer)? {
        guard let cache = fields[field] else { preconditionFailure("field \(field) is not cached") }
        condition.lock()
        while true {
            let held = cache.slotOfChunk[chunk]
            if held >= 0 {
                if cache.slots[held].state == .ready {
                    cache.slots[held].users += 1
                    hits += 1
                    condition.unlock()
                    return unsafe (held, UnsafeRawBufferPointer(cache.buffer(held)))
                }
                if !wait {
                    condition.unlock()
                    return nil
                }
                condition.wait()
                continue
            }
            guard let victim = victimSlot(cache) else {
                condition.wait()
                continue
            }
            let previous = cache.slots[victim].chunk
            if previous >= 0 { cache.slotOfChunk[previous] = -1 }
            cache.slots[victim] = Slot(chunk: chunk, state: .decoding, users: 1, lastUse: tick)
            cache.slotOfChunk[chunk] = victim
            if cache.decodedThisEpoch[chunk] { redecodes += 1 } else { cache.decodedThisEpoch[chunk] = true }
            decodes += 1
            condition.unlock()
            do {
                try unsafe decode(cache.buffer(victim))
            } catch {
                condition.lock()
                cache.slots[victim] = Slot()
                cache.slotOfChunk[chunk] = -1
                condition.broadcast()
                condition.unlock()
                throw error
            }
            condition.lock()
            cache.slots[victim].state = .ready
            condition.broadcast()
            condition.unlock()
            return unsafe (victim, UnsafeRawBufferPointer(cache.buffer(victim)))
        }
    }

    func release(field: Int, slot: Int) {
        guard let cache = fields[field] else { return }
        condition.lock()
        cache.slots[slot].users -= 1
        tick += 1
        cache.slots[slot].lastUse = tick
        if cache.slots[slot].users == 0 { condition.broadcast() }
        condition.unlock()
    }

    /// An empty slot, else the least recently used ready slot nobody holds; nil when all are busy.
    private func victimSlot(_ cache: FieldSlots) -> Int? {
        var best: Int? = nil
        var bestUse = UInt64.max
        for index in cache.slots.indices {
            let slot = cache.slots[index]
            if slot.state == .empty { return index }
            if slot.state == .ready && slot.users == 0 && slot.lastUse < bestUse {
                best = index
                bestUse = slot.lastUse
            }
        }
        return best
    }
}
