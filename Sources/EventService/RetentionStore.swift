// The retained events this node holds, with their expiry, and tombstones of recently expired
// ones. Owns expiry and capacity; deciding what to retain and when to re-publish is the service's.

import Totem

/// Retained events by id, with receipt-relative expiry, capacity eviction, and tombstones.
struct RetentionStore: Sendable {
    struct Entry: Sendable {
        var event: DeliveredEvent
        var expiresAt: MonotonicInstant
    }

    private(set) var entries: [EventID: Entry] = [:]
    /// Ids of expired or evicted events, remembered until the instant given.
    private var tombstones: [EventID: MonotonicInstant] = [:]
    /// No entry or tombstone expires before this instant (a lower bound: scanning is skipped
    /// while `now` is below it).
    private var earliestDeadline: MonotonicInstant?

    /// Number of retained events.
    var count: Int { entries.count }

    /// Whether `id` is held, or was held and expired within the tombstone grace.
    func isKnown(_ id: EventID) -> Bool { entries[id] != nil || tombstones[id] != nil }

    /// The earliest instant at which an entry or tombstone expires, for the daemon's timer.
    var nextDeadline: MonotonicInstant? { earliestDeadline }

    /// Stores `event` until `expiresAt`, replacing an entry with the same id. When full, drops
    /// the oldest event by ring position (then id), which is the same choice on every node.
    mutating func insert(_ event: DeliveredEvent, expiresAt: MonotonicInstant) {
        if entries[event.id] == nil && entries.count >= EventLimits.retainedEvents {
            if let oldest = entries.values.min(by: { ($0.event.position, $0.event.id) < ($1.event.position, $1.event.id) }) {
                entries[oldest.event.id] = nil
                tombstone(oldest.event.id, until: expiresAt)
            }
        }
        entries[event.id] = Entry(event: event, expiresAt: expiresAt)
        lowerDeadline(to: expiresAt)
        precondition(entries.count <= EventLimits.retainedEvents, "store over capacity: \(entries.count)")
    }

    /// Drops entries that expired at or before `now` (tombstoning them) and tombstones that
    /// ran out.
    mutating func expire(now: MonotonicInstant) {
        guard let deadline = earliestDeadline, deadline <= now else { return }
        earliestDeadline = nil
        for (id, entry) in entries {
            if entry.expiresAt <= now {
                entries[id] = nil
                tombstones[id] = entry.expiresAt + EventLimits.tombstoneGrace
            }
        }
        tombstones = tombstones.filter { $0.value > now }
        for entry in entries.values { lowerDeadline(to: entry.expiresAt) }
        for until in tombstones.values { lowerDeadline(to: until) }
    }

    /// Retained events in ring-position order (then id): the order they are replayed in.
    var inPositionOrder: [Entry] {
        entries.values.sorted { ($0.event.position, $0.event.id) < ($1.event.position, $1.event.id) }
    }

    private mutating func tombstone(_ id: EventID, until: MonotonicInstant) {
        tombstones[id] = until + EventLimits.tombstoneGrace
        lowerDeadline(to: until + EventLimits.tombstoneGrace)
    }

    private mutating func lowerDeadline(to instant: MonotonicInstant) {
        if let current = earliestDeadline, current <= instant { return }
        earliestDeadline = instant
    }
}
