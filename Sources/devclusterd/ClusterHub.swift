// The cluster services inside the daemon: runs MembershipService and DeviceStateService (which
// owns the EventChannelService) on the loop thread, executes their effects (ring submits with a
// backlog for a full send queue, each change of the local state table handed to its writer thread,
// pushes to watchers), answers their control commands, and the ring `ping`. The local state is
// written by a LocalStateWriter off the loop thread. Service logic stays in the services; this
// file only wires.

import DeviceState
import EventService
import Membership
import Totem
import TotemRuntime

/// The cluster services of one daemon. Loop thread only.
final class ClusterHub {
    private(set) var membership: MembershipService
    private(set) var deviceState: DeviceStateService
    /// Scratch for `deliveredEvent`: one message's effects. Empty between calls.
    private var deliveredEffectScratch: [DeviceStateEffect] = []
    let incarnation: UInt64
    let stateFilePath: String
    private var context: ServiceContext?

    // Ring submits waiting for room in the send queue, oldest first.
    private var backlog: [[UInt8]] = []
    private var backlogHead = 0
    private var backlogTimer: EventLoop.TimerID?
    /// Messages dropped because the backlog was full.
    private(set) var backlogDropped = 0
    /// The most messages kept waiting; beyond it the oldest are dropped (and logged).
    static let backlogLimit = 100_000
    /// How often a backlog is retried.
    static let backlogRetry = Duration.milliseconds(5)

    // The local state's writer thread (made at start, when the logger is known): every change of
    // the table goes to it at once; the loop never waits for the disk.
    private(set) var stateWriter: LocalStateWriter?
    /// How long `stop` waits for the writer's last write (a frozen disk would hold it forever).
    static let stateWriterStopTimeout = Duration.seconds(5)

    // Watchers (`watch`, `subscribe`): per connection, the topics it wants.
    // A strong reference: the connection's close handler removes its watcher (a weak reference
    // inside a dictionary value crashed in swift_weakCopyInit in EventSubscribers).
    private struct Watcher {
        var connection: ControlConnection?
        var topics: Set<Topic>
    }
    private var watchers: [ObjectIdentifier: Watcher] = [:]

    /// What a watcher can ask for.
    enum Topic: String, CaseIterable, Sendable {
        case membership, device, `extension`, mwi
        /// Other servers' own device states and departures (`server_device`, `server_left`),
        /// for adapters whose PBX aggregates per server; only when asked for.
        case servers

        /// The topics of a `watch`/`subscribe` that names none.
        static let defaults: Set<Topic> = [.membership, .device, .extension, .mwi]
    }

    // PBX adapters registered on their connections (`adapter_register`).
    struct Adapter {
        var name: String
        var entityID: EntityID
        var systemName: String?
        var version: String?
        var connection: ControlConnection?
    }
    private var adapters: [ObjectIdentifier: Adapter] = [:]

    // Control clients' event-channel subscriptions (`event_subscribe`).
    private let eventSubscribers = EventSubscribers()
    private var expiryTimer: EventLoop.TimerID?
    private var armedExpiry: MonotonicInstant?

    // Flow control: clients whose ring messages wait, not read until the ring catches up.
    private var heldClients: [ObjectIdentifier: ControlConnection] = [:]
    private var releaseTimer: EventLoop.TimerID?
    /// Above this many bytes queued for the ring (plus any backlog), a client that submits is held.
    static let holdAboveBytes = 256 << 10
    /// Held clients are released when the queue is below this.
    static let releaseBelowBytes = 128 << 10
    /// How often held clients are checked when no delivery comes to check them.
    static let releaseCheckInterval = Duration.milliseconds(2)

    /// Rate-limited log lines (`logLimited`): when each key last logged, and how many were held back.
    private var limitedLog: [String: (lastLogged: MonotonicInstant, heldBack: Int)] = [:]
    /// The least time between two lines of one `logLimited` key.
    static let limitedLogInterval = Duration.seconds(10)

    /// The nodes of the last transitional configuration that left gracefully (the others failed),
    /// for the `left` events of that change.
    private var leftGracefully: Set<NodeID> = []

    /// Entity-id conflicts already logged.
    private var reportedEntityConflicts: [EntityConflict] = []
    /// Adapter entity-id mismatches already logged (adapter name and id).
    private var reportedMismatches: Set<String> = []

    // Pings waiting for replies, by id.
    private struct PendingPing {
        var reply: ControlReply
        var sentAt: MonotonicInstant
        var expected: Set<NodeID>
        var results: [NodeID: Duration] = [:]
        var timer: EventLoop.TimerID
    }
    private var pings: [UInt64: PendingPing] = [:]
    private var nextPing: UInt64 = 1
    /// How long `ping` waits for the members' replies.
    static let pingTimeout = Duration.seconds(2)

    init(setup: ClusterSetup) {
        membership = setup.membership
        deviceState = setup.deviceState
        incarnation = setup.incarnation
        stateFilePath = setup.stateFilePath
    }

    /// The three DaemonServices that put this hub on the seam (one per ring tag).
    func services() -> [DaemonService] {
        [MembershipAdapter(hub: self), DeviceStateAdapter(hub: self), PingAdapter(hub: self)]
    }

