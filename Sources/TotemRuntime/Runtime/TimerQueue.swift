// The event loop's timers: reusable timer slots ordered by deadline in an indexed binary heap, so
// re-arming a timer (the core does it on every token) moves it in place and leaves no garbage.
// Owns ordering only; the loop decides when to look and runs the callbacks.

import Totem


extension EventLoop {
    /// A handle to one timer of an `EventLoop`.
    public struct TimerID: Hashable, Sendable {
        let slot: Int
        let generation: UInt32
    }
}

/// Timers by deadline. Ties fire in the order they were armed.
///
/// Each timer is a slot holding its callback; an armed slot also sits in `heap`, and knows its
/// position there so that arming again or disarming costs O(log n) with no search and no
/// tombstones. A removed slot's generation increases, so stale `TimerID`s are ignored.
struct TimerQueue {
    private struct Slot {
        var callback: (() -> Void)?
        var generation: UInt32 = 0
        var deadline = MonotonicInstant.zero
        /// Arming order, breaking ties between equal deadlines.
        var order: UInt64 = 0
        /// Position in `heap`, or -1 when disarmed.
        var heapIndex = -1
        var isOneShot = false
    }

    private var slots: [Slot] = []
    private var freeSlots: [Int] = []
    private var heap: [Int] = []
    private var nextOrder: UInt64 = 0

    /// Number of armed timers.
    var armedCount: Int { heap.count }

    /// The earliest armed deadline.
    var nextDeadline: MonotonicInstant? { heap.first.map { slots[$0].deadline } }

    /// Creates a disarmed timer; a one-shot timer is removed after it fires.
    mutating func make(_ callback: @escaping () -> Void, isOneShot: Bool) -> EventLoop.TimerID {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
        } else {
            slot = slots.count
            slots.append(Slot())
        }
        slots[slot].callback = callback
        slots[slot].isOneShot = isOneShot
        slots[slot].heapIndex = -1
        return EventLoop.TimerID(slot: slot, generation: slots[slot].generation)
    }

    /// Whether `id` names a timer that has not been removed.
    func isLive(_ id: EventLoop.TimerID) -> Bool {
        id.slot >= 0 && id.slot < slots.count && slots[id.slot].generation == id.generation
            && slots[id.slot].callback != nil
    }

    /// Whether `id` is armed.
    func isArmed(_ id: EventLoop.TimerID) -> Bool {
        isLive(id) && slots[id.slot].heapIndex >= 0
    }

    /// Arms `id` for `deadline`, replacing any earlier deadline. Ignores removed timers.
    mutating func arm(_ id: EventLoop.TimerID, at deadline: MonotonicInstant) {
        guard isLive(id) else { return }
        let slot = id.slot
        slots[slot].deadline = deadline
        slots[slot].order = nextOrder
        nextOrder &+= 1
        if slots[slot].heapIndex < 0 {
            heap.append(slot)
            slots[slot].heapIndex = heap.count - 1
            siftUp(heap.count - 1)
        } else {
            let index = slots[slot].heapIndex
            siftUp(index)
            siftDown(slots[slot].heapIndex)
        }
    }

    /// Disarms `id`; it stays usable. Ignores removed or disarmed timers.
    mutating func disarm(_ id: EventLoop.TimerID) {
        guard isLive(id), slots[id.slot].heapIndex >= 0 else { return }
        removeFromHeap(at: slots[id.slot].heapIndex)
    }

    /// Disarms and frees `id`; later calls with it do nothing.
    mutating func remove(_ id: EventLoop.TimerID) {
        guard isLive(id) else { return }
        disarm(id)
        free(id.slot)
    }

    /// Removes the earliest timer if its deadline is at or before `now`, and returns its
    /// callback for the caller to run (after this mutation, so the callback may re-arm it).
    mutating func popExpired(now: MonotonicInstant) -> (() -> Void)? {
        guard let top = heap.first, slots[top].deadline <= now else { return nil }
        removeFromHeap(at: 0)
        let callback = slots[top].callback
        if slots[top].isOneShot { free(top) }
        return callback
    }

    /// Removes every timer (the loop is shutting down; this breaks reference cycles).
    mutating func removeAll() {
        for slot in slots.indices where slots[slot].callback != nil {
            free(slot)
        }
        heap.removeAll()
    }

    // MARK: Heap

    private mutating func free(_ slot: Int) {
        slots[slot].callback = nil
        slots[slot].heapIndex = -1
        slots[slot].generation &+= 1
        freeSlots.append(slot)
    }

    private func precedes(_ a: Int, _ b: Int) -> Bool {
        let left = slots[heap[a]]
        let right = slots[heap[b]]
        return left.deadline < right.deadline || (left.deadline == right.deadline && left.order < right.order)
    }

    private mutating func swapEntries(_ a: Int, _ b: Int) {
        heap.swapAt(a, b)
        slots[heap[a]].heapIndex = a
        slots[heap[b]].heapIndex = b
    }

    private mutating func removeFromHeap(at index: Int) {
        let slot = heap[index]
        let last = heap.count - 1
        if index != last { swapEntries(index, last) }
        heap.removeLast()
        slots[slot].heapIndex = -1
        if index < heap.count {
            let moved = heap[index]
            siftUp(index)
            siftDown(slots[moved].heapIndex)
        }
    }

    private mutating func siftUp(_ start: Int) {
        var index = start
        while index > 0 {
            let parent = (index - 1) / 2
            guard precedes(index, parent) else { return }
            swapEntries(index, parent)
            index = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var index = start
        while true {
            let left = 2 * index + 1
            guard left < heap.count else { return }
            let right = left + 1
            var smallest = index
            if precedes(left, smallest) { smallest = left }
            if right < heap.count && precedes(right, smallest) { smallest = right }
            guard smallest != index else { return }
            swapEntries(index, smallest)
            index = smallest
        }
    }
}
