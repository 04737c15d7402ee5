// Names with control and format characters are refused wherever they enter (a local request, a
// ring payload, the state file), naming the code point; and the caps on devices and mailboxes
// hold for local requests and remote entries alike (issue 14, items 11 and 13).

import Testing
import EventService
import Membership
import Totem
@testable import DeviceState

@Suite("Names and limits")
struct NameAndLimitTests {
    /// Scalars no name may contain, with the kind the error must name.
    static let invisible: [(UInt32, InvisibleCharacter.Kind)] = [
        (0x0007, .control), (0x001B, .control), (0x007F, .control), (0x0085, .control), (0x009B, .control),
        (0x202E, .bidirectionalControl), (0x202A, .bidirectionalControl), (0x2066, .bidirectionalControl),
        (0x200E, .bidirectionalControl), (0x061C, .bidirectionalControl),
        (0x200B, .zeroWidth), (0x200D, .zeroWidth), (0xFEFF, .zeroWidth), (0x2060, .zeroWidth),
        (0x00AD, .format), (0xE0001, .format),
        (0x0020, .space), (0x00A0, .space), (0x3000, .space),
        (0x2028, .separator), (0x2029, .separator),
    ]

    static func text(_ prefix: String, _ scalar: UInt32, _ suffix: String) -> String {
        var text = prefix
        text.unicodeScalars.append(Unicode.Scalar(scalar)!)
        return text + suffix
    }

    @Test("every control, format and space character is refused in device names, naming its code point",
          arguments: invisible.map(\.0))
    func deviceNamesRefuseInvisibleCharacters(_ value: UInt32) throws {
        let kind = try #require(Self.invisible.first { $0.0 == value }?.1)
        let name = Self.text("SIP/al", value, "ice")
        let scalar = try #require(Unicode.Scalar(value))
        let expected = DeviceStateError.invisibleCharacter(field: "device name", name: name, InvisibleCharacter(scalar: scalar, kind: kind))
        #expect(throws: expected) { try DeviceName(parsing: name) }
    }

    @Test("the error names U+202E, and shows the name escaped, never raw")
    func errorTextIsEscaped() throws {
        let name = Self.text("SIP/al", 0x202E, "ecila")
        do {
            _ = try DeviceName(parsing: name)
            Issue.record("\(InvisibleCharacter.escaped(name)) was accepted")
        } catch {
            #expect(error.description == "device name contains U+202E (a bidirectional control character): \"SIP/al\\u{202E}ecila\"")
            #expect(!error.description.unicodeScalars.contains { $0.value == 0x202E })
        }
    }

    @Test("printable names, non-ASCII letters included, stay valid")
    func printableNamesStayValid() throws {
        #expect(try DeviceName(parsing: "PJSIP/zoë").rawValue == "PJSIP/zoë")
        #expect(try DeviceName(parsing: "Custom:日本").rawValue == "Custom:日本")
        #expect(InvisibleCharacter.first(in: "SIP/1000") == nil)
    }

