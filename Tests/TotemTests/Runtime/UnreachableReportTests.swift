// The transports' unreachable reports on real loopback sockets, and the configuration switch
// that turns them off (the daemon's `[totem] port_unreachable`).

import Testing
@testable import Totem
@testable import TotemRuntime

@Suite("Transport: unreachable reports")
struct UnreachableReportTests {
    /// Sends a token-sized datagram to node 2, where nothing is bound, until the transport
    /// reports a node unreachable or 200 rounds pass; returns what it reported.
    private static func reports(reportsUnreachable: Bool) throws -> (nodes: [NodeID], setup: String) {
        let subnet = LoopbackSubnet()
        var configuration = TransportConfiguration(mode: .udpu, localNode: NodeID(1), nodes: subnet.nodes(2))
        configuration.reportsUnreachable = reportsUnreachable
        let transport = try UnicastTransport(configuration)
        defer { transport.close() }
        let batch = SendBatch(capacity: 2, maxDatagramBytes: transport.maxDatagramBytes)
        let received = ReceiveBatch(capacity: 4, maxDatagramBytes: transport.maxDatagramBytes, coalesced: transport.receivesCoalesced)
        var nodes: [NodeID] = []
        for _ in 0..<200 {
            guard nodes.isEmpty else { break }
            [UInt8](repeating: 7, count: 60).withUnsafeBytes { batch.append($0, to: .node(NodeID(2))) }
            transport.send(batch)
            batch.removeAll()
            _ = transport.receive(on: 0, into: received)
            if transport.hasUnreachableNodes { nodes = transport.takeUnreachableNodes() }
            if nodes.isEmpty { sleepBriefly() }
        }
        return (nodes, transport.setupReport.joined(separator: " "))
    }

    @Test("udpu: a datagram to a node where nothing listens reports that node")
    func reported() throws {
        let (nodes, setup) = try Self.reports(reportsUnreachable: true)
        #expect(nodes == [NodeID(2)])
        #expect(setup.contains("unreachable reports on"))
    }

    @Test("with reportsUnreachable off, the same datagrams report nothing and the set-up says off")
    func switchedOff() throws {
        let (nodes, setup) = try Self.reports(reportsUnreachable: false)
        #expect(nodes.isEmpty)
        #expect(setup.contains("unreachable reports off"))
    }
}
