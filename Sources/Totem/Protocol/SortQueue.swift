// The windowed store of one ring's messages by sequence number, with per-slot miss counters.
// It does not decide what to deliver or free; the protocol does (spec §3.1).

/// A window of `capacity` message slots starting at `head` (spec §3.1 `regularSortQueue`).
///
/// Sequence `s` may be stored while `head <= s < head + capacity` (serially). Slots below `head`
/// were released: the messages there are known to be held by every member and were delivered.
struct SortQueue: Sendable {
    /// The protocol never lets more than this many messages be outstanding (spec §4.15).
    static let capacity = 16_384

    private var slots: [DataMessage?]
    private var missCounts: [UInt8]
    /// The lowest sequence number that may still be stored.
    private(set) var head: SequenceNumber
    /// Number of occupied slots, for invariants and statistics.
    private(set) var occupied = 0

    init(head: SequenceNumber = SequenceNumber(1)) {
        slots = Array(repeating: nil, count: Self.capacity)
        missCounts = Array(repeating: 0, count: Self.capacity)
        self.head = head
    }

    private func slotIndex(_ sequence: SequenceNumber) -> Int {
        Int(sequence.rawValue % UInt32(Self.capacity))
    }

    func inRange(_ sequence: SequenceNumber) -> Bool {
        let distance = head.distance(to: sequence)
        return distance >= 0 && distance < Int32(Self.capacity)
    }

    func contains(_ sequence: SequenceNumber) -> Bool {
        inRange(sequence) && slots[slotIndex(sequence)] != nil
    }

    func message(at sequence: SequenceNumber) -> DataMessage? {
        guard inRange(sequence) else { return nil }
        return slots[slotIndex(sequence)]
    }

    /// Stores `message` at `sequence`; a caller checks `inRange` and `contains` first.
    mutating func add(_ message: DataMessage, at sequence: SequenceNumber) {
        precondition(inRange(sequence), "seq \(sequence) outside window at head \(head)")
        let index = slotIndex(sequence)
        precondition(slots[index] == nil, "seq \(sequence) stored twice")
        slots[index] = message
        missCounts[index] = 0
        occupied += 1
    }

    /// Counts one more token visit on which `sequence` was missing; returns the new count.
    mutating func incrementMissCount(_ sequence: SequenceNumber) -> Int {
        let index = slotIndex(sequence)
        if missCounts[index] < UInt8.max { missCounts[index] += 1 }
        return Int(missCounts[index])
    }

    /// Frees every slot up to and including `sequence` and moves the window past it.
    mutating func release(through sequence: SequenceNumber) {
        var next = head
        while next <= sequence && inRange(next) {
            let index = slotIndex(next)
            if slots[index] != nil {
                slots[index] = nil
                occupied -= 1
            }
            missCounts[index] = 0
            next = next.next
        }
        if head <= sequence { head = sequence.next }
    }

    /// Empties the queue and restarts the window at `head` (a new ring's recovery queue).
    mutating func reset(head newHead: SequenceNumber) {
        if occupied > 0 {
            for index in slots.indices { slots[index] = nil }
        }
        for index in missCounts.indices where missCounts[index] != 0 { missCounts[index] = 0 }
        occupied = 0
        head = newHead
    }
}
