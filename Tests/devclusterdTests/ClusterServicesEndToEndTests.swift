// The cluster services as clients see them, with real daemons on 127.0.0.1-4: `watch` from the
// CLI (human and --json lines, in causal order, and how it ends), `subscribe` / `unsubscribe` on
// a raw control socket (snapshot, pushed events, topic filtering), a server that starts later
// seeing every state and mailbox at once, and `status` exiting 2 without quorum.
// Every child is killed by PID when a test ends, also when it fails; every wait is bounded.

import Foundation
import Glibc
import Testing
@testable import devclusterd

/// The lines of a file written so far (a last line without its newline is left out).
private func completeLines(of path: String) -> [String] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    lines.removeLast()  // empty after a final newline, or an unfinished line
    return lines
}

/// Starts daemons for `nodes` and waits (bounded) until they form one ring of exactly them.
/// A devclusterd child started as a terminal would start it: SIGINT, SIGTERM, SIGPIPE and SIGHUP
/// at their default action, and no signal blocked, or (`blocking`) SIGINT and SIGTERM blocked as
/// Foundation's `Process` passes on the test thread's mask: `watch` must unblock them itself.
/// Killed by PID when `killIfRunning` runs.
private final class TerminalChild {
    let pid: pid_t
    /// How it ended, once `exitIfEnded` saw it: `.exited(status)` or `.signaled(signal)`.
    private(set) var ending: Ending?

    enum Ending: Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        var description: String {
            switch self {
            case .exited(let status): "exit status \(status)"
            case .signaled(let signal): "killed by signal \(signal)"
            }
        }
    }

    /// Starts devclusterd with `arguments`, standard input from /dev/null, standard output to
    /// `output` and standard error to `error` (both created empty).
    init(_ arguments: [String], output: String, error: String, blocking: Bool = false) throws {
        let executable = try #require(daemonExecutable)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        if blocking {
            sigaddset(&noSignals, SIGINT)
            sigaddset(&noSignals, SIGTERM)
        }
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, error, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        guard result == 0 else { throw TestFailure("posix_spawn \(executable): error \(result)") }
        pid = child
    }

    /// Reaps the child if it has ended; returns how it ended, or `nil` while it runs.
    @discardableResult
    func exitIfEnded() -> Ending? {
        if let ending { return ending }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        ending = status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signaled(status & 0x7f)
        return ending
    }

    /// Waits up to `timeout` for the child to end.
    func waitForEnd(within timeout: Duration) async -> Ending? {
        _ = await eventually(within: timeout, every: .milliseconds(10)) { exitIfEnded() != nil }
        return ending
    }

    /// SIGKILLs the child by PID and reaps it, unless it has ended.
    func killIfRunning() {
        guard exitIfEnded() == nil else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        ending = .signaled(SIGKILL)
    }
}

/// A control-socket client that records every pushed event it reads on the way: the library's
/// `ControlClient` with bounded waits per read. Requests are written as given (documented wire
/// text in the tests), and pushed lines are kept as text too, to check their exact shape.
final class RawControlConnection {
    private let client: ControlClient
    /// Lines received but not yet read.
    private var pending: [String] = []
    /// Every pushed line (one with an `event` member) read so far, in arrival order.
    private(set) var events: [JSONValue] = []
    /// Every pushed line's text, to check it carries no `id`.
    private(set) var eventLines: [String] = []

    init(path: String) throws {
        client = try ControlClient(path: path, timeout: .seconds(5))
    }

    /// Writes `line` and a newline.
    func send(_ line: String) throws {
        try client.sendRaw(Array((line + "\n").utf8))
    }

