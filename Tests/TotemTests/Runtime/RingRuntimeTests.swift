// Whole nodes on real sockets: udpu rings of one and three on 127.0.0.0/8, a graceful leave,
// keys that do not match, hostile datagrams; and a udp multicast ring inside a network namespace
// the test creates. Serialized: the rings use short timers on a shared 2-core machine.

import Foundation
import Glibc
import Testing
@testable import Totem
@testable import TotemRuntime

/// Started runtimes with their event recorders; `stopAll` stops whatever is still running.
final class RuntimeCluster: Sendable {
    let runtimes: [NodeRuntime]
    let recorders: [EventRecorder]

    init(runtimes: [NodeRuntime], recorders: [EventRecorder]) {
        self.runtimes = runtimes
        self.recorders = recorders
    }

    /// Starts one runtime per configuration (on the given loops, if any).
    static func start(_ configurations: [NodeRuntimeConfiguration], on loops: [EventLoop]? = nil) async throws -> RuntimeCluster {
        var runtimes: [NodeRuntime] = []
        var recorders: [EventRecorder] = []
        do {
            for (index, configuration) in configurations.enumerated() {
                let recorder = EventRecorder()
                let runtime = try await NodeRuntime.start(configuration, on: loops?[index]) { recorder.record($0) }
                runtimes.append(runtime)
                recorders.append(recorder)
            }
        } catch {
            for runtime in runtimes { await runtime.stop() }
            throw error
        }
        return RuntimeCluster(runtimes: runtimes, recorders: recorders)
    }

    func stopAll() async {
        for runtime in runtimes { await runtime.stop() }
    }

    /// Whether the given nodes (indices) all report the same last regular configuration made
    /// of exactly `members`.
    func formedRing(_ indices: [Int], members: [UInt32]) -> Bool {
        let changes = indices.map { recorders[$0].lastRegular }
        guard let first = changes[0] else { return false }
        return changes.allSatisfy { $0?.ringID == first.ringID && $0?.members == members.map { NodeID($0) } }
    }
}

/// Runs `body` with a started cluster and stops every node afterwards, even when `body` throws.
func withCluster(
    _ configurations: [NodeRuntimeConfiguration], on loops: [EventLoop]? = nil,
    _ body: (RuntimeCluster) async throws -> Void
) async throws {
    let cluster = try await RuntimeCluster.start(configurations, on: loops)
    do {
        try await body(cluster)
    } catch {
        await cluster.stopAll()
        throw error
    }
    await cluster.stopAll()
}

