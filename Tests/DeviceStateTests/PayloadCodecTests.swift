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
        .deviceStates([DeviceStateEntry(device: Builders.device("Custom:a"), state: .busy),
                       DeviceStateEntry(device: Builders.device("SIP/1"), state: .notInUse)]),
    ]

    @Test("round trips every kind, and travels as the right event type")
    func roundTrip() throws {
        for sample in Self.samples { #expect(try DeviceStatePayload(decoding: sample.encoded()) == sample) }
        #expect(Self.samples.map(\.eventType) == [.deviceState, .mwi, .mwi, .deviceState, .deviceState])
    }

    /// A kind 5 payload's bytes: header with `count`, then `entries` as given (state code, name).
    static func batchBytes(count: UInt16, _ entries: [(UInt8, String)]) -> [UInt8] {
        var bytes: [UInt8] = [1, 5, UInt8(count >> 8), UInt8(count & 0xFF)]
        for (code, name) in entries {
            let utf8 = Array(name.utf8)
            bytes += [code, UInt8(utf8.count >> 8), UInt8(utf8.count & 0xFF)] + utf8
        }
        return bytes
    }

    @Test("layout of a batch of device states")
    func batchLayout() {
        let batch = DeviceStatePayload.deviceStates([DeviceStateEntry(device: Builders.device("SIP/1"), state: .busy),
                                                     DeviceStateEntry(device: Builders.device("SIP/2"), state: .inUse)])
        #expect(batch.encoded() == [1, 5, 0, 2, 3, 0, 5, 0x53, 0x49, 0x50, 0x2F, 0x31, 2, 0, 5, 0x53, 0x49, 0x50, 0x2F, 0x32])
        #expect(batch.encoded() == Self.batchBytes(count: 2, [(3, "SIP/1"), (2, "SIP/2")]))
    }

    @Test("batches(of:): ascending entries in order, each batch within the byte and count limits")
    func batching() throws {
        #expect(DeviceStatePayload.batches(of: []).isEmpty)
        // 400 of the shortest names ("A:a"...): 170 entries of 6 bytes fill a batch exactly.
        let letters = (UInt8(ascii: "A")...UInt8(ascii: "Z")).map { String(UnicodeScalar($0)) }
        let shortest = letters.flatMap { first in letters.map { "\(first):\($0.lowercased())" } }.prefix(400)
            .map { DeviceStateEntry(device: Builders.device($0), state: .inUse) }
        // Typical names (11-byte entries): 92 to a batch.
        let typical = (0..<2_000).map { DeviceStateEntry(device: Builders.device("S:\(100_000 + $0)"), state: .inUse) }
        // Names of the maximum length: 3 entries of 258 bytes to a batch.
        let long = (0..<10).map { DeviceStateEntry(device: Builders.device("Custom:" + String(repeating: "x", count: 247) + "\($0)"), state: .busy) }
        for entries in [Array(shortest), typical, long] {
            let batches = DeviceStatePayload.batches(of: entries)
            var decoded: [DeviceStateEntry] = []
            for batch in batches {
                let bytes = batch.encoded()
                #expect(bytes.count <= DeviceStatePayload.maxBatchBytes)
                guard case .deviceStates(let part) = try DeviceStatePayload(decoding: bytes) else {
                    Issue.record("not a batch: \(batch)")
                    continue
                }
                #expect((1...DeviceStatePayload.maxBatchCount).contains(part.count))
                decoded += part
            }
            #expect(decoded == entries)
        }
        #expect(DeviceStatePayload.maxBatchCount == 170)
        let full = DeviceStatePayload.batches(of: Array(shortest))
        #expect(full.map { if case .deviceStates(let part) = $0 { part.count } else { 0 } } == [170, 170, 60])
        #expect(full.first?.encoded().count == DeviceStatePayload.maxBatchBytes)
        #expect(DeviceStatePayload.batches(of: typical).count == 22)
        #expect(DeviceStatePayload.batches(of: long).count == 4)
    }

    @Test("rejects a batch with no entries or more than the limit")
    func rejectsBatchCount() {
        #expect(throws: ServiceWireError.invalidValue(field: "device states count", value: 0)) {
            try DeviceStatePayload(decoding: Self.batchBytes(count: 0, []))
        }
        #expect(throws: ServiceWireError.countOutOfRange(field: "device states", count: 171, limit: DeviceStatePayload.maxBatchCount)) {
            try DeviceStatePayload(decoding: Self.batchBytes(count: 171, [(1, "SIP/1")]))
        }
        #expect(throws: ServiceWireError.countOutOfRange(field: "device states", count: 0xFFFF, limit: DeviceStatePayload.maxBatchCount)) {
            try DeviceStatePayload(decoding: Self.batchBytes(count: 0xFFFF, [(1, "SIP/1")]))
        }
        // Fewer entries than counted.
        #expect(throws: ServiceWireError.truncated(needed: 1, available: 0)) {
            try DeviceStatePayload(decoding: Self.batchBytes(count: 2, [(1, "SIP/1")]))
        }
    }

    @Test("rejects a batch longer than its byte limit before parsing it")
    func rejectsOversizedBatch() {
        let entries = (0..<300).map { (UInt8(1), "SIP/\(1_000 + $0)") }
        let bytes = Self.batchBytes(count: 300, entries)
        #expect(bytes.count > DeviceStatePayload.maxBatchBytes)
        #expect(throws: ServiceWireError.oversized(size: bytes.count, limit: DeviceStatePayload.maxBatchBytes)) {
            try DeviceStatePayload(decoding: bytes)
        }
    }

    @Test("rejects a batch whose devices are out of order or repeated, even when only normalized alike")
    func rejectsBatchOrder() {
        #expect(throws: ServiceWireError.notAscending(field: "device states")) {
            try DeviceStatePayload(decoding: Self.batchBytes(count: 2, [(1, "SIP/2"), (1, "SIP/1")]))
        }
        #expect(throws: ServiceWireError.notAscending(field: "device states")) {
            try DeviceStatePayload(decoding: Self.batchBytes(count: 2, [(1, "SIP/1"), (2, "SIP/1")]))
        }
        // "sip/1" normalizes to "SIP/1".
        #expect(throws: ServiceWireError.notAscending(field: "device states")) {
            try DeviceStatePayload(decoding: Self.batchBytes(count: 2, [(1, "SIP/1"), (2, "sip/1")]))
        }
    }

    @Test("rejects a batch entry with an unknown state or a bad device name")
    func rejectsBatchEntries() {
        #expect(throws: ServiceWireError.invalidValue(field: "state", value: 9)) {
            try DeviceStatePayload(decoding: Self.batchBytes(count: 2, [(1, "SIP/1"), (9, "SIP/2")]))
        }
        #expect(throws: ServiceWireError.invalidText(field: "device")) {
            try DeviceStatePayload(decoding: Self.batchBytes(count: 1, [(1, "SIP")]))
        }
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "device", length: 0, minimum: 1, maximum: 255)) {
            try DeviceStatePayload(decoding: Self.batchBytes(count: 1, [(1, "")]))
        }
        #expect(throws: ServiceWireError.lengthOutOfRange(field: "device", length: 256, minimum: 1, maximum: 255)) {
            try DeviceStatePayload(decoding: [1, 5, 0, 1, 1, 1, 0])
        }
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
        bytes[1] = 6
        #expect(throws: ServiceWireError.unknownKind(6, format: "device state")) { try DeviceStatePayload(decoding: bytes) }
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
            let input = Mutation.mutate(Self.samples.randomElement(using: &generator)!.encoded(), using: &generator)
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