    /// The next line, or `nil` when none is complete within `timeout` or the daemon closed.
    func readLine(within timeout: Duration) -> String? {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        for _ in 0..<100_000 {
            if !pending.isEmpty { return pending.removeFirst() }
            let remaining = deadline - clock.now
            guard remaining > .zero else { return nil }
            let milliseconds = Int32(clamping: remaining.components.seconds * 1_000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
            let open = (try? client.receiveLines(timeoutMilliseconds: milliseconds) { pending.append(String(decoding: $0, as: UTF8.self)) }) ?? false
            guard open || !pending.isEmpty else { return nil }
        }
        return nil
    }

    /// Sends a request and reads until the response with `id` (events on the way go to `events`).
    func call(_ request: String, id: Int64, within timeout: Duration = .seconds(5)) throws -> JSONValue {
        try send(request)
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        for _ in 0..<10_000 {
            let remaining = deadline - clock.now
            guard remaining > .zero, let line = readLine(within: remaining) else { break }
            let message = try JSONParser.parse(line)
            if message["event"] != nil {
                events.append(message)
                eventLines.append(line)
            } else if message["id"] == .integer(id) {
                return message
            } else {
                throw TestFailure("unexpected line while waiting for response \(id): \(line)")
            }
        }
        throw TestFailure("no response to \(request) within \(timeout)")
    }

    /// Reads lines until `events` holds at least `count` or `timeout` passes; responses are unexpected.
    func awaitEvents(_ count: Int, within timeout: Duration) throws -> Bool {
        if events.count >= count { return true }
        return try awaitEvent(within: timeout) { _ in events.count >= count } || events.count >= count
    }

    /// Reads lines until an event satisfies `condition` or `timeout` passes; responses are unexpected.
    func awaitEvent(within timeout: Duration, where condition: (JSONValue) -> Bool) throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        for _ in 0..<10_000 {
            let remaining = deadline - clock.now
            guard remaining > .zero, let line = readLine(within: remaining) else { break }
            let message = try JSONParser.parse(line)
            guard message["event"] != nil else { throw TestFailure("unexpected response while waiting for events: \(line)") }
            events.append(message)
            eventLines.append(line)
            if condition(message) { return true }
        }
        return false
    }
}

/// Whether `object` has exactly `keys` (in any order), each of the given kind.
private func hasShape(_ object: JSONValue?, _ keys: [String: (JSONValue) -> Bool], optional: [String: (JSONValue) -> Bool] = [:]) -> Bool {
    guard let members = object?.objectValue else { return false }
    for key in members.keys {
        guard let check = keys[key] ?? optional[key], let value = members[key], check(value) else { return false }
    }
    return keys.keys.allSatisfy { members[$0] != nil }
}

private func isString(_ value: JSONValue) -> Bool { value.stringValue != nil }
private func isInteger(_ value: JSONValue) -> Bool { value.integerValue != nil }
private func isBool(_ value: JSONValue) -> Bool { value.boolValue != nil }
private func isIntegerList(_ value: JSONValue) -> Bool { value.arrayValue?.allSatisfy { $0.integerValue != nil } == true }

/// Whether `line` is a pushed event of the documented shape (docs/control-protocol.md,
/// "Cluster services"): `{"event":NAME,"data":DATA}` and nothing else.
private func isDocumentedEvent(_ line: JSONValue) -> Bool {
    guard let object = line.objectValue, object.keys.sorted() == ["data", "event"], let data = line["data"] else { return false }
    switch line["event"]?.stringValue {
    case "device":
        return hasShape(data, ["device": isString, "state": isString, "previous": isString])
    case "extension":
        return hasShape(data, ["exten": isString, "context": isString, "devices": isString, "state": isString, "previous": isString])
    case "mwi":
        return hasShape(data, ["mailbox": isString, "context": isString, "new": isInteger, "old": isInteger, "waiting": isBool,
                               "origin_entity_id": isString, "origin_nodeid": isInteger],
                        optional: ["previous_new": isInteger, "previous_old": isInteger])
    case "server_device":
        return hasShape(data, ["device": isString, "entity_id": isString, "nodeid": isInteger, "name": isString,
                               "state": { $0.stringValue != nil || $0 == .null }])
    case "server_left":
        return hasShape(data, ["entity_id": isString, "nodeid": isInteger, "name": isString])
    case "membership":
        switch data["change"]?.stringValue {
        case "joined":
            return hasShape(data, ["change": isString, "nodeid": isInteger, "name": isString, "view": isInteger])
        case "left":
            return hasShape(data, ["change": isString, "nodeid": isInteger, "name": isString, "view": isInteger, "graceful": isBool])
        case "view":
            return hasShape(data, ["change": isString, "view": isInteger, "ring": isString, "members": isIntegerList])
        case "identified":
            return hasShape(data, ["change": isString, "nodeid": isInteger, "name": isString,
                                   "entity_id": { $0.stringValue != nil || $0 == .null }])
        case "quorum":
            return hasShape(data, ["change": isString, "quorum": { hasShape($0, ["quorate": isBool, "present": isInteger,
                                                                                  "configured": isInteger, "text": isString]) }])
        default:
            return false
        }
    default:
        return false
    }
}

