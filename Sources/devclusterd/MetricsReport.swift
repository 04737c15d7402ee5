// What `GET /metrics` says: every metric of the daemon, built from a snapshot of counters the
// event loop already holds (no disk, no system call beyond the clock). Pure: tests build the
// text from plain values. The names are an interface (dashboards and alerts use them): add
// metrics, never rename one.

import Totem
import TotemRuntime

/// The values one scrape reports, gathered on the loop thread.
struct MetricsSnapshot {
    /// What the cluster services add; `nil` when they are not running (the daemon's own tests).
    struct Services {
        var quorate: Bool
        var quorumPresent: Int
        var quorumConfigured: Int
        var localDevices: Int
        var knownDevices: Int
        var localMailboxes: Int
        var knownMailboxes: Int
        var backlogMessages: Int
        var backlogDropped: Int
        var retainedEvents: Int
        var retainedBytes: Int
        var retainedDroppedAtEventCap: Int
        var retainedDroppedAtByteCap: Int
        var stateRecordsWritten: Int
        var persistenceFailures: Int
        var persistenceDegraded: Bool
        var unpersistedChanges: UInt64
        var watchers: Int
        var adapters: Int
    }

    var version: String
    var nodeID: NodeID
    var nodeName: String
    var clusterName: String
    var entityID: String
    var ringID: RingID?
    var state: MembershipState
    var members: Int
    var configuredNodes: Int
    var uptime: Duration
    var statistics: RuntimeStatistics
    var sendQueueMessages: Int
    var sendQueueBytes: Int
    var controlClients: Int
    var services: Services?
}

enum MetricsReport {
    /// The label value of each reason a ring re-forms.
    static func label(_ reason: TransitionReason) -> String {
        switch reason {
        case .startup: "startup"
        case .tokenLost: "token_lost"
        case .successorUnreachable: "successor_unreachable"
        case .foreignMessage: "foreign_message"
        case .mergeDetected: "merge_detected"
        case .joinReceived: "join_received"
        case .leaveReceived: "leave_received"
        case .consensusTimeout: "consensus_timeout"
        case .failedToReceive: "failed_to_receive"
        case .commitTokenCreated: "commit_token_created"
        case .commitTokenReceived: "commit_token_received"
        case .commitTokenCompleted: "commit_token_completed"
        case .recoveryCompleted: "recovery_completed"
        case .leaving: "leaving"
        }
    }

    /// The reasons that can take an operational node into gather (the others name steps of
    /// forming a ring): each gets a series, zero until it happens, so that rates work at once.
    static let reformationCauses: [TransitionReason] = [
        .tokenLost, .successorUnreachable, .foreignMessage, .mergeDetected, .joinReceived, .leaveReceived, .failedToReceive,
    ]

    /// The replay refusal reasons `status` shows as `freshness_refused_*`.
    static let freshnessReasons = ["unproved_epoch", "duplicate", "stale", "misaddressed"]

    /// The whole document.
    static func text(_ snapshot: MetricsSnapshot) -> MetricsText {
        var text = MetricsText()
        node(snapshot, into: &text)
        ring(snapshot, into: &text)
        traffic(snapshot.statistics, into: &text)
        if let services = snapshot.services { self.services(services, into: &text) }
        return text
    }

    private static func node(_ snapshot: MetricsSnapshot, into text: inout MetricsText) {
        text.family("devcluster_build_info", .gauge, help: "The devclusterd version running (always 1).",
                    [.init([("version", snapshot.version)], .integer(1))])
        text.family("devcluster_node_info", .gauge, help: "This node: id, name, cluster and entity id (always 1).",
                    [.init([("nodeid", String(snapshot.nodeID.rawValue)), ("name", snapshot.nodeName),
                            ("cluster", snapshot.clusterName), ("entity_id", snapshot.entityID)], .integer(1))])
        text.single("devcluster_uptime_seconds", .gauge, help: "Time since the daemon started.", .seconds(snapshot.uptime))
        text.single("devcluster_control_clients", .gauge, help: "Clients connected to the control socket.",
                    .integer(snapshot.controlClients))
        text.single("devcluster_send_queue_messages", .gauge, help: "Messages queued for the ring and not yet sent.",
                    .integer(snapshot.sendQueueMessages))
        text.single("devcluster_send_queue_bytes", .gauge, help: "Bytes of the messages queued for the ring and not yet sent.",
                    .integer(snapshot.sendQueueBytes))
    }