    fileprivate func start(_ context: ServiceContext) {
        guard self.context == nil else { return }
        self.context = context
        context.membersReport = { [unowned self] in membersReport() }
        context.channelsReport = { [unowned self] in channelsReport() }
        context.quorumReport = { [unowned self] in .object(Self.json(membership.quorum)) }
        context.adaptersReport = { [unowned self] in adaptersReport() }
        let logger = context.logger
        do {
            stateWriter = try LocalStateWriter(snapshotPath: stateFilePath, table: deviceState.localState,
                                               log: { logger.error($0) })
        } catch {
            logger.error("persistence unavailable: cannot start the local state writer: \(error); local states are not persisted")
        }
        context.deviceStateReport = { [unowned self] in
            let statistics = deviceState.statistics
            return .object([
                "local_devices": .number(deviceState.localState.devices.count),
                "local_mailboxes": .number(deviceState.localState.mailboxes.count),
                "max_devices": .number(deviceState.limits.maxDevices), "max_mailboxes": .number(deviceState.limits.maxMailboxes),
                "rejected_payloads": .number(statistics.rejectedPayloads),
                "remote_devices_refused": .number(statistics.remoteDevicesRefused),
                "remote_mailboxes_refused": .number(statistics.remoteMailboxesRefused),
            ])
        }
        context.retainedEventsReport = { [unowned self] in
            let summary = deviceState.events.retentionSummary
            return .object([
                "events": .number(summary.events), "bytes": .number(summary.bytes),
                "max_events": .number(summary.maximumEvents), "max_bytes": .number(summary.maximumBytes),
                "dropped_at_event_cap": .number(summary.droppedAtEventCap),
                "dropped_at_byte_cap": .number(summary.droppedAtByteCap),
            ])
        }
        context.metricsServices = { [unowned self] in
            metricsServices(stateWrites: stateWriter?.report, watchers: watchers.count, adapters: adapters.count)
        }
        context.persistenceReport = { [unowned self] in persistenceReport() }
    }

    fileprivate func stop() {
        if let stateWriter, !stateWriter.finish(timeout: Self.stateWriterStopTimeout) {
            context?.logger.error("the local state writer did not finish within \(Self.stateWriterStopTimeout) (is the disk "
                + "of \(stateFilePath) frozen?); \(stateWriter.report.unpersisted) change(s) may not be persisted")
        }
        for (_, ping) in pings {
            context?.eventLoop.removeTimer(ping.timer)
            ping.reply.fail(ControlError(.unavailable, "the daemon is stopping"))
        }
        pings.removeAll()
        if let timer = backlogTimer { context?.eventLoop.removeTimer(timer) }
        backlogTimer = nil
        if let timer = expiryTimer { context?.eventLoop.removeTimer(timer) }
        expiryTimer = nil
        if let timer = releaseTimer { context?.eventLoop.removeTimer(timer) }
        releaseTimer = nil
        for (_, connection) in heldClients { connection.release() }
        heldClients.removeAll()
    }

    // MARK: Ring inputs

    fileprivate func configurationChanged(_ change: ConfigurationChange) {
        if change.kind == .transitional { leftGracefully = Set(change.leftGracefully) }
        execute(membership.configurationChanged(change))
        execute(deviceState.configurationChanged(change, now: MonotonicClock.now()))
        scheduleExpiry()
        if change.kind == .regular {
            // A ping waits only for nodes still in the ring.
            for (id, var ping) in pings {
                ping.expected.formIntersection(change.members)
                pings[id] = ping
                finishPingIfComplete(id)
            }
        }
    }

    fileprivate func deliveredMembership(_ message: [UInt8], from sender: NodeID) {
        do {
            execute(try membership.delivered(payload: message, from: sender))
        } catch {
            context?.logger.warning("ignored a membership message from \(context?.name(of: sender) ?? "\(sender)"): \(error)")
        }
    }

    fileprivate func deliveredEvent(_ message: [UInt8], from sender: NodeID) {
        // Effects go into an array kept between events, taken out of the property while in use:
        // executing them may submit to the ring, and a nested delivery must not share it.
        var effects = deliveredEffectScratch
        deliveredEffectScratch = []
        do {
            try deviceState.delivered(payload: message, from: sender, now: MonotonicClock.now(), into: &effects)
            execute(effects)
        } catch {
            context?.logger.warning("ignored an event message from \(context?.name(of: sender) ?? "\(sender)"): \(error)")
        }
        effects.removeAll(keepingCapacity: true)
        deliveredEffectScratch = effects
        if let next = deviceState.nextEventExpiry, armedExpiry.map({ next < $0 }) ?? true { scheduleExpiry() }
        if !heldClients.isEmpty { releaseHeldClientsIfRingCaughtUp() }
        reportRetentionDrops()
    }

    /// Retained events dropped at a cap, already logged (event cap, byte cap).
    private var loggedRetentionDrops = (events: 0, bytes: 0)

    /// Logs (at most once per `limitedLogInterval`) that retained events were dropped before
    /// their expiry because a cap was reached.
    private func reportRetentionDrops() {
        let summary = deviceState.events.retentionSummary
        let (atEvents, atBytes) = (summary.droppedAtEventCap, summary.droppedAtByteCap)
        guard atEvents != loggedRetentionDrops.events || atBytes != loggedRetentionDrops.bytes else { return }
        let newly = (atEvents - loggedRetentionDrops.events) + (atBytes - loggedRetentionDrops.bytes)
        loggedRetentionDrops = (atEvents, atBytes)
        logLimited("retention cap", "dropped \(newly) retained event\(newly == 1 ? "" : "s") before \(newly == 1 ? "its" : "their") expiry, "
            + "oldest first: this node keeps at most \(summary.maximumEvents) retained events and "
            + "\(ByteSize.describe(summary.maximumBytes)) of them ([options] max_retained_bytes; now \(summary.events) events, "
            + "\(ByteSize.describe(summary.bytes))); status retained_events counts the drops")
    }

    // MARK: Effects

    private func execute(_ effects: [MembershipEffect]) {
        for effect in effects {
            switch effect {
            case .submit(let bytes): submit(bytes)
            case .notify(let change): notify(change)
            }
        }
    }