@Suite("Runtime rings on real sockets", .serialized)
struct RingRuntimeTests {
    @Test("udpu: three nodes form one ring, deliver one sequence, and two reform quickly after a leave")
    func threeNodeUnicastRing() async throws {
        let subnet = LoopbackSubnet()
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let nodes = subnet.nodes(3)
        let configurations = (1...3).map {
            makeConfiguration(node: $0, mode: .udpu, nodes: nodes, key: testKey(), stateDirectory: directory)
        }
        try await withCluster(configurations) { cluster in
            let formed = await eventually(within: .seconds(5)) { cluster.formedRing([0, 1, 2], members: [1, 2, 3]) }
            try #require(formed, "no common ring of 3: \(cluster.recorders.map { $0.lastRegular?.members ?? [] })")

            for round in 0..<20 {
                for (index, runtime) in cluster.runtimes.enumerated() {
                    try await runtime.submit(Array("node\(index + 1)-\(round)".utf8))
                }
            }
            let delivered = await eventually(within: .seconds(5)) { cluster.recorders.allSatisfy { $0.delivered.count >= 60 } }
            try #require(delivered, "deliveries: \(cluster.recorders.map { $0.delivered.count })")
            let sequences = cluster.recorders.map { $0.delivered.map { String(decoding: $0.payload, as: UTF8.self) } }
            #expect(sequences[0].count == 60)
            #expect(sequences[1] == sequences[0] && sequences[2] == sequences[0])
            for node in 1...3 {
                let own = sequences[0].filter { $0.hasPrefix("node\(node)-") }
                #expect(own == (0..<20).map { "node\(node)-\($0)" }, "node \(node)'s messages out of order")
            }
            #expect(cluster.recorders[0].delivered.allSatisfy { $0.payload.starts(with: Array("node\($0.sender.rawValue)".utf8)) })

            // The ring sequence of the installed ring was persisted.
            let ring = try #require(cluster.recorders[0].lastRegular?.ringID)
            let stored = try String(contentsOfFile: "\(directory)/ring-sequence-1", encoding: .utf8)
            #expect(stored == "\(ring.sequence)\n")

            let statistics = try #require(await cluster.runtimes[0].statistics())
            #expect(statistics.authenticationFailures == 0 && statistics.decodeErrorCount == 0)
            #expect(statistics.transport.unlistedSourceDrops == 0 && statistics.transport.sockets.truncatedDatagrams == 0)
            #expect(statistics.datagramsSent > 0 && statistics.datagramsReceived > 0)
            #expect(statistics.core.messagesDelivered == 60)

            // Graceful leave: the others reform without waiting for a token timeout.
            let clock = ContinuousClock()
            let leftAt = clock.now
            await cluster.runtimes[2].leave()
            let reformed = await eventually(within: .seconds(5)) { cluster.formedRing([0, 1], members: [1, 2]) }
            #expect(reformed, "no ring of 2 after the leave: \(cluster.recorders.map { $0.lastRegular?.members ?? [] })")
            // Timed to when node 1's loop installed the ring, not to when this task saw it: under
            // the whole suite the test's own polling was once starved for seconds.
            let elapsed = (cluster.recorders[0].lastRegularAt ?? clock.now) - leftAt
            #expect(elapsed < .seconds(2), "reforming took \(elapsed)")
            let transitional = cluster.recorders[0].events.compactMap { event -> ConfigurationChange? in
                if case .configurationChanged(let change) = event, change.kind == .transitional { return change }
                return nil
            }.last
            #expect(transitional?.left == [NodeID(3)])
            #expect(await cluster.runtimes[2].statistics() == nil)
            await #expect(throws: SubmitError.notRunning) { try await cluster.runtimes[2].submit([1]) }
        }
    }

    @Test("spec T1: a single node forms a ring of one, delivers its own messages, and restarts above its stored ring sequence")
    func singleNodeRing() async throws {
        let subnet = LoopbackSubnet()
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let configuration = makeConfiguration(
            node: 1, mode: .udpu, nodes: subnet.nodes(1), authentication: .chaCha20Poly1305, key: testKey(),
            stateDirectory: directory)
        var firstRing: RingID?
        try await withCluster([configuration]) { cluster in
            try #require(await eventually(within: .seconds(3)) { cluster.formedRing([0], members: [1]) })
            for index in 0..<50 {
                try await cluster.runtimes[0].submit([UInt8(index)], delivery: index % 2 == 0 ? .agreed : .safe)
            }
            try #require(await eventually(within: .seconds(3)) { cluster.recorders[0].delivered.count == 50 })
            #expect(cluster.recorders[0].delivered.map { $0.payload[0] } == (0..<50).map { UInt8($0) })
            firstRing = cluster.recorders[0].lastRegular?.ringID
            await cluster.runtimes[0].leave()
        }
        let first = try #require(firstRing)
        try await withCluster([configuration]) { cluster in
            try #require(await eventually(within: .seconds(3)) { cluster.formedRing([0], members: [1]) })
            let second = try #require(cluster.recorders[0].lastRegular?.ringID)
            #expect(second.sequence > first.sequence, "restarted in ring \(second) after \(first)")
        }
    }

