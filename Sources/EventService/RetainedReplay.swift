// The replay of retained events to a new subscription, as a cursor the caller advances at its
// reader's pace (EventChannelService.continueReplay): nothing is copied or encoded ahead.

import Totem

/// Where the replay of retained events to one subscription has got to.
///
/// A replay takes the retained events that match the subscription and were stored before it
/// opened, in ring order (position, then id). It holds no events: each stretch is read from the
/// store when asked for, so an event that expires or is dropped at a cap before its turn is
/// skipped, and one stored after the subscription opened comes as a live delivery instead.
public struct RetainedReplay: Sendable, Equatable {
    /// The subscription replayed to.
    public let subscription: SubscriptionID
    /// Matching retained events when the subscription opened (what `event_subscribe` answers as
    /// `replayed`); fewer arrive when some expire or are dropped meanwhile.
    public let matchingAtStart: Int
    /// Entries stored at or after this stamp are not replayed.
    let stampLimit: UInt64
    /// The last entry looked at (`nil`: none yet).
    var after: RetentionKey?
    /// Whether every event has been replayed (or the subscription closed).
    public internal(set) var isFinished: Bool

    init(subscription: SubscriptionID, matchingAtStart: Int, stampLimit: UInt64) {
        self.subscription = subscription
        self.matchingAtStart = matchingAtStart
        self.stampLimit = stampLimit
        isFinished = matchingAtStart == 0
    }
}

extension EventChannelService {
    /// The most retained entries `continueReplay` looks at per call (matching or not), so that a
    /// call costs a bounded time however few of them match.
    public static let replayScanLimit = 1_024

    /// The next retained events of `replay`, in ring order: at least one when any is left,
    /// then more while their counted bytes (`max_retained_bytes`' measure) stay within
    /// `maximumBytes`. Finishes the replay when the store has nothing more for it, or when its
    /// subscription has closed. Events that expired by `now` are skipped.
    public func continueReplay(_ replay: inout RetainedReplay, now: MonotonicInstant, maximumBytes: Int) -> [DeliveredEvent] {
        guard !replay.isFinished else { return [] }
        guard let subscription = subscription(replay.subscription),
              let allowed = configuration(of: subscription.channel)?.subscribes else {
            replay.isFinished = true
            return []
        }
        var events: [DeliveredEvent] = []
        var bytes = 0
        let keys = retention.entries(after: replay.after, limit: Self.replayScanLimit)
        for key in keys {
            guard let entry = retention.entry(key) else { continue }
            if !events.isEmpty && bytes + entry.bytes > maximumBytes { return events }
            replay.after = key
            guard entry.stamp < replay.stampLimit, entry.expiresAt > now,
                  allowed.contains(entry.event.type), subscription.matches(entry.event) else { continue }
            events.append(entry.event)
            bytes += entry.bytes
        }
        if keys.count < Self.replayScanLimit { replay.isFinished = true }
        return events
    }
}