    private func execute(_ effects: [DeviceStateEffect]) {
        for effect in effects {
            switch effect {
            case .submit(let bytes):
                submit(bytes)
            case .persist(let change):
                // Written off the loop thread; the ring and the clients never wait for the disk.
                stateWriter?.record(change, table: deviceState.localState)
            case .deviceStateChanged(let change):
                context?.logger.debug("device \(change.device): \(change.old.name) -> \(change.new.name)")
                push(.device, event: "device", data: [
                    "device": .string(change.device.rawValue), "state": .string(change.new.name),
                    "previous": .string(change.old.name),
                ])
            case .extensionStateChanged(let change):
                push(.extension, event: "extension", data: [
                    "exten": .string(change.hint.exten), "context": .string(change.hint.context),
                    "devices": .string(deviceState.hintRow(change.hint)?.devices ?? ""),
                    "state": .string(change.new.name), "previous": .string(change.old.name),
                ])
            case .mailboxChanged(let change):
                var data = Self.json(change.new)
                if let old = change.old {
                    data.set("previous_new", .number(old.newMessages))
                    data.set("previous_old", .number(old.oldMessages))
                }
                push(.mwi, event: "mwi", data: data)
            case .serverStateChanged(let change):
                push(.servers, event: "server_device", data: [
                    "device": .string(change.device.rawValue), "entity_id": .string(change.entity.description),
                    "nodeid": .number(change.node.rawValue), "name": .string(context?.name(of: change.node) ?? "node\(change.node)"),
                    "state": change.state.map { .string($0.name) } ?? .null,
                ])
            case .serverLeft(let entity, let node):
                let name = context?.name(of: node) ?? "node\(node)"
                context?.logger.info("\(name) (entity \(entity)) left the ring: its device states no longer count here")
                push(.servers, event: "server_left", data: [
                    "entity_id": .string(entity.description), "nodeid": .number(node.rawValue), "name": .string(name),
                ])
            case .rejectedEvent(let id, let error):
                // Counted in status (device_state.rejected_payloads); a node sending a stream of
                // them must not flood the log.
                logLimited("rejected payload", "ignored event \(id): its payload does not decode: \(error)")
            case .entryRefused(let entry):
                logLimited(entry.isDevice ? "device cap" : "mailbox cap", "refused \(entry)")
            case .event(.deliver(let event, let subscriptions)):
                eventSubscribers.push(event, to: subscriptions, replayed: false)
            case .event(.confirmed), .event(.submit):
                // A client's publication came back (its response went out when it was queued);
                // submits of the event service arrive translated to `.submit`.
                break
            }
        }
    }

    /// Logs a warning at most once per `limitedLogInterval` for `key` (a fixed, small set), saying
    /// how many similar lines were held back since the last one.
    func logLimited(_ key: String, _ message: @autoclosure () -> String) {
        let now = MonotonicClock.now()
        if let entry = limitedLog[key], now - entry.lastLogged < Self.limitedLogInterval {
            limitedLog[key] = (entry.lastLogged, entry.heldBack + 1)
            return
        }
        let heldBack = limitedLog[key]?.heldBack ?? 0
        limitedLog[key] = (now, 0)
        let more = heldBack > 0 ? " (\(heldBack) similar since the last such line, not logged)" : ""
        context?.logger.warning(message() + more)
    }

    private func notify(_ change: MembershipChange) {
        guard let context else { return }
        var data: JSONObject
        switch change {
        case .joined(let node, let view):
            data = ["change": "joined", "nodeid": .number(node.rawValue), "name": .string(context.name(of: node)), "view": .number(view)]
        case .left(let node, let view):
            data = ["change": "left", "nodeid": .number(node.rawValue), "name": .string(context.name(of: node)), "view": .number(view),
                    "graceful": .bool(leftGracefully.contains(node))]
        case .viewInstalled(let view):
            data = ["change": "view", "view": .number(view.number), "ring": .string(view.ringID.description),
                    "members": .array(view.members.map { .number($0.rawValue) })]
        case .nodeIdentified(let record):
            data = ["change": "identified", "nodeid": .number(record.id.rawValue), "name": .string(record.name),
                    "entity_id": record.entityID.map { .string($0.description) } ?? .null]
        case .quorumChanged(let quorum):
            data = ["change": "quorum", "quorum": .object(Self.json(quorum))]
            if quorum.isQuorate {
                context.logger.notice("quorum regained: \(quorum)")
            } else {
                context.logger.warning("quorum lost: \(quorum)")
            }
        }
        push(.membership, event: "membership", data: data)
        switch change {
        case .nodeIdentified, .viewInstalled: logNewEntityConflicts()
        default: break
        }
    }

    /// Logs each group of members sharing an entity id once, when it appears.
    private func logNewEntityConflicts() {
        guard let context else { return }
        let conflicts = membership.entityConflicts
        for conflict in conflicts where !reportedEntityConflicts.contains(conflict) {
            let nodes = conflict.nodes.map { "\(context.name(of: $0)) (node \($0))" }.joined(separator: ", ")
            context.logger.error("entity id \(conflict.entityID) is used by \(nodes): their device states overwrite each "
                + "other; give each server its own entity_id in [options] (daemons on one host derive the same id from its MAC address)")
        }
        reportedEntityConflicts = conflicts
    }

    /// Pushes to the watchers of `topic`; `data` is built only if one wants it (every delivered
    /// device state produces a `servers` change, which most daemons have no watcher for).
    private func push(_ topic: Topic, event: String, data: @autoclosure () -> JSONObject) {
        guard !watchers.isEmpty else { return }
        var built: JSONValue?
        for (key, watcher) in watchers {
            guard let connection = watcher.connection, connection.isOpen else {
                watchers.removeValue(forKey: key)
                continue
            }
            guard watcher.topics.contains(topic) else { continue }
            let value = built ?? .object(data())
            built = value
            connection.push(event: event, data: value)
        }
    }

    // MARK: Ring submits and the backlog

    /// Submits a whole message (its tag first); keeps it for later when the send queue is full.
    private func submit(_ message: [UInt8]) {
        guard let context, !message.isEmpty else { return }
        guard backlogHead == backlog.count else {
            enqueue(message)
            return
        }
        do {
            try context.submit(enveloped: message)
        } catch {
            switch error {
            case .tryAgain:
                enqueue(message)
            case .messageTooLarge(let size, let limit):
                context.logger.error("dropped a ring message of \(size) bytes: larger than \(limit) bytes")
            case .notRunning:
                context.logger.debug("dropped a ring message: the node is not running")
            }
        }
    }

