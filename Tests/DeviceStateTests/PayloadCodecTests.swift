// The device-state payload and the local state file: round trips, "rejects ..." tests, and
// seeded fuzz tests.

import Testing
import ServiceTestSupport
import EventService
import Membership
import Totem
@testable import DeviceState

@Suite("DeviceStatePayload codec")
struct DeviceStatePayloadCodecTests {
    static let record = MailboxRecord(mailbox: Builders.mailbox("1234@default"), counts: MailboxCounts(newMessages: 2, oldMessages: 5),
                                      originEntity: Builders.entity(3), originNode: NodeID(3),
                                      stamp: MailboxStamp(position: RingPosition(ringSequence: 12, index: 7), entity: Builders.entity(3)))
    static let samples: [DeviceStatePayload] = [
        .deviceState(Builders.device("Custom:mystate"), .ringInUse),
        .mailboxUpdate(Builders.mailbox("1234@default"), MailboxCounts(newMessages: 0, oldMessages: UInt32.max)),
        .mailboxRepublication(record),
        .deviceStateCleared(Builders.device("PJSIP/alice")),
    ]

    @Test("round trips every kind, and travels as the right event type")
    func roundTrip() throws {
        for sample in Self.samples { #expect(try DeviceStatePayload(decoding: sample.encoded()) == sample) }
        #expect(Self.samples.map(\.eventType) == [.deviceState, .mwi, .mwi, .deviceState])
    }

    @Test("layout of a device state")
    func layout() {
        #expect(DeviceStatePayload.deviceState(Builders.device("SIP/1"), .busy).encoded() == [1, 1, 3, 0, 5, 0x53, 0x49, 0x50, 0x2F, 0x31])
    }

    @Test("layout of a cleared device state")
    func clearedLayout() {
        #expect(DeviceStatePayload.deviceStateCleared(Builders.device("SIP/1")).encoded() == [1, 4, 0, 5, 0x53, 0x49, 0x50, 0x2F, 0x31])
    }

    @Test("rejects every truncation and trailing bytes")
    func rejectsLength() {
        for sample in Self.samples {
            let bytes = sample.encoded()
            for length in 0..<bytes.count {
                #expect(throws: ServiceWireError.self) { try DeviceStatePayload(decoding: Array(bytes.prefix(length))) }
            }
            #expect(throws: ServiceWireError.trailingBytes(1)) { try DeviceStatePayload(decoding: bytes + [0]) }
        }
    }

    @Test("rejects a wrong version, an unknown kind, an unknown state, and an oversized payload")
    func rejectsHeader() {
        var bytes = Self.samples[0].encoded()
        bytes[0] = 2
        #expect(throws: ServiceWireError.unsupportedVersion(2, format: "device state")) { try DeviceStatePayload(decoding: bytes) }
        bytes = Self.samples[0].encoded()
        bytes[1] = 5
        #expect(throws: ServiceWireError.unknownKind(5, format: "device state")) { try DeviceStatePayload(decoding: bytes) }
        bytes = Self.samples[0].encoded()
        bytes[2] = 9
        #expect(throws: ServiceWireError.invalidValue(field: "state", value: 9)) { try DeviceStatePayload(decoding: bytes) }
        let big = [UInt8](repeating: 1, count: DeviceStatePayload.maxBytes + 1)
        #expect(throws: ServiceWireError.oversized(size: big.count, limit: DeviceStatePayload.maxBytes)) { try DeviceStatePayload(decoding: big) }
    }

    @Test("rejects bad device names and mailbox parts")
    func rejectsNames() {
        #expect(throws: ServiceWireError.invalidText(field: "device")) { try DeviceStatePayload(decoding: [1, 1, 2, 0, 3, 0x53, 0x49, 0x50]) }
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "device", length: 0, minimum: 1, maximum: 255)) {
            try DeviceStatePayload(decoding: [1, 1, 2, 0, 0])
        }
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "device", length: 256, minimum: 1, maximum: 255)) {
            try DeviceStatePayload(decoding: [1, 1, 2, 1, 0])
        }
        let counts: [UInt8] = [0, 0, 0, 1, 0, 0, 0, 0]
        #expect(throws: ServiceWireError.invalidText(field: "mailbox")) { try DeviceStatePayload(decoding: [1, 2] + counts + [1, 0x40, 1, 0x61]) }
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "context", length: 0, minimum: 1, maximum: 80)) {
            try DeviceStatePayload(decoding: [1, 2] + counts + [1, 0x31, 0])
        }
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "mailbox", length: 81, minimum: 1, maximum: 80)) {
            try DeviceStatePayload(decoding: [1, 2] + counts + [81])
        }
    }

    @Test("rejects a re-publication from node 0")
    func rejectsZeroOrigin() {
        var bytes = Self.samples[2].encoded()
        bytes.replaceSubrange((bytes.count - 4)..<bytes.count, with: [0, 0, 0, 0])
        #expect(throws: ServiceWireError.zeroNodeID(field: "origin node")) { try DeviceStatePayload(decoding: bytes) }
    }

    @Test("seeded fuzz: every mutation decodes or throws", arguments: 0..<8 as Range<UInt64>)
    func fuzz(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        for _ in 0..<2_000 {
            let input = Mutation.mutate(Self.samples[Int.random(in: 0..<3, using: &generator)].encoded(), using: &generator)
            if let payload = try? DeviceStatePayload(decoding: input) {
                // Re-encoding is stable (names are normalized on decode, so compare decoded values).
                #expect((try? DeviceStatePayload(decoding: payload.encoded())) == payload)
            }
        }
    }
}

