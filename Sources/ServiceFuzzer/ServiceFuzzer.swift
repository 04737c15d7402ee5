// A fuzz target for every service payload a node decodes from the ring or its disk: membership
// announcements, events, device states and MWI, and the local state file; then, with the same
// bytes, the services themselves (membership and device state, which carries the event
// channels). Built with libFuzzer by scripts/fuzz.sh; a plain build replays saved inputs.

import DeviceState
import EventService
import FuzzingSupport
import Membership
import Totem

/// The input is a sequence of records `tag u8 | length u16 big-endian | bytes` (FuzzingSupport).
/// `tag % 8` chooses what the bytes are offered to:
///
/// | tag | as |
/// |---|---|
/// | 0 | a `NodeAnnouncement`, then to the membership service from node `tag >> 3 % 4 + 1` |
/// | 1 | an `EventMessage` (one name cache for the whole input) |
/// | 2 | a `DeviceStatePayload` |
/// | 3 | a `LocalStateTable` (the state file) |
/// | 4, 5 | a ring payload to the device-state service from node `tag >> 3 % 4 + 1` |
/// | 6 | a configuration change: members are the nodes 1-4 whose bit is set in the first byte |
/// | 7 | a local `devstate set` (first byte: state) or `mwi set` (second byte: counts) |
///
/// What decodes must encode and decode again to the same value; nothing may trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func serviceFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var harness = ServiceHarness()
    for (tag, bytes) in records(in: UnsafeBufferPointer(start: data, count: size)) {
        harness.offer(bytes, tag: tag)
    }
    return 0
}

/// Node 1's services, started fresh for each input.
struct ServiceHarness {
    static let deviceChannel = ChannelName("device_state")!
    static let mwiChannel = ChannelName("mwi")!
    static let nodes: [ConfiguredNode] = (1...4).map {
        ConfiguredNode(id: NodeID($0), name: "server\($0)", addresses: [NodeAddress(bytes: [127, 0, 0, UInt8($0)])!])
    }
    static func entity(_ node: UInt32) -> EntityID { EntityID(rawValue: 0x0200_0000_0000 | UInt64(node))! }
    static let fresh: (MembershipService, DeviceStateService) = {
        do {
            let membership = try MembershipService(localNode: nodes[0], entityID: entity(1), configuredNodes: nodes)
            let channels = [
                ChannelConfiguration(name: deviceChannel, publishes: [.deviceState], subscribes: [.deviceState]),
                ChannelConfiguration(name: mwiChannel, publishes: [.mwi], subscribes: [.mwi]),
            ]
            let devices = try DeviceStateService(configuration: DeviceStateConfiguration(
                localNode: NodeID(1), entityID: entity(1), incarnation: 1, channels: channels,
                limits: DeviceStateLimits(maxDevices: 64, maxMailboxes: 64)))
            return (membership, devices)
        } catch {
            preconditionFailure("the fuzz harness's own configuration was refused: \(error)")
        }
    }()

    var membership = ServiceHarness.fresh.0
    var devices = ServiceHarness.fresh.1
    var names = EventNameCache()
    var now = MonotonicInstant.zero
    var ringSequence: UInt64 = 4
    var regularMembers: [NodeID] = []
    static let states = ["UNKNOWN", "NOT_INUSE", "INUSE", "BUSY", "INVALID", "UNAVAILABLE", "RINGING", "RINGINUSE", "ONHOLD"]