    private func enqueue(_ message: [UInt8]) {
        if backlog.count - backlogHead >= Self.backlogLimit {
            backlogHead += 1
            backlogDropped += 1
            if backlogDropped == 1 || backlogDropped % 1_000 == 0 {
                context?.logger.warning("ring send backlog full (\(Self.backlogLimit) messages): \(backlogDropped) oldest dropped so far")
            }
        }
        backlog.append(message)
        armBacklogTimer()
    }

    private func armBacklogTimer() {
        guard let context else { return }
        let timer = backlogTimer ?? context.eventLoop.makeTimer { [unowned self] in drainBacklog() }
        backlogTimer = timer
        context.eventLoop.arm(timer, at: MonotonicClock.now() + Self.backlogRetry)
    }

    /// Messages waiting for room in the send queue.
    var backlogCount: Int { backlog.count - backlogHead }

    private func drainBacklog() {
        guard let context else { return }
        while backlogHead < backlog.count {
            do {
                try context.submit(enveloped: backlog[backlogHead])
            } catch {
                if case .tryAgain = error {
                    armBacklogTimer()
                    compactBacklog()
                    return
                }
                context.logger.debug("dropped a queued ring message: \(error)")
            }
            backlogHead += 1
        }
        backlog.removeAll(keepingCapacity: false)
        backlogHead = 0
    }

    private func compactBacklog() {
        guard backlogHead > 1_024, backlogHead * 2 > backlog.count else { return }
        backlog.removeSubrange(0..<backlogHead)
        backlogHead = 0
    }

    // MARK: Flow control for clients that submit

    /// Bytes in the ring's send queue.
    private var ringQueueBytes: Int { context?.node?.pendingBytes ?? 0 }

    /// Holds `connection` (stops reading its requests) while the ring has too much queued, so a
    /// client submitting faster than the ring sends waits in its socket buffer instead of
    /// filling the daemon's memory (nothing accepted is dropped; corosync answers TRY_AGAIN).
    private func holdIfRingBusy(_ connection: ControlConnection?) {
        guard let connection, connection.isOpen, !connection.isHeld,
              backlogCount > 0 || ringQueueBytes > Self.holdAboveBytes else { return }
        connection.hold()
        heldClients[ObjectIdentifier(connection)] = connection
        armReleaseTimer()
    }

    private func armReleaseTimer() {
        guard let context else { return }
        let timer = releaseTimer ?? context.eventLoop.makeTimer { [unowned self] in
            releaseHeldClientsIfRingCaughtUp()
            if !heldClients.isEmpty { armReleaseTimer() }
        }
        releaseTimer = timer
        context.eventLoop.arm(timer, at: MonotonicClock.now() + Self.releaseCheckInterval)
    }

    private func releaseHeldClientsIfRingCaughtUp() {
        guard backlogCount == 0, ringQueueBytes < Self.releaseBelowBytes else { return }
        let clients = heldClients.values
        heldClients.removeAll(keepingCapacity: true)
        for connection in clients { connection.release() }
        if let releaseTimer { context?.eventLoop.disarm(releaseTimer) }
    }

    // MARK: Retained events

    /// Arms the expiry of retained events for the next deadline, if any.
    private func scheduleExpiry() {
        guard let context else { return }
        armedExpiry = deviceState.nextEventExpiry
        guard let deadline = armedExpiry else {
            if let expiryTimer { context.eventLoop.disarm(expiryTimer) }
            return
        }
        let timer = expiryTimer ?? context.eventLoop.makeTimer { [unowned self] in
            deviceState.expireEvents(now: MonotonicClock.now())
            scheduleExpiry()
        }
        expiryTimer = timer
        context.eventLoop.arm(timer, at: deadline)
    }

    /// Replays retained events to a new subscription as its client reads them: a stretch of
    /// events is encoded only when the connection's output is nearly all read, so a replay of
    /// any size costs the daemon a stretch per subscriber, and never the connection.
    private func startReplay(_ replay: RetainedReplay, on connection: ControlConnection) {
        var replay = replay
        connection.sendPaced { [weak self] in
            guard let self else { return true }
            let events = deviceState.continueReplay(&replay, now: MonotonicClock.now(), maximumBytes: EventSubscribers.replayStretchBytes)
            for event in events { eventSubscribers.push(event, to: [replay.subscription], replayed: true) }
            return replay.isFinished
        }
    }

    // MARK: Reports

    private func membersReport() -> JSONValue {
        guard let context else { return .null }
        let local = membership.localNode
        let nodes: [JSONValue] = membership.nodes.map { node in
            var entry: JSONObject = [
                "nodeid": .number(node.id.rawValue),
                "name": .string(node.name),
                "addresses": .array(node.addresses.map { .string($0.description) }),
                "member": .bool(node.isMember),
                "configured": .bool(node.isConfigured),
                "entity_id": node.entityID.map { .string($0.description) } ?? .null,
                "member_since_view": node.memberSinceView.map { .number($0) } ?? .null,
            ]
            if node.id == local { entry.set("local", .bool(true)) }
            return .object(entry)
        }
        return .object([
            "ring": context.ringID.map { .string($0.description) } ?? .null,
            "state": .string(context.membershipState.rawValue),
            "view": membership.view.map { .number($0.number) } ?? .null,
            "quorum": .object(Self.json(membership.quorum)),
            "members": .array(nodes),
            "entity_conflicts": .array(membership.entityConflicts.map { conflict in
                .object(["entity_id": .string(conflict.entityID.description),
                         "nodes": .array(conflict.nodes.map { .number($0.rawValue) })])
            }),
        ])
    }

