// A processor's identity on the ring. Owns nothing else: addresses live in the transport.

/// A cluster-unique, non-zero processor id (spec §1.1).
///
/// Node ids are totally ordered numerically; the ring order (who passes the token to whom) and the
/// representative choice (lowest id) both follow that order. The raw value 0 is reserved and is
/// never a valid node id; the wire codec rejects it in every list.
public struct NodeID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    /// Creates a node id, or `nil` for the reserved value 0.
    public init?(rawValue: UInt32) {
        guard rawValue != 0 else { return nil }
        self.rawValue = rawValue
    }

    /// Creates a node id from a literal known to be non-zero (tests, simulation, configuration
    /// already validated). Traps on 0: passing 0 here is a programmer error.
    public init(_ rawValue: UInt32) {
        precondition(rawValue != 0, "node id 0 is reserved")
        self.rawValue = rawValue
    }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { String(rawValue) }
}
