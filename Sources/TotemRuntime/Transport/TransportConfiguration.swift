// What a transport needs to know: the mode (udp multicast or udpu), the node list with addresses,
// the MTU and socket sizes, and the one function that derives the core's frame size from the MTU.
// Owns no sockets; parsing the daemon's configuration file is not done here.

import Totem


/// The configuration of a node's UDP transport (spec §6.2, §6.3).
public struct TransportConfiguration: Sendable, Equatable {
    /// How "multicast" reaches every node.
    public enum Mode: Sendable, Equatable {
        /// corosync "udp": IP multicast to `group` (address and port). Tokens are unicast to
        /// the listed node addresses.
        case udp(group: SocketAddress)
        /// corosync "udpu": one unicast copy per listed node; no multicast routing needed.
        case udpu
    }

    /// A cluster node and the address its unicast (token) socket is bound to.
    public struct Node: Sendable, Equatable {
        public var id: NodeID
        public var address: SocketAddress

        public init(id: NodeID, address: SocketAddress) {
            self.id = id
            self.address = address
        }
    }

    public var mode: Mode
    /// This node; it must appear in `nodes`, whose address it binds.
    public var localNode: NodeID
    /// Every node of the cluster, this one included: where tokens (and, in udpu, every
    /// datagram) are sent, and whose source addresses are accepted.
    public var nodes: [Node]
    /// The path MTU of the cluster network; no datagram exceeds `netmtu − IP/UDP header`.
    public var netmtu = 1_500
    /// Routers a multicast may cross (udp mode); 1 keeps it on the local network.
    public var multicastTTL = 1
    /// `IP_MULTICAST_LOOP` (udp mode): needed only when other nodes of the cluster listen on
    /// this host (or network namespace); otherwise every multicast would come back to this
    /// node through the kernel only to be dropped. The node hears itself either way.
    public var multicastLoop = true
    /// SO_RCVBUF requested for receiving sockets: 16 × 65536 (spec §6.2); the kernel caps it.
    public var receiveBufferBytes = 16 * 65_536
    /// SO_SNDBUF requested for sending sockets.
    public var sendBufferBytes = 16 * 65_536
    /// Drop datagrams whose source is not a listed node (corosync `block_unlisted_ips`). In
    /// udpu the whole source address must match; in udp mode the IP (multicasts leave from the
    /// send socket, whose port differs).
    public var blockUnlistedSources = true
    /// Most datagrams read with one `recvmmsg`.
    public var receiveBatchSize = 32
    /// Most datagrams collected before they are sent with `sendmmsg`.
    public var sendBatchSize = 64
    /// Whether runs of equal-sized datagrams to one address (the multicasts; with udpu, each
    /// peer's copies) are handed to the kernel as one segmented send (UDP_SEGMENT), and receiving
    /// sockets take such runs whole (UDP_GRO), where the kernel offers it. Receivers see the same
    /// datagrams either way.
    public var segmentationOffload = true
    /// Whether the socket that sends the token asks the kernel for ICMP error reports
    /// (`UDPSocket.enableUnreachableReports`), so that a successor whose daemon is gone (a "port
    /// unreachable") is failed at once instead of after the token and consensus timeouts.
    public var reportsUnreachable = true

    public init(mode: Mode, localNode: NodeID, nodes: [Node]) {
        self.mode = mode
        self.localNode = localNode
        self.nodes = nodes
    }

    /// The configured address of `node`, if listed.
    public func address(of node: NodeID) -> SocketAddress? {
        nodes.first { $0.id == node }?.address
    }

    /// The address this node binds (its entry in `nodes`).
    public var localAddress: SocketAddress? { address(of: localNode) }

    /// The address family used, from this node's address (IPv4 when it is missing).
    public var family: SocketAddress.Family { localAddress?.family ?? .ipv4 }

    /// Bytes of IP and UDP header in front of every datagram: 20 + 8 over IPv4, 40 + 8 over
    /// IPv6 (getting the IPv6 figure wrong fragmented corosync's datagrams, issue #34).
    public static func ipAndUDPHeaderBytes(for family: SocketAddress.Family) -> Int {
        switch family {
        case .ipv4: 28
        case .ipv6: 48
        }
    }

    /// The largest datagram this node sends or accepts: `netmtu − IP/UDP header`.
    public var maxDatagramBytes: Int { netmtu - Self.ipAndUDPHeaderBytes(for: family) }

    /// Bytes kept free in every datagram beyond what the formula needs, so that a later header
    /// field or trailer does not silently push full frames past the MTU.
    public static let spareFrameBytes = 16