    private func channelsReport() -> JSONValue {
        let channels: [JSONValue] = deviceState.channelSummaries.map { summary in
            .object([
                "name": .string(summary.name.rawValue),
                "publish": .array(summary.publishes.map { .string($0.rawValue) }),
                "subscribe": .array(summary.subscribes.map { .string($0.rawValue) }),
                "subscribers": .number(summary.subscribers),
                "published": .number(summary.published),
                "delivered": .number(summary.delivered),
                "ignored": .number(summary.ignored),
                "retained": .number(summary.retained),
                "retained_bytes": .number(summary.retainedBytes),
            ])
        }
        return .object(["channels": .array(channels)])
    }

    static func json(_ quorum: Quorum) -> JSONObject {
        [
            "quorate": .bool(quorum.isQuorate),
            "present": .number(quorum.presentCount),
            "configured": .number(quorum.configuredCount),
            "text": .string(quorum.description),
        ]
    }

    static func json(_ snapshot: DeviceSnapshot, name: (NodeID) -> String) -> JSONObject {
        [
            "device": .string(snapshot.device.rawValue),
            "state": .string(snapshot.state.name),
            "text": .string(snapshot.state.text),
            "servers": .array(snapshot.servers.map { server in
                .object([
                    "entity_id": .string(server.entity.description),
                    "nodeid": .number(server.node.rawValue),
                    "name": .string(name(server.node)),
                    "state": .string(server.state.name),
                ])
            }),
        ]
    }

    static func json(_ row: HintRow) -> JSONObject {
        [
            "exten": .string(row.key.exten), "context": .string(row.key.context), "devices": .string(row.devices),
            "state": .string(row.state.name), "watchers": .number(row.watchers),
        ]
    }

    static func json(_ record: MailboxRecord) -> JSONObject {
        [
            "mailbox": .string(record.mailbox.mailbox), "context": .string(record.mailbox.context),
            "new": .number(record.counts.newMessages), "old": .number(record.counts.oldMessages),
            "waiting": .bool(record.counts.hasWaitingMessages),
            "origin_entity_id": .string(record.originEntity.description),
            "origin_nodeid": .number(record.originNode.rawValue),
        ]
    }

    // MARK: Control commands

    static let deviceCommands = [
        "adapter_register", "devstate_set", "devstate_clear", "devstate_get", "devstate_list", "hints", "mwi_set", "mwi_get", "mwi_list",
        "watch", "subscribe", "unsubscribe", "snapshot", "event_publish", "event_subscribe", "event_unsubscribe",
    ]

    fileprivate func handle(_ request: ControlRequest, reply: ControlReply) {
        guard let context else {
            reply.fail(ControlError(.unavailable, "the daemon is still starting"))
            return
        }
        let arguments = CommandArguments(request: request)
        do throws(ControlError) {
            switch request.command {
            case "devstate_set":
                try arguments.allow(["device", "state"])
                let device = try arguments.string("device")
                let state = try arguments.string("state")
                do {
                    let name = try DeviceName(parsing: device)
                    let value = try DeviceStateValue(parsing: state)
                    execute(try deviceState.setLocalState(value, of: name))
                    var result = Self.json(deviceState.device(name), name: context.name(of:))
                    addPersistence(to: &result)
                    reply.succeed(.object(result))
                } catch {
                    throw Self.controlError(error)
                }
                holdIfRingBusy(reply.connection)
            case "devstate_clear":
                try arguments.allow(["device"])
                let name = try Self.deviceName(try arguments.string("device"))
                let effects = deviceState.clearLocalState(of: name)
                execute(effects)
                var result = Self.json(deviceState.device(name), name: context.name(of:))
                result.set("cleared", .bool(!effects.isEmpty))
                addPersistence(to: &result)
                reply.succeed(.object(result))
                holdIfRingBusy(reply.connection)
            case "adapter_register":
                try register(arguments, reply: reply, context: context)
            case "devstate_get":
                try arguments.allow(["device"])
                let name = try Self.deviceName(try arguments.string("device"))
                reply.succeed(.object(Self.json(deviceState.device(name), name: context.name(of:))))
            case "devstate_list":
                try arguments.allow([])
                reply.succeed(.object(["devices": .array(deviceState.devices.map { .object(Self.json($0, name: context.name(of:))) })]))
            case "hints":
                try arguments.allow([])
                reply.succeed(.object(["hints": .array(deviceState.hintRows.map { .object(Self.json($0)) })]))
            case "mwi_set":
                try arguments.allow(["mailbox", "new", "old"])
                let mailbox = try Self.mailboxName(try arguments.string("mailbox"))
                let new = try arguments.count("new")
                let old = try arguments.count("old")
                do {
                    execute(try deviceState.setMailbox(mailbox, counts: MailboxCounts(newMessages: new, oldMessages: old)))
                } catch {
                    throw Self.controlError(error)
                }
                var result: JSONObject = [
                    "mailbox": .string(mailbox.mailbox), "context": .string(mailbox.context),
                    "new": .number(new), "old": .number(old), "published": .bool(true),
                ]
                addPersistence(to: &result)
                reply.succeed(.object(result))
                holdIfRingBusy(reply.connection)
            case "mwi_get":
                try arguments.allow(["mailbox"])
                let mailbox = try Self.mailboxName(try arguments.string("mailbox"))
                guard let record = deviceState.mailbox(mailbox) else {
                    // Unknown is zero messages, as app_voicemail reports an empty mailbox.
                    reply.succeed(.object([
                        "mailbox": .string(mailbox.mailbox), "context": .string(mailbox.context),
                        "new": 0, "old": 0, "waiting": false, "known": false,
                    ]))
                    return
                }
                var object = Self.json(record)
                object.set("known", .bool(true))
                reply.succeed(.object(object))
            case "mwi_list":
                try arguments.allow([])
                reply.succeed(.object(["mailboxes": .array(deviceState.mailboxes.map { .object(Self.json($0)) })]))
            case "watch", "subscribe":
                try arguments.allow(["topics", "snapshot"])
                let topics = try arguments.topics()
                let wantsSnapshot = try arguments.bool("snapshot") ?? false
                guard let connection = reply.connection else {
                    throw ControlError(.unavailable, "\(request.command) needs a control connection")
                }
                let key = ObjectIdentifier(connection)
                watchers[key] = Watcher(connection: connection, topics: topics)
                connection.onClose { [weak self] in self?.watchers.removeValue(forKey: key) }
                var result: JSONObject = ["topics": .array(Topic.allCases.filter(topics.contains).map { .string($0.rawValue) })]
                if wantsSnapshot { result.set("snapshot", snapshot()) }
                reply.succeed(.object(result))
            case "unsubscribe":
                try arguments.allow([])
                let removed = reply.connection.map { watchers.removeValue(forKey: ObjectIdentifier($0)) != nil } ?? false
                reply.succeed(.object(["unsubscribed": .bool(removed)]))
            case "snapshot":
                try arguments.allow([])
                reply.succeed(snapshot())
            case "event_publish":
                let publication = try EventPublishRequest(arguments)
                do {
                    let (id, effects) = try deviceState.publishEvent(
                        on: publication.channel, type: publication.type, attributes: publication.attributes,
                        payload: publication.payload, retention: publication.retention)
                    execute(effects)
                    reply.succeed(.object(["event_id": .string(id.description)]))
                } catch {
                    throw ControlError(.invalidArgument, error.description)
                }
                holdIfRingBusy(reply.connection)
            case "event_subscribe":
                let subscription = try Subscription(arguments)
                guard let connection = reply.connection else {
                    throw ControlError(.unavailable, "event_subscribe needs a control connection")
                }
                guard eventSubscribers.count(of: connection) < EventSubscribers.perConnectionLimit else {
                    throw ControlError(.unavailable, "this connection has \(EventSubscribers.perConnectionLimit) event subscriptions already")
                }
                let id: SubscriptionID
                let replay: RetainedReplay
                do {
                    (id, replay) = try deviceState.subscribeEvents(subscription, now: MonotonicClock.now())
                } catch {
                    throw ControlError(.invalidArgument, error.description)
                }
                if eventSubscribers.add(id, for: connection) {
                    let owner = ObjectIdentifier(connection)
                    connection.onClose { [weak self] in
                        guard let self else { return }
                        for id in eventSubscribers.removeAll(of: owner) { deviceState.unsubscribeEvents(id) }
                    }
                }
                reply.succeed(.object([
                    "subscription": .number(id.rawValue), "channel": .string(subscription.channel.rawValue),
                    "replayed": .number(replay.matchingAtStart),
                ]))
                if !replay.isFinished { startReplay(replay, on: connection) }
            case "event_unsubscribe":
                try arguments.allow(["subscription"])
                guard let number = try arguments.optionalInteger("subscription", in: 0...Int64.max) else {
                    throw ControlError(.invalidArgument, "event_unsubscribe needs \"subscription\" (the number event_subscribe returned)")
                }
                let id = SubscriptionID(rawValue: UInt64(number))
                let removed = reply.connection.map { eventSubscribers.remove(id, for: $0) } ?? false
                if removed { deviceState.unsubscribeEvents(id) }
                reply.succeed(.object(["unsubscribed": .bool(removed)]))
            default:
                throw ControlError(.unknownCommand, "the device-state service has no command \"\(request.command)\"")
            }
        } catch {
            reply.fail(error)
        }
    }