    private static func ring(_ snapshot: MetricsSnapshot, into text: inout MetricsText) {
        let statistics = snapshot.statistics
        var ringSamples: [MetricsText.Sample] = []
        if let ring = snapshot.ringID {
            ringSamples.append(.init([("ring", ring.description), ("representative", String(ring.representative.rawValue))], .integer(1)))
        }
        text.family("devcluster_ring_info", .gauge, help: "The installed ring (always 1; no sample before the first ring).", ringSamples)
        text.family("devcluster_ring_sequence", .gauge, help: "The ring sequence number of the installed ring.",
                    snapshot.ringID.map { [.init([], .integer(Int(clamping: $0.sequence)))] } ?? [])
        text.family("devcluster_ring_state", .gauge, help: "The membership state: 1 for the current one, 0 for the others.",
                    [MembershipState.operational, .gather, .commit, .recovery].map { state in
                        .init([("state", state.rawValue)], .integer(state == snapshot.state ? 1 : 0))
                    })
        text.single("devcluster_ring_members", .gauge, help: "Nodes in the installed ring.", .integer(snapshot.members))
        text.single("devcluster_configured_nodes", .gauge, help: "Nodes in the configuration's [node] list.",
                    .integer(snapshot.configuredNodes))
        text.single("devcluster_rings_installed_total", .counter, help: "Rings this node installed (each ring formation, the first included).",
                    .integer(statistics.core.ringsInstalled))
        text.family("devcluster_ring_reformations_total", .counter,
                    help: "Times this node left an operational ring to form a new one, by cause.",
                    reformationCauses.map { .init([("cause", label($0))], .integer(statistics.reformations[$0, default: 0])) })
        text.single("devcluster_gather_entries_total", .counter,
                    help: "Times this node entered the gather state (several per re-formation when joins keep arriving).",
                    .integer(statistics.core.gatherEntries))
        let rotation = statistics.tokenRotation
        text.histogram("devcluster_token_rotation_seconds",
                       help: "Time between successive tokens accepted here in one operational ring (an idle ring holds the token).",
                       bounds: TokenRotationStatistics.bucketBoundsSeconds, bucketCounts: rotation.bucketCounts,
                       sumSeconds: Double(rotation.sumNanoseconds) / 1e9, count: rotation.count)
        text.family("devcluster_token_rotation_last_seconds", .gauge, help: "The last token rotation measured here.",
                    rotation.last.map { [.init([], .seconds($0))] } ?? [])
    }

    private static func traffic(_ statistics: RuntimeStatistics, into text: inout MetricsText) {
        let sockets = statistics.transport.sockets
        let counters: [(String, String, Int)] = [
            ("devcluster_datagrams_sent_total", "Datagrams sent.", sockets.datagramsSent),
            ("devcluster_datagrams_received_total", "Datagrams received.", sockets.datagramsReceived),
            ("devcluster_network_sent_bytes_total", "Bytes of datagrams sent.", sockets.bytesSent),
            ("devcluster_network_received_bytes_total", "Bytes of datagrams received.", sockets.bytesReceived),
            ("devcluster_messages_submitted_total", "Messages this node queued for the ring.", statistics.core.messagesSubmitted),
            ("devcluster_message_submitted_bytes_total", "Bytes of the messages this node queued for the ring.", statistics.messageBytesSubmitted),
            ("devcluster_messages_delivered_total", "Messages delivered here in agreed order.", statistics.core.messagesDelivered),
            ("devcluster_message_delivered_bytes_total", "Bytes of the messages delivered here.", statistics.messageBytesDelivered),
            ("devcluster_retransmissions_total", "Messages this node sent again at another node's request.", statistics.core.retransmissionsServed),
            ("devcluster_retransmit_requests_total", "Retransmissions this node asked for.", statistics.core.retransmitRequestsMade),
            ("devcluster_token_retransmissions_total", "Tokens this node sent again (token retransmit timeout).", statistics.core.tokenRetransmissions),
            ("devcluster_authentication_failures_total", "Datagrams that failed authentication (another key or cluster, forged, corrupted).",
             statistics.authenticationFailures),
            ("devcluster_freshness_challenges_total", "Liveness probes sent to make a sender prove its epoch.", statistics.freshnessChallenges),
            ("devcluster_epochs_proved_total", "Sender epochs proved by a freshness challenge.", statistics.epochsProved),
            ("devcluster_decode_errors_total", "Authentic datagrams the wire codec rejected.", statistics.decodeErrorCount),
            ("devcluster_receive_drops_total", "Datagrams the kernel dropped at this node's sockets.", sockets.kernelReceiveDrops),
            ("devcluster_truncated_datagrams_total", "Datagrams larger than the receive buffer, dropped.", sockets.truncatedDatagrams),
            ("devcluster_unlisted_source_drops_total", "udpu datagrams from an address no [node] lists, dropped.", statistics.transport.unlistedSourceDrops),
            ("devcluster_send_errors_total", "Sends that failed or would have blocked.", sockets.sendErrors + sockets.sendWouldBlock),
            ("devcluster_unreachable_reports_total", "ICMP port unreachable reports about other nodes.", sockets.unreachableReports),
            ("devcluster_unreachable_refuted_total", "Unreachable reports the node refuted by answering a liveness probe.", statistics.core.unreachableRefuted),
            ("devcluster_successors_unreachable_total", "Successors failed after answering none of the liveness probes.", statistics.core.successorsUnreachable),
            ("devcluster_successor_probes_total", "Tokens sent again to probe an idle successor.", statistics.successorProbes),
            ("devcluster_ring_sequence_persist_failures_total", "Writes of the ring sequence file that failed.", statistics.persistFailures),
        ]
        for (name, help, value) in counters { text.single(name, .counter, help: help, .integer(value)) }
        text.family("devcluster_freshness_refused_total", .counter,
                    help: "Authentic datagrams refused as replays, by reason (status: freshness_refused_REASON).",
                    freshnessReasons.map { .init([("reason", $0)], .integer(statistics.replayRefusals[$0, default: 0])) })
    }

