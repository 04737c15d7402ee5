// Tests of the Daemon on an event loop without a ring: membership log lines with names, routing of
// deliveries and commands to services (the seam later services plug into), the built-in commands,
// the periodic summary and the reload report.

import Foundation
import Membership
import Testing
import Totem
import TotemRuntime
@testable import devclusterd

/// A service recording what the Daemon hands it.
private final class RecordingService: DaemonService {
    let name = "recording"
    let commands = ["ping", "later"]
    let messageTag: UInt8? = ServiceID.event.rawValue
    private(set) var calls: [String] = []
    private var pending: [ControlReply] = []

    func start(_ context: ServiceContext) { calls.append("start node \(context.localNodeID)") }
    func configurationChanged(_ change: ConfigurationChange) { calls.append("\(change.kind.rawValue) \(change.ringID)") }
    func delivered(_ message: [UInt8], from sender: NodeID) {
        calls.append("delivered \(String(decoding: message.dropFirst(), as: UTF8.self)) from \(sender)")
    }
    func handle(_ request: ControlRequest, reply: ControlReply) {
        calls.append("handle \(request.command)")
        if request.command == "later" { pending.append(reply) } else { reply.succeed("pong") }
    }
    func stop() { calls.append("stop") }
    func answerLater() {
        for reply in pending { reply.succeed("late") }
        pending.removeAll()
    }
}

/// A Daemon with the node service and a recording service on a loop of its own.
private final class DaemonFixture {
    let daemon: Daemon
    let recording = RecordingService()
    var answers: [JSONValue] = []

    init(loop: EventLoop, logger: DaemonLogger, configuration: DaemonConfiguration, origin: DaemonConfiguration.Origin = .file("test.conf")) {
        var transport = TransportConfiguration(mode: .udpu, localNode: NodeID(1), nodes: [
            TransportConfiguration.Node(id: NodeID(1), address: SocketAddress(ip: "127.0.0.1", port: 5405)!),
        ])
        transport.netmtu = 1500
        let runtime = NodeRuntimeConfiguration(clusterName: "test", transport: transport, settings: configuration.totem.settings)
        let context = ServiceContext(configuration: configuration, origin: origin, runtimeConfiguration: runtime,
                                     entityID: DaemonConfiguration.EntityID(parsing: "02:00:00:00:00:01")!, logger: logger,
                                     eventLoop: loop, isDebugForced: false)
        daemon = Daemon(context: context, services: [NodeService(), recording]) { _ in }
    }

    func ask(_ command: String, _ arguments: JSONObject = JSONObject()) -> JSONValue? {
        var answer: JSONValue?
        daemon.handle(ControlRequest(id: 7, command: command, arguments: arguments), reply: ControlReply(id: 7) { answer = $0 })
        return answer
    }
}

private func withDaemon(_ body: (EventLoop, LoopBound<DaemonFixture>, LogCollector) async throws -> Void) async throws {
    let loop = try EventLoop(name: "daemon-test")
    defer {
        loop.stop()
        loop.join()
    }
    let logs = LogCollector()
    let logger = logs.makeLogger(level: .info)
    let configuration = try threeNodeConfiguration()
    let fixture = try #require(await onLoop(loop) {
        LoopBound(DaemonFixture(loop: loop, logger: logger, configuration: configuration), eventLoop: loop)
    })
    try await body(loop, fixture, logs)
}

private func change(
    _ kind: ConfigurationChange.Kind, _ sequence: UInt64, _ members: [UInt32], left: [UInt32] = [], joined: [UInt32] = [],
    leftGracefully: [UInt32] = []
) -> RingEvent {
    .configurationChanged(ConfigurationChange(kind: kind, ringID: RingID(representative: NodeID(1), sequence: sequence),
                                              members: members.map { NodeID($0) }, left: left.map { NodeID($0) },
                                              joined: joined.map { NodeID($0) }, leftGracefully: leftGracefully.map { NodeID($0) }))
}

