// DeliveredEvent keeps its fields in one shared object: equality must still be field by field.

import Testing
import ServiceTestSupport
import Membership
import Totem
@testable import EventService

@Suite("DeliveredEvent")
struct DeliveredEventTests {
    private static func event(counter: UInt64 = 1, entity: EntityID = Fixtures.entity1, channel: ChannelName = Fixtures.devices,
                              type: EventType = .deviceState, attributes: [String: String] = ["a": "b"],
                              payload: [UInt8] = [1, 2], retention: Duration? = .seconds(2),
                              position: RingPosition = RingPosition(ringSequence: 4, index: 1), isRepublished: Bool = false,
                              sender: NodeID = NodeID(2)) -> DeliveredEvent {
        DeliveredEvent(id: EventID(publisher: NodeID(2), incarnation: 9, counter: counter), publisherEntity: entity,
                       channel: channel, type: type, attributes: attributes, payload: payload, retention: retention,
                       position: position, isRepublished: isRepublished, sender: sender)
    }

    @Test("separately built events with the same fields are equal; a copy keeps every field")
    func equalFields() {
        let one = Self.event()
        let copy = one
        #expect(one == Self.event())
        #expect(copy == one)
        #expect(copy.payload == [1, 2] && copy.attributes == ["a": "b"] && copy.retention == .seconds(2))
        #expect(copy.channel == Fixtures.devices && copy.type == .deviceState && copy.sender == NodeID(2))
    }

    @Test("an event made from a payload slice equals one made from the same bytes as an array")
    func payloadSlice() {
        let message: [UInt8] = [7, 7, 7, 1, 2]
        let fromSlice = DeliveredEvent(
            id: EventID(publisher: NodeID(2), incarnation: 9, counter: 1), publisherEntity: Fixtures.entity1,
            channel: Fixtures.devices, type: .deviceState, attributes: ["a": "b"], payloadBytes: message[3...],
            retention: .seconds(2), position: RingPosition(ringSequence: 4, index: 1), isRepublished: false, sender: NodeID(2))
        #expect(fromSlice == Self.event())
        #expect(fromSlice.payload == [1, 2] && fromSlice.payloadBytes.startIndex == 3)
        #expect(fromSlice != Self.event(payload: [7, 1, 2]))
    }

    @Test("a difference in any one field makes events unequal")
    func eachFieldCounts() {
        let base = Self.event()
        let variants = [
            Self.event(counter: 2), Self.event(entity: Fixtures.entity2), Self.event(channel: Fixtures.mwi),
            Self.event(type: .mwi), Self.event(attributes: [:]), Self.event(payload: [1]), Self.event(retention: nil),
            Self.event(position: RingPosition(ringSequence: 4, index: 2)), Self.event(isRepublished: true),
            Self.event(sender: NodeID(3)),
        ]
        for (index, variant) in variants.enumerated() {
            #expect(variant != base, "variant \(index) compared equal")
        }
    }
}