    mutating func offer(_ bytes: [UInt8], tag: UInt8) {
        now = now + .milliseconds(3)
        let sender = NodeID(UInt32(tag >> 3 % 4) + 1)
        switch tag % 8 {
        case 0:
            if let announcement = try? NodeAnnouncement(decoding: bytes) {
                require(try? NodeAnnouncement(decoding: announcement.encoded()), equals: announcement, "NodeAnnouncement")
            }
            _ = try? membership.delivered(payload: bytes, from: sender)
        case 1:
            if let message = try? EventMessage(decoding: bytes, names: &names) {
                require(try? EventMessage(decoding: message.encoded()), equals: message, "EventMessage")
            }
        case 2:
            if let payload = try? DeviceStatePayload(decoding: bytes) {
                require(try? DeviceStatePayload(decoding: payload.encoded()), equals: payload, "DeviceStatePayload")
            }
        case 3:
            if let table = try? LocalStateTable(decoding: bytes) {
                require(try? LocalStateTable(decoding: table.encoded()), equals: table, "LocalStateTable")
            }
        case 4, 5:
            _ = try? devices.delivered(payload: bytes, from: sender, now: now)
        case 6:
            let mask = bytes.first ?? 1
            _ = installRing((1...4).filter { mask & 1 << ($0 - 1) != 0 || $0 == 1 }.map { NodeID(UInt32($0)) })
        default:
            let name = String(decoding: bytes.dropFirst(2).prefix(40), as: UTF8.self)
            if let first = bytes.first {
                _ = try? devices.setLocalState(device: "Custom:" + name, state: Self.states[Int(first) % Self.states.count])
            }
            if bytes.count > 1, let mailbox = try? MailboxName(parsing: name.isEmpty ? "100@default" : name) {
                _ = try? devices.setMailbox(mailbox, counts: MailboxCounts(newMessages: UInt32(bytes[1] >> 4), oldMessages: UInt32(bytes[1] & 15)))
            }
            devices.expireEvents(now: now)
        }
    }

    /// Hands both services a new ring of `members` (which include node 1) as Totem does: a
    /// transitional configuration of the members that stay, then the regular one. Returns
    /// what the services submit.
    mutating func installRing(_ members: [NodeID]) -> [[UInt8]] {
        ringSequence += 4
        let ring = RingID(representative: members[0], sequence: ringSequence)
        let staying = regularMembers.filter(members.contains)
        let changes = [
            ConfigurationChange(kind: .transitional, ringID: ring, members: staying,
                                left: regularMembers.filter { !members.contains($0) }, joined: []),
            ConfigurationChange(kind: .regular, ringID: ring, members: members, left: [],
                                joined: members.filter { !staying.contains($0) }),
        ]
        regularMembers = members
        var submitted: [[UInt8]] = []
        for change in changes {
            for effect in membership.configurationChanged(change) { if case .submit(let bytes) = effect { submitted.append(bytes) } }
            for effect in devices.configurationChanged(change, now: now) { if case .submit(let bytes) = effect { submitted.append(bytes) } }
        }
        return submitted
    }

    /// A decoded value that does not survive its own encoding is a bug: trap, so libFuzzer
    /// keeps the input.
    func require<Value: Equatable>(_ again: Value?, equals value: Value, _ what: String) {
        guard again == value else { preconditionFailure("\(what) did not decode back to itself after encoding") }
    }
}

/// Ring payloads the services themselves produce: announcements, device states, MWI, events.
enum SeedCorpus {
    static func inputs() -> [[UInt8]] {
        var harness = ServiceHarness()
        var payloads = harness.installRing([NodeID(1), NodeID(2)])
        let set = (try? harness.devices.setLocalState(device: "Custom:seed", state: "INUSE")) ?? []
        let mwi = (try? harness.devices.setMailbox(MailboxName(parsing: "1234@default"), counts: MailboxCounts(newMessages: 2, oldMessages: 1))) ?? []
        for effect in set + mwi { if case .submit(let bytes) = effect { payloads.append(bytes) } }
        var inputs: [[UInt8]] = []
        for payload in payloads {
            // As a ring payload from node 2, and as the record types it holds (envelope and all).
            inputs.append(record(4 | 1 << 3, payload))
            for tag: UInt8 in [0, 1, 2] { inputs.append(record(tag, payload)) }
        }
        inputs.append(payloads.flatMap { record(5, $0) } + record(6, [3]) + record(7, [2, 0x21] + Array("seed".utf8)))
        inputs.append(record(3, harness.devices.localState.encoded()))
        return inputs
    }
}

#if FUZZING
/// SwiftPM links an executable's entry point under this name; in a fuzzing build it hands
/// control to libFuzzer.
@_cdecl("ServiceFuzzer_main")
func serviceFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, size in serviceFuzzerTestOneInput(data, size) }
}
#else
/// Replays saved fuzz inputs: `ServiceFuzzer FILE...`; `ServiceFuzzer --write-seeds DIR`.
@main
struct ServiceFuzzerReplay {
    static func main() {
        runReplayTool(name: "ServiceFuzzer", arguments: Array(CommandLine.arguments.dropFirst()), seeds: SeedCorpus.inputs) {
            data, size in serviceFuzzerTestOneInput(data, size)
        }
    }
}
#endif
