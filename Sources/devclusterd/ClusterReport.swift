// The JSON results of the built-in commands (members, channels, status, settings), built from
// plain values so that tests need no ring. The field names are the stable `--json` interface
// (docs/control-protocol.md); add fields, never rename them.

import Totem
import TotemRuntime

enum ClusterReport {
    /// `members`: every configured node, and any ring member the configuration does not list.
    ///
    /// `{"ring":"1.12","state":"operational","members":[{"nodeid":1,"name":"server1",
    /// "addresses":["10.19.2.255"],"member":true,"local":true}, ...]}`, ascending by node id.
    static func members(configuration: DaemonConfiguration, ringID: RingID?, ringMembers: [NodeID],
                        state: MembershipState) -> JSONValue {
        let local = configuration.options.nodeID
        var ids = configuration.nodes.map(\.id)
        for member in ringMembers where !ids.contains(member) { ids.append(member) }
        if !ids.contains(local) { ids.append(local) }
        let entries: [JSONValue] = ids.sorted().map { id in
            let node = configuration.nodes.first { $0.id == id }
            var entry: JSONObject = [
                "nodeid": .number(id.rawValue),
                "name": .string(node?.name ?? DaemonConfiguration.defaultNodeName(id)),
                "addresses": .array(node.map { [.string($0.address.description)] } ?? []),
                "member": .bool(ringMembers.contains(id)),
            ]
            if id == local { entry.set("local", .bool(true)) }
            return .object(entry)
        }
        return .object([
            "ring": ringID.map { .string($0.description) } ?? .null,
            "state": .string(state.rawValue),
            "members": .array(entries),
        ])
    }

    /// `channels`: `{"channels":[{"name":"mwi","publish":["mwi"],"subscribe":["mwi"]}]}`.
    static func channels(configuration: DaemonConfiguration) -> JSONValue {
        let channels: [JSONValue] = configuration.eventChannels.map { channel in
            .object([
                "name": .string(channel.name),
                "publish": .array(channel.publishes.map { .string($0.rawValue) }),
                "subscribe": .array(channel.subscribes.map { .string($0.rawValue) }),
            ])
        }
        return .object(["channels": .array(channels)])
    }

    /// What `status` reports, gathered on the loop thread.
    struct StatusInput {
        var configuration: DaemonConfiguration
        var runtime: NodeRuntimeConfiguration
        var entityID: DaemonConfiguration.EntityID
        var ringID: RingID?
        var ringMembers: [NodeID]
        var state: MembershipState
        var statistics: RuntimeStatistics
        var uptime: Duration
        var logLevel: LogLevel
        var controlClients: Int
    }

