// Helpers shared by the runtime tests: unique loopback addresses, event recorders, bounded
// polling, temporary directories and configurations with short timers.

import Foundation
import Synchronization
@testable import Totem
@testable import TotemRuntime

/// A loopback subnet `127.a.b.0/24` picked at random, so concurrent test runs on one host (other
/// workers, repeated runs) do not share addresses; every node gets `127.a.b.<index>` and a
/// random high port.
struct LoopbackSubnet {
    let prefix: String
    let port: UInt16

    init() {
        prefix = "127.\(UInt8.random(in: 16...250)).\(UInt8.random(in: 1...250))"
        port = UInt16.random(in: 20_000...60_000)
    }

    func address(_ host: Int, port: UInt16? = nil) -> SocketAddress {
        guard let address = SocketAddress(ip: "\(prefix).\(host)", port: port ?? self.port) else {
            preconditionFailure("bad test address \(prefix).\(host)")
        }
        return address
    }

    /// Nodes 1...count at `prefix.1`, `prefix.2`, ...
    func nodes(_ count: Int) -> [TransportConfiguration.Node] {
        (1...count).map { TransportConfiguration.Node(id: NodeID(UInt32($0)), address: address($0)) }
    }
}

/// Collects a node's events from its loop thread for inspection by the test.
final class EventRecorder: Sendable {
    private struct State {
        var events: [RingEvent] = []
        var delivered: [DeliveredMessage] = []
        var regular: [ConfigurationChange] = []
        /// When the last regular configuration was recorded (on the node's loop thread, so a
        /// test task starved by other suites does not stretch it).
        var lastRegularAt: ContinuousClock.Instant?
    }

    private let state = Mutex(State())

    func record(_ event: RingEvent) {
        state.withLock { state in
            state.events.append(event)
            switch event {
            case .delivered(let message): state.delivered.append(message)
            case .configurationChanged(let change) where change.kind == .regular:
                state.regular.append(change)
                state.lastRegularAt = ContinuousClock.now
            default: break
            }
        }
    }

    var delivered: [DeliveredMessage] { state.withLock { $0.delivered } }
    var lastRegular: ConfigurationChange? { state.withLock { $0.regular.last } }
    var regularCount: Int { state.withLock { $0.regular.count } }
    var lastRegularAt: ContinuousClock.Instant? { state.withLock { $0.lastRegularAt } }
    var events: [RingEvent] { state.withLock { $0.events } }
}

/// A value shared between a test and the closures it hands to event loops.
final class Shared<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>

    init(_ value: Value) {
        storage = Mutex(value)
    }

    var value: Value { storage.withLock { $0 } }

    func update<Result>(_ body: (inout Value) -> Result) -> Result {
        storage.withLock { body(&$0) }
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
///
/// - Returns: whether the condition held in time.
func eventually(within timeout: Duration, _ condition: () async -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    // The time bound ends the loop; the count bound only guards against a broken clock.
    for _ in 0..<100_000 {
        if await condition() { return true }
        if clock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return false
}

/// A fresh empty directory under the system temporary directory; remove it with `removeDirectory`.
func makeTemporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "totem-runtime-test-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func removeDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// Logs only warnings and errors, prefixed with the node, to standard error.
func testLog(_ node: Int) -> LogHandler {
    { level, message in
        guard level >= .warning else { return }
        RuntimeLog.standardError(level, "[node \(node)] \(message)")
    }
}

/// A configuration with the simulation timers (token 300 ms, join 10 ms, consensus 360 ms).
func makeConfiguration(
    node: Int, mode: TransportConfiguration.Mode, nodes: [TransportConfiguration.Node],
    authentication: PacketAuthenticator.Mode = .hmacSHA256, key: ClusterKey? = nil,
    clusterName: String = "runtime-test", stateDirectory: String? = nil
) -> NodeRuntimeConfiguration {
    var transport = TransportConfiguration(mode: mode, localNode: NodeID(UInt32(node)), nodes: nodes)
    transport.receiveBufferBytes = 1 << 20
    var settings = TotemSettings.simulation
    settings.configuredNodeCount = nodes.count
    settings.frameCapacityBytes = transport.frameCapacityBytes(authentication: authentication)
    var configuration = NodeRuntimeConfiguration(
        clusterName: clusterName, transport: transport, settings: settings,
        authentication: authentication, key: key, stateDirectory: stateDirectory, log: testLog(node))
    configuration.logLevel = .warning
    return configuration
}

/// A fixed 64-byte key for tests.
func testKey(_ seed: UInt8 = 1) -> ClusterKey {
    do {
        return try ClusterKey(bytes: (0..<64).map { UInt8($0) &* 7 &+ seed })
    } catch {
        preconditionFailure("test key rejected: \(error)")
    }
}
