// An event as local subscribers receive it.

import Membership
import Totem

/// An event delivered by the ring (or replayed from the retention store) to local subscribers.
///
/// A value, but its fields live in one immutable heap object: an event travels through the
/// service's effects, the device-state layer and the daemon, and every copy of a ten-field struct
/// retained and released its strings, attributes and payload one by one (about forty reference
/// count operations per delivered event). A copy is now one retain.
public struct DeliveredEvent: Sendable, Equatable {
    private final class Fields: Sendable {
        let id: EventID
        let publisherEntity: EntityID
        let channel: ChannelName
        let type: EventType
        let attributes: [String: String]
        let payload: ArraySlice<UInt8>
        let retention: Duration?
        let position: RingPosition
        let isRepublished: Bool
        let sender: NodeID

        init(id: EventID, publisherEntity: EntityID, channel: ChannelName, type: EventType, attributes: [String: String],
             payload: ArraySlice<UInt8>, retention: Duration?, position: RingPosition, isRepublished: Bool, sender: NodeID) {
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

    private let fields: Fields

    /// The cluster-unique id; `id.publisher` is the publishing node.
    public var id: EventID { fields.id }
    /// The publisher's entity id.
    public var publisherEntity: EntityID { fields.publisherEntity }
    /// The channel it was published on.
    public var channel: ChannelName { fields.channel }
    /// Its type.
    public var type: EventType { fields.type }
    /// Attributes, which subscription filters match.
    public var attributes: [String: String] { fields.attributes }
    /// The opaque payload.
    public var payload: [UInt8] { Array(fields.payload) }
    /// The payload as stored: for an event from the ring, a slice of the ring message (no copy).
    public var payloadBytes: ArraySlice<UInt8> { fields.payload }
    /// The retention it arrived with (the remaining retention for a re-published event); `nil`
    /// when not retained.
    public var retention: Duration? { fields.retention }
    /// The ring position of the original publication.
    public var position: RingPosition { fields.position }
    /// Whether it arrived as a re-publication after a join rather than as the original.
    public var isRepublished: Bool { fields.isRepublished }
    /// The node that submitted this copy to the ring (the publisher, or a re-publisher).
    public var sender: NodeID { fields.sender }

    /// Creates a delivered event.
    public init(id: EventID, publisherEntity: EntityID, channel: ChannelName, type: EventType, attributes: [String: String],
                payload: [UInt8], retention: Duration?, position: RingPosition, isRepublished: Bool, sender: NodeID) {
        self.init(id: id, publisherEntity: publisherEntity, channel: channel, type: type, attributes: attributes,
                  payloadBytes: payload[...], retention: retention, position: position, isRepublished: isRepublished, sender: sender)
    }

    /// `init(id:...payload:...)` with the payload as a slice.
    public init(id: EventID, publisherEntity: EntityID, channel: ChannelName, type: EventType, attributes: [String: String],
                payloadBytes payload: ArraySlice<UInt8>, retention: Duration?, position: RingPosition, isRepublished: Bool,
                sender: NodeID) {
        fields = Fields(id: id, publisherEntity: publisherEntity, channel: channel, type: type, attributes: attributes,
                        payload: payload, retention: retention, position: position, isRepublished: isRepublished, sender: sender)
    }

    /// Whether `other` is a copy of this very value (they share their fields), which holds
    /// without comparing a field: a caller encoding an event once for several subscribers
    /// recognizes the event it encoded last.
    public func sharesFields(with other: DeliveredEvent) -> Bool { fields === other.fields }

    /// Field by field, as the synthesized conformance of the plain struct compared.
    public static func == (lhs: DeliveredEvent, rhs: DeliveredEvent) -> Bool {
        if lhs.fields === rhs.fields { return true }
        return lhs.id == rhs.id && lhs.publisherEntity == rhs.publisherEntity && lhs.channel == rhs.channel
            && lhs.type == rhs.type && lhs.attributes == rhs.attributes && lhs.payloadBytes == rhs.payloadBytes
            && lhs.retention == rhs.retention && lhs.position == rhs.position
            && lhs.isRepublished == rhs.isRepublished && lhs.sender == rhs.sender
    }
}
