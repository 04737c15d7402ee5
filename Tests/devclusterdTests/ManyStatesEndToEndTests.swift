// Thousands of device states with real daemons on 127.0.0.1-3: a node restarted from a state
// file of 5,000 states rejoins and the cluster converges, and a node stopped (SIGSTOP) for 3 s
// and then 6 s comes back into one ring of three that stays formed; every daemon answers
// `status` within a second throughout. Before, a debug build lost the ring under such a load
// and never settled: every re-formation re-published every state, one ring message per device,
// and each delivery re-checked the whole table.

import Foundation
import Glibc
import Synchronization
import Testing
@testable import devclusterd

@Suite("End to end: thousands of device states", .serialized)
struct ManyStatesEndToEndTests {
    /// Local states per node (node 1, 2, 3): node 2 holds the bulk.
    static let counts = [300, 5_000, 200]
    static var total: Int { counts.reduce(0, +) }
    /// The token timeout (coefficient 0): both pauses outlast it and the consensus timeout, so the
    /// others form a ring without the stopped node and merge with it again (re-publication).
    static let tokenMilliseconds = 1_000
    /// How long a status answer may take on any daemon.
    static let statusBound = Duration.seconds(1)

    @Test("a node restarted from a state file of 5,000 states rejoins; states converge; status answered within 1 s")
    func restartFromStateFile() async throws {
        let cluster = try ManyStatesCluster()
        defer { cluster.tearDown() }
        var processes = try await cluster.startAndLoad()
        let prober = StatusProber(sockets: cluster.nodes.map(\.socket))
        defer { _ = prober.stop() }

        prober.pause(node: 2)
        kill(processes[1].processIdentifier, SIGKILL)
        processes[1].waitUntilExit()
        let clock = ContinuousClock()
        let restart = clock.now
        processes[1] = try cluster.children.start(["--foreground", "--config", cluster.nodes[1].configuration],
                                                  log: cluster.nodes[1].log + ".restarted")
        prober.resume(node: 2)
        let rejoined = await eventually(within: .seconds(15), every: .milliseconds(100)) {
            formed(cluster.nodes, members: [1, 2, 3]) && cluster.converged()
        }
        let elapsed = clock.now - restart
        try #require(rejoined, "no converged ring of three 15 s after the restart: \(cluster.diagnostics())")
        try await cluster.expectStableRing()
        let report = prober.stop()
        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(report.slowest.values.allSatisfy { $0 < Self.statusBound }, "slowest status answers: \(report.slowest)")
        #expect(report.answered.sorted() == [1, 2, 3], "\(report)")
        // The restarted node kept its own states: the converged list holds all of them.
        #expect(cluster.deviceCount(on: 1) == Self.total)
        print("many states: restart to converged ring in \(elapsed); slowest status answers \(report.slowest)")
    }

    @Test("a node stopped for 3 s, then 6 s, rejoins one ring of three that stays formed; states converge; status within 1 s")
    func stoppedNodeRecovers() async throws {
        let cluster = try ManyStatesCluster()
        defer { cluster.tearDown() }
        let processes = try await cluster.startAndLoad()
        let stopped = processes[1].processIdentifier
        defer { kill(stopped, SIGCONT) }
        let prober = StatusProber(sockets: cluster.nodes.map(\.socket))
        defer { _ = prober.stop() }
        let clock = ContinuousClock()
        for pause in [Duration.seconds(3), .seconds(6)] {
            prober.pause(node: 2)
            kill(stopped, SIGSTOP)
            try await Task.sleep(for: pause)
            kill(stopped, SIGCONT)
            let resumed = clock.now
            prober.resume(node: 2)
            let settled = await eventually(within: .seconds(15), every: .milliseconds(100)) {
                formed(cluster.nodes, members: [1, 2, 3]) && cluster.converged()
            }
            let elapsed = clock.now - resumed
            try #require(settled, "after a \(pause) stop: no converged ring of three within 15 s: \(cluster.diagnostics())")
            try await cluster.expectStableRing()
            print("many states: \(pause) stop, converged ring of three \(elapsed) after SIGCONT")
        }
        let report = prober.stop()
        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(report.slowest.values.allSatisfy { $0 < Self.statusBound }, "slowest status answers: \(report.slowest)")
        #expect(report.answered.sorted() == [1, 2, 3], "\(report)")
        print("many states: slowest status answers \(report.slowest)")
    }
}

