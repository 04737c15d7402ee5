// A simulated ring for device-state tests: every node gets the same ordered stream of
// configuration changes and deliveries (a shared ordered list), as Totem gives them.

import Testing
import EventService
import Membership
import Totem
@testable import DeviceState

enum Builders {
    static let deviceChannel = ChannelName("device_state")!
    static let mwiChannel = ChannelName("mwi")!
    static let channels = [
        ChannelConfiguration(name: deviceChannel, publishes: [.deviceState], subscribes: [.deviceState]),
        ChannelConfiguration(name: mwiChannel, publishes: [.mwi], subscribes: [.mwi]),
    ]

    static func device(_ text: String) -> DeviceName {
        do { return try DeviceName(parsing: text) } catch { preconditionFailure("\(error)") }
    }

    static func mailbox(_ text: String) -> MailboxName {
        do { return try MailboxName(parsing: text) } catch { preconditionFailure("\(error)") }
    }

    static func hint(_ key: String, _ devices: String) -> Hint {
        do { return try Hint(parsingKey: key, devices: devices) } catch { preconditionFailure("\(error)") }
    }

    static let seedHint = hint("1234@devstate_test", "Custom:mystate")

    static func entity(_ node: UInt32) -> EntityID { EntityID(rawValue: 0x0200_0000_0000 | UInt64(node))! }

    static func configuration(_ node: UInt32, entity: EntityID? = nil, channels: [ChannelConfiguration] = channels,
                              hints: [Hint] = [seedHint], restored: LocalStateTable = LocalStateTable(),
                              incarnation: UInt64 = 1) -> DeviceStateConfiguration {
        DeviceStateConfiguration(localNode: NodeID(node), entityID: entity ?? Self.entity(node), incarnation: incarnation,
                                 channels: channels, hints: hints, restoredLocalState: restored)
    }

    static func service(_ node: UInt32, entity: EntityID? = nil, channels: [ChannelConfiguration] = channels,
                        hints: [Hint] = [seedHint], restored: LocalStateTable = LocalStateTable()) throws -> DeviceStateService {
        try DeviceStateService(configuration: configuration(node, entity: entity, channels: channels, hints: hints, restored: restored))
    }

    /// TRANSITIONAL then REGULAR from `old` to `new`.
    static func change(from old: [UInt32], to new: [UInt32], sequence: UInt64) -> [ConfigurationChange] {
        let transitional = old.filter(new.contains).sorted()
        let ringID = RingID(representative: NodeID(new.min() ?? 1), sequence: sequence)
        return [ConfigurationChange(kind: .transitional, ringID: ringID, members: transitional.map(NodeID.init),
                                    left: old.filter { !new.contains($0) }.sorted().map(NodeID.init), joined: []),
                ConfigurationChange(kind: .regular, ringID: ringID, members: new.sorted().map(NodeID.init), left: [],
                                    joined: new.filter { !transitional.contains($0) }.sorted().map(NodeID.init))]
    }

    static func submits(_ effects: [DeviceStateEffect]) -> [[UInt8]] {
        effects.compactMap { if case .submit(let bytes) = $0 { bytes } else { nil } }
    }

    static func deviceChanges(_ effects: [DeviceStateEffect]) -> [DeviceStateChange] {
        effects.compactMap { if case .deviceStateChanged(let change) = $0 { change } else { nil } }
    }

    static func extensionChanges(_ effects: [DeviceStateEffect]) -> [ExtensionStateChange] {
        effects.compactMap { if case .extensionStateChanged(let change) = $0 { change } else { nil } }
    }

    static func mailboxChanges(_ effects: [DeviceStateEffect]) -> [MailboxChange] {
        effects.compactMap { if case .mailboxChanged(let change) = $0 { change } else { nil } }
    }

    /// The changes `effects` persist, in order.
    static func persisted(_ effects: [DeviceStateEffect]) -> [LocalStateChange] {
        effects.compactMap { if case .persist(let change) = $0 { change } else { nil } }
    }

    /// The payloads of device-state events among `submits`.
    static func payloads(_ effects: [DeviceStateEffect]) throws -> [DeviceStatePayload] {
        try submits(effects).map { try DeviceStatePayload(decoding: EventMessage(decoding: $0).payload) }
    }
}

/// What must be identical on every member once the stream is quiet.
struct ClusterView: Equatable, CustomStringConvertible {
    var devices: [DeviceSnapshot]
    var mailboxes: [MailboxRecord]
    var hints: [HintRow]

    var description: String {
        devices.map { "\($0.device)=\($0.state)[\($0.servers.map { "\($0.entity.rawValue & 0xFF):\($0.state)" }.joined(separator: ","))]" }
            .joined(separator: " ") + " | " + mailboxes.map { "\($0.mailbox)=\($0.counts)" }.joined(separator: " ")
            + " | " + hints.map { "\($0.key)=\($0.state)" }.joined(separator: " ")
    }
}