    /// Everything an adapter needs to start from: members, devices (with each server's state),
    /// hints, mailboxes, and this server's own states as it publishes them.
    private func snapshot() -> JSONValue {
        guard let context else { return .null }
        let local = deviceState.localState
        return .object([
            "entity_id": .string(deviceState.entityID.description),
            "members": membersReport(),
            "devices": .array(deviceState.devices.map { .object(Self.json($0, name: context.name(of:))) }),
            "hints": .array(deviceState.hintRows.map { .object(Self.json($0)) }),
            "mailboxes": .array(deviceState.mailboxes.map { .object(Self.json($0)) }),
            "local_devices": .array(local.devices.keys.sorted().compactMap { device in
                local.devices[device].map { .object(["device": .string(device.rawValue), "state": .string($0.name)]) }
            }),
            "local_mailboxes": .array(local.mailboxes.keys.sorted().compactMap { mailbox in
                local.mailboxes[mailbox].map { entry in
                    .object(["mailbox": .string(mailbox.mailbox), "context": .string(mailbox.context),
                             "new": .number(entry.counts.newMessages), "old": .number(entry.counts.oldMessages)])
                }
            }),
        ])
    }

    // MARK: Adapters

    /// `adapter_register`: a PBX adapter says which entity id it publishes for. It must be this
    /// server's: the adapter's PBX tags its own states with it, and the cluster knows this server
    /// by it. A mismatch is refused (`entity_mismatch`) and logged once per adapter and id.
    private func register(_ arguments: CommandArguments, reply: ControlReply, context: ServiceContext) throws(ControlError) {
        try arguments.allow(["entity_id", "name", "system_name", "version"])
        let text = try arguments.string("entity_id")
        guard let entity = EntityID(parsing: text) else {
            throw ControlError(.invalidArgument, "\"entity_id\" must be six hexadecimal octets like 02:00:00:00:00:01, got \"\(text.prefix(40))\"")
        }
        let name = try Self.label(try arguments.string("name"), "name")
        let systemName = try arguments.optionalString("system_name").map { text throws(ControlError) in try Self.label(text, "system_name") }
        let version = try arguments.optionalString("version").map { text throws(ControlError) in try Self.label(text, "version") }
        guard let connection = reply.connection else {
            throw ControlError(.unavailable, "adapter_register needs a control connection")
        }
        let own = deviceState.entityID
        guard entity == own else {
            let source = context.configuration.options.entityID == nil
                ? "derived at first start and kept in \(context.configuration.options.stateDirectory)/entity_id"
                : "from [options] entity_id"
            let message = "\(name) publishes for entity id \(entity), but this server's entity id is \(own) (\(source)); "
                + "set [options] entity_id = \(entity) in devcluster.conf and restart devclusterd, "
                + "or set entityid = \(own) in asterisk.conf, so that both name this server alike"
            let key = "\(name) \(entity)"
            if !reportedMismatches.contains(key) {
                reportedMismatches.insert(key)
                context.logger.error("adapter refused: \(message)")
            }
            throw ControlError(.entityMismatch, message)
        }
        let key = ObjectIdentifier(connection)
        let isNew = adapters[key] == nil
        adapters[key] = Adapter(name: name, entityID: entity, systemName: systemName, version: version, connection: connection)
        if isNew {
            connection.onClose { [weak self] in
                guard let self, let adapter = adapters.removeValue(forKey: key) else { return }
                self.context?.logger.notice("adapter \(adapter.name) disconnected")
            }
        }
        let details = [systemName, version.map { "version \($0)" }].compactMap { $0 }.joined(separator: ", ")
        context.logger.notice("adapter \(name)\(details.isEmpty ? "" : " (\(details))") registered for entity id \(entity)")
        reply.succeed(.object([
            "entity_id": .string(own.description), "nodeid": .number(context.localNodeID.rawValue),
            "name": .string(context.name(of: context.localNodeID)), "cluster": .string(context.configuration.totem.clusterName),
        ]))
    }