    private static func services(_ services: MetricsSnapshot.Services, into text: inout MetricsText) {
        text.single("devcluster_quorate", .gauge, help: "1 when this partition has quorum, else 0.", .integer(services.quorate ? 1 : 0))
        text.single("devcluster_quorum_present_nodes", .gauge, help: "Configured nodes present in the ring (counted for quorum).",
                    .integer(services.quorumPresent))
        text.single("devcluster_quorum_configured_nodes", .gauge, help: "Configured nodes (quorum is more than half of them).",
                    .integer(services.quorumConfigured))
        text.single("devcluster_local_devices", .gauge, help: "Devices this server reports.", .integer(services.localDevices))
        text.single("devcluster_known_devices", .gauge, help: "Devices some server reports, known here.", .integer(services.knownDevices))
        text.single("devcluster_local_mailboxes", .gauge, help: "Mailboxes this server publishes.", .integer(services.localMailboxes))
        text.single("devcluster_known_mailboxes", .gauge, help: "Mailboxes known here.", .integer(services.knownMailboxes))
        text.single("devcluster_submit_backlog_messages", .gauge, help: "Service messages waiting for room in the ring's send queue.",
                    .integer(services.backlogMessages))
        text.single("devcluster_submit_backlog_dropped_total", .counter, help: "Service messages dropped because the backlog was full.",
                    .integer(services.backlogDropped))
        text.single("devcluster_retained_events", .gauge, help: "Retained events held here.", .integer(services.retainedEvents))
        text.single("devcluster_retained_events_bytes", .gauge, help: "Bytes of retained events held here (as max_retained_bytes counts them).",
                    .integer(services.retainedBytes))
        text.family("devcluster_retained_events_dropped_total", .counter, help: "Retained events dropped before their expiry, by cap.",
                    [.init([("cap", "events")], .integer(services.retainedDroppedAtEventCap)),
                     .init([("cap", "bytes")], .integer(services.retainedDroppedAtByteCap))])
        text.single("devcluster_state_records_written_total", .counter, help: "Changes appended to the local state log.",
                    .integer(services.stateRecordsWritten))
        text.single("devcluster_persistence_failures_total", .counter, help: "Writes of the local state that failed (each retry counts).",
                    .integer(services.persistenceFailures))
        text.single("devcluster_persistence_degraded", .gauge,
                    help: "1 while local states are not persisted (the disk fails or hangs), else 0.",
                    .integer(services.persistenceDegraded ? 1 : 0))
        text.single("devcluster_persistence_unpersisted_changes", .gauge, help: "Changes handed to the writer and not yet on disk.",
                    .integer(Int(clamping: services.unpersistedChanges)))
        text.single("devcluster_watchers", .gauge, help: "Control clients watching changes (watch, subscribe).", .integer(services.watchers))
        text.single("devcluster_adapters", .gauge, help: "PBX adapters registered.", .integer(services.adapters))
    }
}
