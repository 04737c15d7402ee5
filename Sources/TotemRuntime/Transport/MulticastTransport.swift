// The udp transport (corosync "udp", spec §6.2): IP multicast for MCAST, JOIN and the other
// broadcast packets, unicast for tokens. Owns three sockets; the Totem logic stays in the core.

import Glibc
import Totem

/// IP multicast transport with three sockets, as corosync's "udp" mode:
///
/// - a **group socket** bound to the group address and port, joined to the group on the
///   interface of this node's address (SO_REUSEADDR, so several nodes of one host can listen);
/// - a **send socket** bound to this node's IP (ephemeral port; corosync uses port − 1), sending
///   to the group out of that interface with the configured TTL;
/// - a **unicast socket** bound to this node's address, receiving tokens and sending them.
///
/// `IP_MULTICAST_LOOP` is off, as corosync has it, unless other nodes of the cluster listen on
/// this host (`TransportConfiguration.multicastLoop`): with the loop off the kernel hides a
/// host's multicasts from all of that host's sockets, so several nodes sharing one host or
/// network namespace would not hear each other. A node's own multicasts reach its core through
/// the runtime's in-memory loop, as corosync's socket pair does, so it hears itself even when its
/// interface is down (a singleton ring must form then); with the loop on, the copies the kernel
/// loops back are dropped by the runtime (their header names us).
public final class MulticastTransport: Transport {
    public let maxDatagramBytes: Int
    public var loopsBackOwnMulticasts: Bool { false }
    public let channels: [ReceiveChannel]
    public private(set) var setupReport: [String] = []

    private let groupSocket: UDPSocket
    private let sendSocket: UDPSocket
    private let unicastSocket: UDPSocket
    private let nodes: NodeAddressTable
    private let group: UnsafeMutablePointer<sockaddr_storage>
    private let groupLength: socklen_t
    private let blockUnlistedSources: Bool
    private let multicastVector: SendVector
    private let unicastVector: SendVector
    private var unlistedSourceDrops = 0
    private var unknownDestinationDrops = 0

    /// Opens, configures and binds the three sockets.
    ///
    /// - Precondition: `configuration.validate()` is empty.
    public init(_ configuration: TransportConfiguration, group groupAddress: SocketAddress) throws(SystemError) {
        precondition(configuration.validate().isEmpty, "invalid transport configuration: \(configuration.validate())")
        guard let local = configuration.localAddress else { preconditionFailure("validated configuration lacks the local node") }
        maxDatagramBytes = configuration.maxDatagramBytes
        blockUnlistedSources = configuration.blockUnlistedSources
        nodes = NodeAddressTable(configuration.nodes)
        group = .allocate(capacity: 1)
        groupLength = groupAddress.write(to: group)
        multicastVector = SendVector(capacity: configuration.sendBatchSize)
        unicastVector = SendVector(capacity: configuration.sendBatchSize)

        groupSocket = try UDPSocket(family: local.family)
        try groupSocket.setReuseAddress(true)
        try groupSocket.bind(to: groupAddress)
        try groupSocket.joinMulticastGroup(groupAddress, interfaceAddress: local)
        let groupReceive = try groupSocket.setReceiveBufferSize(configuration.receiveBufferBytes)
        let groupDrops = groupSocket.enableKernelDropCounter()
        if configuration.segmentationOffload { groupSocket.enableReceiveCoalescing() }

        sendSocket = try UDPSocket(family: local.family)
        try sendSocket.setReuseAddress(true)
        try sendSocket.bind(to: local.with(port: 0))
        try sendSocket.setMulticastInterface(local)
        try sendSocket.setMulticastLoop(configuration.multicastLoop)
        try sendSocket.setMulticastTTL(configuration.multicastTTL)
        let sendBuffer = try sendSocket.setSendBufferSize(configuration.sendBufferBytes)
        if configuration.segmentationOffload { sendSocket.enableSegmentationOffload() }
        let sendAddress = try sendSocket.localAddress()

        unicastSocket = try UDPSocket(family: local.family)
        try unicastSocket.bind(to: local)
        let unicastReceive = try unicastSocket.setReceiveBufferSize(configuration.receiveBufferBytes)
        let unicastSend = try unicastSocket.setSendBufferSize(configuration.sendBufferBytes)
        let unicastDrops = unicastSocket.enableKernelDropCounter()
        // Tokens leave from this socket: a dead successor's "port unreachable" comes back here.
        let unreachableReports = configuration.reportsUnreachable ? unicastSocket.enableUnreachableReports() : nil

        channels = [
            ReceiveChannel(fileDescriptor: groupSocket.fileDescriptor, role: .multicast),
            ReceiveChannel(fileDescriptor: unicastSocket.fileDescriptor, role: .unicast),
        ]
        let requested = "requested \(configuration.receiveBufferBytes)/\(configuration.sendBufferBytes)"
        setupReport = [
            "udp group socket \(groupAddress) on \(local.ip): SO_RCVBUF \(groupReceive) (\(requested); the kernel reports twice what it grants), drop counter \(groupDrops ? "on" : "unavailable"), "
                + groupSocket.coalescingReport(wanted: configuration.segmentationOffload),
            "udp send socket \(sendAddress): SO_SNDBUF \(sendBuffer), ttl \(configuration.multicastTTL), loop \(configuration.multicastLoop ? "on (other nodes on this host)" : "off"), "
                + sendSocket.segmentationReport(wanted: configuration.segmentationOffload),
            "udp unicast socket \(local): SO_RCVBUF \(unicastReceive), SO_SNDBUF \(unicastSend), drop counter \(unicastDrops ? "on" : "unavailable"), "
                + "unreachable reports \(Self.describe(unreachableReports: unreachableReports))",
        ]
    }

