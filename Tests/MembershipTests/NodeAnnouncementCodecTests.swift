// The announcement's binary format: round trips, one "rejects ..." test per decoder check, and
// a seeded fuzz test.

import Testing
import ServiceTestSupport
import Totem
@testable import Membership

@Suite("NodeAnnouncement codec")
struct NodeAnnouncementCodecTests {
    static let entity = EntityID(parsing: "01:23:45:67:89:ab")!
    static let v4 = NodeAddress(bytes: [10, 19, 2, 255])!
    static let v6 = NodeAddress(bytes: [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1])!
    static let sample = NodeAnnouncement(node: NodeID(0x0a13_02ff), entityID: entity, name: "server1", addresses: [v4, v6])

    @Test("round trip with IPv4 and IPv6 addresses, and with none")
    func roundTrip() throws {
        for announcement in [Self.sample, NodeAnnouncement(node: NodeID(7), entityID: Self.entity, name: "n", addresses: [])] {
            let bytes = announcement.encoded()
            #expect(try NodeAnnouncement(decoding: bytes) == announcement)
            #expect(try ServiceEnvelope.service(of: bytes) == .membership)
        }
    }

    @Test("layout: envelope, version, kind, node id big-endian, entity, name, addresses")
    func layout() {
        let bytes = NodeAnnouncement(node: NodeID(0x0102_0304), entityID: Self.entity, name: "ab", addresses: [Self.v4]).encoded()
        #expect(bytes == [1, 1, 1, 1, 2, 3, 4, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 2, 0x61, 0x62, 1, 4, 10, 19, 2, 255])
    }

    @Test("rejects every truncation of a valid message")
    func rejectsTruncation() {
        let bytes = Self.sample.encoded()
        for length in 0..<bytes.count {
            #expect(throws: ServiceWireError.self) { try NodeAnnouncement(decoding: Array(bytes.prefix(length))) }
        }
        #expect(throws: ServiceWireError.empty) { try NodeAnnouncement(decoding: []) }
        #expect(throws: ServiceWireError.truncated(needed: 1, available: 0)) { try NodeAnnouncement(decoding: [1]) }
    }

    @Test("rejects trailing bytes")
    func rejectsTrailingBytes() {
        #expect(throws: ServiceWireError.trailingBytes(1)) { try NodeAnnouncement(decoding: Self.sample.encoded() + [0]) }
    }

    @Test("rejects a message for another service")
    func rejectsWrongService() {
        var bytes = Self.sample.encoded()
        bytes[0] = ServiceID.event.rawValue
        #expect(throws: ServiceWireError.wrongService(expected: .membership, actual: 2)) { try NodeAnnouncement(decoding: bytes) }
    }

    @Test("rejects an unknown format version")
    func rejectsVersion() {
        var bytes = Self.sample.encoded()
        bytes[1] = 2
        #expect(throws: ServiceWireError.unsupportedVersion(2, format: "membership")) { try NodeAnnouncement(decoding: bytes) }
    }

    @Test("rejects an unknown kind")
    func rejectsKind() {
        var bytes = Self.sample.encoded()
        bytes[2] = 9
        #expect(throws: ServiceWireError.unknownKind(9, format: "membership")) { try NodeAnnouncement(decoding: bytes) }
    }

    @Test("rejects node id 0")
    func rejectsZeroNode() {
        var bytes = Self.sample.encoded()
        bytes.replaceSubrange(3..<7, with: [0, 0, 0, 0])
        #expect(throws: ServiceWireError.zeroNodeID(field: "node")) { try NodeAnnouncement(decoding: bytes) }
    }

    @Test("rejects an empty name and a name longer than 64 bytes")
    func rejectsNameLength() {
        var empty = Self.sample.encoded()
        empty[13] = 0
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "name", length: 0, minimum: 1, maximum: 64)) {
            try NodeAnnouncement(decoding: empty)
        }
        var long = Self.sample.encoded()
        long[13] = 200
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "name", length: 200, minimum: 1, maximum: 64)) {
            try NodeAnnouncement(decoding: long)
        }
    }

    @Test("rejects a name with a space, and a name that is not UTF-8")
    func rejectsNameText() {
        var spaced = Self.sample.encoded()
        spaced[14] = 0x20
        #expect(throws: ServiceWireError.invalidText(field: "name")) { try NodeAnnouncement(decoding: spaced) }
        var garbage = Self.sample.encoded()
        garbage[14] = 0xFF
        #expect(throws: ServiceWireError.invalidUTF8(field: "name")) { try NodeAnnouncement(decoding: garbage) }
    }

    @Test("rejects more than 8 addresses")
    func rejectsAddressCount() {
        var bytes = Self.sample.encoded()
        let countOffset = 14 + "server1".utf8.count
        bytes[countOffset] = 255
        #expect(throws: ServiceWireError.countOutOfRange(field: "addresses", count: 255, limit: 8)) { try NodeAnnouncement(decoding: bytes) }
    }

    @Test("rejects an address that is neither 4 nor 16 bytes")
    func rejectsAddressLength() {
        var bytes = Self.sample.encoded()
        let lengthOffset = 15 + "server1".utf8.count
        bytes[lengthOffset] = 5
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "address", length: 5, minimum: 4, maximum: 16)) {
            try NodeAnnouncement(decoding: bytes)
        }
        bytes[lengthOffset] = 17
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "address", length: 17, minimum: 4, maximum: 16)) {
            try NodeAnnouncement(decoding: bytes)
        }
    }

    @Test("rejects an oversized message before parsing it")
    func rejectsOversized() {
        let bytes = Self.sample.encoded() + Array(repeating: 0, count: ServiceEnvelope.maxMessageBytes)
        #expect(throws: ServiceWireError.oversized(size: bytes.count, limit: ServiceEnvelope.maxMessageBytes)) {
            try NodeAnnouncement(decoding: bytes)
        }
    }

    @Test("seeded fuzz: every mutation decodes canonically or throws", arguments: 0..<8 as Range<UInt64>)
    func fuzz(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        let valid = [Self.sample.encoded(), NodeAnnouncement(node: NodeID(3), entityID: Self.entity, name: "x", addresses: []).encoded()]
        var decoded = 0
        for _ in 0..<2_000 {
            let input = Mutation.mutate(valid[Int.random(in: 0..<valid.count, using: &generator)], using: &generator)
            if let announcement = try? NodeAnnouncement(decoding: input) {
                decoded += 1
                // The format has one encoding per value: whatever decodes re-encodes identically.
                #expect(announcement.encoded() == input)
            }
        }
        #expect(decoded < 2_000)
    }
}