    /// `status`'s `adapters`: the registered adapters, oldest connection first.
    private func adaptersReport() -> JSONValue {
        let entries = adapters.values.filter { $0.connection?.isOpen ?? false }.sorted { $0.name < $1.name }
        return .array(entries.map { adapter in
            .object([
                "name": .string(adapter.name), "entity_id": .string(adapter.entityID.description),
                "system_name": adapter.systemName.map { .string($0) } ?? .null,
                "version": adapter.version.map { .string($0) } ?? .null,
            ])
        })
    }

    /// A short printable label (adapter names and versions, shown by `status`): 1-64 bytes, no
    /// control, format or separator character (`InvisibleCharacter`; plain spaces are fine).
    private static func label(_ text: String, _ field: String) throws(ControlError) -> String {
        if let scalar = text.unicodeScalars.first(where: { $0 != " " && InvisibleCharacter.kind(of: $0) != nil }),
           let kind = InvisibleCharacter.kind(of: scalar) {
            throw ControlError(.invalidArgument, "\"\(field)\" contains \(InvisibleCharacter(scalar: scalar, kind: kind)): "
                + "\"\(InvisibleCharacter.escaped(text, limit: 64))\"")
        }
        guard !text.isEmpty, text.utf8.count <= 64 else {
            throw ControlError(.invalidArgument, "\"\(field)\" must be 1-64 printable characters, got \"\(InvisibleCharacter.escaped(text, limit: 64))\"")
        }
        return text
    }

    /// A refused local request's answer: `limit_reached` at a cap, else `invalid_argument`.
    private static func controlError(_ error: DeviceStateError) -> ControlError {
        switch error {
        case .tooManyDevices, .tooManyMailboxes: ControlError(.limitReached, error.description)
        default: ControlError(.invalidArgument, error.description)
        }
    }

    private static func deviceName(_ text: String) throws(ControlError) -> DeviceName {
        do {
            return try DeviceName(parsing: text)
        } catch {
            throw ControlError(.invalidArgument, error.description)
        }
    }

    private static func mailboxName(_ text: String) throws(ControlError) -> MailboxName {
        do {
            return try MailboxName(parsing: text)
        } catch {
            throw ControlError(.invalidArgument, error.description)
        }
    }

    // MARK: Ping