    deinit {
        close()
        group.deinitialize(count: 1)
        group.deallocate()
    }

    public var statistics: TransportStatistics {
        var statistics = TransportStatistics()
        for socket in [groupSocket, sendSocket, unicastSocket] {
            statistics.sockets.add(socket.counters)
        }
        statistics.unlistedSourceDrops = unlistedSourceDrops
        statistics.unknownDestinationDrops = unknownDestinationDrops
        return statistics
    }

    public var receivesCoalesced: Bool { groupSocket.receivesCoalesced }

    public var sendErrorCount: Int {
        groupSocket.counters.sendErrors + sendSocket.counters.sendErrors + unicastSocket.counters.sendErrors
    }

    public func send(_ batch: SendBatch) {
        for index in 0..<batch.count {
            let datagram = batch.datagram(at: index)
            precondition(datagram.count <= maxDatagramBytes, "datagram of \(datagram.count) bytes exceeds \(maxDatagramBytes)")
            switch batch.destination(at: index) {
            case .allNodes:
                multicastVector.add(datagram, name: group, nameLength: groupLength, coalescing: sendSocket.segmentationOffload)
            case .node(let id):
                guard let node = nodes.index(of: id) else {
                    unknownDestinationDrops += 1
                    continue
                }
                unicastVector.add(datagram, name: nodes.names + node, nameLength: nodes.nameLengths[node])
            }
            // Flushing multicasts first never lets a token overtake a multicast queued before it.
            if multicastVector.isFull || unicastVector.isFull { flush() }
        }
        flush()
    }

    private func flush() {
        if multicastVector.count > 0 { sendSocket.send(multicastVector) }
        if unicastVector.count > 0 { unicastSocket.send(unicastVector) }
    }

    public func takeNotices() -> [String] {
        sendSocket.takeSegmentationNotice().map { [$0] } ?? []
    }

    public var hasUnreachableNodes: Bool { unicastSocket.hasUnreachableDestinations }

    public func takeUnreachableNodes() -> [NodeID] {
        nodes.ids(at: unicastSocket.takeUnreachableDestinations())
    }

    public func receive(on index: Int, into batch: ReceiveBatch) -> Int {
        let socket = index == 0 ? groupSocket : unicastSocket
        let count = socket.receive(into: batch)
        guard blockUnlistedSources else { return count }
        // Multicasts leave from the send socket's ephemeral port: match the IP only.
        unlistedSourceDrops += batch.dropUnlistedSources(count: count, nodes: nodes, matchingPort: false)
        return count
    }

    public func close() {
        groupSocket.close()
        sendSocket.close()
        unicastSocket.close()
    }
}

extension UDPSocket.Counters {
    /// Adds another socket's counters to these (for transport totals).
    mutating func add(_ other: UDPSocket.Counters) {
        datagramsReceived += other.datagramsReceived
        bytesReceived += other.bytesReceived
        truncatedDatagrams += other.truncatedDatagrams
        kernelReceiveDrops += other.kernelReceiveDrops
        receiveErrors += other.receiveErrors
        datagramsSent += other.datagramsSent
        segmentedDatagramsSent += other.segmentedDatagramsSent
        bytesSent += other.bytesSent
        sendWouldBlock += other.sendWouldBlock
        sendErrors += other.sendErrors
        if other.lastSendError != 0 { lastSendError = other.lastSendError }
        unreachableReports += other.unreachableReports
    }
}
