// The device-state service on one or two nodes: per-entity cache, aggregation, notifications,
// leave, join, restart, hints.

import Testing
import EventService
import Membership
import Totem
@testable import DeviceState

@Suite("DeviceStateService")
struct DeviceStateServiceTests {
    static let device = Builders.device("unit_test:device_identifier")

    /// Node 1 (local) in a ring with node 2, plus node 2's service to produce its events.
    static func pair(remoteEntity: EntityID = Builders.entity(2)) throws -> (DeviceStateService, DeviceStateService) {
        var local = try Builders.service(1)
        var remote = try Builders.service(2, entity: remoteEntity)
        for change in Builders.change(from: [], to: [1, 2], sequence: 4) {
            _ = local.configurationChanged(change, now: .zero)
            _ = remote.configurationChanged(change, now: .zero)
        }
        return (local, remote)
    }

    /// Sets a state on `remote` and delivers its event to `local`.
    static func remoteSet(_ state: DeviceStateValue, of device: DeviceName, remote: inout DeviceStateService,
                          local: inout DeviceStateService) throws -> [DeviceStateEffect] {
        let bytes = Builders.submits(try remote.setLocalState(state, of: device))
        #expect(bytes.count == 1)
        return try bytes.flatMap { try local.delivered(payload: $0, from: remote.localNode, now: .zero) }
    }

