// Tests of what users and scripts see: the JSON results of members, channels, status and settings
// (the stable --json fields), their human form in the seed's block style, and the log format.

import Foundation
import Glibc
import Testing
import Totem
import TotemRuntime
@testable import devclusterd

@Suite("Output")
struct OutputTests {
    private let ring = RingID(representative: NodeID(1), sequence: 12)

    @Test func membersJSONListsConfiguredAndUnlistedNodes() throws {
        let configuration = try threeNodeConfiguration()
        let result = ClusterReport.members(configuration: configuration, ringID: ring,
                                           ringMembers: [NodeID(1), NodeID(3), NodeID(9)], state: .operational)
        #expect(result.encoded == #"{"ring":"1.12","state":"operational","members":["#
            + #"{"nodeid":1,"name":"server1","addresses":["127.0.0.1"],"member":true,"local":true},"#
            + #"{"nodeid":2,"name":"server2","addresses":["127.0.0.2"],"member":false},"#
            + #"{"nodeid":3,"name":"server3","addresses":["127.0.0.3"],"member":true},"#
            + #"{"nodeid":9,"name":"node9","addresses":[],"member":true}]}"#)
    }

    @Test func membersInTheSeedsBlockStyle() throws {
        let configuration = try threeNodeConfiguration()
        let result = ClusterReport.members(configuration: configuration, ringID: ring,
                                           ringMembers: [NodeID(1), NodeID(2)], state: .operational)
        #expect(try OutputFormatter.members(result) == """

            =============================================================
            === Cluster Members =========================================
            =============================================================
            ===
            === Ring: 1.12 (operational), 2 of 3 nodes are members
            ===
            === ---------------------------------------------------------
            === Node Name: server1
            === ==> ID: 1 (0x1)
            === ==> Address: 127.0.0.1
            === ==> Member: Yes
            === ---------------------------------------------------------
            ===
            === ---------------------------------------------------------
            === Node Name: server2
            === ==> ID: 2 (0x2)
            === ==> Address: 127.0.0.2
            === ==> Member: Yes
            === ---------------------------------------------------------
            ===
            === ---------------------------------------------------------
            === Node Name: server3
            === ==> ID: 3 (0x3)
            === ==> Address: 127.0.0.3
            === ==> Member: No
            === ---------------------------------------------------------
            ===
            =============================================================


            """)
    }

    @Test func channelsMatchTheSeedExactly() throws {
        let configuration = try threeNodeConfiguration()
        let result = ClusterReport.channels(configuration: configuration)
        #expect(result.encoded == #"{"channels":[{"name":"mwi","publish":["mwi"],"subscribe":["mwi"]},"#
            + #"{"name":"device_state","publish":["device_state"],"subscribe":["device_state"]}]}"#)
        // The block of the seed's `ais evt show event channels`, line for line.
        #expect(try OutputFormatter.channels(result) == """

            =============================================================
            === Event Channels ==========================================
            =============================================================
            ===
            === ---------------------------------------------------------
            === Event Channel Name: mwi
            === ==> Publishing Event Type: mwi
            === ==> Subscribing to Event Type: mwi
            === ---------------------------------------------------------
            ===
            === ---------------------------------------------------------
            === Event Channel Name: device_state
            === ==> Publishing Event Type: device_state
            === ==> Subscribing to Event Type: device_state
            === ---------------------------------------------------------
            ===
            =============================================================


            """)
    }

    private func statusResult() throws -> JSONValue {
        let configuration = try threeNodeConfiguration()
        var transport = TransportConfiguration(mode: .udpu, localNode: NodeID(1), nodes: [
            TransportConfiguration.Node(id: NodeID(1), address: SocketAddress(ip: "127.0.0.1", port: 5405)!),
        ])
        transport.netmtu = 1500
        let runtime = NodeRuntimeConfiguration(clusterName: "test", transport: transport, settings: configuration.totem.settings,
                                               authentication: .hmacSHA256)
        var statistics = RuntimeStatistics()
        statistics.transport.sockets.datagramsSent = 10
        statistics.transport.sockets.segmentedDatagramsSent = 6
        statistics.transport.sockets.datagramsReceived = 20
        statistics.core.retransmissionsServed = 3
        statistics.authenticationFailures = 4
        statistics.transport.sockets.kernelReceiveDrops = 5
        statistics.transport.sockets.unreachableReports = 7
        statistics.core.successorsUnreachable = 1
        statistics.core.unreachableRefuted = 5
        statistics.replayRefusals = ["unproved_epoch": 6, "duplicate": 8, "stale": 2]
        statistics.freshnessChallenges = 3
        statistics.epochsProved = 2
        return ClusterReport.status(ClusterReport.StatusInput(
            configuration: configuration, runtime: runtime, entityID: DaemonConfiguration.EntityID(parsing: "02:00:00:00:00:01")!,
            ringID: ring, ringMembers: [NodeID(1), NodeID(2)], state: .operational, statistics: statistics,
            uptime: .seconds(3_725), logLevel: .info, controlClients: 1))
    }

    @Test func statusJSONHasTheDocumentedFields() throws {
        let result = try statusResult()
        #expect(result["node"] == ["nodeid": 1, "name": "server1", "entity_id": "02:00:00:00:00:01"])
        #expect(result["ring"] == "1.12")
        #expect(result["state"] == "operational")
        #expect(result["members"] == 2)
        #expect(result["configured_nodes"] == 3)
        #expect(result["transport"] == ["mode": "udpu", "address": "127.0.0.1:5405", "netmtu": 1500])
        #expect(result["authentication"] == "hmac-sha256")
        #expect(result["uptime_seconds"] == 3_725)
        let counters = try #require(result["counters"])
        #expect(counters["datagrams_sent"] == 10 && counters["datagrams_sent_segmented"] == 6 && counters["datagrams_received"] == 20)
        #expect(counters["retransmissions"] == 3 && counters["authentication_failures"] == 4 && counters["receive_drops"] == 5)
        #expect(counters.objectValue?.keys == [
            "datagrams_sent", "datagrams_sent_segmented", "datagrams_received", "bytes_sent", "bytes_received", "messages_delivered", "retransmissions",
            "retransmit_requests", "token_retransmissions", "authentication_failures", "freshness_refused",
            "freshness_refused_unproved_epoch", "freshness_refused_duplicate", "freshness_refused_stale",
            "freshness_refused_misaddressed", "freshness_challenges", "epochs_proved", "decode_errors", "receive_drops",
            "truncated_datagrams", "unlisted_source_drops", "send_errors", "rings_installed", "unreachable_reports",
            "unreachable_refuted", "successors_unreachable", "successor_probes",
        ])
        #expect(counters["unreachable_reports"] == 7 && counters["unreachable_refuted"] == 5 && counters["successors_unreachable"] == 1)
        #expect(counters["freshness_refused"] == 16 && counters["freshness_refused_duplicate"] == 8
                && counters["freshness_refused_misaddressed"] == 0 && counters["freshness_challenges"] == 3)
    }

    @Test func statusInBlockStyle() throws {
        let text = try OutputFormatter.status(try statusResult())
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.prefix(5) == ["", String(repeating: "=", count: 61),
                                    "=== Node Status =============================================", String(repeating: "=", count: 61), "==="])
        for expected in [
            "=== Node Name: server1", "=== ==> ID: 1 (0x1)", "=== ==> Entity ID: 02:00:00:00:00:01", "=== ==> Cluster: test",
            "=== ==> Ring: 1.12", "=== ==> State: operational", "=== ==> Members: 2 of 3 configured nodes",
            "=== ==> Transport: udpu on 127.0.0.1:5405, netmtu 1500", "=== ==> Authentication: hmac-sha256",
            "=== ==> Uptime: 1h 2m 5s", "=== ==> Datagrams: 10 sent (6 in segmented runs), 20 received",
            "=== ==> Retransmissions: 3 resent, 0 requested, 0 token", "=== ==> Authentication Failures: 4",
            "=== ==> Freshness Refusals: 16 (6 in an unproved epoch: a peer that just started, or a replay; 8 duplicate, "
                + "2 stale, 0 misaddressed); 3 challenges sent, 2 epochs proved",
            "=== ==> Receive Drops: 5 (kernel), 0 undecodable, 0 truncated, 0 from unlisted sources",
            "=== ==> Unreachable Reports: 7 (ICMP), 5 refuted by a liveness probe's answer, 1 for a successor that did not answer (ring re-formed)",
        ] {
            #expect(lines.contains(expected), "missing \(expected)")
        }
    }

    @Test func statusShowsRetainedEventsAndTheirCaps() throws {
        guard case .object(var object) = try statusResult() else { Issue.record("status is not an object"); return }
        #expect(!(try OutputFormatter.status(.object(object))).contains("Retained Events"))
        object.set("retained_events", ["events": 34, "bytes": 2_053_056, "max_events": 10_000, "max_bytes": 2_097_152,
                                       "dropped_at_event_cap": 0, "dropped_at_byte_cap": 466])
        #expect(try OutputFormatter.status(.object(object)).contains("=== ==> Retained Events: 34 of at most 10000, 2 MiB of at most "
            + "2 MiB (max_retained_bytes); dropped before their expiry: 466 at the byte cap, 0 at the event cap\n"))
    }

    @Test func aChangeNotPersistedAndADegradedWriterAreSaid() throws {
        let queued: JSONValue = ["device": "Custom:a", "state": "INUSE", "persistence": "queued"]
        #expect(try OutputFormatter.devstateSet(queued) == "Custom:a: set on this server; cluster-wide state INUSE\n")
        var notPersisted: JSONObject = ["device": "Custom:a", "state": "INUSE", "cleared": true, "persistence": "not_persisted",
                                        "persistence_error": "writing /s/local_state fails: No space left on device"]
        let line = "NOT PERSISTED: writing /s/local_state fails: No space left on device; the cluster has the change, "
            + "this server keeps it in memory and retries writing it\n"
        #expect(try OutputFormatter.devstateSet(.object(notPersisted)) == "Custom:a: set on this server; cluster-wide state INUSE\n" + line)
        #expect(try OutputFormatter.devstateClear(.object(notPersisted)) == "Custom:a: cleared on this server; cluster-wide state INUSE\n" + line)
        notPersisted = ["mailbox": "100", "context": "default", "new": 1, "old": 0, "persistence": "not_persisted",
                        "persistence_error": "writing /s/local_state fails: No space left on device"]
        #expect(try OutputFormatter.mwiSet(.object(notPersisted)).hasSuffix(", published\n" + line))

        guard case .object(var status) = try statusResult() else { Issue.record("status is not an object"); return }
        status.set("persistence", ["health": "failing", "degraded": true, "persistence_failures": 7, "unpersisted_changes": 3,
                                   "last_error": "write /s/local_state.log: No space left on device"])
        #expect(try OutputFormatter.status(.object(status)).contains("=== ==> Persistence: DEGRADED (failing): local states are not "
            + "persisted; last error: write /s/local_state.log: No space left on device; 7 failed write(s), 3 change(s) not yet on disk"))
        status.set("persistence", ["health": "ok", "degraded": false, "persistence_failures": 0, "unpersisted_changes": 0])
        #expect(try OutputFormatter.status(.object(status)).contains("=== ==> Persistence: ok; 0 failed write(s), 0 change(s) not yet on disk"))
    }

    @Test func settingsShowTheEffectiveTimers() throws {
        var settings = TotemSettings()
        settings.configuredNodeCount = 4
        settings.frameCapacityBytes = 1342
        var transport = TransportConfiguration(mode: .udpu, localNode: NodeID(1), nodes: [
            TransportConfiguration.Node(id: NodeID(1), address: SocketAddress(ip: "127.0.0.1", port: 5405)!),
        ])
        transport.netmtu = 1500
        let result = ClusterReport.settings(NodeRuntimeConfiguration(clusterName: "t", transport: transport, settings: settings))
        #expect(result["token_ms"] == 4300)
        #expect(result["token_configured_ms"] == 3000)
        #expect(result["token_retransmit_ms"] == 1023)
        #expect(result["hold_ms"] == 809)
        #expect(result["consensus_ms"] == 5160)
        #expect(result["join_ms"] == 50 && result["merge_ms"] == 200)
        #expect(result["window_size"] == 50 && result["max_messages"] == 17 && result["frame_size_bytes"] == 1342)
        let text = try OutputFormatter.settings(result)
        #expect(text.contains("=== ==> token: 4300 ms (token 3000 ms + token_coefficient 650 ms × 2 nodes beyond 2)\n"))
        #expect(text.contains("=== ==> token_retransmit: 1023 ms\n=== ==> token_retransmits_before_loss_const: 4\n=== ==> hold: 809 ms\n"))
        #expect(text.contains("=== ==> frame size: 1342 bytes (netmtu 1500)\n"))
    }

    @Test func formatterRejectsAnswersWithoutTheirFields() throws {
        #expect(throws: FormatError("the daemon's answer has no \"members\" list")) { try OutputFormatter.members(["ring": "1.2"]) }
        #expect(throws: FormatError("a member in the daemon's answer lacks \"nodeid\" or \"name\"")) {
            try OutputFormatter.members(["members": [["name": "x"]]])
        }
        #expect(throws: FormatError.self) { try OutputFormatter.status(.null) }
        #expect(throws: FormatError.self) { try OutputFormatter.settings("x") }
        #expect(throws: FormatError.self) { try OutputFormatter.channels([1]) }
        #expect(try OutputFormatter.debug(["debug": true, "log_level": "debug"]) == "debug logging on; log level debug\n")
    }

    @Test func uptimeLeavesOutLeadingZeroUnits() {
        #expect(OutputFormatter.uptime(seconds: 5) == "5s")
        #expect(OutputFormatter.uptime(seconds: 65) == "1m 5s")
        #expect(OutputFormatter.uptime(seconds: 3_600) == "1h 0m 0s")
        #expect(OutputFormatter.uptime(seconds: 90_061) == "1d 1h 1m 1s")
    }

    @Test func logLinesHaveTimeLevelAndOneLine() {
        let time = timespec(tv_sec: 1_795_773_600, tv_nsec: 123_456_789)
        #expect(DaemonLogger.format(level: .info, message: "ring 1.12 formed: server1", time: time)
            == "2026-11-27T10:00:00.123Z info  ring 1.12 formed: server1\n")
        #expect(DaemonLogger.format(level: .notice, message: "server2 left (graceful)", time: time)
            == "2026-11-27T10:00:00.123Z notice server2 left (graceful)\n")
        #expect(DaemonLogger.format(level: .warning, message: "a\nb\u{1B}", time: time)
            == "2026-11-27T10:00:00.123Z warning a\\nb\\x1b\n")
        #expect(DaemonLogger.timestamp(timespec(tv_sec: 0, tv_nsec: 7_000_000)) == "1970-01-01T00:00:00.007Z")
    }

    @Test func loggerDropsLinesBelowItsLevel() {
        let logs = LogCollector()
        let logger = logs.makeLogger(level: .notice)
        logger.info("hidden")
        logger.notice("shown")
        logger.setLevel(.debug)
        logger.debug("now shown")
        #expect(logs.messages == ["notice shown", "debug now shown"])
    }

    @Test func runtimeLinesAreRewrittenAndRateLimited() {
        let logs = LogCollector()
        let filter = RuntimeLogFilter(logger: logs.makeLogger(level: .info), interval: .seconds(10))
        let start = MonotonicInstant(nanoseconds: 1_000_000_000_000)
        let drop = "dropped datagram from 127.0.0.2:5405 (type token, sender 2, cluster 0x1234): authentication code does not match"
        filter.handle(.warning, drop, now: start)
        filter.handle(.warning, drop + "; 12 similar drops not logged", now: start + .seconds(1))
        filter.handle(.warning, drop, now: start + .seconds(2))
        filter.handle(.warning, drop.replacingOccurrences(of: "127.0.0.2", with: "127.0.0.3"), now: start + .seconds(2))
        filter.handle(.warning, drop, now: start + .seconds(11))
        filter.handle(.warning, "dropped datagram from 127.0.0.4:5405 (type join, sender 4, cluster 0x99): foreign cluster id 0x99", now: start)
        filter.handle(.warning, "dropped datagram from 127.0.0.5:5405: datagram of 10 bytes, shorter than 48", now: start)
        filter.handle(.notice, "node 1: regular configuration 1.12: members [1, 2]", now: start)
        filter.handle(.info, "node 1 entered operational (recovery completed)", now: start)
        filter.handle(.info, "node 1 left the ring", now: start)
        let cause = "the sender probably uses a different cluster key (keyfile)"
        #expect(logs.messages == [
            "warning authentication failed for a datagram from 127.0.0.2:5405 (type token, sender 2, cluster 0x1234): "
                + "authentication code does not match; \(cause)",
            "warning authentication failed for a datagram from 127.0.0.3:5405 (type token, sender 2, cluster 0x1234): "
                + "authentication code does not match; \(cause)",
            "warning authentication failed for a datagram from 127.0.0.2:5405 (type token, sender 2, cluster 0x1234): "
                + "authentication code does not match; \(cause) (2 more such lines from this source held back)",
            "warning ignored a datagram from 127.0.0.4:5405 (type join, sender 4, cluster 0x99) of another cluster "
                + "(foreign cluster id 0x99); another cluster with a different cluster_name uses this address and port",
            "warning authentication failed for a datagram from 127.0.0.5:5405: datagram of 10 bytes, shorter than 48; "
                + "the sender probably runs with another crypto setting (crypto = none, or another mode)",
            "info  node 1 left the ring",
        ])
    }
}
