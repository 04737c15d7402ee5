// Helpers shared by the devclusterd tests: temporary directories, running code on an event loop,
// a log collector, a test host, bounded polling.

import Foundation
import Glibc
import Synchronization
import Testing
import Totem
import TotemRuntime
@testable import devclusterd

/// A fresh directory under /tmp with a short name (Unix socket paths are limited to 107 bytes).
func makeTemporaryDirectory() throws -> String {
    var template = Array("/tmp/dcd-test-XXXXXX".utf8CString)
    guard let result = mkdtemp(&template) else { throw TestFailure("mkdtemp failed: errno \(errno)") }
    return String(cString: result)
}

func removeDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` on `loop`'s thread and returns its result.
func onLoop<Value: Sendable>(_ loop: EventLoop, _ body: @escaping @Sendable () -> Value) async -> Value? {
    await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
        let accepted = loop.execute { continuation.resume(returning: body()) }
        if !accepted { continuation.resume(returning: nil) }
    }
}

/// Log lines collected from a `DaemonLogger` with a fixed clock.
final class LogCollector: Sendable {
    private let lines = Mutex<[String]>([])

    /// A logger writing here; every line is stamped 2026-11-27T10:00:00.123Z.
    func makeLogger(level: LogLevel = .debug) -> DaemonLogger {
        DaemonLogger(level: level, sink: { [self] line in lines.withLock { $0.append(line) } },
                     clock: { timespec(tv_sec: 1_795_773_600, tv_nsec: 123_000_000) })
    }

    /// The lines without their timestamp and newline: `info  ring 1.12 formed: ...`.
    var messages: [String] {
        lines.withLock { $0 }.map { line in
            let withoutStamp = line.split(separator: " ", maxSplits: 1).last.map(String.init) ?? line
            return withoutStamp.hasSuffix("\n") ? String(withoutStamp.dropLast()) : withoutStamp
        }
    }

    var raw: [String] { lines.withLock { $0 } }
}

/// A root user on a host whose only interface is loopback.
let loopbackHost = HostEnvironment(
    userID: 0, variables: [:], hostName: "testhost", isWritableDirectory: { _ in false },
    interfaceAddresses: {
        [HostEnvironment.InterfaceAddress(address: DaemonConfiguration.IPAddress(bytes: [127, 0, 0, 1])!, prefixLength: 8, isLoopback: true)]
    })

/// A three-node udpu configuration (server1..3 on 127.0.0.1..3), this node 1.
func threeNodeConfiguration(extra: String = "") throws -> DaemonConfiguration {
    try DaemonConfiguration.parse(text: """
        [totem]
        cluster_name = test
        transport = udpu
        mcastport = 5405
        token = 300
        token_coefficient = 0

        [node]
        nodeid = 1
        name = server1
        addr = 127.0.0.1

        [node]
        nodeid = 2
        name = server2
        addr = 127.0.0.2

        [node]
        nodeid = 3
        name = server3
        addr = 127.0.0.3

        [options]
        nodeid = 1
        control_socket = /tmp/test.sock
        state_dir = /tmp/test-state

        \(seedEventChannels)
        \(extra)
        """, path: "test.conf", host: loopbackHost)
}

/// Polls `condition` every `interval` until it holds or `timeout` passes.
func eventually(within timeout: Duration, every interval: Duration = .milliseconds(20),
                _ condition: () async -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    for _ in 0..<100_000 {
        if await condition() { return true }
        if clock.now >= deadline { return false }
        try? await Task.sleep(for: interval)
    }
    return false
}

/// The seed's two event channels (mwi, device_state).
let seedEventChannels = """
    [mwi]
    type = event_channel
    publish_event = mwi
    subscribe_event = mwi

    [device_state]
    type = event_channel
    publish_event = device_state
    subscribe_event = device_state

    """

/// The seed's channels and hint, as in the devstate_test walk-through.
let seedChannels = seedEventChannels + """
    [hints]
    1234@devstate_test = Custom:mystate

    """

/// The JSON answer of a CLI command (`--json` is added), or `nil` when it failed.
func cliJSON(_ arguments: [String]) -> JSONValue? {
    guard let result = try? runCommand(arguments + ["--json"]), result.status == 0 else { return nil }
    return try? JSONParser.parse(result.output.trimmingCharacters(in: .newlines))
}

/// Nodes configured on 127.0.0.1...count in a fresh temporary directory, and the registry of
/// the children started for them. Call `tearDown()` in a `defer`: it kills the children by
/// PID and removes the directory, also when the test fails.
final class TestNodes {
    let base: String
    let children = Children()
    let nodes: [TestNode]

    init(_ count: Int, channels: String? = seedChannels, configuredEntity: Bool = true, options: String = "") throws {
        try #require(daemonExecutable != nil, "devclusterd was not found next to the test binary; build it with swift build")
        let directory = try makeTemporaryDirectory()
        base = directory
        let port = randomPort()
        do {
            nodes = try (1...count).map {
                try makeNode($0, of: count, in: directory, port: port, channels: channels, configuredEntity: configuredEntity,
                             options: options)
            }
        } catch {
            removeDirectory(directory)
            throw error
        }
    }

    func tearDown() {
        children.killAll()
        removeDirectory(base)
    }
}

/// Starts `nodes` and waits (20 s at most) until they form one ring of exactly them.
func startRing(_ nodes: [TestNode], children: Children) async throws -> [Process] {
    let processes = try nodes.map { try children.start(["--foreground", "--config", $0.configuration], log: $0.log) }
    let ids = nodes.map { Int64($0.index) }
    let ring = await eventually(within: .seconds(20)) { formed(nodes, members: ids) }
    try #require(ring, "no ring of \(ids): \(nodes.map(membership)); log of node \(nodes[0].index):\n\(nodes[0].logText)")
    return processes
}
