// The one door between the service simulation and the cluster services: every call into
// MembershipService and DeviceStateService (and the event service it owns), and every use of
// their wire and disk formats, is in this file. The rest of ServiceSimulation sees node ids,
// device and mailbox names as text, DeviceStateValue, MailboxCounts and the views below.
// When the daemon's hub becomes a pure ServiceHost (issue 15, item 3), this file's insides are
// swapped for it and nothing else changes.

import DeviceState
import EventService
import Membership
import Totem

/// The cluster services of one simulated node, built and fed as `devclusterd` builds and feeds
/// them (`ClusterSetup`, `ClusterHub`): membership first, then device state, for every
/// configuration change; each delivery routed by its service byte; client requests; a submit
/// backlog for a full send queue; `persist` effects handed out for the node's disk.
public struct SimulatedServiceNode {
    /// The channel every node publishes and subscribes device states, MWI and alerts on.
    public static let channel = "cluster"
    /// The event type of the clients' own events (retained alerts).
    public static let alertType = "alert"
    /// The hints every node is configured with: `exten@context` and its devices.
    public static let hints: [(key: String, devices: [String])] = [
        ("100@default", ["SIP/1001", "Custom:alpha"]),
        ("200@sales", ["PJSIP/2001", "SIP/1002", "Custom:beta"]),
    ]

    /// This node.
    public let node: NodeID
    /// The simulator's incarnation of the node these services run in.
    public let incarnation: UInt32
    /// What restoring the disk reported (a torn last record, an unusable log), for the trace.
    public let restoreProblems: [String]
    private var membership: MembershipService
    private var deviceState: DeviceStateService
    private let channel: ChannelName
    private let alert: EventType
    /// Ring submits waiting for room in the send queue, oldest first (`ClusterHub`'s backlog).
    private var backlog: [[UInt8]] = []
    /// A bug planted by a test to show that the checker sees it; `nil` in every real run.
    var plantedFault: PlantedServiceFault?
    private var eventDeliveries = 0
    private var everMembers: Set<NodeID> = []

    /// Builds the services of `node` from its disk (`emptyDisk` on a first start), as the daemon
    /// does from `local_state` and its log: the restored states count at once and are published
    /// at the first regular configuration. Compact the disk next (`compactedDisk`), as the
    /// daemon's writer does first.
    public init(node: NodeID, incarnation: UInt32, nodeCount: Int, snapshot: [UInt8], log: [UInt8]) {
        let entity = Self.entityID(of: node)
        let nodes = (1...nodeCount).map { ConfiguredNode(id: NodeID(UInt32($0)), name: "node\($0)", addresses: []) }
        let local = nodes[Int(node.rawValue) - 1]
        let restored = Self.restore(snapshot: snapshot, log: log)
        do {
            membership = try MembershipService(localNode: local, entityID: entity, configuredNodes: nodes)
            guard let channel = ChannelName(Self.channel), let alert = EventType(Self.alertType) else {
                preconditionFailure("invalid built-in channel \(Self.channel) or type \(Self.alertType)")
            }
            let types = [EventType.deviceState, .mwi, alert]
            let hints = try Self.hints.map { hint throws(DeviceStateError) in
                try Hint(parsingKey: hint.key, devices: hint.devices.joined(separator: "&"))
            }
            deviceState = try DeviceStateService(configuration: DeviceStateConfiguration(
                localNode: node, entityID: entity, incarnation: UInt64(incarnation),
                channels: [ChannelConfiguration(name: channel, publishes: types, subscribes: types)],
                hints: hints, restoredLocalState: restored.table))
            self.channel = channel
            self.alert = alert
        } catch {
            preconditionFailure("the simulated services' configuration is invalid: \(error)")
        }
        self.node = node
        self.incarnation = incarnation
        restoreProblems = restored.problems
    }

    /// The entity id of `node`'s server (the same in every incarnation, as a server's EID).
    public static func entityID(of node: NodeID) -> EntityID {
        guard let entity = EntityID(rawValue: 0x0200_0000_0000 | UInt64(node.rawValue)) else {
            preconditionFailure("no entity id for node \(node)")
        }
        return entity
    }

    /// The number in `entityID(of:)`.
    public static func entity(of node: NodeID) -> UInt64 { entityID(of: node).rawValue }

    // MARK: - Disk