    /// Ping message: tag, kind (1 request, 2 reply), 8-byte id, 4-byte origin node id.
    private static func pingMessage(kind: UInt8, id: UInt64, origin: NodeID) -> [UInt8] {
        var bytes: [UInt8] = [ServiceTag.ping, kind]
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: id >> UInt64(shift))) }
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: origin.rawValue >> UInt32(shift))) }
        return bytes
    }

    fileprivate func handlePing(_ request: ControlRequest, reply: ControlReply) {
        guard let context else {
            reply.fail(ControlError(.unavailable, "the daemon is still starting"))
            return
        }
        if let unexpected = request.arguments.keys.first {
            reply.fail(ControlError(.invalidArgument, "ping takes no arguments, got \"\(unexpected)\""))
            return
        }
        guard context.node?.isRunning == true, !context.members.isEmpty else {
            reply.fail(ControlError(.unavailable, "this node is not in a ring"))
            return
        }
        let id = nextPing
        nextPing += 1
        let timer = context.eventLoop.makeTimer { [unowned self] in finishPing(id) }
        pings[id] = PendingPing(reply: reply, sentAt: MonotonicClock.now(), expected: Set(context.members), timer: timer)
        context.eventLoop.arm(timer, at: MonotonicClock.now() + Self.pingTimeout)
        submit(Self.pingMessage(kind: 1, id: id, origin: context.localNodeID))
    }

    fileprivate func deliveredPing(_ payload: ArraySlice<UInt8>, from sender: NodeID) {
        guard let context else { return }
        let bytes = Array(payload)
        guard bytes.count == 13, bytes[0] == 1 || bytes[0] == 2 else {
            context.logger.debug("ignored a malformed ping from \(context.name(of: sender))")
            return
        }
        let id = bytes[1...8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let originRaw = bytes[9...12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard let origin = NodeID(rawValue: originRaw) else { return }
        let local = context.localNodeID
        if bytes[0] == 1 {
            if origin == local {
                recordPing(id, from: local)
            } else if sender == origin {
                submit(Self.pingMessage(kind: 2, id: id, origin: origin))
            }
        } else if origin == local {
            recordPing(id, from: sender)
        }
    }

    private func recordPing(_ id: UInt64, from node: NodeID) {
        guard var ping = pings[id], ping.results[node] == nil else { return }
        ping.results[node] = MonotonicClock.now() - ping.sentAt
        pings[id] = ping
        finishPingIfComplete(id)
    }

    private func finishPingIfComplete(_ id: UInt64) {
        guard let ping = pings[id], ping.expected.isSubset(of: Set(ping.results.keys)) else { return }
        finishPing(id)
    }

    private func finishPing(_ id: UInt64) {
        guard let context, let ping = pings.removeValue(forKey: id) else { return }
        context.eventLoop.removeTimer(ping.timer)
        let nodes = ping.expected.union(ping.results.keys).sorted()
        let results: [JSONValue] = nodes.map { node in
            var entry: JSONObject = ["nodeid": .number(node.rawValue), "name": .string(context.name(of: node))]
            if let rtt = ping.results[node] {
                entry.set("rtt_ms", .double(Double(rtt.totalNanoseconds) / 1_000_000))
            } else {
                entry.set("rtt_ms", .null)
            }
            return .object(entry)
        }
        ping.reply.succeed(.object(["timeout_ms": .number(Self.pingTimeout.totalMilliseconds), "nodes": .array(results)]))
    }
}

/// Reading a request's arguments with specific errors.
struct CommandArguments {
    let request: ControlRequest

    func allow(_ names: Set<String>) throws(ControlError) {
        for (key, _) in request.arguments.members where !names.contains(key) {
            let expected = names.isEmpty ? "no arguments" : "only " + names.sorted().map { "\"\($0)\"" }.joined(separator: ", ")
            throw ControlError(.invalidArgument, "\(request.command) takes \(expected), got \"\(key)\"")
        }
    }

    func string(_ name: String) throws(ControlError) -> String {
        guard let value = request.arguments[name] else {
            throw ControlError(.invalidArgument, "\(request.command) needs \"\(name)\"")
        }
        guard let text = value.stringValue else {
            throw ControlError(.invalidArgument, "\"\(name)\" must be a string, got \(value.typeName)")
        }
        return text
    }

    func count(_ name: String) throws(ControlError) -> UInt32 {
        guard let value = request.arguments[name] else {
            throw ControlError(.invalidArgument, "\(request.command) needs \"\(name)\" (a message count)")
        }
        guard let number = value.integerValue, let count = UInt32(exactly: number) else {
            throw ControlError(.invalidArgument, "\"\(name)\" must be a whole number 0...\(UInt32.max), got \(value.encoded.prefix(40))")
        }
        return count
    }

    func bool(_ name: String) throws(ControlError) -> Bool? {
        guard let value = request.arguments[name] else { return nil }
        guard let flag = value.boolValue else {
            throw ControlError(.invalidArgument, "\"\(name)\" must be true or false, got \(value.typeName)")
        }
        return flag
    }

    func topics() throws(ControlError) -> Set<ClusterHub.Topic> {
        guard let value = request.arguments["topics"] else { return ClusterHub.Topic.defaults }
        let valid = ClusterHub.Topic.allCases.map(\.rawValue).joined(separator: ", ")
        guard let list = value.arrayValue, !list.isEmpty else {
            throw ControlError(.invalidArgument, "\"topics\" must be a non-empty list of: \(valid)")
        }
        var topics = Set<ClusterHub.Topic>()
        for item in list {
            guard let text = item.stringValue, let topic = ClusterHub.Topic(rawValue: text) else {
                throw ControlError(.invalidArgument, "unknown topic \(item.encoded.prefix(40)); topics: \(valid)")
            }
            topics.insert(topic)
        }
        return topics
    }
}

// MARK: - The adapters on the seam

/// Membership announcements (tag 1); `members`, `status` and quorum come through ServiceContext.
private final class MembershipAdapter: DaemonService {
    let name = "membership"
    let commands: [String] = []
    let messageTag: UInt8? = ServiceTag.membership
    private let hub: ClusterHub

    init(hub: ClusterHub) { self.hub = hub }

    func start(_ context: ServiceContext) { hub.start(context) }
    func configurationChanged(_ change: ConfigurationChange) { hub.configurationChanged(change) }
    // The tag is the membership envelope's service byte: the message is parsed as delivered.
    func delivered(_ message: [UInt8], from sender: NodeID) { hub.deliveredMembership(message, from: sender) }
    func handle(_ request: ControlRequest, reply: ControlReply) {
        reply.fail(ControlError(.unknownCommand, "the membership service has no command \"\(request.command)\""))
    }
    func stop() { hub.stop() }
}

/// Events (tag 2): device state, hints and MWI, and their commands.
private final class DeviceStateAdapter: DaemonService {
    let name = "devstate"
    let commands = ClusterHub.deviceCommands
    let messageTag: UInt8? = ServiceTag.events
    private let hub: ClusterHub

    init(hub: ClusterHub) { self.hub = hub }

    func start(_ context: ServiceContext) { hub.start(context) }
    // The hub hears configuration changes once, through the membership adapter.
    // The tag is the event envelope's service byte: the message is parsed as delivered.
    func delivered(_ message: [UInt8], from sender: NodeID) { hub.deliveredEvent(message, from: sender) }
    func handle(_ request: ControlRequest, reply: ControlReply) { hub.handle(request, reply: reply) }
}

/// The daemon's ring ping (tag 3).
private final class PingAdapter: DaemonService {
    let name = "ping"
    let commands = ["ping"]
    let messageTag: UInt8? = ServiceTag.ping
    private let hub: ClusterHub

    init(hub: ClusterHub) { self.hub = hub }

    func start(_ context: ServiceContext) { hub.start(context) }
    func delivered(_ message: [UInt8], from sender: NodeID) { hub.deliveredPing(message.dropFirst(), from: sender) }
    func handle(_ request: ControlRequest, reply: ControlReply) { hub.handlePing(request, reply: reply) }
}

extension RefusedEntry {
    /// Whether a device (not a mailbox) was refused: the log key.
    fileprivate var isDevice: Bool {
        if case .device = self { return true }
        return false
    }
}