@Suite("End to end: cluster services (watch, subscribe, late joiners, quorum)", .serialized)
struct ClusterServicesEndToEndTests {
    /// `devclusterd watch` prints device, extension, MWI and membership changes in the order they
    /// happened, `--json` prints each as the documented event object, and both end on a signal.
    @Test func watchFromTheCLIPrintsChangesInCausalOrder() async throws {
        let cluster = try TestNodes(3)
        defer { cluster.tearDown() }
        let (base, children, nodes) = (cluster.base, cluster.children, cluster.nodes)
        let processes = try await startRing(nodes, children: children)

        let humanOutput = base + "/watch.out", humanError = base + "/watch.err"
        let jsonOutput = base + "/watch-json.out", jsonError = base + "/watch-json.err"
        // The human watcher starts with SIGINT and SIGTERM blocked (as under a test runner).
        let human = try TerminalChild(["--socket", nodes[2].socket, "watch"], output: humanOutput, error: humanError, blocking: true)
        defer { human.killIfRunning() }
        let json = try TerminalChild(["--socket", nodes[2].socket, "watch", "--json"], output: jsonOutput, error: jsonError)
        defer { json.killIfRunning() }

        // Both watchers are subscribed once a change made after they started reaches them.
        var warmups = 0
        let subscribed = await eventually(within: .seconds(10), every: .milliseconds(200)) {
            warmups += 1
            _ = try? runCommand(["--socket", nodes[0].socket, "devstate", "set", "Custom:warmup", warmups % 2 == 1 ? "BUSY" : "NOT_INUSE"])
            return completeLines(of: humanOutput).contains { $0.hasPrefix("device Custom:warmup ") }
                && completeLines(of: jsonOutput).contains { $0.contains("\"device\":\"Custom:warmup\"") }
        }
        try #require(subscribed, "the watchers printed nothing: \(completeLines(of: humanOutput)) \(completeLines(of: jsonOutput))")
        let humanStart = completeLines(of: humanOutput).count
        let jsonStart = completeLines(of: jsonOutput).count
        // What the changes below change from, as node 3 reports it now.
        let deviceBefore = try #require(cliJSON(["--socket", nodes[2].socket, "devstate", "get", "Custom:mystate"])?["state"]?.stringValue)
        let hintBefore = try #require(cliJSON(["--socket", nodes[2].socket, "hints"])?["hints"]?.arrayValue?.first?["state"]?.stringValue)
        #expect(deviceBefore != "INUSE" && hintBefore != "InUse")

        #expect(try runCommand(["--socket", nodes[0].socket, "devstate", "set", "Custom:mystate", "INUSE"]).status == 0)
        #expect(try runCommand(["--socket", nodes[0].socket, "mwi", "set", "1234@default", "2", "5"]).status == 0)
        // An answered set is queued for the ring, not yet delivered: on a loaded machine the kill
        // below could otherwise come first, and the message would then be delivered, rightly,
        // in the next view. Kill only once the watchers have the change.
        let mwiDelivered = await eventually(within: .seconds(10)) {
            completeLines(of: humanOutput).contains("mwi 1234@default 2 new, 5 old")
                && completeLines(of: jsonOutput).contains { $0.contains("\"event\":\"mwi\"") }
        }
        try #require(mwiDelivered, "the MWI change never reached the watchers: \(completeLines(of: humanOutput))")
        kill(processes[1].processIdentifier, SIGKILL)
        processes[1].waitUntilExit()

        // The human lines, each found after the previous one.
        let expected: [(String) -> Bool] = [
            { $0 == "device Custom:mystate INUSE (was \(deviceBefore))" },
            { $0 == "extension 1234@devstate_test InUse (was \(hintBefore))" },
            { $0 == "mwi 1234@default 2 new, 5 old" },
            { $0.hasPrefix("membership server2 failed (last in view ") },
            { $0.hasPrefix("membership view ") && $0.hasSuffix(": nodes 1, 3") },
        ]
        func humanLinesInOrder() -> Bool {
            var remaining = completeLines(of: humanOutput).dropFirst(humanStart)[...]
            for matches in expected {
                guard let index = remaining.firstIndex(where: matches) else { return false }
                remaining = remaining[(index + 1)...]
            }
            return true
        }
        let humanSeen = await eventually(within: .seconds(10)) { humanLinesInOrder() }
        #expect(humanSeen, "watch output out of order or incomplete:\n\(completeLines(of: humanOutput).joined(separator: "\n"))")

        // The --json lines: every one is the documented object; the same changes in the same order.
        let jsonSeen = await eventually(within: .seconds(10)) {
            completeLines(of: jsonOutput).contains { $0.contains("\"change\":\"view\"") && $0.contains("\"members\":[1,3]") }
        }
        #expect(jsonSeen, "no view of nodes 1, 3 in watch --json:\n\(completeLines(of: jsonOutput).joined(separator: "\n"))")
        let jsonLines = completeLines(of: jsonOutput)
        let parsed = jsonLines.map { try? JSONParser.parse($0) }
        for (line, value) in zip(jsonLines, parsed) {
            #expect(value.map(isDocumentedEvent) == true, "not a documented event line: \(line)")
        }
        let changes = parsed.dropFirst(jsonStart).compactMap { $0 }
        let device = changes.firstIndex {
            $0 == ["event": "device", "data": ["device": "Custom:mystate", "state": "INUSE", "previous": .string(deviceBefore)]]
        }
        let exten = changes.firstIndex {
            $0 == ["event": "extension", "data": ["exten": "1234", "context": "devstate_test", "devices": "Custom:mystate",
                                                  "state": "InUse", "previous": .string(hintBefore)]]
        }
        let mwi = changes.firstIndex {
            $0["event"] == "mwi" && $0["data"]?["mailbox"] == "1234" && $0["data"]?["context"] == "default" && $0["data"]?["new"] == 2
                && $0["data"]?["old"] == 5 && $0["data"]?["waiting"] == true && $0["data"]?["origin_nodeid"] == 1
                && $0["data"]?["origin_entity_id"] == "02:00:00:00:00:01"
        }
        let left = changes.firstIndex { $0["event"] == "membership" && $0["data"]?["change"] == "left" && $0["data"]?["nodeid"] == 2 }
        let view = changes.firstIndex { $0["event"] == "membership" && $0["data"]?["change"] == "view" && $0["data"]?["members"] == [1, 3] }
        let order = [device, exten, mwi, left, view]
        #expect(order.allSatisfy { $0 != nil } && order.compactMap { $0 } == order.compactMap { $0 }.sorted()
                    && Set(order.compactMap { $0 }).count == order.count,
                "device, extension, mwi, left, view at \(order) in:\n\(jsonLines.joined(separator: "\n"))")
        if let left, let view {
            // The leave is reported in the view the node left; the next view follows it.
            #expect(changes[view]["data"]?["view"]?.integerValue == (changes[left]["data"]?["view"]?.integerValue).map { $0 + 1 })
            #expect(changes[left]["data"]?["name"] == "server2")
            #expect(changes[left]["data"]?["graceful"] == false, "kill -9 is a failure, not a graceful leave")
        }