@Suite("LocalStateTable file format")
struct LocalStateTableCodecTests {
    static let table = LocalStateTable(
        devices: [Builders.device("SIP/1000"): .inUse, Builders.device("Custom:mystate"): .notInUse, Builders.device("PJSIP/a"): .onHold],
        mailboxes: [Builders.mailbox("1234@default"): .init(counts: MailboxCounts(newMessages: 1, oldMessages: 2),
                                                          position: RingPosition(ringSequence: 4, index: 3)),
                    Builders.mailbox("9@x"): .init(counts: MailboxCounts(newMessages: 0, oldMessages: 0), position: nil)])

    @Test("round trips; the empty table too; bytes are deterministic")
    func roundTrip() throws {
        #expect(try LocalStateTable(decoding: Self.table.encoded()) == Self.table)
        #expect(try LocalStateTable(decoding: LocalStateTable().encoded()) == LocalStateTable())
        #expect(LocalStateTable().encoded() == [0x44, 0x43, 0x4C, 0x53, 1, 0, 0, 0, 0, 0, 0, 0, 0])
        var rebuilt = LocalStateTable()
        for (device, state) in Self.table.devices.sorted(by: { $0.key > $1.key }) { rebuilt.devices[device] = state }
        rebuilt.mailboxes = Self.table.mailboxes
        #expect(rebuilt.encoded() == Self.table.encoded())
    }

    @Test("rejects a bad magic, a bad version, truncation and trailing bytes")
    func rejectsFraming() {
        var bytes = Self.table.encoded()
        bytes[0] = 0
        #expect(throws: ServiceWireError.unknownKind(0, format: "local state file magic")) { try LocalStateTable(decoding: bytes) }
        bytes = Self.table.encoded()
        bytes[4] = 9
        #expect(throws: ServiceWireError.unsupportedVersion(9, format: "local state file")) { try LocalStateTable(decoding: bytes) }
        let valid = Self.table.encoded()
        for length in 0..<valid.count {
            #expect(throws: ServiceWireError.self) { try LocalStateTable(decoding: Array(valid.prefix(length))) }
        }
        #expect(throws: ServiceWireError.trailingBytes(1)) { try LocalStateTable(decoding: valid + [7]) }
    }

    @Test("rejects counts above the limit, unsorted or unnormalized devices, and a bad stamp flag")
    func rejectsContent() {
        #expect(throws: ServiceWireError.countOutOfRange(field: "devices", count: Int(UInt32.max), limit: LocalStateTable.maxEntries)) {
            try LocalStateTable(decoding: [0x44, 0x43, 0x4C, 0x53, 1, 0xFF, 0xFF, 0xFF, 0xFF])
        }
        let one = LocalStateTable(devices: [Builders.device("SIP/1"): .busy]).encoded()
        var lower = one
        lower[12] = UInt8(ascii: "s")
        #expect(throws: ServiceWireError.invalidText(field: "device")) { try LocalStateTable(decoding: lower) }
        var twice = Array(one[0..<9])
        twice[8] = 2
        twice += Array(one[9..<17]) + Array(one[9..<17]) + [0, 0, 0, 0]
        #expect(throws: ServiceWireError.notAscending(field: "devices")) { try LocalStateTable(decoding: twice) }
        var badState = one
        badState[9] = 10
        #expect(throws: ServiceWireError.invalidValue(field: "state", value: 10)) { try LocalStateTable(decoding: badState) }
        var flag = LocalStateTable(mailboxes: [Builders.mailbox("1@a"): .init(counts: MailboxCounts(newMessages: 0, oldMessages: 0), position: nil)]).encoded()
        flag[flag.count - 1] = 2
        #expect(throws: ServiceWireError.invalidValue(field: "has stamp", value: 2)) { try LocalStateTable(decoding: flag) }
    }

    @Test("seeded fuzz: every mutation decodes canonically or throws", arguments: 0..<8 as Range<UInt64>)
    func fuzz(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        let valid = Self.table.encoded()
        for _ in 0..<2_000 {
            let input = Mutation.mutate(valid, using: &generator)
            if let table = try? LocalStateTable(decoding: input) {
                #expect(table.encoded() == input)
            }
        }
    }
}
