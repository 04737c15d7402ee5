// The JSON of the cluster services: the host's typed answers and notifications as the control
// protocol writes them, and the reports the services add to `members`, `channels` and `status`.
// The field names are the stable `--json` interface (docs/control-protocol.md).

import ClusterServices
import DeviceState
import EventService
import Membership
import Totem

extension ClusterHub {
    /// Hands the services' reports to the built-in commands.
    func installReports(on context: ServiceContext) {
        context.membersReport = { [unowned self] in membersReport() }
        context.channelsReport = { [unowned self] in channelsReport() }
        context.quorumReport = { [unowned self] in .object(Self.json(host.membership.quorum)) }
        context.adaptersReport = { [unowned self] in adaptersReport() }
        context.deviceStateReport = { [unowned self] in
            let deviceState = host.deviceState
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
            let summary = host.deviceState.events.retentionSummary
            return .object([
                "events": .number(summary.events), "bytes": .number(summary.bytes),
                "max_events": .number(summary.maximumEvents), "max_bytes": .number(summary.maximumBytes),
                "dropped_at_event_cap": .number(summary.droppedAtEventCap),
                "dropped_at_byte_cap": .number(summary.droppedAtByteCap),
            ])
        }
        context.metricsServices = { [unowned self] in metricsServices() }
        context.persistenceReport = { [unowned self] in persistenceReport() }
    }

    // MARK: Reports

    private func membersReport() -> JSONValue {
        guard let context else { return .null }
        let membership = host.membership
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
        let channels: [JSONValue] = host.deviceState.channelSummaries.map { summary in
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

    /// `status`'s `adapters`: the registered adapters, by name.
    private func adaptersReport() -> JSONValue {
        .array(host.registeredAdapters.map { adapter in
            .object([
                "name": .string(adapter.name), "entity_id": .string(adapter.entityID.description),
                "system_name": adapter.systemName.map { .string($0) } ?? .null,
                "version": adapter.version.map { .string($0) } ?? .null,
            ])
        })
    }

    // MARK: Answers

    /// `snapshot` (and `watch`'s): everything an adapter starts from, with the members report.
    func json(_ snapshot: ServicesSnapshot) -> JSONValue {
        guard let context else { return .null }
        let name = context.name(of:)
        return .object([
            "entity_id": .string(snapshot.entityID.description),
            "members": membersReport(),
            "devices": .array(snapshot.devices.map { .object(Self.json($0, name: name)) }),
            "hints": .array(snapshot.hints.map { .object(Self.json($0)) }),
            "mailboxes": .array(snapshot.mailboxes.map { .object(Self.json($0)) }),
            "local_devices": .array(snapshot.localDevices.map { entry in
                .object(["device": .string(entry.device.rawValue), "state": .string(entry.state.name)])
            }),
            "local_mailboxes": .array(snapshot.localMailboxes.map { entry in
                .object(["mailbox": .string(entry.mailbox.mailbox), "context": .string(entry.mailbox.context),
                         "new": .number(entry.counts.newMessages), "old": .number(entry.counts.oldMessages)])
            }),
        ])
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

    /// A ping's answer: `{"timeout_ms":2000,"nodes":[{"nodeid":1,"name":"server1","rtt_ms":0.4}, ...]}`.
    static func json(_ ping: PingResult, name: (NodeID) -> String) -> JSONValue {
        let nodes: [JSONValue] = ping.nodes.map { node in
            var entry: JSONObject = ["nodeid": .number(node.node.rawValue), "name": .string(name(node.node))]
            if let rtt = node.roundTrip {
                entry.set("rtt_ms", .double(Double(rtt.totalNanoseconds) / 1_000_000))
            } else {
                entry.set("rtt_ms", .null)
            }
            return .object(entry)
        }
        return .object(["timeout_ms": .number(ping.timeout.totalMilliseconds), "nodes": .array(nodes)])
    }

    // MARK: Notifications

    /// The data of a pushed notification (`{"event":notification.eventName,"data":...}`).
    static func json(_ notification: ServiceHost.Notification, name: (NodeID) -> String) -> JSONObject {
        switch notification {
        case .membership(let change, let graceful):
            return json(change, graceful: graceful, name: name)
        case .device(let change):
            return ["device": .string(change.device.rawValue), "state": .string(change.new.name), "previous": .string(change.old.name)]
        case .extensionState(let change, let devices):
            return [
                "exten": .string(change.hint.exten), "context": .string(change.hint.context), "devices": .string(devices),
                "state": .string(change.new.name), "previous": .string(change.old.name),
            ]
        case .mailbox(let change):
            var data = json(change.new)
            if let old = change.old {
                data.set("previous_new", .number(old.newMessages))
                data.set("previous_old", .number(old.oldMessages))
            }
            return data
        case .serverDevice(let change):
            return [
                "device": .string(change.device.rawValue), "entity_id": .string(change.entity.description),
                "nodeid": .number(change.node.rawValue), "name": .string(name(change.node)),
                "state": change.state.map { .string($0.name) } ?? .null,
            ]
        case .serverLeft(let entity, let node):
            return ["entity_id": .string(entity.description), "nodeid": .number(node.rawValue), "name": .string(name(node))]
        }
    }

    private static func json(_ change: MembershipChange, graceful: Bool, name: (NodeID) -> String) -> JSONObject {
        switch change {
        case .joined(let node, let view):
            ["change": "joined", "nodeid": .number(node.rawValue), "name": .string(name(node)), "view": .number(view)]
        case .left(let node, let view):
            ["change": "left", "nodeid": .number(node.rawValue), "name": .string(name(node)), "view": .number(view),
             "graceful": .bool(graceful)]
        case .viewInstalled(let view):
            ["change": "view", "view": .number(view.number), "ring": .string(view.ringID.description),
             "members": .array(view.members.map { .number($0.rawValue) })]
        case .nodeIdentified(let record):
            ["change": "identified", "nodeid": .number(record.id.rawValue), "name": .string(record.name),
             "entity_id": record.entityID.map { .string($0.description) } ?? .null]
        case .quorumChanged(let quorum):
            ["change": "quorum", "quorum": .object(json(quorum))]
        }
    }
}

extension ServiceHost.Notification {
    /// The `event` of its pushed line.
    var eventName: String {
        switch self {
        case .membership: "membership"
        case .device: "device"
        case .extensionState: "extension"
        case .mailbox: "mwi"
        case .serverDevice: "server_device"
        case .serverLeft: "server_left"
        }
    }
}
