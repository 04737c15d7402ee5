// What the directory knows about one node.

import Totem

/// One node of the directory: identity, naming, addresses and membership.
public struct NodeRecord: Sendable, Equatable {
    /// The node's Totem id.
    public var id: NodeID
    /// The configured name; else the name it announced; else `node<ID>`.
    public var name: String
    /// The configured addresses; else the addresses it announced.
    public var addresses: [NodeAddress]
    /// The entity id from its announcement (or our own, for this node); `nil` until it announced.
    public var entityID: EntityID?
    /// Whether the node is in the configured node list.
    public var isConfigured: Bool
    /// Whether the node is a member of the current configuration.
    public var isMember: Bool
    /// The view in which the node last became a member; `nil` while it is not a member.
    public var memberSinceView: UInt64?

    /// Creates a record.
    public init(id: NodeID, name: String, addresses: [NodeAddress], entityID: EntityID?, isConfigured: Bool,
                isMember: Bool, memberSinceView: UInt64?) {
        self.id = id
        self.name = name
        self.addresses = addresses
        self.entityID = entityID
        self.isConfigured = isConfigured
        self.isMember = isMember
        self.memberSinceView = memberSinceView
    }
}