    @Test("udpu over IPv6: two nodes on ::1 (distinct ports) form one ring")
    func ipv6UnicastRing() async throws {
        let probe = try UDPSocket(family: .ipv6)
        guard let loopback = SocketAddress(ip: "::1", port: 0), (try? probe.bind(to: loopback)) != nil else {
            return  // no IPv6 on loopback here
        }
        let port = UInt16.random(in: 20_000...60_000)
        let nodes = (1...2).map { index in
            TransportConfiguration.Node(id: NodeID(UInt32(index)), address: loopback.with(port: port + UInt16(index)))
        }
        let configurations = (1...2).map { makeConfiguration(node: $0, mode: .udpu, nodes: nodes, key: testKey()) }
        #expect(configurations[0].transport.maxDatagramBytes == 1_452)
        try await withCluster(configurations) { cluster in
            #expect(await eventually(within: .seconds(5)) { cluster.formedRing([0, 1], members: [1, 2]) })
            try await cluster.runtimes[1].submit([7, 7])
            #expect(await eventually(within: .seconds(3)) { cluster.recorders.allSatisfy { $0.delivered.count == 1 } })
        }
    }

    @Test("nodes with different keys never form a ring together; each counts the other's datagrams as forged")
    func differentKeysNeverMerge() async throws {
        let subnet = LoopbackSubnet()
        let nodes = subnet.nodes(2)
        let configurations = [
            makeConfiguration(node: 1, mode: .udpu, nodes: nodes, key: testKey(1)),
            makeConfiguration(node: 2, mode: .udpu, nodes: nodes, key: testKey(2)),
        ].map { configuration in
            var quiet = configuration
            quiet.log = RuntimeLog.discard
            return quiet
        }
        try await withCluster(configurations) { cluster in
            try #require(await eventually(within: .seconds(3)) {
                cluster.formedRing([0], members: [1]) && cluster.formedRing([1], members: [2])
            })
            try await Task.sleep(for: .milliseconds(1_500))
            for recorder in cluster.recorders {
                #expect(recorder.events.allSatisfy { event in
                    if case .configurationChanged(let change) = event { return change.members.count <= 1 }
                    return true
                })
            }
            for runtime in cluster.runtimes {
                let statistics = try #require(await runtime.statistics())
                #expect(statistics.authenticationFailures > 0)
                #expect(statistics.members.count == 1)
            }
        }
    }

    @Test("forged, foreign, older-version, malformed, oversized and unlisted datagrams are dropped and counted; the ring carries on")
    func hostileDatagrams() async throws {
        let subnet = LoopbackSubnet()
        let nodes = subnet.nodes(2)
        var configuration = makeConfiguration(node: 1, mode: .udpu, nodes: nodes, key: testKey())
        configuration.log = RuntimeLog.discard
        try await withCluster([configuration]) { cluster in
            try #require(await eventually(within: .seconds(3)) { cluster.formedRing([0], members: [1]) })
            // Sends from node 2's address (listed, but no node runs there) and from elsewhere.
            let listed = try UDPSocket(family: .ipv4)
            try listed.bind(to: subnet.address(2))
            let unlisted = try UDPSocket(family: .ipv4)
            try unlisted.bind(to: subnet.address(9))
            let target = subnet.address(1)
            func send(_ bytes: [UInt8], from socket: UDPSocket) {
                bytes.withUnsafeBytes { _ = socket.send($0, to: target) }
            }
            let join = Packet.join(JoinMessage(sender: NodeID(2), ringSequence: 1, processors: [NodeID(2)], failed: []))
            var ours = PacketAuthenticator(mode: .hmacSHA256, key: testKey(), clusterName: "runtime-test", nodeID: NodeID(2), epoch: 2, counterStart: 0)
            var foreign = PacketAuthenticator(mode: .hmacSHA256, key: testKey(), clusterName: "other", nodeID: NodeID(2), epoch: 2, counterStart: 0)
            var forged = WireCodec(clusterName: "runtime-test").encode(join)
            ours.seal(&forged)
            forged[20] ^= 1
            var otherCluster = WireCodec(clusterName: "other").encode(join)
            foreign.seal(&otherCluster)
            // Authentic but malformed: a JOIN whose body is cut short, correctly sealed.
            var malformed = Array(WireCodec(clusterName: "runtime-test").encode(join).dropLast(4))
            ours.seal(&malformed)
            // A node of an older release (wire version 1): dropped before authentication.
            var older = WireCodec(clusterName: "runtime-test").encode(join)
            older[2] = 1
            ours.seal(&older)
            send(older, from: listed)
            send(forged, from: listed)
            send(otherCluster, from: listed)
            send([1, 2, 3], from: listed)
            send(malformed, from: listed)
            send([UInt8](repeating: 0, count: 2_000), from: listed)
            send(forged, from: unlisted)
            let counted = await eventually(within: .seconds(3)) {
                guard let statistics = await cluster.runtimes[0].statistics() else { return false }
                return statistics.authenticationFailures == 3 && statistics.decodeErrors["truncated"] == 1
                    && statistics.decodeErrors["unsupportedVersion"] == 1
                    && statistics.transport.sockets.truncatedDatagrams == 1 && statistics.transport.unlistedSourceDrops == 1
            }
            let statistics = try #require(await cluster.runtimes[0].statistics())
            #expect(counted, "\(statistics)")
            #expect(statistics.members == [NodeID(1)] && statistics.state == .operational)
            try await cluster.runtimes[0].submit([42])
            #expect(await eventually(within: .seconds(2)) { cluster.recorders[0].delivered.last?.payload == [42] })
        }
    }

    @Test("udp multicast: three nodes in one network namespace form one ring and deliver one sequence",
          .enabled(if: NetworkNamespace.isAvailable))
    func threeNodeMulticastRing() async throws {
        let namespace = try NetworkNamespace.create()
        defer { namespace.delete() }
        let loops = try namespace.makeEventLoops(count: 3)
        defer {
            for loop in loops {
                loop.stop()
                loop.join()
            }
        }
        // Inside the namespace the addresses are private to this test.
        let nodes = (1...3).map { index in
            TransportConfiguration.Node(id: NodeID(UInt32(index)), address: SocketAddress(ip: "127.0.0.\(index)", port: 5405)!)
        }
        let group = try #require(SocketAddress(ip: "239.192.77.1", port: 5405))
        let configurations = (1...3).map {
            makeConfiguration(node: $0, mode: .udp(group: group), nodes: nodes, authentication: .chaCha20Poly1305, key: testKey())
        }
        try await withCluster(configurations, on: loops) { cluster in
            let formed = await eventually(within: .seconds(5)) { cluster.formedRing([0, 1, 2], members: [1, 2, 3]) }
            try #require(formed, "no common ring of 3: \(cluster.recorders.map { $0.lastRegular?.members ?? [] })")
            for round in 0..<20 {
                for (index, runtime) in cluster.runtimes.enumerated() {
                    try await runtime.submit(Array("node\(index + 1)-\(round)".utf8))
                }
            }
            let delivered = await eventually(within: .seconds(5)) { cluster.recorders.allSatisfy { $0.delivered.count >= 60 } }
            try #require(delivered, "deliveries: \(cluster.recorders.map { $0.delivered.count })")
            let sequences = cluster.recorders.map { $0.delivered.map(\.payload) }
            #expect(sequences[0].count == 60 && sequences[1] == sequences[0] && sequences[2] == sequences[0])
            let statistics = try #require(await cluster.runtimes[1].statistics())
            #expect(statistics.authenticationFailures == 0 && statistics.decodeErrorCount == 0)
            #expect(statistics.transport.unlistedSourceDrops == 0)
            await cluster.runtimes[0].leave()
            #expect(await eventually(within: .seconds(3)) { cluster.formedRing([1, 2], members: [2, 3]) })
        }
    }
}