    @Test("mailboxes, contexts and hint keys refuse them too, naming the code point")
    func mailboxesAndHintsRefuseInvisibleCharacters() throws {
        let zeroWidth = InvisibleCharacter(scalar: Unicode.Scalar(0x200B)!, kind: .zeroWidth)
        let bidi = InvisibleCharacter(scalar: Unicode.Scalar(0x202E)!, kind: .bidirectionalControl)
        let mailbox = Self.text("10", 0x200B, "0")
        #expect(throws: DeviceStateError.invisibleCharacter(field: "mailbox", name: mailbox, zeroWidth)) {
            try MailboxName(parsing: mailbox + "@default")
        }
        let context = Self.text("de", 0x202E, "fault")
        #expect(throws: DeviceStateError.invisibleCharacter(field: "mailbox context", name: context, bidi)) {
            try MailboxName(mailbox: "100", context: context)
        }
        let exten = Self.text("12", 0x202E, "34")
        #expect(throws: DeviceStateError.invisibleCharacter(field: "hint extension", name: exten, bidi)) {
            try Hint(parsingKey: exten + "@ctx", devices: "SIP/1")
        }
        let device = Self.text("SIP/", 0x200B, "1")
        #expect(throws: DeviceStateError.self) { try Hint(parsingKey: "1234@ctx", devices: "SIP/2&" + device) }
        let hintContext = Self.text("ct", 0xFEFF, "x")
        #expect(throws: DeviceStateError.invisibleCharacter(field: "hint context", name: hintContext,
                                                            InvisibleCharacter(scalar: Unicode.Scalar(0xFEFF)!, kind: .zeroWidth))) {
            try HintKey(parsing: "1234@" + hintContext)
        }
    }

    /// A kind 1 device-state payload carrying `name` as it is, bypassing `DeviceName`.
    static func rawDevicePayload(_ name: String) -> [UInt8] {
        let bytes = Array(name.utf8)
        return [1, 1, DeviceStateValue.inUse.rawValue, 0, UInt8(bytes.count)] + bytes
    }

    @Test("a ring payload carrying such a device name or mailbox does not decode, and says which code point")
    func payloadsRefuseInvisibleCharacters() throws {
        let bidi = InvisibleCharacter(scalar: Unicode.Scalar(0x202E)!, kind: .bidirectionalControl)
        #expect(throws: ServiceWireError.invisibleCharacter(field: "device", bidi)) {
            try DeviceStatePayload(decoding: Self.rawDevicePayload(Self.text("SIP/a", 0x202E, "b")))
        }
        let mailbox = Array(Self.text("1", 0x0085, "0").utf8)
        let counts: [UInt8] = [0, 0, 0, 1, 0, 0, 0, 0]
        let control = InvisibleCharacter(scalar: Unicode.Scalar(0x0085)!, kind: .control)
        #expect(throws: ServiceWireError.invisibleCharacter(field: "mailbox", control)) {
            try DeviceStatePayload(decoding: [1, 2] + counts + [UInt8(mailbox.count)] + mailbox + [1, 0x61])
        }
        #expect(ServiceWireError.invisibleCharacter(field: "device", bidi).description == "device: contains U+202E (a bidirectional control character)")
    }

    @Test("a remote event with such a name is rejected and counted, never applied")
    func remoteInvisibleNameIsRejected() throws {
        var local = try Builders.service(1)
        for change in Builders.change(from: [], to: [1, 2], sequence: 4) { _ = local.configurationChanged(change, now: .zero) }
        var sender = try EventChannelService(localNode: NodeID(2), entityID: Builders.entity(2), incarnation: 1, channels: Builders.channels)
        let bad = try sender.publish(on: Builders.deviceChannel, type: .deviceState, payload: Self.rawDevicePayload(Self.text("SIP/a", 0x200D, "b")))
        let effects = try local.delivered(payload: Builders.submits(bad.effects.map(DeviceStateService.translate))[0], from: NodeID(2), now: .zero)
        let zeroWidth = InvisibleCharacter(scalar: Unicode.Scalar(0x200D)!, kind: .zeroWidth)
        #expect(effects == [.rejectedEvent(bad.id, .invisibleCharacter(field: "device", zeroWidth))])
        #expect(local.statistics.rejectedPayloads == 1)
        #expect(local.devices.isEmpty)
    }

    @Test("a state file carrying such a name does not decode")
    func stateFileRefusesInvisibleCharacters() throws {
        let name = Array(Self.text("SIP/a", 0xFEFF, "b").utf8)
        let bytes = LocalStateTable.magic + [1, 0, 0, 0, 1, DeviceStateValue.busy.rawValue, 0, UInt8(name.count)] + name + [0, 0, 0, 0]
        #expect(throws: ServiceWireError.invisibleCharacter(field: "device", InvisibleCharacter(scalar: Unicode.Scalar(0xFEFF)!, kind: .zeroWidth))) {
            try LocalStateTable(decoding: bytes)
        }
    }

    // MARK: - Limits

    static func limitedService(_ node: UInt32, maxDevices: Int, maxMailboxes: Int = 100) throws -> DeviceStateService {
        var configuration = Builders.configuration(node)
        configuration.limits = DeviceStateLimits(maxDevices: maxDevices, maxMailboxes: maxMailboxes)
        return try DeviceStateService(configuration: configuration)
    }

    @Test("a local set of a new device at max_devices is refused; known devices still change")
    func localDeviceCap() throws {
        var service = try Self.limitedService(1, maxDevices: 2)
        _ = try service.setLocalState(.inUse, of: Builders.device("SIP/1"))
        _ = try service.setLocalState(.inUse, of: Builders.device("SIP/2"))
        #expect(throws: DeviceStateError.tooManyDevices(limit: 2)) { try service.setLocalState(.busy, of: Builders.device("SIP/3")) }
        #expect(service.localState.devices.count == 2)
        #expect(service.device(Builders.device("SIP/3")).servers.isEmpty)
        let change = try service.setLocalState(.ringing, of: Builders.device("SIP/2"))
        #expect(!change.isEmpty)
        _ = service.clearLocalState(of: Builders.device("SIP/1"))
        _ = try service.setLocalState(.busy, of: Builders.device("SIP/3"))
        #expect(service.localState.devices.count == 2)
    }

    @Test("a local MWI set of a new mailbox at max_mailboxes is refused")
    func localMailboxCap() throws {
        var service = try Self.limitedService(1, maxDevices: 10, maxMailboxes: 1)
        let counts = MailboxCounts(newMessages: 1, oldMessages: 0)
        _ = try service.setMailbox(Builders.mailbox("100"), counts: counts)
        #expect(throws: DeviceStateError.tooManyMailboxes(limit: 1)) { try service.setMailbox(Builders.mailbox("101"), counts: counts) }
        _ = try service.setMailbox(Builders.mailbox("100"), counts: MailboxCounts(newMessages: 2, oldMessages: 0))
        #expect(service.localState.mailboxes.count == 1)
    }

    @Test("remote states of new devices beyond the publisher's cap are refused, counted and told; known ones still apply")
    func remoteDeviceCap() throws {
        var local = try Self.limitedService(1, maxDevices: 3)
        var remote = try Self.limitedService(2, maxDevices: 10)
        for change in Builders.change(from: [], to: [1, 2], sequence: 4) {
            _ = local.configurationChanged(change, now: .zero)
            _ = remote.configurationChanged(change, now: .zero)
        }
        var refused: [RefusedEntry] = []
        for index in 1...5 {
            for bytes in Builders.submits(try remote.setLocalState(.inUse, of: Builders.device("SIP/\(index)"))) {
                for effect in try local.delivered(payload: bytes, from: NodeID(2), now: .zero) {
                    if case .entryRefused(let entry) = effect { refused.append(entry) }
                }
            }
        }
        #expect(local.devices.map(\.device.rawValue) == ["SIP/1", "SIP/2", "SIP/3"])
        #expect(local.statistics.remoteDevicesRefused == 2)
        #expect(refused == [.device(Builders.device("SIP/4"), node: NodeID(2), limit: 3), .device(Builders.device("SIP/5"), node: NodeID(2), limit: 3)])
        // A device already held still changes.
        for bytes in Builders.submits(try remote.setLocalState(.busy, of: Builders.device("SIP/2"))) {
            _ = try local.delivered(payload: bytes, from: NodeID(2), now: .zero)
        }
        #expect(local.device(Builders.device("SIP/2")).state == .busy)
        // Local states of this node do not count against node 2's cap.
        _ = try local.setLocalState(.inUse, of: Builders.device("SIP/9"))
        #expect(local.device(Builders.device("SIP/9")).state == .inUse)
    }

    @Test("remote MWI records of new mailboxes beyond max_mailboxes are refused and counted")
    func remoteMailboxCap() throws {
        var local = try Self.limitedService(1, maxDevices: 10, maxMailboxes: 2)
        var remote = try Self.limitedService(2, maxDevices: 10, maxMailboxes: 10)
        for change in Builders.change(from: [], to: [1, 2], sequence: 4) {
            _ = local.configurationChanged(change, now: .zero)
            _ = remote.configurationChanged(change, now: .zero)
        }
        for index in 1...4 {
            for bytes in Builders.submits(try remote.setMailbox(Builders.mailbox("\(index)"), counts: MailboxCounts(newMessages: 1, oldMessages: 0))) {
                _ = try local.delivered(payload: bytes, from: NodeID(2), now: .zero)
            }
        }
        #expect(local.mailboxes.map(\.mailbox.mailbox) == ["1", "2"])
        #expect(local.statistics.remoteMailboxesRefused == 2)
    }

    @Test("the caps' largest value is the state file's entry limit, so a table within them always encodes")
    func capsFitTheStateFile() {
        #expect(DeviceStateLimits.maximum == LocalStateTable.maxEntries)
        let limits = DeviceStateLimits()
        #expect(limits.maxDevices == 100_000 && limits.maxMailboxes == 100_000)
    }
}
