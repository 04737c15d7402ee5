// The identity of one ring: which representative formed it and its ring sequence number.

/// A ring id (spec §1.2): the representative that created the ring and the ring sequence number.
///
/// Equality is field-wise. A new ring gets `sequence = maxRingSequenceSeen + 4`, so a node's ring
/// sequence numbers only grow; the last one is persisted so a restart never reuses it.
public struct RingID: Hashable, Sendable, CustomStringConvertible {
    /// The node that created the ring (the lowest id of its members when it was formed).
    public var representative: NodeID
    /// The ring sequence number. Strictly increasing across the rings one node installs.
    public var sequence: UInt64

    public init(representative: NodeID, sequence: UInt64) {
        self.representative = representative
        self.sequence = sequence
    }

    /// Printed as `REP.SEQ`, the form used in traces, logs and the CLI.
    public var description: String { "\(representative.rawValue).\(sequence)" }
}
