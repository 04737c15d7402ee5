// One entry of the configured node list, as the daemon hands it to the membership service.

import Totem

/// A node from the configuration's node list: its id, name and addresses.
///
/// When a node list is configured, it is the authority for names and addresses and the basis of
/// quorum. Nodes that are not in the list can still be members; they are named by their own
/// announcement.
public struct ConfiguredNode: Sendable, Equatable {
    /// The node's Totem id.
    public var id: NodeID
    /// The node's name (`NodeName` rules).
    public var name: String
    /// The node's addresses, in configuration order.
    public var addresses: [NodeAddress]

    /// Creates a node list entry.
    public init(id: NodeID, name: String, addresses: [NodeAddress]) {
        self.id = id
        self.name = name
        self.addresses = addresses
    }
}