    /// `status`: this node, its ring, transport, authentication, uptime and counters.
    static func status(_ input: StatusInput) -> JSONValue {
        let configuration = input.configuration
        let local = configuration.options.nodeID
        let node = configuration.localNode
        let statistics = input.statistics
        var transport: JSONObject = [
            "mode": .string(configuration.totem.transport.name),
            "address": input.runtime.transport.localAddress.map { .string($0.description) } ?? .null,
            "netmtu": .number(configuration.totem.netMTU),
        ]
        if case .udp(let group) = input.runtime.transport.mode { transport.set("multicast", .string(group.description)) }
        let counters: JSONObject = [
            "datagrams_sent": .number(statistics.datagramsSent),
            "datagrams_sent_segmented": .number(statistics.transport.sockets.segmentedDatagramsSent),
            "datagrams_received": .number(statistics.datagramsReceived),
            "bytes_sent": .number(statistics.bytesSent),
            "bytes_received": .number(statistics.bytesReceived),
            "messages_delivered": .number(statistics.core.messagesDelivered),
            "retransmissions": .number(statistics.core.retransmissionsServed),
            "retransmit_requests": .number(statistics.core.retransmitRequestsMade),
            "token_retransmissions": .number(statistics.core.tokenRetransmissions),
            "authentication_failures": .number(statistics.authenticationFailures),
            "freshness_refused": .number(statistics.replayRefusalCount),
            "freshness_refused_unproved_epoch": .number(statistics.replayRefusals["unproved_epoch", default: 0]),
            "freshness_refused_duplicate": .number(statistics.replayRefusals["duplicate", default: 0]),
            "freshness_refused_stale": .number(statistics.replayRefusals["stale", default: 0]),
            "freshness_refused_misaddressed": .number(statistics.replayRefusals["misaddressed", default: 0]),
            "freshness_challenges": .number(statistics.freshnessChallenges),
            "epochs_proved": .number(statistics.epochsProved),
            "decode_errors": .number(statistics.decodeErrorCount),
            "receive_drops": .number(statistics.kernelReceiveDrops),
            "truncated_datagrams": .number(statistics.transport.sockets.truncatedDatagrams),
            "unlisted_source_drops": .number(statistics.transport.unlistedSourceDrops),
            "send_errors": .number(statistics.transport.sockets.sendErrors + statistics.transport.sockets.sendWouldBlock),
            "rings_installed": .number(statistics.core.ringsInstalled),
            "unreachable_reports": .number(statistics.transport.sockets.unreachableReports),
            "unreachable_refuted": .number(statistics.core.unreachableRefuted),
            "successors_unreachable": .number(statistics.core.successorsUnreachable),
            "successor_probes": .number(statistics.successorProbes),
        ]
        return .object([
            "node": .object([
                "nodeid": .number(local.rawValue),
                "name": .string(node?.name ?? DaemonConfiguration.defaultNodeName(local)),
                "entity_id": .string(input.entityID.description),
            ]),
            "cluster": .string(configuration.totem.clusterName),
            "version": .string(Devclusterd.version),
            "ring": input.ringID.map { .string($0.description) } ?? .null,
            "state": .string(input.state.rawValue),
            "members": .number(input.ringMembers.count),
            "configured_nodes": .number(configuration.nodes.count),
            "transport": .object(transport),
            "authentication": .string(input.runtime.authentication.rawValue),
            "uptime_seconds": .number(max(0, input.uptime.totalMilliseconds / 1_000)),
            "log_level": .string(input.logLevel.description),
            "control_clients": .number(input.controlClients),
            "counters": .object(counters),
        ])
    }

    /// `settings`: the effective timers (after the token coefficient) and constants.
    static func settings(_ runtime: NodeRuntimeConfiguration) -> JSONValue {
        let settings = runtime.settings
        func milliseconds(_ duration: Duration) -> JSONValue { .number(duration.totalMilliseconds) }
        return .object([
            "token_ms": milliseconds(settings.effectiveToken),
            "token_configured_ms": milliseconds(settings.token),
            "token_coefficient_ms": milliseconds(settings.tokenCoefficient),
            "configured_nodes": .number(settings.configuredNodeCount),
            "token_retransmit_ms": milliseconds(settings.tokenRetransmit),
            "token_retransmits_before_loss_const": .number(settings.tokenRetransmitsBeforeLoss),
            "hold_ms": milliseconds(settings.hold),
            "join_ms": milliseconds(settings.join),
            "consensus_ms": milliseconds(settings.consensus),
            "merge_ms": milliseconds(settings.merge),
            "window_size": .number(settings.windowSize),
            "max_messages": .number(settings.maxMessages),
            "miss_count_const": .number(settings.missCountConstant),
            "fail_recv_const": .number(settings.failToReceiveConstant),
            "seqno_unchanged_const": .number(settings.sequenceUnchangedConstant),
            "cancel_token_hold_on_retransmit": .bool(settings.cancelHoldOnRetransmit),
            "frame_size_bytes": .number(settings.frameCapacityBytes),
            "max_message_bytes": .number(settings.maxMessageBytes),
            "netmtu": .number(runtime.transport.netmtu),
        ])
    }
}