        // Ctrl-C and SIGTERM end the watchers at once, by the signal (a shell reports 128+N),
        // with nothing on standard error.
        let clock = ContinuousClock()
        let interruptedAt = clock.now
        kill(human.pid, SIGINT)
        kill(json.pid, SIGTERM)
        let humanEnding = await human.waitForEnd(within: .seconds(3))
        let jsonEnding = await json.waitForEnd(within: .seconds(3))
        print("cluster services end to end: watch ended \(clock.now - interruptedAt) after SIGINT/SIGTERM: "
              + "\(String(describing: humanEnding)), \(String(describing: jsonEnding))")
        #expect(humanEnding == .signaled(SIGINT), "watch after SIGINT: \(String(describing: humanEnding))")
        #expect(jsonEnding == .signaled(SIGTERM), "watch --json after SIGTERM: \(String(describing: jsonEnding))")
        #expect(completeLines(of: humanError).isEmpty && completeLines(of: jsonError).isEmpty)

        // A watcher whose daemon stops says so on standard error and exits 1.
        let orphanOutput = base + "/watch-orphan.out", orphanError = base + "/watch-orphan.err"
        let orphan = try children.start(["--socket", nodes[2].socket, "watch"], log: orphanOutput, errorLog: orphanError)
        // Subscribed (not merely connected: a daemon stopped between the two makes the watch
        // request itself fail) once a change made after it started reaches it.
        var orphanWarmups = 0
        let orphanSubscribed = await eventually(within: .seconds(10), every: .milliseconds(200)) {
            orphanWarmups += 1
            _ = try? runCommand(["--socket", nodes[0].socket, "devstate", "set", "Custom:orphan", orphanWarmups % 2 == 1 ? "BUSY" : "NOT_INUSE"])
            return completeLines(of: orphanOutput).contains { $0.hasPrefix("device Custom:orphan ") }
        }
        try #require(orphanSubscribed, "the orphan watcher printed nothing: \(completeLines(of: orphanOutput))")
        kill(processes[2].processIdentifier, SIGTERM)
        let orphanExit = await children.waitForExit(orphan, timeout: .seconds(5))
        #expect(orphan.terminationReason == .exit && orphanExit == 1, "watch after its daemon stopped: \(String(describing: orphanExit))")
        let orphanMessage = (try? String(contentsOfFile: orphanError, encoding: .utf8)) ?? ""
        #expect(orphanMessage == "devclusterd: watch: the daemon at \(nodes[2].socket) closed the connection (it stopped or restarted)\n", "\(orphanMessage)")
    }

    /// `subscribe` on a raw socket: the snapshot, then only the asked-for topics as id-less event
    /// lines in the order the changes were made; `unsubscribe` stops them; a bad topic is refused.
    @Test func subscribePushesOnlyTheAskedTopicsUntilUnsubscribed() async throws {
        let cluster = try TestNodes(3)
        defer { cluster.tearDown() }
        let (children, nodes) = (cluster.children, cluster.nodes)
        let processes = try await startRing(nodes, children: children)

        // What the snapshot must show: a state and a mailbox from node 2, known on node 3.
        #expect(try runCommand(["--socket", nodes[1].socket, "devstate", "set", "Custom:before", "BUSY"]).status == 0)
        #expect(try runCommand(["--socket", nodes[1].socket, "mwi", "set", "200@sales", "4", "1"]).status == 0)
        let known = await eventually(within: .seconds(5)) {
            cliJSON(["--socket", nodes[2].socket, "devstate", "get", "Custom:before"])?["state"] == "BUSY"
                && cliJSON(["--socket", nodes[2].socket, "mwi", "get", "200@sales"])?["new"] == 4
        }
        try #require(known)

        let hintsBefore = try #require(cliJSON(["--socket", nodes[2].socket, "hints"]))
        let mystateBefore = try #require(cliJSON(["--socket", nodes[2].socket, "devstate", "get", "Custom:mystate"])?["state"])
        let connection = try RawControlConnection(path: nodes[2].socket)
        let subscribed = try connection.call(#"{"id":1,"cmd":"subscribe","args":{"topics":["device","mwi"],"snapshot":true}}"#, id: 1)
        #expect(subscribed["ok"] == true, "\(subscribed.encoded)")
        let result = subscribed["result"]
        #expect(result?["topics"] == ["device", "mwi"])
        let snapshot = result?["snapshot"]
        #expect(snapshot?["devices"] == [["device": "Custom:before", "state": "BUSY", "text": "Busy", "servers": [
            ["entity_id": "02:00:00:00:00:02", "nodeid": 2, "name": "server2", "state": "BUSY"],
        ]]], "\(snapshot?.encoded ?? "no snapshot")")
        #expect(snapshot?["mailboxes"] == [["mailbox": "200", "context": "sales", "new": 4, "old": 1, "waiting": true,
                                            "origin_entity_id": "02:00:00:00:00:02", "origin_nodeid": 2]])
        #expect(snapshot?["hints"] == hintsBefore["hints"])
        #expect(snapshot?["members"]?["members"]?.arrayValue?.compactMap { $0["member"]?.boolValue } == [true, true, true])
        #expect(connection.events.isEmpty)

        // Changes on node 1, one after the other; the hint's extension change is not asked for.
        let cli = ["--socket", nodes[0].socket]
        #expect(try runCommand(cli + ["devstate", "set", "Custom:mystate", "INUSE"]).status == 0)
        #expect(try runCommand(cli + ["mwi", "set", "1234@default", "1", "0"]).status == 0)
        #expect(try runCommand(cli + ["devstate", "set", "Custom:before", "RINGING"]).status == 0)
        #expect(try runCommand(cli + ["mwi", "set", "1234@default", "3", "1"]).status == 0)
        let arrived = try connection.awaitEvents(4, within: .seconds(5))
        #expect(arrived, "events: \(connection.eventLines)")
        #expect(connection.events.prefix(4).map { $0["event"] } == ["device", "mwi", "device", "mwi"], "\(connection.eventLines)")
        #expect(connection.events.first == ["event": "device", "data": ["device": "Custom:mystate", "state": "INUSE", "previous": mystateBefore]])
        let firstMailbox = connection.events.dropFirst(1).first?["data"]
        #expect(firstMailbox?["mailbox"] == "1234" && firstMailbox?["new"] == 1 && firstMailbox?["old"] == 0
                    && firstMailbox?["origin_nodeid"] == 1 && firstMailbox?["previous_new"] == nil)
        // Custom:before: server2 says BUSY, server1 RINGING; the cluster-wide state combines them.
        let combined = cliJSON(["--socket", nodes[2].socket, "devstate", "get", "Custom:before"])?["state"]
        #expect(connection.events.dropFirst(2).first?["data"]?["device"] == "Custom:before")
        #expect(connection.events.dropFirst(2).first?["data"]?["state"] == combined)
        #expect(connection.events.dropFirst(2).first?["data"]?["previous"] == "BUSY")
        let secondMailbox = connection.events.dropFirst(3).first?["data"]
        #expect(secondMailbox?["new"] == 3 && secondMailbox?["old"] == 1 && secondMailbox?["previous_new"] == 1 && secondMailbox?["previous_old"] == 0)
        #expect(connection.eventLines.allSatisfy { (try? JSONParser.parse($0))?.objectValue?.keys == ["event", "data"] },
                "\(connection.eventLines)")

        // A membership change is not asked for: after node 2 leaves, the next event is a device.
        kill(processes[1].processIdentifier, SIGTERM)
        let left = await eventually(within: .seconds(10)) { formed([nodes[0], nodes[2]], members: [1, 3]) }
        try #require(left, "node 2's leave was not seen: \(nodes.map(membership))")
        let afterBefore = try #require(cliJSON(["--socket", nodes[2].socket, "devstate", "get", "Custom:after"])?["state"])
        #expect(try runCommand(cli + ["devstate", "set", "Custom:after", "ONHOLD"]).status == 0)
        let afterLeave = try connection.awaitEvent(within: .seconds(5)) { $0["data"]?["device"] == "Custom:after" }
        #expect(afterLeave, "\(connection.eventLines)")
        // Node 2's states left with it: Custom:before falls back to node 1's RINGING (a device
        // event), then Custom:after. Nothing else, and no membership.
        let tail = Array(connection.events.dropFirst(4))
        #expect(tail.allSatisfy { $0["event"] == "device" }, "\(connection.eventLines)")
        #expect(tail.first?["data"] == ["device": "Custom:before", "state": "RINGING", "previous": "RINGINUSE"], "\(connection.eventLines)")
        #expect(tail.count == 2, "\(connection.eventLines)")
        #expect(tail.last?["data"] == ["device": "Custom:after", "state": "ONHOLD", "previous": afterBefore], "\(connection.eventLines)")

        // unsubscribe: no more events, while the connection still answers requests.
        let unsubscribed = try connection.call(#"{"id":2,"cmd":"unsubscribe"}"#, id: 2)
        #expect(unsubscribed["result"] == ["unsubscribed": true], "\(unsubscribed.encoded)")
        let eventsBefore = connection.events.count
        #expect(try runCommand(cli + ["devstate", "set", "Custom:after", "BUSY"]).status == 0)
        #expect(try runCommand(cli + ["mwi", "set", "1234@default", "0", "4"]).status == 0)
        var requestID: Int64 = 10
        let appliedOn3 = await eventually(within: .seconds(5)) {
            requestID += 1
            let answer = try? connection.call(#"{"id":\#(requestID),"cmd":"mwi_get","args":{"mailbox":"1234@default"}}"#, id: requestID)
            return answer?["result"]?["new"] == 0 && answer?["result"]?["old"] == 4
        }
        #expect(appliedOn3)
        let device = try connection.call(#"{"id":3,"cmd":"devstate_get","args":{"device":"Custom:after"}}"#, id: 3)
        #expect(device["result"]?["state"] == "BUSY")
        #expect(connection.readLine(within: .milliseconds(300)) == nil)
        #expect(connection.events.count == eventsBefore, "events after unsubscribe: \(connection.eventLines.dropFirst(eventsBefore))")

        // A bad topic names the valid ones.
        let bad = try connection.call(#"{"id":4,"cmd":"subscribe","args":{"topics":["device","calls"]}}"#, id: 4)
        #expect(bad["ok"] == false && bad["error"]?["code"] == "invalid_argument", "\(bad.encoded)")
        #expect(bad["error"]?["message"]?.stringValue?.contains("membership, device, extension, mwi") == true, "\(bad.encoded)")
        // ...and subscribes to nothing.
        #expect(try runCommand(cli + ["devstate", "set", "Custom:after", "INUSE"]).status == 0)
        let seenAgain = await eventually(within: .seconds(5)) {
            requestID += 1
            let answer = try? connection.call(#"{"id":\#(requestID),"cmd":"devstate_get","args":{"device":"Custom:after"}}"#, id: requestID)
            return answer?["result"]?["state"] == "INUSE"
        }
        #expect(seenAgain)
        #expect(connection.events.count == eventsBefore, "events after a refused subscribe: \(connection.eventLines.dropFirst(eventsBefore))")
    }

    /// "A server that starts later sees every current state and MWI at once": node 4, configured
    /// everywhere but started last with an empty state directory, knows everything when it forms.
    @Test func aServerThatStartsLaterSeesEveryStateAndMailboxAtOnce() async throws {
        let cluster = try TestNodes(4)
        defer { cluster.tearDown() }
        let (children, nodes) = (cluster.children, cluster.nodes)
        _ = try await startRing(Array(nodes[0...2]), children: children)

        let on1 = ["--socket", nodes[0].socket], on2 = ["--socket", nodes[1].socket]
        for (cli, device, state) in [(on1, "Custom:a", "INUSE"), (on2, "Custom:b", "RINGING"), (on1, "SIP/100", "BUSY"),
                                     (on1, "Custom:shared", "INUSE"), (on2, "Custom:shared", "NOT_INUSE"), (on2, "Custom:mystate", "INUSE")] {
            let set = try runCommand(cli + ["devstate", "set", device, state])
            #expect(set.status == 0, "\(device) \(state): \(set.error)")
        }
        #expect(try runCommand(on1 + ["mwi", "set", "1234@default", "2", "5"]).status == 0)
        #expect(try runCommand(on1 + ["mwi", "set", "5678@sales", "0", "3"]).status == 0)
        // Everything is in the cluster: node 3 knows it.
        let settled = await eventually(within: .seconds(5)) {
            cliJSON(["--socket", nodes[2].socket, "devstate", "list"])?["devices"]?.arrayValue?.count == 5
                && cliJSON(["--socket", nodes[2].socket, "mwi", "list"])?["mailboxes"]?.arrayValue?.count == 2
        }
        try #require(settled, "\(String(describing: cliJSON(["--socket", nodes[2].socket, "devstate", "list"])))")
        let devices = try #require(cliJSON(on1 + ["devstate", "list"]))
        let mailboxes = try #require(cliJSON(on1 + ["mwi", "list"]))

        _ = try children.start(["--foreground", "--config", nodes[3].configuration], log: nodes[3].log)
        let clock = ContinuousClock()
        let ringOfFour = await eventually(within: .seconds(20), every: .milliseconds(10)) { membership(nodes[3])?.members == [1, 2, 3, 4] }
        try #require(ringOfFour, "node 4 did not join: \(String(describing: membership(nodes[3])))\n\(nodes[3].logText)")
        let formedAt = clock.now

        let on4 = ["--socket", nodes[3].socket]
        func server(_ node: Int64, _ state: String) -> JSONValue {
            ["entity_id": .string("02:00:00:00:00:0\(node)"), "nodeid": .integer(node), "name": .string("server\(node)"), "state": .string(state)]
        }
        let everything = await eventually(within: .seconds(2), every: .milliseconds(50)) {
            cliJSON(on4 + ["devstate", "list"]) == devices && cliJSON(on4 + ["mwi", "list"]) == mailboxes
        }
        let caughtUp = clock.now - formedAt
        print("cluster services end to end: node 4 knew every state and mailbox \(caughtUp) after it formed a ring of four")
        #expect(everything, """
            node 4 within 2 s of forming: \(String(describing: cliJSON(on4 + ["devstate", "list"]))) \
            \(String(describing: cliJSON(on4 + ["mwi", "list"])))
            expected \(devices.encoded) \(mailboxes.encoded)
            """)

        // Exactly the states set, with each server's part.
        let list = cliJSON(on4 + ["devstate", "list"])?["devices"]?.arrayValue ?? []
        #expect(list.compactMap { $0["device"]?.stringValue }.sorted() == ["Custom:a", "Custom:b", "Custom:mystate", "Custom:shared", "SIP/100"])
        #expect(cliJSON(on4 + ["devstate", "get", "Custom:a"]) == ["device": "Custom:a", "state": "INUSE", "text": "In use", "servers": [server(1, "INUSE")]])
        #expect(cliJSON(on4 + ["devstate", "get", "Custom:b"])?["servers"] == [server(2, "RINGING")])
        #expect(cliJSON(on4 + ["devstate", "get", "Custom:b"])?["state"] == "RINGING")
        #expect(cliJSON(on4 + ["devstate", "get", "SIP/100"])?["servers"] == [server(1, "BUSY")])
        #expect(cliJSON(on4 + ["devstate", "get", "SIP/100"])?["state"] == "BUSY")
        let shared = cliJSON(on4 + ["devstate", "get", "Custom:shared"])
        #expect(shared?["state"] == "INUSE")
        #expect(Set(shared?["servers"]?.arrayValue?.map(\.encoded) ?? []) == [server(1, "INUSE").encoded, server(2, "NOT_INUSE").encoded])
        let humanGet = try runCommand(on4 + ["devstate", "get", "Custom:shared"])
        #expect(humanGet.output.contains("Custom:shared: INUSE (In use)\n"), "\(humanGet.output)")
        #expect(humanGet.output.contains("  server2 (02:00:00:00:00:02): NOT_INUSE\n"), "\(humanGet.output)")
        let humanList = try runCommand(on4 + ["devstate", "list"])
        #expect(humanList.output.contains("--- Name: 'SIP/100'  State: 'BUSY'\n") && humanList.output.contains("--- 5 device(s) ---"), "\(humanList.output)")

        // Both mailboxes, with their origin.
        #expect(cliJSON(on4 + ["mwi", "get", "1234"]) == ["mailbox": "1234", "context": "default", "new": 2, "old": 5, "waiting": true,
                                                           "origin_entity_id": "02:00:00:00:00:01", "origin_nodeid": 1, "known": true])
        #expect(cliJSON(on4 + ["mwi", "get", "5678@sales"]) == ["mailbox": "5678", "context": "sales", "new": 0, "old": 3, "waiting": false,
                                                                 "origin_entity_id": "02:00:00:00:00:01", "origin_nodeid": 1, "known": true])
        let humanMailboxes = try runCommand(on4 + ["mwi", "list"])
        #expect(humanMailboxes.output.contains("1234@default: 2 new, 5 old (Messages-Waiting: yes)\n")
                    && humanMailboxes.output.contains("5678@sales: 0 new, 3 old (Messages-Waiting: no)\n")
                    && humanMailboxes.output.hasSuffix("2 mailbox(es)\n"), "\(humanMailboxes.output)")

        // The hint follows server2's Custom:mystate.
        #expect(cliJSON(on4 + ["hints"]) == ["hints": [
            ["exten": "1234", "context": "devstate_test", "devices": "Custom:mystate", "state": "InUse", "watchers": 0],
        ]])
        // Node 4 itself reports nothing: its state directory started empty.
        #expect(!list.contains { $0["servers"]?.arrayValue?.contains { $0["nodeid"] == 4 } == true })
    }

    /// `status` exits 2 while this partition is not quorate, and 0 once it is.
    @Test func statusExitsTwoWithoutQuorumAndZeroWithIt() async throws {
        let cluster = try TestNodes(3)
        defer { cluster.tearDown() }
        let (children, nodes) = (cluster.children, cluster.nodes)
        _ = try await startRing([nodes[0]], children: children)

        let alone = try runCommand(["--socket", nodes[0].socket, "status"])
        #expect(alone.status == 2, "\(alone.output)\(alone.error)")
        #expect(alone.output.contains("=== ==> Quorum: not quorate (1 of 3 configured nodes)\n"), "\(alone.output)")
        let aloneJSON = try runCommand(["--socket", nodes[0].socket, "status", "--json"])
        #expect(aloneJSON.status == 2)
        let quorum = try JSONParser.parse(aloneJSON.output.trimmingCharacters(in: .newlines))["quorum"]
        #expect(quorum == ["quorate": false, "present": 1, "configured": 3, "text": "not quorate (1 of 3 configured nodes)"])
        // Other commands still succeed without quorum.
        #expect(try runCommand(["--socket", nodes[0].socket, "members"]).status == 0)

        for node in nodes[1...2] { _ = try children.start(["--foreground", "--config", node.configuration], log: node.log) }
        let ringOfThree = await eventually(within: .seconds(20)) { formed(nodes, members: [1, 2, 3]) }
        try #require(ringOfThree, "\(nodes.map(membership))")
        let quorate = try runCommand(["--socket", nodes[0].socket, "status"])
        #expect(quorate.status == 0, "\(quorate.output)\(quorate.error)")
        #expect(quorate.output.contains("=== ==> Quorum: quorate (3 of 3 configured nodes)\n"), "\(quorate.output)")
        #expect(try runCommand(["--socket", nodes[2].socket, "status", "--json"]).status == 0)
    }
}
