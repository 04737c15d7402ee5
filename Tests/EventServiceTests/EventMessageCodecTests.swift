// The event message's binary format: round trips, determinism, one "rejects ..." test per
// decoder check, and a seeded fuzz test.

import Testing
import ServiceTestSupport
import Membership
import Totem
@testable import EventService

@Suite("EventMessage codec")
struct EventMessageCodecTests {
    static let id = EventID(publisher: NodeID(0x0102_0304), incarnation: 5, counter: 6)
    static let published = EventMessage(kind: .published, id: id, publisherEntity: Fixtures.entity1, channel: Fixtures.devices,
                                        type: .deviceState, retentionMilliseconds: 0,
                                        attributes: ["device": "Custom:mystate", "b": "", "a": "\u{E9}"], payload: [1, 2, 3])
    static let republished = EventMessage(kind: .republished(originalPosition: RingPosition(ringSequence: 8, index: 3)), id: id,
                                          publisherEntity: Fixtures.entity2, channel: Fixtures.mwi, type: .mwi,
                                          retentionMilliseconds: 1234, attributes: [:], payload: [])

    /// Offsets in `published`: 29 channel length, 30... channel, then type, retention, count.
    static let channelOffset = 29
    static var typeOffset: Int { channelOffset + 1 + Fixtures.devices.rawValue.utf8.count }
    static var retentionOffset: Int { typeOffset + 1 + EventType.deviceState.rawValue.utf8.count }
    static var attributeCountOffset: Int { retentionOffset + 4 }

    @Test("round trips both kinds")
    func roundTrip() throws {
        #expect(try EventMessage(decoding: Self.published.encoded()) == Self.published)
        #expect(try EventMessage(decoding: Self.republished.encoded()) == Self.republished)
    }

    @Test("a name cache gives the names of the bytes read, whatever came before, and keeps no bad name")
    func nameCache() throws {
        var names = EventNameCache()
        let otherChannel = EventMessage(kind: .published, id: Self.id, publisherEntity: Fixtures.entity1,
                                        channel: ChannelName("device_statf")!, type: .mwi, retentionMilliseconds: 0,
                                        attributes: [:], payload: [])
        // Same names twice, a channel differing in its last byte and another type, then the first again.
        for message in [Self.published, Self.published, otherChannel, Self.republished, Self.published] {
            #expect(try EventMessage(decoding: message.encoded(), names: &names) == message)
        }
        // A bad channel right after a good one of the same length is still refused, and refused again.
        var bad = Self.published.encoded()
        bad[Self.channelOffset + 1] = UInt8(ascii: " ")
        for _ in 0..<2 {
            do {
                _ = try EventMessage(decoding: bad, names: &names)
                Issue.record("a channel with a space was accepted")
            } catch {
                #expect(error == .invalidText(field: "channel"))
            }
        }
        #expect(try EventMessage(decoding: Self.published.encoded(), names: &names) == Self.published)
    }

    @Test("a decoded payload is a slice of the message: its bytes, and the same encoding again")
    func payloadIsASliceOfTheMessage() throws {
        let bytes = Self.published.encoded()
        let decoded = try EventMessage(decoding: bytes)
        #expect(decoded.payloadBytes.startIndex == bytes.count - 3 && decoded.payloadBytes.endIndex == bytes.count)
        #expect(decoded.payload == [1, 2, 3])
        #expect(decoded.encoded() == bytes)
        var changed = decoded
        changed.payload = [9]
        #expect(changed.payloadBytes.elementsEqual([9]) && changed.encoded().suffix(5) == [0, 0, 0, 1, 9])
        #expect(decoded.payload == [1, 2, 3], "the decoded message is unchanged")
    }

    @Test("the header layout is big-endian and fixed")
    func layout() {
        let bytes = Self.published.encoded()
        #expect(Array(bytes[0..<29]) == [2, 1, 1, 1, 2, 3, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 6])
        #expect(bytes[Self.attributeCountOffset] == 3)
        #expect(Array(bytes.suffix(7)) == [0, 0, 0, 3, 1, 2, 3])
    }

