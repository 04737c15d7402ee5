// Configurations as delivered to the application (spec §1.6): transitional, then regular.

/// A configuration change, delivered in extended-virtual-synchrony order: TRANSITIONAL (the members
/// that move together from the old ring), then REGULAR (the new ring).
public struct ConfigurationChange: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case transitional
        case regular
    }

    public var kind: Kind
    /// The id of the new ring (both the transitional and the regular change carry it).
    public var ringID: RingID
    /// Ascending member ids of this configuration.
    public var members: [NodeID]
    /// Transitional: members of the old ring that did not come along.
    public var left: [NodeID]
    /// Regular: members of the new ring that were not in the transitional configuration.
    public var joined: [NodeID]
    /// Transitional: the nodes of `left` that announced a graceful leave (the others failed).
    public var leftGracefully: [NodeID]

    public init(
        kind: Kind, ringID: RingID, members: [NodeID], left: [NodeID], joined: [NodeID], leftGracefully: [NodeID] = []
    ) {
        self.kind = kind
        self.ringID = ringID
        self.members = members
        self.left = left
        self.joined = joined
        self.leftGracefully = leftGracefully
    }
}

/// An application message delivered in total order.
public struct DeliveredMessage: Sendable, Equatable {
    /// The node whose application submitted the message.
    public var sender: NodeID
    public var payload: [UInt8]
    /// The ring in which the message was originated.
    public var ringID: RingID
    public var delivery: DeliveryMode

    public init(sender: NodeID, payload: [UInt8], ringID: RingID, delivery: DeliveryMode) {
        self.sender = sender
        self.payload = payload
        self.ringID = ringID
        self.delivery = delivery
    }
}
