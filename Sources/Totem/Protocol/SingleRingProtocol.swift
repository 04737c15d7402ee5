// The Totem single-ring protocol for one node: stored state and the public entry points.
// Pure and deterministic; no I/O, clock, randomness or threads (see Totem.swift).

/// The Totem single-ring ordering and membership protocol for one node.
public struct SingleRingProtocol: Sendable {
    public let nodeID: NodeID
    public let settings: TotemSettings

    public init(nodeID: NodeID, settings: TotemSettings, persistedRingSequence: UInt64?) {
        self.nodeID = nodeID
        self.settings = settings
    }

    /// Starts the protocol: enters GATHER. Input before `start` is ignored.
    public mutating func start(now: MonotonicInstant) -> [Effect] { [] }

    /// A decoded packet arrived. The runtime hands multicast datagrams that were already queued
    /// before a token (spec §3.3 `receiveFlush`, pitfall P1).
    public mutating func receive(_ packet: Packet, now: MonotonicInstant) -> [Effect] { [] }

    /// A timer armed by an earlier `armTimer` effect expired.
    public mutating func timerExpired(_ timer: RingTimer, now: MonotonicInstant) -> [Effect] { [] }

    /// Queues an application message for totally ordered delivery to every member.
    public mutating func submit(_ payload: [UInt8], delivery: DeliveryMode = .agreed, now: MonotonicInstant) throws(SubmitError) -> [Effect] { [] }

    /// Leaves the ring gracefully: multicasts a LEAVE and stops.
    public mutating func leave(now: MonotonicInstant) -> [Effect] { [] }
}