    @Test("attributes are encoded in ascending key order: equal dictionaries give equal bytes")
    func deterministic() {
        var forward: [String: String] = [:]
        var backward: [String: String] = [:]
        let keys = (0..<20).map { "key\($0)" }
        for key in keys { forward[key] = key.uppercased() }
        for key in keys.reversed() { backward[key] = key.uppercased() }
        let make = { (attributes: [String: String]) in
            EventMessage(kind: .published, id: Self.id, publisherEntity: Fixtures.entity1, channel: Fixtures.mwi, type: .mwi,
                         retentionMilliseconds: 0, attributes: attributes, payload: []).encoded()
        }
        #expect(make(forward) == make(backward))
        // Keys "a", "b", "device" follow the count as: length, key, value length, value.
        let attributes = Array(Self.published.encoded()[(Self.attributeCountOffset + 1)...])
        #expect(Array(attributes.prefix(12)) == [1, 0x61, 0, 2, 0xC3, 0xA9, 1, 0x62, 0, 0, 6, 0x64])
    }

    @Test("rejects every truncation")
    func rejectsTruncation() {
        for message in [Self.published, Self.republished] {
            let bytes = message.encoded()
            for length in 0..<bytes.count {
                #expect(throws: ServiceWireError.self) { try EventMessage(decoding: Array(bytes.prefix(length))) }
            }
        }
    }

    @Test("rejects trailing bytes")
    func rejectsTrailing() {
        #expect(throws: ServiceWireError.trailingBytes(2)) { try EventMessage(decoding: Self.published.encoded() + [0, 0]) }
    }

    @Test("rejects another service, version or kind")
    func rejectsHeader() {
        var bytes = Self.published.encoded()
        bytes[0] = 1
        #expect(throws: ServiceWireError.wrongService(expected: .event, actual: 1)) { try EventMessage(decoding: bytes) }
        bytes = Self.published.encoded()
        bytes[1] = 0
        #expect(throws: ServiceWireError.unsupportedVersion(0, format: "event")) { try EventMessage(decoding: bytes) }
        bytes = Self.published.encoded()
        bytes[2] = 3
        #expect(throws: ServiceWireError.unknownKind(3, format: "event")) { try EventMessage(decoding: bytes) }
    }

    @Test("rejects publisher node 0 and counter 0")
    func rejectsZeroes() {
        var bytes = Self.published.encoded()
        bytes.replaceSubrange(3..<7, with: [0, 0, 0, 0])
        #expect(throws: ServiceWireError.zeroNodeID(field: "publisher")) { try EventMessage(decoding: bytes) }
        bytes = Self.published.encoded()
        bytes.replaceSubrange(21..<29, with: Array(repeating: 0, count: 8))
        #expect(throws: ServiceWireError.invalidValue(field: "counter", value: 0)) { try EventMessage(decoding: bytes) }
    }