    /// A first start's disk: an empty table and a log extending it.
    public static var emptyDisk: (snapshot: [UInt8], log: [UInt8]) { disk(holding: LocalStateTable()) }

    /// The disk after a compaction of this node's table: its snapshot and an empty log naming it.
    public var compactedDisk: (snapshot: [UInt8], log: [UInt8]) { Self.disk(holding: deviceState.localState) }

    private static func disk(holding table: LocalStateTable) -> (snapshot: [UInt8], log: [UInt8]) {
        let snapshot = table.encoded()
        return (snapshot, LocalStateLog.header(base: LocalStateLog.Base(snapshot: snapshot)))
    }

    /// The table a disk holds: the snapshot with the valid prefix of its log replayed
    /// (`LocalStateFiles.restore`, without the kept copies a simulated disk never needs).
    private static func restore(snapshot: [UInt8], log bytes: [UInt8]) -> (table: LocalStateTable, problems: [String]) {
        var table: LocalStateTable
        do {
            table = try LocalStateTable(decoding: snapshot)
        } catch {
            return (LocalStateTable(), ["the snapshot is unusable (\(error)); starting empty"])
        }
        do {
            let log = try LocalStateLog.decode(bytes)
            guard log.base == LocalStateLog.Base(snapshot: snapshot) else {
                return (table, ["the log names another snapshot (\(log.base)); it is ignored"])
            }
            for change in log.changes { table.apply(change) }
            return (table, log.problem.map { ["the log ends with \($0)"] } ?? [])
        } catch {
            return (table, ["the log is unusable (\(error)); it is ignored"])
        }
    }

    private static func write(_ change: LocalStateChange) -> PersistedWrite {
        var record: [UInt8] = []
        LocalStateLog.appendRecord(change, to: &record)
        let summary: OwnWrite = switch change {
        case .device(let device, let state): .device(device.rawValue, state)
        case .mailbox(let mailbox, let entry): .mailbox(mailbox.description, entry?.counts, positioned: entry?.position != nil)
        }
        return PersistedWrite(record: record, summary: summary)
    }

    // MARK: - Ring inputs

    /// A configuration change of this node's ring: membership first, then device state.
    public mutating func configurationChanged(_ change: ConfigurationChange, now: MonotonicInstant) -> [ServiceNodeEffect] {
        var effects = execute(membership.configurationChanged(change))
        everMembers.formUnion(change.members)
        var forDeviceState = change
        if plantedFault == .keepDepartedServers {
            // The planted bug: device state never hears that a server left.
            forDeviceState.members = everMembers.sorted()
        }
        effects += execute(deviceState.configurationChanged(forDeviceState, now: now))
        return effects
    }

    /// A ring delivery (the payload as submitted, service byte first), routed by that byte.
    public mutating func delivered(_ payload: [UInt8], from sender: NodeID, now: MonotonicInstant) -> [ServiceNodeEffect] {
        switch payload.first.flatMap(ServiceID.init(rawValue:)) {
        case .membership:
            do {
                return execute(try membership.delivered(payload: payload, from: sender))
            } catch {
                return [.anomaly("a membership message from node \(sender) does not decode: \(error)")]
            }
        case .event:
            eventDeliveries += 1
            var payload = payload
            switch plantedFault {
            case .skipEventDelivery(let number) where number == eventDeliveries:
                return [.note("planted fault: skipped event delivery \(number)")]
            case .rewriteDeviceStates(let state):
                payload = Self.rewritingDeviceStates(payload, to: state)
            default:
                break
            }
            do {
                return execute(try deviceState.delivered(payload: payload, from: sender, now: now))
            } catch {
                return [.anomaly("an event message from node \(sender) does not decode: \(error)")]
            }
        case nil:
            return [.anomaly("a ring message from node \(sender) names no service (first byte \(payload.first ?? 0))")]
        }
    }

    // MARK: - Client requests

    /// `devstate set`: this server's own state of `device`. Returns whether the service took it.
    public mutating func setDeviceState(_ state: DeviceStateValue, of device: String) -> (accepted: Bool, effects: [ServiceNodeEffect]) {
        do {
            return (true, execute(try deviceState.setLocalState(state, of: try DeviceName(parsing: device))))
        } catch {
            return (false, [.anomaly("devstate set \(device) \(state) refused: \(error)")])
        }
    }

