// The retained events this node holds, with their expiry, and tombstones of recently expired
// ones. Owns expiry, the caps in events and in bytes, and the ring-order index that replays walk;
// deciding what to retain and when to re-publish is the service's.

import Totem

/// Where a retained event sorts: ring position, then id. The same order on every node: it is
/// the order of replays and re-publications, and the oldest goes first at a cap.
struct RetentionKey: Hashable, Comparable, Sendable {
    var position: RingPosition
    var id: EventID

    init(_ event: DeliveredEvent) {
        position = event.position
        id = event.id
    }

    static func < (lhs: RetentionKey, rhs: RetentionKey) -> Bool {
        lhs.position != rhs.position ? lhs.position < rhs.position : lhs.id < rhs.id
    }
}

/// Retained events by id, with receipt-relative expiry, caps in events and bytes (the oldest
/// by ring position goes first), tombstones, and a ring-order index.
struct RetentionStore: Sendable {
    struct Entry: Sendable {
        var event: DeliveredEvent
        var expiresAt: MonotonicInstant
        /// What the entry is counted for (`accountedBytes(of:)`).
        var bytes: Int
        /// When it was stored, in `stamp` units: a replay takes the entries stored before it began.
        var stamp: UInt64
    }

    /// The most bytes of events held (`accountedBytes(of:)` summed).
    let capacityBytes: Int
    private(set) var entries: [EventID: Entry] = [:]
    /// Keys of `entries` in ring order, from `orderHead` on (dropping the oldest moves the head;
    /// the array is compacted when the head passes half of it).
    private var order: [RetentionKey] = []
    private var orderHead = 0
    /// Bytes of the entries, as counted by `accountedBytes(of:)`.
    private(set) var bytes = 0
    /// The stamp the next entry gets (see `Entry.stamp`).
    private(set) var stamp: UInt64 = 1
    /// Events dropped before their expiry, at the cap in events and at the cap in bytes.
    private(set) var droppedAtEventCap = 0
    private(set) var droppedAtByteCap = 0
    /// Ids of expired or evicted events, remembered until the instant given.
    private var tombstones: [EventID: MonotonicInstant] = [:]
    /// No entry or tombstone expires before this instant (a lower bound: scanning is skipped
    /// while `now` is below it).
    private var earliestDeadline: MonotonicInstant?

    /// A store holding at most `capacityBytes` (at least `EventLimits.largestRetainedEventBytes`).
    init(capacityBytes: Int = EventLimits.defaultRetainedBytes) {
        precondition(capacityBytes >= EventLimits.largestRetainedEventBytes, "retention cap \(capacityBytes) below one event")
        self.capacityBytes = capacityBytes
    }

    /// Number of retained events.
    var count: Int { entries.count }

    /// Number of ids remembered after their event expired or was dropped.
    var tombstoneCount: Int { tombstones.count }

    /// Whether `id` is held, or was held and expired within the tombstone grace.
    func isKnown(_ id: EventID) -> Bool { entries[id] != nil || tombstones[id] != nil }

    /// The earliest instant at which an entry or tombstone expires, for the daemon's timer.
    var nextDeadline: MonotonicInstant? { earliestDeadline }

    /// What holding `event` is counted for: its payload, its attributes' keys and values, and
    /// the fixed overheads of `EventLimits` (the event's fields, the store's entry and index).
    static func accountedBytes(of event: DeliveredEvent) -> Int {
        var total = EventLimits.retainedEventOverheadBytes + event.payloadBytes.count
        for (key, value) in event.attributes {
            total += EventLimits.retainedAttributeOverheadBytes + key.utf8.count + value.utf8.count
        }
        return total
    }

    /// Stores `event` until `expiresAt`, replacing an entry with the same id. The payload is
    /// copied out of the ring message it arrived in, so that the store holds what it counts.
    /// At either cap the oldest other events by ring position (then id) are dropped, which is
    /// the same choice on every node with the same cap.
    mutating func insert(_ event: DeliveredEvent, expiresAt: MonotonicInstant) {
        let stored = DeliveredEvent(id: event.id, publisherEntity: event.publisherEntity, channel: event.channel, type: event.type,
                                    attributes: event.attributes, payload: Array(event.payloadBytes), retention: event.retention,
                                    position: event.position, isRepublished: event.isRepublished, sender: event.sender)
        let key = RetentionKey(stored)
        if let previous = entries.removeValue(forKey: event.id) {
            bytes -= previous.bytes
            removeFromOrder(RetentionKey(previous.event))
        } else if entries.count >= EventLimits.retainedEvents {
            dropOldest()
            droppedAtEventCap += 1
        }
        let size = Self.accountedBytes(of: stored)
        while bytes + size > capacityBytes, !entries.isEmpty {
            dropOldest()
            droppedAtByteCap += 1
        }
        entries[event.id] = Entry(event: stored, expiresAt: expiresAt, bytes: size, stamp: stamp)
        stamp += 1
        bytes += size
        insertIntoOrder(key)
        lowerDeadline(to: expiresAt)
        precondition(entries.count <= EventLimits.retainedEvents, "store over capacity: \(entries.count)")
        precondition(bytes <= capacityBytes, "store over its byte cap: \(bytes) of \(capacityBytes)")
        assert(order.count - orderHead == entries.count, "index of \(order.count - orderHead) for \(entries.count) entries")
    }

