// The udpu transport (corosync "udpu", spec §6.3): one socket for everything, "multicast" as one
// unicast copy per listed node. Owns one socket; the Totem logic stays in the core.

import Glibc
import Totem

/// Unicast-only transport: one socket bound to this node's address receives tokens and
/// "multicasts" alike, and a multicast is one datagram per other listed node, sent together
/// with `sendmmsg`. This node's own multicasts are delivered by the runtime
/// (`loopsBackOwnMulticasts` is false), as corosync does through its local socket pair.
///
/// Datagrams whose source address (IP and port: every node sends from its bound socket) is not
/// a listed node are dropped and counted when `blockUnlistedSources` is set.
public final class UnicastTransport: Transport {
    public let maxDatagramBytes: Int
    public var loopsBackOwnMulticasts: Bool { false }
    public let channels: [ReceiveChannel]
    public private(set) var setupReport: [String] = []

    private let socket: UDPSocket
    private let nodes: NodeAddressTable
    /// Entries of `nodes` that a multicast goes to: every node but this one.
    private let peers: [Int]
    private let blockUnlistedSources: Bool
    private let vector: SendVector
    private var unlistedSourceDrops = 0
    private var unknownDestinationDrops = 0

    /// Opens, configures and binds the socket.
    ///
    /// - Precondition: `configuration.validate()` is empty.
    public init(_ configuration: TransportConfiguration) throws(SystemError) {
        precondition(configuration.validate().isEmpty, "invalid transport configuration: \(configuration.validate())")
        guard let local = configuration.localAddress else { preconditionFailure("validated configuration lacks the local node") }
        maxDatagramBytes = configuration.maxDatagramBytes
        blockUnlistedSources = configuration.blockUnlistedSources
        let table = NodeAddressTable(configuration.nodes)
        nodes = table
        peers = table.ids.indices.filter { table.ids[$0] != configuration.localNode }
        vector = SendVector(capacity: min(1_024, configuration.sendBatchSize * max(peers.count, 1)))

        socket = try UDPSocket(family: local.family)
        try socket.bind(to: local)
        let receiveBuffer = try socket.setReceiveBufferSize(configuration.receiveBufferBytes)
        let sendBuffer = try socket.setSendBufferSize(configuration.sendBufferBytes)
        let drops = socket.enableKernelDropCounter()
        let unreachableReports = configuration.reportsUnreachable ? socket.enableUnreachableReports() : nil
        if configuration.segmentationOffload {
            socket.enableSegmentationOffload()
            socket.enableReceiveCoalescing()
        }
        channels = [ReceiveChannel(fileDescriptor: socket.fileDescriptor, role: .multicastAndUnicast)]
        setupReport = [
            "udpu socket \(local) for \(peers.count) peers: SO_RCVBUF \(receiveBuffer), SO_SNDBUF \(sendBuffer) (requested \(configuration.receiveBufferBytes)/\(configuration.sendBufferBytes); the kernel reports twice what it grants), drop counter \(drops ? "on" : "unavailable"), "
                + socket.segmentationReport(wanted: configuration.segmentationOffload) + ", "
                + socket.coalescingReport(wanted: configuration.segmentationOffload)
                + ", unreachable reports \(Self.describe(unreachableReports: unreachableReports))"
        ]
    }

    deinit {
        close()
    }

    public var statistics: TransportStatistics {
        var statistics = TransportStatistics()
        statistics.sockets = socket.counters
        statistics.unlistedSourceDrops = unlistedSourceDrops
        statistics.unknownDestinationDrops = unknownDestinationDrops
        return statistics
    }

    public var sendErrorCount: Int { socket.counters.sendErrors }

    public var receivesCoalesced: Bool { socket.receivesCoalesced }

    public func send(_ batch: SendBatch) {
        // Multicasts queued back to back go out peer by peer (all of them to the first peer, then
        // to the next), so each peer's run can be one segmented send; every peer still gets them
        // in order, and before any unicast queued after them.
        var runStart = 0
        for index in 0..<batch.count {
            let datagram = batch.datagram(at: index)
            precondition(datagram.count <= maxDatagramBytes, "datagram of \(datagram.count) bytes exceeds \(maxDatagramBytes)")
            guard case .node(let id) = batch.destination(at: index) else { continue }
            addMulticasts(batch, from: runStart, to: index)
            runStart = index + 1
            guard let node = nodes.index(of: id) else {
                unknownDestinationDrops += 1
                continue
            }
            if vector.isFull { socket.send(vector) }
            vector.add(datagram, name: nodes.names + node, nameLength: nodes.nameLengths[node],
                       coalescing: socket.segmentationOffload)
        }
        addMulticasts(batch, from: runStart, to: batch.count)
        if vector.count > 0 { socket.send(vector) }
    }

    /// Adds `batch[start..<end]` (all multicasts) for every peer, peer by peer.
    private func addMulticasts(_ batch: SendBatch, from start: Int, to end: Int) {
        guard start < end else { return }
        for peer in peers {
            for index in start..<end {
                if vector.isFull { socket.send(vector) }
                vector.add(batch.datagram(at: index), name: nodes.names + peer, nameLength: nodes.nameLengths[peer],
                           coalescing: socket.segmentationOffload)
            }
        }
    }

    public func takeNotices() -> [String] {
        socket.takeSegmentationNotice().map { [$0] } ?? []
    }

    public var hasUnreachableNodes: Bool { socket.hasUnreachableDestinations }

    public func takeUnreachableNodes() -> [NodeID] {
        nodes.ids(at: socket.takeUnreachableDestinations())
    }

    public func receive(on index: Int, into batch: ReceiveBatch) -> Int {
        precondition(index == 0, "udpu has one channel, not \(index)")
        let count = socket.receive(into: batch)
        guard blockUnlistedSources else { return count }
        unlistedSourceDrops += batch.dropUnlistedSources(count: count, nodes: nodes, matchingPort: true)
        return count
    }

    public func close() {
        socket.close()
    }
}