@Suite("Daemon")
struct DaemonTests {
    @Test func logsJoinsGracefulLeavesAndFailuresWithNames() async throws {
        try await withDaemon { loop, fixture, logs in
            _ = await onLoop(loop) {
                let daemon = fixture.value.daemon
                daemon.handle(change(.transitional, 12, [1, 2]))
                daemon.handle(change(.regular, 12, [1, 2, 3], joined: [3]))
                daemon.handle(.stateChanged(.gather, .leaveReceived))
                daemon.handle(change(.transitional, 16, [1, 3], left: [2], leftGracefully: [2]))
                daemon.handle(change(.regular, 16, [1, 3]))
                daemon.handle(.stateChanged(.gather, .tokenLost))
                daemon.handle(change(.transitional, 20, [1], left: [3]))
                daemon.handle(change(.regular, 20, [1]))
            }
            #expect(logs.messages == [
                "info  ring 1.12 formed: server1, server2, server3 (joined: server3)",
                "notice server2 left (graceful)",
                "info  ring 1.16 formed: server1, server3",
                "warning server3 failed",
                "info  ring 1.20 formed: server1",
            ])
        }
    }

    @Test func servicesGetConfigurationsDeliveriesAndTheirCommands() async throws {
        try await withDaemon { loop, fixture, _ in
            let answers: [JSONValue?]? = await onLoop(loop) {
                let daemon = fixture.value.daemon
                daemon.handle(change(.regular, 4, [1, 2]))
                daemon.handle(.delivered(DeliveredMessage(sender: NodeID(2), payload: [ServiceID.event.rawValue] + Array("hi".utf8),
                                                          ringID: RingID(representative: NodeID(1), sequence: 4), delivery: .agreed)))
                daemon.handle(.delivered(DeliveredMessage(sender: NodeID(2), payload: [200, 1],
                                                          ringID: RingID(representative: NodeID(1), sequence: 4), delivery: .agreed)))
                daemon.handle(.delivered(DeliveredMessage(sender: NodeID(2), payload: [],
                                                          ringID: RingID(representative: NodeID(1), sequence: 4), delivery: .agreed)))
                var late: JSONValue?
                daemon.handle(ControlRequest(id: 3, command: "later"), reply: ControlReply(id: 3) { late = $0 })
                let beforeAnswer = late
                fixture.value.recording.answerLater()
                return [fixture.value.ask("ping"), beforeAnswer, late]
            }
            #expect(answers == [["id": 7, "ok": true, "result": "pong"], nil, ["id": 3, "ok": true, "result": "late"]])
            let state: ([String], Int)? = await onLoop(loop) { (fixture.value.recording.calls, fixture.value.daemon.unroutableMessages) }
            #expect(state?.0 == ["start node 1", "regular 1.4", "delivered hi from 2", "handle later", "handle ping"])
            #expect(state?.1 == 2)
        }
    }

    @Test func unknownCommandsAreAnsweredWithTheListAndASuggestion() async throws {
        try await withDaemon { loop, fixture, _ in
            let answer = await onLoop(loop) { fixture.value.ask("membres") }
            #expect(answer == ["id": 7, "ok": false, "error": [
                "code": "unknown_command",
                "message": "unknown command \"membres\" (did you mean \"members\"?); commands: channels, debug, hello, later, members, ping, settings, status",
            ]])
        }
    }

    @Test func builtInCommandsBeforeTheRingStarts() async throws {
        try await withDaemon { loop, fixture, _ in
            let answers = try #require(await onLoop(loop) {
                [fixture.value.ask("members"), fixture.value.ask("hello"), fixture.value.ask("channels"),
                 fixture.value.ask("members", ["x": 1])]
            })
            #expect(answers[0]?["result"] == [
                "ring": .null, "state": "gather",
                "members": [
                    ["nodeid": 1, "name": "server1", "addresses": ["127.0.0.1"], "member": false, "local": true],
                    ["nodeid": 2, "name": "server2", "addresses": ["127.0.0.2"], "member": false],
                    ["nodeid": 3, "name": "server3", "addresses": ["127.0.0.3"], "member": false],
                ],
            ])
            #expect(answers[1]?["result"]?["protocol"] == 1)
            #expect(answers[1]?["result"]?["commands"] == ["channels", "debug", "hello", "later", "members", "ping", "settings", "status"])
            #expect(answers[2]?["result"]?["channels"]?.arrayValue?.count == 2)
            #expect(answers[3]?["error"] == ["code": "invalid_argument", "message": "members takes no arguments, got \"x\""])
        }
    }

    @Test func debugOnAndOffChangeTheLogLevel() async throws {
        try await withDaemon { loop, fixture, logs in
            let answers = try #require(await onLoop(loop) {
                let on = fixture.value.ask("debug", ["enabled": true])
                let level = fixture.value.daemon.context.logger.level
                let off = fixture.value.ask("debug", ["enabled": false])
                let missing = fixture.value.ask("debug")
                let wrong = fixture.value.ask("debug", ["enabled": "yes"])
                let extra = fixture.value.ask("debug", ["enabled": true, "level": 3])
                return [on, off, missing, wrong, extra, level == .debug ? "debug" : "other"]
            })
            #expect(answers[0]?["result"] == ["debug": true, "log_level": "debug"])
            #expect(answers[1]?["result"] == ["debug": false, "log_level": "info"])
            #expect(answers[2]?["error"]?["message"] == "debug needs \"enabled\": true or false")
            #expect(answers[3]?["error"]?["message"] == "\"enabled\" must be true or false, got a string")
            #expect(answers[4]?["error"]?["message"] == "debug takes only \"enabled\", got \"level\"")
            #expect(answers[5] == "debug")
            #expect(logs.messages.contains("notice log level info -> debug (debug on from the control socket)"))
        }
    }

    @Test func stoppingStopsServicesAndRefusesRequests() async throws {
        let loop = try EventLoop(name: "daemon-test")
        defer { loop.join() }
        let logs = LogCollector()
        let logger = logs.makeLogger(level: .info)
        let configuration = try threeNodeConfiguration()
        let result: ([String], JSONValue?)? = await onLoop(loop) {
            let fixture = DaemonFixture(loop: loop, logger: logger, configuration: configuration)
            fixture.daemon.stop(reason: "received SIGTERM", exitStatus: 0)
            return (fixture.recording.calls, fixture.ask("ping"))
        }
        #expect(result?.0 == ["start node 1", "stop"])
        #expect(result?.1?["error"]?["code"] == "unavailable")
        #expect(logs.messages.first == "notice received SIGTERM: stopping")  // no ring node attached
    }

    @Test func sighupAppliesTheLogLevelAndListsTheRest() async throws {
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let path = directory + "/devcluster.conf"
        let loop = try EventLoop(name: "daemon-test")
        defer {
            loop.stop()
            loop.join()
        }
        let logs = LogCollector()
        let logger = logs.makeLogger(level: .info)
        let configuration = try threeNodeConfiguration()
        let fixture = try #require(await onLoop(loop) {
            LoopBound(DaemonFixture(loop: loop, logger: logger, configuration: configuration, origin: .file(path)), eventLoop: loop)
        })
        // The file is missing: the running configuration stays.
        _ = await onLoop(loop) { fixture.value.daemon.reload() }
        #expect(logs.messages.last == "error reload of \(path) failed; the running configuration stays as it is")
        let text = try #require(configuration.fileText.replacingOccurrences(of: "log_level = info", with: "log_level = debug")
            .replacingOccurrences(of: "token = 300", with: "token = 1000") as String?)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let level = await onLoop(loop) {
            fixture.value.daemon.reload()
            return fixture.value.daemon.context.logger.level
        }
        #expect(level == .debug)
        #expect(logs.messages.suffix(3) == [
            "notice reloaded \(path): applied log_level info -> debug",
            "notice \(path) also changes [totem] token (300 -> 1000); these take effect after a restart",
            "notice log level info -> debug",
        ])
    }

    @Test func summariesAppearOnlyWhenSomethingHappened() {
        var old = Daemon.SummaryCounters()
        #expect(Daemon.summaryLines(from: old, to: old, interval: .seconds(10)).isEmpty)
        var new = old
        new.retransmissions = 5
        new.retransmitRequests = 7
        new.tokenRetransmissions = 1
        new.authenticationFailures = 40
        let lines = Daemon.summaryLines(from: old, to: new, interval: .seconds(10))
        #expect(lines.map(\.0) == [.info, .warning])
        #expect(lines.map(\.1) == [
            "retransmissions in the last 10 s: 5 messages resent, 7 requested, 1 token retransmissions",
            "40 datagrams failed authentication in the last 10 s (a node with a different cluster key or cluster_name?)",
        ])
        old = new
        new.receiveDrops = 3
        new.decodeErrors = 2
        let dropLines = Daemon.summaryLines(from: old, to: new, interval: .seconds(10))
        #expect(dropLines.map(\.0) == [.notice, .warning])
        // The kernel's count (SO_RXQ_OVFL, sk_drops) includes bad checksums: the line says what it counts.
        #expect(dropLines.last?.1 == "the kernel dropped 3 datagrams addressed to this node in the last 10 s "
            + "(its per-socket drop count: a full receive buffer, a bad UDP checksum, or a filter or IPsec policy)")
    }

    @Test func reloadListsWhatNeedsARestart() throws {
        let running = try threeNodeConfiguration()
        var changed = try threeNodeConfiguration(extra: "\n[hints]\n1234@ctx = Custom:a\n")
        #expect(running.restartRequiredChanges(to: running).isEmpty)
        changed.options.logLevel = .debug
        changed.totem.settings.token = .milliseconds(1000)
        changed.totem.portUnreachable = false
        changed.options.stateDirectory = "/var/lib/other"
        changed.nodes.removeLast()
        #expect(running.restartRequiredChanges(to: changed) == [
            "[totem] port_unreachable (yes -> no)",
            "[totem] token (300 -> 1000)",
            "[node] list (1 server1 127.0.0.1, 2 server2 127.0.0.2, 3 server3 127.0.0.3 -> 1 server1 127.0.0.1, 2 server2 127.0.0.2)",
            "[options] state_dir (/tmp/test-state -> /var/lib/other)",
            "[hints] (0 -> 1 entries)",
        ])
    }
}
