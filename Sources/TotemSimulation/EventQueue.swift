// The simulator's agenda: a binary min-heap of pending events ordered by (time, insertion order).
// It does not interpret events; the Simulator does.

import Totem

/// What happens at one point of virtual time.
enum SimulationEvent {
    /// A packet reaches node `index`; dropped if that node's incarnation is no longer `incarnation`.
    case arrival(index: Int, incarnation: UInt32, packet: Packet)
    /// A timer expires; ignored unless `generation` is still the timer's current generation.
    case timer(index: Int, incarnation: UInt32, timer: RingTimer, generation: UInt64)
    /// A paused node wakes up (only if its pause is still number `pause`).
    case resume(index: Int, pause: UInt64)
    /// Node `index` learns that nothing listens at `node`'s address any more (the kernel's
    /// ICMP port unreachable for a unicast to a crashed node whose host is up).
    case unreachable(index: Int, incarnation: UInt32, node: NodeID)
    /// Node `index` reads multicast copy `id`, which waited unread in its socket
    /// (`MulticastSockets`); nothing if a token's drain read it already.
    case multicastRead(index: Int, incarnation: UInt32, id: UInt64)
}

/// A min-heap of events keyed by (time, insertion counter), so events at the same instant run
/// in the order they were scheduled and a run is deterministic.
struct EventQueue {
    private struct Entry {
        var time: Int64
        var order: UInt64
        var event: SimulationEvent

        @inline(__always)
        func precedes(_ other: Entry) -> Bool {
            time < other.time || (time == other.time && order < other.order)
        }
    }

    private var heap: [Entry] = []
    private var insertions: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }

    /// The time of the earliest event, if any.
    var nextTime: Int64? { heap.first?.time }

    mutating func schedule(_ event: SimulationEvent, at time: Int64) {
        insertions += 1
        heap.append(Entry(time: time, order: insertions, event: event))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest event.
    mutating func removeFirst() -> (time: Int64, event: SimulationEvent)? {
        guard !heap.isEmpty else { return nil }
        let last = heap.removeLast()
        guard !heap.isEmpty else { return (last.time, last.event) }
        let first = heap[0]
        heap[0] = last
        var parent = 0
        let count = heap.count
        while true {
            let left = 2 * parent + 1
            guard left < count else { break }
            let right = left + 1
            var smallest = left
            if right < count && heap[right].precedes(heap[left]) { smallest = right }
            guard heap[smallest].precedes(heap[parent]) else { break }
            heap.swapAt(smallest, parent)
            parent = smallest
        }
        return (first.time, first.event)
    }

    /// Removes every event.
    mutating func removeAll() {
        heap.removeAll(keepingCapacity: true)
    }
}
