// An event as local subscribers receive it.

import Membership
import Totem

/// An event delivered by the ring (or replayed from the retention store) to local subscribers.
public struct DeliveredEvent: Sendable, Equatable {
    /// The cluster-unique id; `id.publisher` is the publishing node.
    public var id: EventID
    /// The publisher's entity id.
    public var publisherEntity: EntityID
    /// The channel it was published on.
    public var channel: ChannelName
    /// Its type.
    public var type: EventType
    /// Attributes, which subscription filters match.
    public var attributes: [String: String]
    /// The opaque payload.
    public var payload: [UInt8]
    /// The retention it arrived with (the remaining retention for a re-published event); `nil`
    /// when not retained.
    public var retention: Duration?
    /// The ring position of the original publication.
    public var position: RingPosition
    /// Whether it arrived as a re-publication after a join rather than as the original.
    public var isRepublished: Bool
    /// The node that submitted this copy to the ring (the publisher, or a re-publisher).
    public var sender: NodeID

    /// Creates a delivered event.
    public init(id: EventID, publisherEntity: EntityID, channel: ChannelName, type: EventType, attributes: [String: String],
                payload: [UInt8], retention: Duration?, position: RingPosition, isRepublished: Bool, sender: NodeID) {
        self.id = id
        self.publisherEntity = publisherEntity
        self.channel = channel
        self.type = type
        self.attributes = attributes
        self.payload = payload
        self.retention = retention
        self.position = position
        self.isRepublished = isRepublished
        self.sender = sender
    }
}