/// N nodes (membership and device state) on one simulated ring.
struct SimulatedCluster {
    var services: [UInt32: DeviceStateService] = [:]
    var memberships: [UInt32: MembershipService] = [:]
    var stateFiles: [UInt32: LocalStateTable] = [:]
    var members: [UInt32] = []
    var pending: [(sender: UInt32, bytes: [UInt8])] = []
    var sequence: UInt64 = 0
    var effects: [UInt32: [DeviceStateEffect]] = [:]
    var hints: [Hint] = [Builders.seedHint]
    var channels: [UInt32: [ChannelConfiguration]] = [:]
    var now = MonotonicInstant.zero

    /// Starts (or restarts) a node from its state file; it joins at the next `configure`.
    mutating func start(_ node: UInt32) throws {
        let restored = stateFiles[node] ?? LocalStateTable()
        // The daemon writes the table with `encoded()` and reads it back at start.
        let decoded = try LocalStateTable(decoding: restored.encoded())
        services[node] = try DeviceStateService(configuration: Builders.configuration(node, channels: channels[node] ?? Builders.channels,
                                                                                       hints: hints, restored: decoded))
        memberships[node] = try MembershipService(localNode: ConfiguredNode(id: NodeID(node), name: "node\(node)", addresses: []),
                                                  entityID: Builders.entity(node), configuredNodes: [])
        effects[node] = []
    }

    /// Stops a node: it leaves at the next `configure`; what it had not sent is lost.
    mutating func crash(_ node: UInt32) {
        services[node] = nil
        memberships[node] = nil
        pending.removeAll { $0.sender == node }
    }

    mutating func record(_ node: UInt32, _ produced: [DeviceStateEffect]) {
        for effect in produced {
            switch effect {
            case .submit(let bytes): pending.append((node, bytes))
            case .persist(let change): stateFiles[node, default: LocalStateTable()].apply(change)
            default: effects[node, default: []].append(effect)
            }
        }
    }

    mutating func set(_ node: UInt32, _ device: String, _ state: DeviceStateValue) {
        do {
            record(node, try services[node]!.setLocalState(state, of: Builders.device(device)))
        } catch {
            Issue.record("node \(node) refused \(device) \(state): \(error)")
        }
    }

    mutating func setMailbox(_ node: UInt32, _ mailbox: String, new: UInt32, old: UInt32) throws {
        record(node, try services[node]!.setMailbox(Builders.mailbox(mailbox), counts: MailboxCounts(newMessages: new, oldMessages: old)))
    }

    /// Delivers every pending message, in submission order, to every member (sender included).
    mutating func deliverAll() throws {
        while !pending.isEmpty {
            let (sender, bytes) = pending.removeFirst()
            // A crashed node is still a member until the next configuration, but receives nothing.
            for member in members where services[member] != nil {
                switch try ServiceEnvelope.service(of: bytes) {
                case .membership:
                    for effect in try memberships[member]!.delivered(payload: bytes, from: NodeID(sender)) {
                        if case .submit(let more) = effect { pending.append((member, more)) }
                    }
                case .event:
                    record(member, try services[member]!.delivered(payload: bytes, from: NodeID(sender), now: now))
                case .ping:
                    break
                }
            }
        }
    }

    /// Installs a new membership at every node of `new` (and flushes the stream before, and
    /// after unless `deliveringAfter` is false: what the change made the nodes submit then waits).
    mutating func configure(_ new: [UInt32], deliveringAfter: Bool = true) throws {
        try deliverAll()
        sequence += 4
        for node in new.sorted() {
            let old = members.contains(node) ? members : []
            for change in Builders.change(from: old, to: new, sequence: sequence) {
                for effect in memberships[node]!.configurationChanged(change) {
                    if case .submit(let bytes) = effect { pending.append((node, bytes)) }
                }
                record(node, services[node]!.configurationChanged(change, now: now))
            }
        }
        members = new.sorted()
        if deliveringAfter { try deliverAll() }
    }

    func view(_ node: UInt32) -> ClusterView {
        let service = services[node]!
        return ClusterView(devices: service.devices, mailboxes: service.mailboxes, hints: service.hintRows)
    }

    /// Every member's view, checked equal; returns the common one.
    func convergedView(sourceLocation: SourceLocation = #_sourceLocation) -> ClusterView {
        let first = view(members[0])
        for member in members.dropFirst() {
            #expect(view(member) == first, "node \(member) differs from node \(members[0])", sourceLocation: sourceLocation)
        }
        return first
    }
}