    /// Drops entries that expired at or before `now` (tombstoning them) and tombstones that
    /// ran out.
    mutating func expire(now: MonotonicInstant) {
        guard let deadline = earliestDeadline, deadline <= now else { return }
        earliestDeadline = nil
        var expiredAny = false
        for (id, entry) in entries where entry.expiresAt <= now {
            entries[id] = nil
            bytes -= entry.bytes
            tombstone(id, until: entry.expiresAt)
            expiredAny = true
        }
        if expiredAny {
            order = order[orderHead...].filter { entries[$0.id] != nil }
            orderHead = 0
        }
        tombstones = tombstones.filter { $0.value > now }
        for entry in entries.values { lowerDeadline(to: entry.expiresAt) }
        for until in tombstones.values { lowerDeadline(to: until) }
    }

    /// Retained events in ring-position order (then id): the order they are replayed in.
    var inPositionOrder: [Entry] {
        order[orderHead...].compactMap { entries[$0.id] }
    }

    /// Up to `limit` entries after `key` (from the oldest when `nil`), in ring order: a replay's
    /// next stretch. The caller filters them (stamp, expiry, subscription).
    func entries(after key: RetentionKey?, limit: Int) -> ArraySlice<RetentionKey> {
        var start = orderHead
        if let key { start = firstIndex(after: key) }
        return order[start..<min(order.count, start + limit)]
    }

    /// The entry under `key`, if it is still held.
    func entry(_ key: RetentionKey) -> Entry? { entries[key.id] }

    /// Retained events and their bytes per channel.
    var usageByChannel: [ChannelName: (events: Int, bytes: Int)] {
        var usage: [ChannelName: (events: Int, bytes: Int)] = [:]
        for entry in entries.values {
            let name = entry.event.channel
            let current = usage[name] ?? (0, 0)
            usage[name] = (current.events + 1, current.bytes + entry.bytes)
        }
        return usage
    }

    /// Drops the oldest entry, remembering its id until its own expiry (plus the grace), so that
    /// a re-publication of it meanwhile is not taken for a new event.
    private mutating func dropOldest() {
        guard orderHead < order.count else { return }
        let oldest = order[orderHead]
        orderHead += 1
        if orderHead > 64 && orderHead * 2 > order.count {
            order.removeSubrange(0..<orderHead)
            orderHead = 0
        }
        guard let entry = entries.removeValue(forKey: oldest.id) else { preconditionFailure("index names \(oldest.id), not held") }
        bytes -= entry.bytes
        tombstone(oldest.id, until: entry.expiresAt)
    }

    /// The index of the first key of `order` (from `orderHead`) greater than `key`.
    private func firstIndex(after key: RetentionKey) -> Int {
        var low = orderHead
        var high = order.count
        while low < high {
            let middle = low + (high - low) / 2
            if order[middle] <= key { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private mutating func insertIntoOrder(_ key: RetentionKey) {
        // Events usually arrive in ring order: the new key goes last.
        if orderHead == order.count || order[order.count - 1] < key {
            order.append(key)
        } else {
            order.insert(key, at: firstIndex(after: key))
        }
    }

    private mutating func removeFromOrder(_ key: RetentionKey) {
        let index = firstIndex(after: key) - 1
        guard index >= orderHead, order[index] == key else { preconditionFailure("held event \(key.id) missing from the index") }
        order.remove(at: index)
    }

    private mutating func tombstone(_ id: EventID, until: MonotonicInstant) {
        if tombstones.count >= EventLimits.tombstones {
            // Events dropped at a cap can be remembered for up to their whole retention (days):
            // past the bound, the half that runs out first is forgotten (a re-publication of one
            // of those would be taken in again, flagged as re-published).
            let ordered = tombstones.sorted { $0.value < $1.value }
            for (forgotten, _) in ordered.prefix(ordered.count / 2) { tombstones[forgotten] = nil }
        }
        tombstones[id] = until + EventLimits.tombstoneGrace
        lowerDeadline(to: until + EventLimits.tombstoneGrace)
    }

    private mutating func lowerDeadline(to instant: MonotonicInstant) {
        if let current = earliestDeadline, current <= instant { return }
        earliestDeadline = instant
    }
}