@Suite("Service envelope")
struct ServiceEnvelopeTests {
    @Test("routes by the first byte")
    func routes() throws {
        #expect(try ServiceEnvelope.service(of: [1]) == .membership)
        #expect(try ServiceEnvelope.service(of: [2, 9, 9]) == .event)
    }

    @Test("a payload stripped of its envelope byte is rebuilt exactly")
    func rebuild() throws {
        let bytes = NodeAnnouncementCodecTests.sample.encoded()
        let rebuilt = ServiceEnvelope.message(for: .membership, body: bytes.dropFirst())
        #expect(rebuilt == bytes)
        #expect(try NodeAnnouncement(decoding: rebuilt) == NodeAnnouncementCodecTests.sample)
        #expect(ServiceEnvelope.message(for: .event, body: [UInt8]()) == [2])
    }

    @Test("rejects an empty payload, an unknown service and an oversized payload")
    func rejects() {
        #expect(throws: ServiceWireError.empty) { try ServiceEnvelope.service(of: []) }
        #expect(throws: ServiceWireError.unknownService(0)) { try ServiceEnvelope.service(of: [0]) }
        #expect(throws: ServiceWireError.unknownService(77)) { try ServiceEnvelope.service(of: [77, 1]) }
        let big = [UInt8](repeating: 1, count: ServiceEnvelope.maxMessageBytes + 1)
        #expect(throws: ServiceWireError.oversized(size: big.count, limit: ServiceEnvelope.maxMessageBytes)) {
            try ServiceEnvelope.service(of: big)
        }
    }
}

@Suite("Entity ids and addresses")
struct EntityIDTests {
    @Test("parses either case and prints lower case, as ast_eid_to_str")
    func parseAndPrint() throws {
        let id = try #require(EntityID(parsing: "01:23:45:67:89:AB"))
        #expect(id.description == "01:23:45:67:89:ab")
        #expect(id.octets == [0x01, 0x23, 0x45, 0x67, 0x89, 0xab])
        #expect(id.rawValue == 0x0123_4567_89ab)
        #expect(EntityID(octets: id.octets) == id)
        #expect(EntityID(parsing: "ff:ff:ff:ff:ff:ff")?.rawValue == 0xFFFF_FFFF_FFFF)
    }

    @Test("rejects anything but six two-digit hex fields", arguments: ["", "01:23:45:67:89", "01:23:45:67:89:ab:cd", "1:23:45:67:89:ab",
                                                                       "01:23:45:67:89:ag", "01-23-45-67-89-ab", "01:23:45:67:89:+b"])
    func rejects(text: String) {
        #expect(EntityID(parsing: text) == nil)
    }

    @Test("the zero id is recognised; raw values above 48 bits are refused")
    func zeroAndRange() {
        #expect(EntityID(rawValue: 0)?.isZero == true)
        #expect(EntityID(rawValue: 1 << 48) == nil)
        #expect(EntityID(octets: [1, 2, 3]) == nil)
    }

    @Test("addresses print as dotted quads and RFC 5952 text")
    func addressText() {
        #expect(NodeAddress(bytes: [192, 168, 0, 1])?.description == "192.168.0.1")
        #expect(NodeAnnouncementCodecTests.v6.description == "2001:db8::1")
        #expect(NodeAddress(bytes: Array(repeating: 0, count: 16))?.description == "::")
        #expect(NodeAddress(bytes: [0, 1] + Array(repeating: 0, count: 4) + [0, 2] + Array(repeating: 0, count: 6) + [0, 3])?.description
            == "1:0:0:2::3")
        #expect(NodeAddress(bytes: [1, 2, 3]) == nil)
    }
}