    @Test("rejects bad channel and type lengths and texts")
    func rejectsNames() {
        var bytes = Self.published.encoded()
        bytes[Self.channelOffset] = 0
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "channel", length: 0, minimum: 1, maximum: 64)) { try EventMessage(decoding: bytes) }
        bytes = Self.published.encoded()
        bytes[Self.channelOffset] = 65
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "channel", length: 65, minimum: 1, maximum: 64)) { try EventMessage(decoding: bytes) }
        bytes = Self.published.encoded()
        bytes[Self.channelOffset + 1] = 0x20
        #expect(throws: ServiceWireError.invalidText(field: "channel")) { try EventMessage(decoding: bytes) }
        bytes = Self.published.encoded()
        bytes[Self.channelOffset + 1] = 0xC3
        #expect(throws: ServiceWireError.invalidUTF8(field: "channel")) { try EventMessage(decoding: bytes) }
        bytes = Self.published.encoded()
        bytes[Self.typeOffset] = 33
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "type", length: 33, minimum: 1, maximum: 32)) { try EventMessage(decoding: bytes) }
        bytes = Self.published.encoded()
        bytes[Self.typeOffset + 1] = UInt8(ascii: "D")
        #expect(throws: ServiceWireError.invalidText(field: "type")) { try EventMessage(decoding: bytes) }
        bytes = Self.published.encoded()
        bytes[Self.typeOffset + 1] = 0xC3
        #expect(throws: ServiceWireError.invalidUTF8(field: "type")) { try EventMessage(decoding: bytes) }
    }

    @Test("rejects a re-publication without retention")
    func rejectsRepublicationWithoutRetention() {
        var bytes = Self.republished.encoded()
        let retentionOffset = 29 + 1 + Fixtures.mwi.rawValue.utf8.count + 1 + EventType.mwi.rawValue.utf8.count
        bytes.replaceSubrange(retentionOffset..<(retentionOffset + 4), with: [0, 0, 0, 0])
        #expect(throws: ServiceWireError.invalidValue(field: "retention", value: 0)) { try EventMessage(decoding: bytes) }
    }

    @Test("rejects too many attributes, bad key and value lengths, unsorted and duplicate keys")
    func rejectsAttributes() {
        var bytes = Self.published.encoded()
        bytes[Self.attributeCountOffset] = 33
        #expect(throws: ServiceWireError.countOutOfRange(field: "attributes", count: 33, limit: 32)) { try EventMessage(decoding: bytes) }
        // First key "a" (2 bytes of UTF-8 value follow).
        let firstKey = Self.attributeCountOffset + 1
        bytes = Self.published.encoded()
        bytes[firstKey] = 0
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "attribute key", length: 0, minimum: 1, maximum: 64)) {
            try EventMessage(decoding: bytes)
        }
        bytes = Self.published.encoded()
        bytes.replaceSubrange((firstKey + 2)..<(firstKey + 4), with: [0x04, 0x01])
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "attribute value", length: 1025, minimum: 0, maximum: 1024)) {
            try EventMessage(decoding: bytes)
        }
        // Swap the order of keys "a" and "b" by renaming "a" to "c".
        bytes = Self.published.encoded()
        bytes[firstKey + 1] = UInt8(ascii: "c")
        #expect(throws: ServiceWireError.notAscending(field: "attribute keys")) { try EventMessage(decoding: bytes) }
        // Two keys in ascending byte order that are equal as Swift strings (decomposed, then
        // precomposed e-acute): a dictionary cannot hold both.
        let single = EventMessage(kind: .published, id: Self.id, publisherEntity: Fixtures.entity1, channel: Fixtures.mwi, type: .mwi,
                                  retentionMilliseconds: 0, attributes: ["e\u{301}": "1"], payload: []).encoded()
        var duplicated = single
        let countOffset = single.count - 4 - 7 - 1
        #expect(duplicated[countOffset] == 1)
        duplicated[countOffset] = 2
        duplicated.insert(contentsOf: [2, 0xC3, 0xA9, 0, 1, 0x32], at: duplicated.count - 4)
        #expect(throws: ServiceWireError.duplicate(field: "attribute keys")) { try EventMessage(decoding: duplicated) }
    }

    @Test("rejects a payload longer than 64 KiB and an oversized message")
    func rejectsPayload() {
        var bytes = Self.published.encoded()
        bytes.replaceSubrange((bytes.count - 7)..<(bytes.count - 3), with: [0, 1, 0, 1])
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "payload", length: 65_537, minimum: 0, maximum: 65_536)) {
            try EventMessage(decoding: bytes)
        }
        bytes.replaceSubrange((bytes.count - 7)..<(bytes.count - 3), with: [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "payload", length: Int(UInt32.max), minimum: 0, maximum: 65_536)) {
            try EventMessage(decoding: bytes)
        }
        let huge = Self.published.encoded() + Array(repeating: 0, count: ServiceEnvelope.maxMessageBytes)
        #expect(throws: ServiceWireError.oversized(size: huge.count, limit: ServiceEnvelope.maxMessageBytes)) { try EventMessage(decoding: huge) }
    }

    @Test("seeded fuzz: every mutation decodes canonically or throws", arguments: 0..<8 as Range<UInt64>)
    func fuzz(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        let valid = [Self.published.encoded(), Self.republished.encoded()]
        for _ in 0..<2_000 {
            let input = Mutation.mutate(valid[Int.random(in: 0..<2, using: &generator)], using: &generator)
            if let message = try? EventMessage(decoding: input) {
                #expect(message.encoded() == input)
            }
        }
    }
}
