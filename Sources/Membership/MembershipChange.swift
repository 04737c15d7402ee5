// The change stream of the membership service, for in-process clients and `watch`.

import Totem

/// One change of the membership, in the order the service observed it.
///
/// Order within one configuration change: on TRANSITIONAL, `left` for each node that did not
/// come along (then `quorumChanged` if it flipped); on REGULAR, `left` for any member still
/// missing, `joined` for each new member, `viewInstalled`, then `quorumChanged` if it flipped.
/// `nodeIdentified` follows each announcement that taught something new about a node.
public enum MembershipChange: Sendable, Equatable {
    /// The node is no longer a member; `view` is the number of the view it was last in.
    case left(NodeID, view: UInt64)
    /// The node is a member from view `view` on.
    case joined(NodeID, view: UInt64)
    /// A REGULAR configuration installed this view.
    case viewInstalled(View)
    /// An announcement told us (something new about) this node: entity id, name or addresses.
    case nodeIdentified(NodeRecord)
    /// The partition gained or lost quorum.
    case quorumChanged(Quorum)
}