    /// `devstate clear`: this server no longer reports `device`.
    public mutating func clearDeviceState(of device: String) -> [ServiceNodeEffect] {
        do {
            return execute(deviceState.clearLocalState(of: try DeviceName(parsing: device)))
        } catch {
            return [.anomaly("devstate clear \(device) refused: \(error)")]
        }
    }

    /// `mwi set`: this server publishes `counts` for `mailbox` (`MAILBOX@CONTEXT`).
    public mutating func setMailbox(_ mailbox: String, counts: MailboxCounts) -> (accepted: Bool, effects: [ServiceNodeEffect]) {
        do {
            return (true, execute(try deviceState.setMailbox(try MailboxName(parsing: mailbox), counts: counts)))
        } catch {
            return (false, [.anomaly("mwi set \(mailbox) \(counts) refused: \(error)")])
        }
    }

    /// `event_publish` of an alert on the channel, retained for `retention` (`nil`: not retained).
    /// Returns the event id (`EventID` text), `nil` if the service refused it.
    public mutating func publishAlert(payload: [UInt8], retention: Duration?) -> (id: String?, effects: [ServiceNodeEffect]) {
        do {
            let (id, effects) = try deviceState.publishEvent(on: channel, type: alert, attributes: ["kind": "alert"],
                                                            payload: payload, retention: retention)
            return (id.description, execute(effects))
        } catch {
            return (nil, [.anomaly("event publish refused: \(error)")])
        }
    }

    // MARK: - Ring submits

    /// The oldest message waiting for the ring, if any: submit it, then call `submitTaken()`;
    /// on `tryAgain` leave it for a later retry.
    public var nextSubmit: [UInt8]? { backlog.first }

    /// The message `nextSubmit` gave went to the ring (or was dropped for good).
    public mutating func submitTaken() {
        if !backlog.isEmpty { backlog.removeFirst() }
    }

    /// Messages waiting for the ring.
    public var backlogCount: Int { backlog.count }

    private mutating func execute(_ effects: [MembershipEffect]) -> [ServiceNodeEffect] {
        var result: [ServiceNodeEffect] = []
        for effect in effects {
            switch effect {
            case .submit(let bytes): backlog.append(bytes)
            case .notify(let change): result.append(.note("membership: \(change)"))
            }
        }
        return result
    }

    private mutating func execute(_ effects: [DeviceStateEffect]) -> [ServiceNodeEffect] {
        var result: [ServiceNodeEffect] = []
        for effect in effects {
            switch effect {
            case .submit(let bytes): backlog.append(bytes)
            case .persist(let change): result.append(.persist(Self.write(change)))
            case .deviceStateChanged(let change): result.append(.note("device \(change.device): \(change.old) -> \(change.new)"))
            case .extensionStateChanged(let change): result.append(.note("hint \(change.hint): \(change.old) -> \(change.new)"))
            case .mailboxChanged(let change):
                result.append(.note("mwi \(change.new.mailbox): \(change.old.map(\.description) ?? "none") -> "
                    + "\(change.new.counts) (\(change.new.stamp))"))
            case .serverStateChanged(let change):
                result.append(.note("server \(change.node) \(change.device): \(change.state.map(\.name) ?? "cleared")"))
            case .serverLeft(let entity, let node): result.append(.note("server \(node) (\(entity)) left"))
            case .rejectedEvent(let id, let error): result.append(.anomaly("event \(id) rejected: \(error)"))
            case .entryRefused(let entry): result.append(.anomaly("refused \(entry)"))
            case .event(let event): result.append(.note("event effect \(event)"))
            }
        }
        return result
    }

    // MARK: - What the node shows

    /// The cluster-wide state of `device` here and the per-server states it is made of.
    public func device(_ device: String) -> DeviceView {
        guard let name = try? DeviceName(parsing: device) else { return DeviceView(state: .invalid, servers: [:]) }
        let snapshot = deviceState.device(name)
        var servers: [NodeID: DeviceStateValue] = [:]
        for server in snapshot.servers { servers[server.node] = server.state }
        return DeviceView(state: snapshot.state, servers: servers)
    }

    /// The extension state of each configured hint here, by `exten@context`.
    public var hintStates: [String: ExtensionState] {
        var states: [String: ExtensionState] = [:]
        for row in deviceState.hintRows { states[row.key.description] = row.state }
        return states
    }