    /// The largest SRP frame (`TotemSettings.frameCapacityBytes`) for which every datagram
    /// stays within `maxDatagramBytes` (spec §6.4, pitfall P12):
    ///
    /// ```
    ///   maxDatagramBytes                          netmtu − IP/UDP header
    /// − 2 × WireCodec.multicastOverheadBytes     an MCAST's header and body, twice: in recovery
    ///                                            a whole MCAST is wrapped in another (§4.8)
    /// − authenticationOverheadBytes              52 (HMAC-SHA-256) or 36 (ChaCha20-Poly1305): stamp and code or tag
    /// − spareFrameBytes                          16
    /// ```
    ///
    /// IPv4, MTU 1500, HMAC: 1472 − 82 − 52 − 16 = 1322 bytes. Tokens, JOINs and commit tokens
    /// of at most `WireLimits.maxNodes` members are far smaller than a full MCAST.
    public static func frameCapacityBytes(maxDatagramBytes: Int, authenticationOverheadBytes: Int) -> Int {
        maxDatagramBytes - 2 * WireCodec.multicastOverheadBytes - authenticationOverheadBytes - spareFrameBytes
    }

    /// `frameCapacityBytes(maxDatagramBytes:authenticationOverheadBytes:)` for this
    /// configuration and an authentication mode.
    public func frameCapacityBytes(authentication: PacketAuthenticator.Mode) -> Int {
        Self.frameCapacityBytes(
            maxDatagramBytes: maxDatagramBytes,
            authenticationOverheadBytes: PacketAuthenticator.overheadBytes(for: authentication))
    }

    /// The default multicast group for a cluster name (spec §6.2, after corosync): a 16-bit id
    /// from shift-left-and-add over the name's bytes, plus the link number, gives
    /// `239.192.(id >> 8).(id % 255)` or `ff15::id`.
    public static func defaultMulticastGroup(
        clusterName: String, link: UInt8 = 0, family: SocketAddress.Family = .ipv4, port: UInt16 = 5405
    ) -> SocketAddress {
        var id: UInt32 = 0
        for byte in clusterName.utf8 {
            id = (id &<< 1) &+ UInt32(byte)
        }
        id = ((id & 0xFFFF) + UInt32(link)) & 0xFFFF
        let text: String
        switch family {
        case .ipv4: text = "239.192.\(id >> 8).\(id % 255)"
        case .ipv6: text = "ff15::\(String(id, radix: 16))"
        }
        guard let group = SocketAddress(ip: text, port: port) else {
            preconditionFailure("derived group \(text) does not parse")
        }
        return group
    }

    /// The problems with this configuration, empty when it is usable.
    public func validate() -> [String] {
        var problems: [String] = []
        if nodes.isEmpty { problems.append("the node list is empty") }
        if nodes.count > WireLimits.maxNodes {
            problems.append("\(nodes.count) nodes listed, at most \(WireLimits.maxNodes) allowed")
        }
        if Set(nodes.map(\.id)).count != nodes.count { problems.append("a node id is listed twice") }
        if Set(nodes.map(\.address)).count != nodes.count { problems.append("a node address is listed twice") }
        if localAddress == nil { problems.append("this node (\(localNode)) is not in the node list") }
        for node in nodes {
            if node.address.family != family {
                problems.append("node \(node.id) address \(node.address) mixes IPv4 and IPv6")
            }
            if node.address.isMulticast { problems.append("node \(node.id) address \(node.address) is a multicast group") }
            if node.address.port == 0 { problems.append("node \(node.id) address \(node.address) has no port") }
        }
        if case .udp(let group) = mode {
            if !group.isMulticast { problems.append("udp group \(group) is not a multicast address") }
            if group.family != family { problems.append("udp group \(group) is not of the nodes' address family") }
            if group.port == 0 { problems.append("udp group \(group) has no port") }
        }
        let minimumMTU = family == .ipv4 ? 576 : 1_280
        if netmtu < minimumMTU || netmtu > 65_535 { problems.append("netmtu \(netmtu) outside \(minimumMTU)...65535") }
        if !(0...255).contains(multicastTTL) { problems.append("multicast ttl \(multicastTTL) outside 0...255") }
        if receiveBufferBytes < 65_536 || sendBufferBytes < 65_536 {
            problems.append("socket buffers must be at least 65536 bytes")
        }
        if !(1...1_024).contains(receiveBatchSize) || !(1...1_024).contains(sendBatchSize) {
            problems.append("batch sizes must be within 1...1024")
        }
        return problems
    }
}
