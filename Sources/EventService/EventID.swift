// Event identity and ring position.

import Totem

/// A cluster-unique event id: publisher node, the publisher process's incarnation, and a counter.
///
/// The counter starts at 1 in every process; the incarnation, supplied by the daemon and greater
/// at every start of the same node (a persisted boot count, or the wall-clock start time),
/// keeps a restarted publisher's ids apart from those of its previous life, which other nodes may
/// still retain. Ids order by node, then incarnation, then counter.
public struct EventID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The node whose process published the event.
    public var publisher: NodeID
    /// The publishing process's incarnation.
    public var incarnation: UInt64
    /// The publisher's counter, from 1.
    public var counter: UInt64

    /// Creates an id. `counter` must not be 0.
    public init(publisher: NodeID, incarnation: UInt64, counter: UInt64) {
        precondition(counter != 0, "event counter 0 is reserved")
        self.publisher = publisher
        self.incarnation = incarnation
        self.counter = counter
    }

    public static func < (lhs: EventID, rhs: EventID) -> Bool {
        (lhs.publisher.rawValue, lhs.incarnation, lhs.counter) < (rhs.publisher.rawValue, rhs.incarnation, rhs.counter)
    }

    /// `NODE.INCARNATION.COUNTER`
    public var description: String { "\(publisher).\(incarnation).\(counter)" }
}

/// Where an event was delivered in ring order: the ring's sequence number and the event's index
/// among the event-service messages delivered in that ring (from 0).
///
/// Members of one ring agree on positions. Positions of later rings are greater (a new ring's
/// sequence exceeds every sequence its members saw). Used to order events "latest in ring order"
/// even across configuration changes and merges.
public struct RingPosition: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The ring's sequence number (`RingID.sequence`).
    public var ringSequence: UInt64
    /// The index among event messages delivered in that ring.
    public var index: UInt64

    /// Creates a position.
    public init(ringSequence: UInt64, index: UInt64) {
        self.ringSequence = ringSequence
        self.index = index
    }

    public static func < (lhs: RingPosition, rhs: RingPosition) -> Bool {
        (lhs.ringSequence, lhs.index) < (rhs.ringSequence, rhs.index)
    }

    /// `SEQUENCE:INDEX`
    public var description: String { "\(ringSequence):\(index)" }
}