/// Three daemons with `ManyStatesEndToEndTests.tokenMilliseconds`, and the checks on them.
final class ManyStatesCluster {
    private let testNodes: TestNodes

    var children: Children { testNodes.children }
    var nodes: [TestNode] { testNodes.nodes }

    init() throws {
        testNodes = try TestNodes(3, channels: seedEventChannels)
        // makeNode writes the end-to-end tests' token; these tests need their own.
        for node in testNodes.nodes {
            let text = try String(contentsOfFile: node.configuration, encoding: .utf8)
            let tokenLine = "token = \(EndToEndTests.tokenMilliseconds)\n"
            guard text.contains(tokenLine) else { throw TestFailure("no \"\(tokenLine)\" in \(node.configuration)") }
            try text.replacingOccurrences(of: tokenLine, with: "token = \(ManyStatesEndToEndTests.tokenMilliseconds)\n")
                .write(toFile: node.configuration, atomically: true, encoding: .utf8)
        }
    }

    func tearDown() { testNodes.tearDown() }

    /// Starts the ring, sets every node's states and waits until every node lists them all.
    func startAndLoad() async throws -> [Process] {
        let processes = try await startRing(nodes, children: children)
        for (index, count) in ManyStatesEndToEndTests.counts.enumerated() {
            try loadStates(on: nodes[index], count: count, prefix: "n\(index + 1)x")
        }
        let loaded = await eventually(within: .seconds(20), every: .milliseconds(100)) { converged() }
        try #require(loaded, "the states did not converge after loading: \(diagnostics())")
        return processes
    }

