// Whether this partition may act for the cluster. Owns the majority rule; acting on it (for
// example refusing writes) is the caller's decision.

/// The quorum state of the current membership.
///
/// With a configured node list of `configuredCount` nodes, the partition is quorate iff the
/// current members include *more than half* of the configured nodes (`2·present > configured`);
/// members missing from the list do not count. Without a node list there is nothing to count a
/// majority of, so the partition is **always quorate**, and `description` says so.
public struct Quorum: Sendable, Equatable, CustomStringConvertible {
    /// Nodes in the configured node list; 0 when there is no list.
    public var configuredCount: Int
    /// Configured nodes that are current members.
    public var presentCount: Int

    /// Creates a quorum state.
    public init(configuredCount: Int, presentCount: Int) {
        precondition(configuredCount >= 0, "negative configured count \(configuredCount)")
        precondition(presentCount >= 0 && presentCount <= configuredCount, "present \(presentCount) outside 0...\(configuredCount)")
        self.configuredCount = configuredCount
        self.presentCount = presentCount
    }

    /// Whether a node list is configured (otherwise quorum is not computed).
    public var isConfigured: Bool { configuredCount > 0 }

    /// Whether this partition is quorate: always without a node list, else a strict majority.
    public var isQuorate: Bool { !isConfigured || presentCount * 2 > configuredCount }

    /// `quorate (2 of 3 configured nodes)`, or the always-quorate note without a node list.
    public var description: String {
        guard isConfigured else { return "quorate (no configured node list: always quorate)" }
        return (isQuorate ? "quorate" : "not quorate") + " (\(presentCount) of \(configuredCount) configured nodes)"
    }
}
