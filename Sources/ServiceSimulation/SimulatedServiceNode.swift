// The one door between the service simulation and the cluster services: every call into the
// services' host (ClusterServices' ServiceHost, which the daemon's ClusterHub runs, around
// MembershipService and DeviceStateService), and every use of their wire and disk formats, is in
// this file. The rest of ServiceSimulation sees node ids, device and mailbox names as text,
// DeviceStateValue, MailboxCounts and the views below.

import ClusterServices
import DeviceState
import EventService
import Membership
import Totem

/// The cluster services of one simulated node: the `ServiceHost` the daemon runs, built as
/// `ClusterSetup` builds it and fed as `ClusterHub` feeds it: ring events and client requests
/// with the simulated time; its submits handed to the harness in order (a refused one and those
/// after it go back to the host's backlog, retried when its timer fires), its timers kept for
/// the harness to fire, its `persist` effects handed out for the node's disk.
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
    private var host: ServiceHost
    private let channel: ChannelName
    private let alert: EventType
    /// The host's submits not yet taken by the ring, oldest first (`ClusterHub` executes a batch
    /// of them in order; the harness flushes them after each batch of ring events).
    private var outbox: [(message: [UInt8], queued: Bool)] = []
    /// The deadlines of the host's armed timers.
    private var timers: [ServiceHost.Timer: MonotonicInstant] = [:]
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
            let membership = try MembershipService(localNode: local, entityID: entity, configuredNodes: nodes)
            guard let channel = ChannelName(Self.channel), let alert = EventType(Self.alertType) else {
                preconditionFailure("invalid built-in channel \(Self.channel) or type \(Self.alertType)")
            }
            let types = [EventType.deviceState, .mwi, alert]
            let hints = try Self.hints.map { hint throws(DeviceStateError) in
                try Hint(parsingKey: hint.key, devices: hint.devices.joined(separator: "&"))
            }
            let deviceState = try DeviceStateService(configuration: DeviceStateConfiguration(
                localNode: node, entityID: entity, incarnation: UInt64(incarnation),
                channels: [ChannelConfiguration(name: channel, publishes: types, subscribes: types)],
                hints: hints, restoredLocalState: restored.table))
            var names: [NodeID: String] = [:]
            for configured in nodes { names[configured.id] = configured.name }
            host = ServiceHost(membership: membership, deviceState: deviceState, nodeNames: names,
                               entityIDOrigin: "simulated from the node id")
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
    public var compactedDisk: (snapshot: [UInt8], log: [UInt8]) { Self.disk(holding: host.deviceState.localState) }

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

    /// How the host's log line about a lost quorum starts (a warning that faults cause).
    private static let quorumLostPrefix = "quorum lost: "

    /// The harness has no control clients: nothing is held, so the ring's queue does not matter.
    private static let ringQueuedBytes = 0

    /// A configuration change of this node's ring (the host hands it to membership, then to
    /// device state).
    public mutating func configurationChanged(_ change: ConfigurationChange, now: MonotonicInstant) -> [ServiceNodeEffect] {
        everMembers.formUnion(change.members)
        var change = change
        if plantedFault == .keepDepartedServers {
            // The planted bug: the services never hear that a server left.
            change.members = everMembers.sorted()
        }
        return run { host, effects in host.configurationChanged(change, now: now, into: &effects) }
    }

    /// A ring delivery (the payload as submitted, service byte first); the host routes it by that byte.
    public mutating func delivered(_ payload: [UInt8], from sender: NodeID, now: MonotonicInstant) -> [ServiceNodeEffect] {
        var payload = payload
        if payload.first == ServiceID.event.rawValue {
            eventDeliveries += 1
            switch plantedFault {
            case .skipEventDelivery(let number) where number == eventDeliveries:
                return [.note("planted fault: skipped event delivery \(number)")]
            case .rewriteDeviceStates(let state):
                payload = Self.rewritingDeviceStates(payload, to: state)
            default:
                break
            }
        }
        return run { host, effects in
            host.delivered(payload, from: sender, now: now, ringQueuedBytes: Self.ringQueuedBytes, into: &effects)
        }
    }

    // MARK: - Client requests

    /// `devstate set`: this server's own state of `device`. Returns whether the service took it.
    public mutating func setDeviceState(_ state: DeviceStateValue, of device: String, now: MonotonicInstant)
        -> (accepted: Bool, effects: [ServiceNodeEffect]) {
        request("devstate set \(device) \(state)", now: now) { host, now, effects throws(ServiceHostError) in
            _ = try host.setDeviceState(state, of: try Self.deviceName(device), client: nil, now: now,
                                        ringQueuedBytes: Self.ringQueuedBytes, into: &effects)
        }
    }

    /// `devstate clear`: this server no longer reports `device`.
    public mutating func clearDeviceState(of device: String, now: MonotonicInstant) -> [ServiceNodeEffect] {
        request("devstate clear \(device)", now: now) { host, now, effects throws(ServiceHostError) in
            _ = host.clearDeviceState(of: try Self.deviceName(device), client: nil, now: now,
                                      ringQueuedBytes: Self.ringQueuedBytes, into: &effects)
        }.effects
    }

    /// `mwi set`: this server publishes `counts` for `mailbox` (`MAILBOX@CONTEXT`).
    public mutating func setMailbox(_ mailbox: String, counts: MailboxCounts, now: MonotonicInstant)
        -> (accepted: Bool, effects: [ServiceNodeEffect]) {
        request("mwi set \(mailbox) \(counts)", now: now) { host, now, effects throws(ServiceHostError) in
            try host.setMailbox(try Self.mailboxName(mailbox), counts: counts, client: nil, now: now, ringQueuedBytes: Self.ringQueuedBytes, into: &effects)
        }
    }

    /// `event_publish` of an alert on the channel, retained for `retention` (`nil`: not retained).
    /// Returns the event id (`EventID` text), `nil` if the service refused it.
    public mutating func publishAlert(payload: [UInt8], retention: Duration?, now: MonotonicInstant)
        -> (id: String?, effects: [ServiceNodeEffect]) {
        var id: String?
        let (channel, alert) = (channel, alert)
        let effects = request("event publish", now: now) { host, now, effects throws(ServiceHostError) in
            id = try host.publishEvent(on: channel, type: alert, attributes: ["kind": "alert"], payload: payload,
                                       retention: retention, client: nil, now: now, ringQueuedBytes: Self.ringQueuedBytes,
                                       into: &effects).description
        }.effects
        return (id, effects)
    }

    private static func deviceName(_ text: String) throws(ServiceHostError) -> DeviceName {
        do throws(DeviceStateError) {
            return try DeviceName(parsing: text)
        } catch {
            throw .deviceState(error)
        }
    }

    private static func mailboxName(_ text: String) throws(ServiceHostError) -> MailboxName {
        do throws(DeviceStateError) {
            return try MailboxName(parsing: text)
        } catch {
            throw .deviceState(error)
        }
    }

    /// Runs a client request on the host; a refusal is an anomaly (the workload asks only for
    /// what a correct node accepts).
    private mutating func request(
        _ what: String, now: MonotonicInstant,
        _ body: (inout ServiceHost, MonotonicInstant, inout [ServiceHost.Effect]) throws(ServiceHostError) -> Void
    ) -> (accepted: Bool, effects: [ServiceNodeEffect]) {
        var refusal: ServiceHostError?
        let effects = run { host, effects in
            do throws(ServiceHostError) {
                try body(&host, now, &effects)
            } catch {
                refusal = error
            }
        }
        guard let refusal else { return (true, effects) }
        return (false, effects + [.anomaly("\(what) refused: \(refusal)")])
    }

    // MARK: - Ring submits and timers

    /// The oldest message waiting for the ring, if any: submit it, then call `submitTaken()`; on
    /// `tryAgain` call `submitRefused(now:)`, on another refusal `submitFailed(_:now:)`.
    public var nextSubmit: [UInt8]? { outbox.first?.message }

    /// The message `nextSubmit` gave went to the ring.
    public mutating func submitTaken() {
        if !outbox.isEmpty { outbox.removeFirst() }
    }

    /// The ring said `tryAgain` to `nextSubmit`: it and every later submit go back to the host's
    /// backlog, in order, retried when its backlog timer fires.
    public mutating func submitRefused(now: MonotonicInstant) -> [ServiceNodeEffect] {
        let messages = outbox.map(\.message)
        outbox.removeAll()
        return run { host, effects in host.submitRefused(messages, now: now, into: &effects) }
    }

    /// The ring refused `nextSubmit` for good (`error` is not `tryAgain`).
    public mutating func submitFailed(_ error: SubmitError, now: MonotonicInstant) -> [ServiceNodeEffect] {
        guard !outbox.isEmpty else { return [] }
        let (message, queued) = outbox.removeFirst()
        return run { host, effects in host.submitFailed(message, error: error, queued: queued, now: now, into: &effects) }
    }

    /// Messages waiting for the ring: handed out and not taken, or in the host's backlog.
    public var backlogCount: Int { outbox.count + host.backlogCount }

    /// When the host's backlog is retried next, if it waits (the other timers are not the
    /// harness's concern: retained events' expiry is applied when they are read).
    public var nextBacklogRetry: MonotonicInstant? { timers[.backlog] }

    /// Fires the host's timers due at `now`.
    public mutating func fireTimers(now: MonotonicInstant) -> [ServiceNodeEffect] {
        var result: [ServiceNodeEffect] = []
        for timer in ServiceHost.Timer.allCases {
            guard let deadline = timers[timer], deadline <= now else { continue }
            timers.removeValue(forKey: timer)
            result += run { host, effects in
                host.timerFired(timer, now: now, ringQueuedBytes: Self.ringQueuedBytes, into: &effects)
            }
        }
        return result
    }

    /// Runs one input of the host and executes its effects as ClusterHub does: submits to the
    /// outbox, timers kept, writes handed out for the disk, the rest written to the trace.
    private mutating func run(_ input: (inout ServiceHost, inout [ServiceHost.Effect]) -> Void) -> [ServiceNodeEffect] {
        var effects: [ServiceHost.Effect] = []
        input(&host, &effects)
        var result: [ServiceNodeEffect] = []
        for effect in effects {
            switch effect {
            case .submit(let message, let queued): outbox.append((message, queued))
            case .persist(let change): result.append(.persist(Self.write(change)))
            case .armTimer(let timer, let deadline): timers[timer] = deadline
            case .disarmTimer(let timer): timers.removeValue(forKey: timer)
            case .push(let notification, _): result.append(.note("\(notification)"))
            case .deliverEvent(let event, _, _, _): result.append(.note("event \(event.id) to a subscriber"))
            case .hold, .release, .answerPing:
                result.append(.anomaly("the host answered a client the harness does not have: \(effect)"))
            case .log(let level, let line):
                // A warning or an error is something no correct run produces (a message that does
                // not decode, a refused entry, a full backlog, an entity conflict), except losing
                // quorum, which partitions and crashes do.
                let text = line.description
                let expected = level < .warning || text.hasPrefix(Self.quorumLostPrefix)
                result.append(expected ? .note(text) : .anomaly("\(level): \(text)"))
            }
        }
        return result
    }

    // MARK: - What the node shows

    /// The cluster-wide state of `device` here and the per-server states it is made of.
    public func device(_ device: String) -> DeviceView {
        guard let name = try? DeviceName(parsing: device) else { return DeviceView(state: .invalid, servers: [:]) }
        let snapshot = host.deviceState.device(name)
        var servers: [NodeID: DeviceStateValue] = [:]
        for server in snapshot.servers { servers[server.node] = server.state }
        return DeviceView(state: snapshot.state, servers: servers)
    }

    /// The extension state of each configured hint here, by `exten@context`.
    public var hintStates: [String: ExtensionState] {
        var states: [String: ExtensionState] = [:]
        for row in host.deviceState.hintRows { states[row.key.description] = row.state }
        return states
    }

    /// The cluster-wide MWI record of `mailbox` here, `nil` if unknown.
    public func mailbox(_ mailbox: String) -> MailboxView? {
        guard let name = try? MailboxName(parsing: mailbox), let record = host.deviceState.mailbox(name) else { return nil }
        return MailboxView(counts: record.counts, stamp: WriteStamp(record.stamp), origin: record.originNode)
    }

    /// The alerts held here and not expired at `now` (event ids), after expiring the others as
    /// the daemon's expiry timer would.
    public mutating func retainedAlerts(now: MonotonicInstant) -> Set<String> {
        if let deadline = timers[.expiry], deadline <= now {
            timers.removeValue(forKey: .expiry)
            // Expiry writes nothing to the disk and submits nothing: its notes are not needed.
            _ = run { host, effects in host.timerFired(.expiry, now: now, ringQueuedBytes: Self.ringQueuedBytes, into: &effects) }
        }
        return Set(host.deviceState.events.retainedEvents.filter { $0.type == alert }.map(\.id.description))
    }

    /// This server's own device states (its local table).
    public var ownDevices: [String: DeviceStateValue] {
        var devices: [String: DeviceStateValue] = [:]
        for (name, state) in host.deviceState.localState.devices { devices[name.rawValue] = state }
        return devices
    }

    /// The MWI this server published, with the stamp of its delivery once known.
    public var ownMailboxes: [String: (counts: MailboxCounts, stamp: WriteStamp?)] {
        var mailboxes: [String: (counts: MailboxCounts, stamp: WriteStamp?)] = [:]
        for (name, entry) in host.deviceState.localState.mailboxes {
            let stamp = entry.position.map { WriteStamp(ringSequence: $0.ringSequence, index: $0.index, entity: Self.entity(of: node)) }
            mailboxes[name.description] = (entry.counts, stamp)
        }
        return mailboxes
    }

    /// The membership service's installed view: its ring and members (`nil` before the first).
    public var view: (ringID: RingID, members: [NodeID])? { host.membership.view.map { ($0.ringID, $0.members) } }

    /// The entity id the membership directory knows for `node`, if any.
    public func knownEntity(of node: NodeID) -> UInt64? { host.membership.node(node)?.entityID?.rawValue }

    // MARK: - Reading ring messages

    /// What a delivered ring payload says, decoded independently of any node's services (the
    /// checker's own record of who wrote what, and where in ring order).
    public static func summarize(_ payload: [UInt8]) -> RingMessageSummary {
        switch payload.first.flatMap(ServiceID.init(rawValue:)) {
        case .membership: return .membership
        case .ping, nil: return .unknown
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