    /// Sets `count` distinct local states (`Custom:<prefix>N`, INUSE) on `node`, pipelined over
    /// one connection 500 requests at a time (each batch's answers read before the next).
    private func loadStates(on node: TestNode, count: Int, prefix: String) throws {
        let connection = try RawControlConnection(path: node.socket)
        var next = 0
        while next < count {
            let chunk = min(500, count - next)
            let lines = (next..<(next + chunk)).map {
                #"{"id":\#($0),"cmd":"devstate_set","args":{"device":"Custom:\#(prefix)\#($0)","state":"INUSE"}}"#
            }
            try connection.send(lines.joined(separator: "\n"))
            for _ in 0..<chunk {
                guard let line = connection.readLine(within: .seconds(20)) else {
                    throw TestFailure("no answer from node \(node.index) after \(next) states: \(diagnostics())")
                }
                guard line.contains(#""ok":true"#) else { throw TestFailure("devstate_set failed on node \(node.index): \(line)") }
            }
            next += chunk
        }
    }

    /// `devstate_list`'s response line from `node`, or `nil` when it does not answer in 5 s.
    private func rawDeviceList(_ node: TestNode) -> String? {
        guard let connection = try? RawControlConnection(path: node.socket),
              (try? connection.send(#"{"id":1,"cmd":"devstate_list"}"#)) != nil
        else { return nil }
        return connection.readLine(within: .seconds(5))
    }

    /// Devices in `node`'s list (1-based), or `nil`.
    func deviceCount(on index: Int) -> Int? {
        rawDeviceList(nodes[index - 1]).map { $0.components(separatedBy: #"{"device":""#).count - 1 }
    }

    /// Whether every node lists the same devices, with the same per-server states, and all of them:
    /// each device once, with exactly its one server's slot.
    func converged() -> Bool {
        let lists = nodes.map(rawDeviceList)
        guard let first = lists[0], lists.allSatisfy({ $0 == first }) else { return false }
        let total = ManyStatesEndToEndTests.total
        return first.components(separatedBy: #"{"device":""#).count - 1 == total
            && first.components(separatedBy: #""entity_id":""#).count - 1 == total
    }

    /// `rings_installed` of every node, or `nil` for a node that does not answer.
    func ringsInstalled() -> [Int64?] {
        nodes.map { node in
            guard let client = try? ControlClient(path: node.socket, timeout: .seconds(2)),
                  case .success(let status)? = try? client.call("status")
            else { return nil }
            return status["counters"]?["rings_installed"]?.integerValue
        }
    }

    /// Once formed and converged, the ring stays: no node installs another ring for two token
    /// timeouts (a node that keeps re-forming does so within one), and the lists still agree.
    func expectStableRing() async throws {
        let before = ringsInstalled()
        try await Task.sleep(for: .milliseconds(2 * ManyStatesEndToEndTests.tokenMilliseconds))
        let after = ringsInstalled()
        #expect(before.allSatisfy { $0 != nil } && before == after, "rings installed \(before), 2 s later \(after): \(diagnostics())")
        #expect(formed(nodes, members: [1, 2, 3]) && converged(), "\(diagnostics())")
    }

    /// Memberships, device counts and the tail of each node's log, for failure messages.
    func diagnostics() -> String {
        nodes.map { node in
            let log = node.logText + ((try? String(contentsOfFile: node.log + ".restarted", encoding: .utf8)) ?? "")
            let tail = log.split(separator: "\n").suffix(12).joined(separator: "\n")
            return "node \(node.index): \(String(describing: membership(node))), "
                + "\(deviceCount(on: node.index).map(String.init) ?? "no") devices listed; log tail:\n\(tail)"
        }.joined(separator: "\n")
    }
}

/// Asks every daemon for `status` in turn, about five times a second, on a thread of its own, and
/// keeps each node's slowest answer. A paused node (stopped or restarting) is skipped; after it
/// resumes, its answers count again from its first one (a restarting daemon's socket appears
/// only once it runs). A node that answered and then fails to answer is a failure.
final class StatusProber: Sendable {
    struct Report: Sendable, CustomStringConvertible {
        var slowest: [Int: Duration] = [:]
        var failures: [String] = []
        /// Nodes that answered at least once.
        var answered: Set<Int> = []

        var description: String { "slowest \(slowest), failures \(failures), answered \(answered.sorted())" }
    }

    private struct State {
        var report = Report()
        var paused: Set<Int> = []
        /// Nodes that answered since they were last resumed.
        var live: Set<Int> = []
        /// The node being asked right now.
        var asking: Int?
        var stopping = false
    }

    private let sockets: [String]
    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)

    init(sockets: [String]) {
        self.sockets = sockets
        let thread = Thread { [self] in run() }
        thread.name = "status prober"
        thread.start()
    }

    /// Stops asking `node` (1-based); returns once no question to it is in flight.
    func pause(node: Int) {
        state.withLock { _ = $0.paused.insert(node) }
        for _ in 0..<2_000 {
            guard state.withLock({ $0.asking == node }) else { return }
            usleep(5_000)
        }
    }

    /// Asks `node` again; its failures count once it has answered.
    func resume(node: Int) {
        state.withLock {
            $0.paused.remove(node)
            $0.live.remove(node)
        }
    }

    /// Stops the thread and returns what it saw (the same report when called again).
    func stop() -> Report {
        let first = state.withLock { state -> Bool in
            defer { state.stopping = true }
            return !state.stopping
        }
        if first { finished.wait() }
        return state.withLock { $0.report }
    }

    private func run() {
        defer { finished.signal() }
        let clock = ContinuousClock()
        // Bounded: 6,000 rounds of at least 0.2 s are 20 minutes, far beyond any test.
        for _ in 0..<6_000 {
            for (offset, socket) in sockets.enumerated() {
                let node = offset + 1
                let skip = state.withLock { state -> Bool? in
                    if state.stopping { return nil }
                    if state.paused.contains(node) { return true }
                    state.asking = node
                    return false
                }
                guard let skip else { return }
                if skip { continue }
                let start = clock.now
                var answered = false
                if let client = try? ControlClient(path: socket, timeout: .seconds(5)), case .success? = try? client.call("status") {
                    answered = true
                }
                let elapsed = clock.now - start
                state.withLock { state in
                    state.asking = nil
                    if answered {
                        state.live.insert(node)
                        state.report.answered.insert(node)
                        state.report.slowest[node] = max(state.report.slowest[node] ?? .zero, elapsed)
                    } else if state.live.contains(node) {
                        state.report.failures.append("node \(node) did not answer status (gave up after \(elapsed))")
                    }
                }
            }
            usleep(200_000)
        }
    }
}