    @Test("device_state_aggregation_test: the Stasis-era four-step sequence")
    func stasisSequence() throws {
        // The remote server's EID is ff:ff:ff:ff:ff:ff, as in the Asterisk test.
        var (local, remote) = try Self.pair(remoteEntity: EntityID(parsing: "ff:ff:ff:ff:ff:ff")!)
        // 1. local NOT_INUSE: aggregate NOT_INUSE, a new aggregate message.
        let step1 = try local.setLocalState(.notInUse, of: Self.device)
        #expect(Builders.deviceChanges(step1) == [DeviceStateChange(device: Self.device, old: .invalid, new: .notInUse)])
        #expect(local.device(Self.device).state == .notInUse)
        // 2. remote NOT_INUSE: aggregate unchanged, no message.
        let step2 = try Self.remoteSet(.notInUse, of: Self.device, remote: &remote, local: &local)
        #expect(Builders.deviceChanges(step2).isEmpty)
        #expect(local.device(Self.device).state == .notInUse)
        #expect(local.device(Self.device).servers.count == 2)
        // 3. remote INUSE: aggregate INUSE, a new message.
        let step3 = try Self.remoteSet(.inUse, of: Self.device, remote: &remote, local: &local)
        #expect(Builders.deviceChanges(step3) == [DeviceStateChange(device: Self.device, old: .notInUse, new: .inUse)])
        // 4. local RINGING: aggregate RINGINUSE, a new message.
        let step4 = try local.setLocalState(.ringing, of: Self.device)
        #expect(Builders.deviceChanges(step4) == [DeviceStateChange(device: Self.device, old: .inUse, new: .ringInUse)])
        #expect(local.device(Self.device).servers == [
            ServerState(entity: Builders.entity(1), node: NodeID(1), state: .ringing),
            ServerState(entity: EntityID(parsing: "ff:ff:ff:ff:ff:ff")!, node: NodeID(2), state: .inUse),
        ])
    }

    @Test("a server's newer state replaces its older one: one slot per (device, entity)")
    func perEntityReplacement() throws {
        var (local, remote) = try Self.pair()
        _ = try Self.remoteSet(.busy, of: Self.device, remote: &remote, local: &local)
        #expect(local.device(Self.device).state == .busy)
        let effects = try Self.remoteSet(.notInUse, of: Self.device, remote: &remote, local: &local)
        #expect(Builders.deviceChanges(effects) == [DeviceStateChange(device: Self.device, old: .busy, new: .notInUse)])
        #expect(local.device(Self.device).servers == [ServerState(entity: Builders.entity(2), node: NodeID(2), state: .notInUse)])
        #expect(local.statistics.remoteStatesApplied == 2)
    }

    @Test("device names are compared as Asterisk does: sip/1000 and SIP/1000 are one device")
    func nameNormalization() throws {
        var (local, remote) = try Self.pair()
        _ = try local.setLocalState(.inUse, of: Builders.device("sip/1000"))
        _ = try Self.remoteSet(.ringing, of: Builders.device("SIP/1000"), remote: &remote, local: &local)
        #expect(local.devices.map(\.device.rawValue) == ["SIP/1000"])
        #expect(local.device(Builders.device("Sip/1000")).state == .ringInUse)
    }

    @Test("setting the state a device already has does nothing")
    func unchangedSet() throws {
        var service = try Builders.service(1)
        #expect(try service.setLocalState(.inUse, of: Self.device).isEmpty == false)
        #expect(try service.setLocalState(.inUse, of: Self.device).isEmpty)
        #expect(service.statistics.localChanges == 1)
    }

    @Test("a local change persists that change, publishes on every device_state channel, and notifies")
    func localChangeEffects() throws {
        let twoChannels = Builders.channels + [ChannelConfiguration(name: ChannelName("backup")!, publishes: [.deviceState], subscribes: [])]
        var service = try Builders.service(1, channels: twoChannels)
        _ = try service.setLocalState(.busy, of: Builders.device("SIP/1"))
        let effects = try service.setLocalState(.inUse, of: Self.device)
        guard case .persist(let change) = effects.first else {
            Issue.record("persist must come first, got \(effects)")
            return
        }
        #expect(change == .device(Self.device, .inUse))
        #expect(service.localState.devices == [Builders.device("SIP/1"): .busy, Self.device: .inUse])
        let channels = try Builders.submits(effects).map { try EventMessage(decoding: $0).channel.rawValue }
        #expect(channels == ["device_state", "backup"])
        let message = try EventMessage(decoding: Builders.submits(effects)[0])
        #expect(message.attributes == ["device": Self.device.rawValue])
        #expect(message.type == .deviceState)
        #expect(try DeviceStatePayload(decoding: message.payload) == .deviceState(Self.device, .inUse))
        #expect(Builders.deviceChanges(effects).count == 1)
    }

    @Test("CLI form: names parsed case-insensitively; errors name the problem")
    func parsedSet() throws {
        var service = try Builders.service(1)
        _ = try service.setLocalState(device: "custom:mystate", state: "inuse")
        #expect(service.device(Builders.device("Custom:mystate")).state == .inUse)
        #expect(throws: DeviceStateError.self) { try service.setLocalState(device: "custom:mystate", state: "IN_USE") }
        #expect(throws: DeviceStateError.invalidDeviceName("nodevice", reason: "expected TECH/resource or Provider:name")) {
            try service.setLocalState(device: "nodevice", state: "INUSE")
        }
    }

    @Test("our own states come back from the ring and are ignored; another node claiming our entity is counted")
    func ownEntity() throws {
        var service = try Builders.service(1)
        for change in Builders.change(from: [], to: [1, 2], sequence: 4) { _ = service.configurationChanged(change, now: .zero) }
        let bytes = Builders.submits(try service.setLocalState(.inUse, of: Self.device))[0]
        #expect(Builders.deviceChanges(try service.delivered(payload: bytes, from: NodeID(1), now: .zero)).isEmpty)
        var impostor = try Builders.service(2, entity: Builders.entity(1))
        let spoofed = Builders.submits(try impostor.setLocalState(.busy, of: Self.device))[0]
        _ = try service.delivered(payload: spoofed, from: NodeID(2), now: .zero)
        #expect(service.device(Self.device).state == .inUse)
        #expect(service.statistics.ownEntityConflicts == 1)
    }

    @Test("leave: the departed node's entries stop counting at the TRANSITIONAL configuration")
    func leaveDropsEntries() throws {
        var (local, remote) = try Self.pair()
        _ = try local.setLocalState(.notInUse, of: Self.device)
        _ = try Self.remoteSet(.busy, of: Self.device, remote: &remote, local: &local)
        _ = try Self.remoteSet(.ringing, of: Builders.device("SIP/2"), remote: &remote, local: &local)
        #expect(local.device(Self.device).state == .busy)
        let transitional = Builders.change(from: [1, 2], to: [1], sequence: 8)[0]
        let effects = local.configurationChanged(transitional, now: .zero)
        #expect(Builders.deviceChanges(effects) == [
            DeviceStateChange(device: Builders.device("SIP/2"), old: .ringing, new: .invalid),
            DeviceStateChange(device: Self.device, old: .busy, new: .notInUse),
        ])
        #expect(local.device(Self.device).servers.map(\.node) == [NodeID(1)])
        #expect(local.devices.map(\.device) == [Self.device])
        // A late message of the departed node, delivered after the TRANSITIONAL configuration,
        // does not bring its state back.
        let late = Builders.submits(try remote.setLocalState(.inUse, of: Self.device))[0]
        #expect(Builders.deviceChanges(try local.delivered(payload: late, from: NodeID(2), now: .zero)).isEmpty)
        #expect(local.statistics.ignoredFromNonMembers == 1)
        #expect(local.device(Self.device).state == .notInUse)
    }

    @Test("join: every node re-publishes all its local states when members join, and only then")
    func joinRepublishes() throws {
        var service = try Builders.service(1)
        let first = Builders.change(from: [], to: [1], sequence: 4).flatMap { service.configurationChanged($0, now: .zero) }
        #expect(Builders.submits(first).isEmpty)
        _ = try service.setLocalState(.inUse, of: Self.device)
        _ = try service.setLocalState(.busy, of: Builders.device("SIP/1"))
        let join = Builders.change(from: [1], to: [1, 2], sequence: 8).flatMap { service.configurationChanged($0, now: .zero) }
        // One batch, ascending by device.
        #expect(try Builders.payloads(join) == [.deviceStates([DeviceStateEntry(device: Builders.device("SIP/1"), state: .busy),
                                                                DeviceStateEntry(device: Self.device, state: .inUse)])])
        #expect(service.statistics.republished == 2)
        let leave = Builders.change(from: [1, 2], to: [1], sequence: 12).flatMap { service.configurationChanged($0, now: .zero) }
        #expect(Builders.submits(leave).isEmpty)
    }

    @Test("join: re-published batches count as one state each; from a node that left, or carrying our own entity, they are ignored")
    func republishedBatches() throws {
        var (local, remote) = try Self.pair()
        let devices = (0..<300).map { Builders.device("SIP/\(1_000 + $0)") }
        // Node 2's own changes never reach node 1 (as for a node that joins later).
        for device in devices { _ = try remote.setLocalState(.inUse, of: device) }
        let join = Builders.change(from: [1, 2], to: [1, 2, 3], sequence: 8)
        let batches = Builders.submits(join.flatMap { remote.configurationChanged($0, now: .zero) })
        // 300 entries of 11 bytes, 92 to a batch.
        #expect(batches.count == 4)
        #expect(remote.statistics.republished == 300)
        let own = Builders.submits(join.flatMap { local.configurationChanged($0, now: .zero) })
        var effects: [DeviceStateEffect] = []
        for bytes in batches { effects += try local.delivered(payload: bytes, from: NodeID(2), now: .zero) }
        #expect(local.devices.map(\.device) == devices)
        #expect(local.devices.allSatisfy { $0.servers == [ServerState(entity: Builders.entity(2), node: NodeID(2), state: .inUse)] })
        #expect(Builders.deviceChanges(effects).count == 300)
        let perServer = effects.compactMap { if case .serverStateChanged(let change) = $0 { change } else { nil } }
        #expect(perServer.map(\.device) == devices)
        #expect(local.statistics.remoteStatesApplied == 300)
        // The same batches again change nothing.
        var again: [DeviceStateEffect] = []
        for bytes in batches { again += try local.delivered(payload: bytes, from: NodeID(2), now: .zero) }
        #expect(again.isEmpty)
        // Our own batch (node 1 had no states: nothing) and a batch of node 1's own entity.
        #expect(own.isEmpty)
        _ = try local.setLocalState(.busy, of: Builders.device("SIP/1000"))
        let ownBatch = Builders.submits(Builders.change(from: [1, 2, 3], to: [1, 2, 3, 4], sequence: 12).flatMap {
            local.configurationChanged($0, now: .zero)
        })
        #expect(ownBatch.count == 1)
        #expect(try local.delivered(payload: ownBatch[0], from: NodeID(1), now: .zero).isEmpty)
        #expect(local.device(Builders.device("SIP/1000")).servers.count == 2)
        // Node 2 leaves: a batch of it delivered after the TRANSITIONAL configuration is ignored.
        _ = Builders.change(from: [1, 2, 3, 4], to: [1, 3, 4], sequence: 16).flatMap { local.configurationChanged($0, now: .zero) }
        #expect(local.devices.map(\.device) == [Builders.device("SIP/1000")])
        #expect(try local.delivered(payload: batches[0], from: NodeID(2), now: .zero).isEmpty)
        #expect(local.statistics.ignoredFromNonMembers == 92)
        #expect(local.devices.count == 1)
    }

    @Test("restart: the persisted table is restored, counts at once, and is published at the first REGULAR")
    func restartRestores() throws {
        var before = try Builders.service(1)
        _ = try before.setLocalState(.inUse, of: Self.device)
        #expect(Builders.persisted(try before.setLocalState(.onHold, of: Builders.device("SIP/7")))
            == [.device(Builders.device("SIP/7"), .onHold)])
        let table = before.localState
        let file = table.encoded()
        var after = try Builders.service(1, restored: try LocalStateTable(decoding: file))
        #expect(after.localState == table)
        #expect(after.device(Self.device).state == .inUse)
        #expect(after.device(Builders.device("SIP/7")).state == .onHold)
        let start = Builders.change(from: [], to: [1], sequence: 4).flatMap { after.configurationChanged($0, now: .zero) }
        // In ascending byte order of the names ("SIP/7" < "unit_test:...").
        #expect(try Builders.payloads(start) == [.deviceStates([DeviceStateEntry(device: Builders.device("SIP/7"), state: .onHold),
                                                                 DeviceStateEntry(device: Self.device, state: .inUse)])])
        // A restart counts as joining: the restored states are published only once.
        let again = Builders.change(from: [1], to: [1], sequence: 8).flatMap { after.configurationChanged($0, now: .zero) }
        #expect(Builders.submits(again).isEmpty)
    }

    @Test("hints: re-evaluated on device changes, watchers told only when the extension state changes")
    func hintsOnlyOnChange() throws {
        let hint = Builders.hint("100@office", "SIP/100&Custom:dnd100")
        let sipOnly = Builders.hint("101@office", "SIP/101")
        var service = try Builders.service(1, hints: [hint, sipOnly, Builders.seedHint])
        // Nobody reports anything yet: Custom: devices are UNKNOWN (Idle), others INVALID
        // (Unavailable); UNKNOWN beats INVALID in the aggregate.
        #expect(service.device(Builders.device("Custom:dnd100")).state == .unknown)
        #expect(service.device(Builders.device("SIP/100")).state == .invalid)
        #expect(service.hintRows.map(\.state) == [.idle, .unavailable, .idle])
        let ringing = try service.setLocalState(.ringing, of: Builders.device("SIP/101"))
        #expect(Builders.extensionChanges(ringing) == [ExtensionStateChange(hint: sipOnly.key, old: .unavailable, new: .ringing, watchers: 0)])
        // NOT_INUSE + UNKNOWN is NOT_INUSE: the device aggregate moved, the hint (Idle) did not.
        let idle = try service.setLocalState(.notInUse, of: Builders.device("SIP/100"))
        #expect(Builders.deviceChanges(idle).count == 1)
        #expect(Builders.extensionChanges(idle).isEmpty)
        _ = try service.addWatcher(to: hint.key)
        let busy = try service.setLocalState(.busy, of: Builders.device("Custom:dnd100"))
        #expect(Builders.extensionChanges(busy) == [ExtensionStateChange(hint: hint.key, old: .idle, new: .busy, watchers: 1)])
        // A device in no hint changes nothing for hints.
        #expect(Builders.extensionChanges(try service.setLocalState(.inUse, of: Builders.device("SIP/999"))).isEmpty)
        #expect(service.hintRow(hint.key) == HintRow(key: hint.key, devices: "SIP/100&Custom:dnd100", state: .busy, watchers: 1))
        try service.removeWatcher(from: hint.key)
        try service.removeWatcher(from: hint.key)
        #expect(service.hintRow(hint.key)?.watchers == 0)
        let missing = try HintKey(parsing: "9@nowhere")
        #expect(throws: DeviceStateError.unknownHint(missing)) { try service.addWatcher(to: missing) }
    }

    @Test("hints: the seed's `core show hints` row, character for character")
    func hintRowLayout() throws {
        var service = try Builders.service(1)
        _ = try service.setLocalState(device: "Custom:mystate", state: "INUSE")
        let row = try #require(service.hintRows.first)
        #expect(row.description == "                   1234@devstate_test       : Custom:mystate        State:InUse           Watchers  0")
        #expect(HintRow.header == "    -= Registered Asterisk Dial Plan Hints =-")
        let long = HintRow(key: try HintKey(parsing: "123456789012345678901@c"), devices: String(repeating: "D", count: 25),
                           state: .inUseRinging, watchers: 123)
        #expect(long.description == "   123456789012345678901@c                   : DDDDDDDDDDDDDDDDDDDD  State:InUse&Ringing   Watchers 123")
    }

    @Test("hints: invalid keys and device lists are refused; duplicate hints are a configuration error")
    func hintValidation() {
        #expect(throws: DeviceStateError.self) { try Hint(parsingKey: "1234", devices: "SIP/1") }
        #expect(throws: DeviceStateError.self) { try Hint(parsingKey: "1234@a@b", devices: "SIP/1") }
        #expect(throws: DeviceStateError.self) { try Hint(parsingKey: "1234@ctx", devices: "SIP/1&&SIP/2") }
        #expect(throws: DeviceStateError.self) { try Hint(parsingKey: "1234@ctx", devices: "") }
        #expect(throws: DeviceStateConfigurationError.duplicateHint(Builders.seedHint.key)) {
            try Builders.service(1, hints: [Builders.seedHint, Builders.seedHint])
        }
    }

    @Test("other clients can subscribe to the channels, e.g. every Custom: device")
    func externalSubscription() throws {
        var (local, remote) = try Self.pair()
        let filter = SubscriptionFilter(attribute: "device", match: .prefix("Custom:"))
        let (id, _) = try local.subscribeEvents(Subscription(channel: Builders.deviceChannel, filters: [filter]), now: .zero)
        let custom = try Self.remoteSet(.inUse, of: Builders.device("Custom:x"), remote: &remote, local: &local)
        let passed = custom.compactMap { if case .event(.deliver(let event, let ids)) = $0 { (event.attributes["device"], ids) } else { nil } }
        #expect(passed.count == 1)
        #expect(passed.first?.0 == "Custom:x")
        #expect(passed.first?.1 == [id])
        let sip = try Self.remoteSet(.inUse, of: Builders.device("SIP/1"), remote: &remote, local: &local)
        #expect(!sip.contains { if case .event = $0 { true } else { false } })
        let closed = local.unsubscribeEvents(id)
        #expect(closed)
    }

    @Test("an event with a malformed device-state payload is reported and ignored")
    func malformedPayload() throws {
        var (local, _) = try Self.pair()
        var sender = try EventChannelService(localNode: NodeID(2), entityID: Builders.entity(2), incarnation: 1, channels: Builders.channels)
        let bad = try sender.publish(on: Builders.deviceChannel, type: .deviceState, payload: [1, 1, 99, 0, 1, 0x41])
        let effects = try local.delivered(payload: Builders.submits(bad.effects.map(DeviceStateService.translate))[0], from: NodeID(2), now: .zero)
        #expect(effects == [.rejectedEvent(bad.id, .invalidValue(field: "state", value: 99))])
        #expect(local.statistics.rejectedPayloads == 1)
        let wrongKind = try sender.publish(on: Builders.deviceChannel, type: .deviceState,
                                           payload: DeviceStatePayload.mailboxUpdate(Builders.mailbox("1@a"), MailboxCounts(newMessages: 1, oldMessages: 0)).encoded())
        let second = try local.delivered(payload: Builders.submits(wrongKind.effects.map(DeviceStateService.translate))[0], from: NodeID(2), now: .zero)
        #expect(second == [.rejectedEvent(wrongKind.id, .unknownKind(2, format: "device_state payload"))])
    }

    @Test("a node that only subscribes device_state publishes nothing: its own state and MWI are refused")
    func subscribeOnly() throws {
        let phone = [ChannelConfiguration(name: Builders.deviceChannel, publishes: [], subscribes: [.deviceState])]
        var service = try Builders.service(1, channels: phone)
        // Nothing set here would reach another server: refused, for device state as for MWI.
        #expect(throws: DeviceStateError.deviceStateNotPublished) { try service.setLocalState(.inUse, of: Self.device) }
        #expect(service.device(Self.device).state == .invalid && service.localState.devices.isEmpty)
        #expect(throws: DeviceStateError.mwiNotPublished) { try service.setMailbox(Builders.mailbox("1"), counts: MailboxCounts(newMessages: 1, oldMessages: 0)) }
    }
}