    /// The cluster-wide MWI record of `mailbox` here, `nil` if unknown.
    public func mailbox(_ mailbox: String) -> MailboxView? {
        guard let name = try? MailboxName(parsing: mailbox), let record = deviceState.mailbox(name) else { return nil }
        return MailboxView(counts: record.counts, stamp: WriteStamp(record.stamp), origin: record.originNode)
    }

    /// The alerts held here and not expired at `now` (event ids), after expiring the others as
    /// the daemon's expiry timer would.
    public mutating func retainedAlerts(now: MonotonicInstant) -> Set<String> {
        deviceState.expireEvents(now: now)
        return Set(deviceState.events.retainedEvents.filter { $0.type == alert }.map(\.id.description))
    }

    /// This server's own device states (its local table).
    public var ownDevices: [String: DeviceStateValue] {
        var devices: [String: DeviceStateValue] = [:]
        for (name, state) in deviceState.localState.devices { devices[name.rawValue] = state }
        return devices
    }

    /// The MWI this server published, with the stamp of its delivery once known.
    public var ownMailboxes: [String: (counts: MailboxCounts, stamp: WriteStamp?)] {
        var mailboxes: [String: (counts: MailboxCounts, stamp: WriteStamp?)] = [:]
        for (name, entry) in deviceState.localState.mailboxes {
            let stamp = entry.position.map { WriteStamp(ringSequence: $0.ringSequence, index: $0.index, entity: Self.entity(of: node)) }
            mailboxes[name.description] = (entry.counts, stamp)
        }
        return mailboxes
    }

    /// The membership service's installed view: its ring and members (`nil` before the first).
    public var view: (ringID: RingID, members: [NodeID])? { membership.view.map { ($0.ringID, $0.members) } }

    /// The entity id the membership directory knows for `node`, if any.
    public func knownEntity(of node: NodeID) -> UInt64? { membership.node(node)?.entityID?.rawValue }

    // MARK: - Reading ring messages

    /// What a delivered ring payload says, decoded independently of any node's services (the
    /// checker's own record of who wrote what, and where in ring order).
    public static func summarize(_ payload: [UInt8]) -> RingMessageSummary {
        switch payload.first.flatMap(ServiceID.init(rawValue:)) {
        case .membership: return .membership
        case nil: return .unknown
        case .event: break
        }
        let message: EventMessage
        do {
            message = try EventMessage(decoding: payload)
        } catch {
            return .undecodableEvent("\(error)")
        }
        var summary = EventSummary(id: message.id.description, publisher: message.id.publisher,
                                   retentionMilliseconds: message.retentionMilliseconds, republished: false, content: .other)
        if case .republished = message.kind { summary.republished = true }
        guard message.type == .deviceState || message.type == .mwi else {
            summary.content = message.type.rawValue == alertType ? .alert : .other
            return .event(summary)
        }
        guard let payload = try? DeviceStatePayload(decoding: message.payload) else { return .undecodableEvent("device-state payload") }
        switch payload {
        case .deviceState(let device, let state):
            summary.content = .deviceStates([DeviceWrite(device: device.rawValue, state: state)])
        case .deviceStateCleared(let device):
            summary.content = .deviceStates([DeviceWrite(device: device.rawValue, state: nil)])
        case .deviceStates(let entries):
            summary.content = .deviceStates(entries.map { DeviceWrite(device: $0.device.rawValue, state: $0.state) })
        case .mailboxUpdate(let mailbox, let counts):
            summary.content = .mailboxWrite(mailbox: mailbox.description, counts: counts, entity: message.publisherEntity.rawValue)
        case .mailboxRepublication(let record):
            summary.content = .mailboxRepublication(mailbox: record.mailbox.description, counts: record.counts,
                                                    stamp: WriteStamp(record.stamp), origin: record.originNode)
        }
        return .event(summary)
    }

    /// The planted `rewriteDeviceStates` bug: every device state in `payload` becomes `state`.
    private static func rewritingDeviceStates(_ payload: [UInt8], to state: DeviceStateValue) -> [UInt8] {
        guard var message = try? EventMessage(decoding: payload), message.type == .deviceState,
              case .deviceState(let device, _)? = try? DeviceStatePayload(decoding: message.payload) else { return payload }
        message.payload = DeviceStatePayload.deviceState(device, state).encoded()
        return message.encoded()
    }
}

extension WriteStamp {
    fileprivate init(_ stamp: MailboxStamp) {
        self.init(ringSequence: stamp.position.ringSequence, index: stamp.position.index, entity: stamp.entity.rawValue)
    }
}
