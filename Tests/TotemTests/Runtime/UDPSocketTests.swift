// UDP sockets on 127.0.0.0/8: round trips, batched receive, truncation, addresses, and the MTU
// arithmetic of the transport configuration.

import Glibc
import Testing
@testable import Totem
@testable import TotemRuntime

@Suite("UDPSocket")
struct UDPSocketTests {
    @Test("a datagram sent to a bound socket arrives whole, with the sender's address")
    func roundTrip() throws {
        let subnet = LoopbackSubnet()
        let receiver = try UDPSocket(family: .ipv4)
        try receiver.bind(to: subnet.address(1))
        let sender = try UDPSocket(family: .ipv4)
        try sender.bind(to: subnet.address(2, port: 0))
        let senderAddress = try sender.localAddress()
        let payload = (0..<200).map { UInt8($0) }
        let sent = payload.withUnsafeBytes { sender.send($0, to: subnet.address(1)) }
        #expect(sent)
        let batch = ReceiveBatch(capacity: 4, maxDatagramBytes: 1_472)
        let count = try receiveEventually(receiver, into: batch)
        #expect(count == 1)
        #expect(Array(batch.bytes(at: 0)) == payload)
        #expect(batch.source(at: 0) == senderAddress)
        #expect(!batch.isDropped(at: 0))
        #expect(receiver.counters.datagramsReceived == 1 && receiver.counters.bytesReceived == 200)
        #expect(sender.counters.datagramsSent == 1 && sender.counters.bytesSent == 200)
    }

    @Test("one receive call returns a whole batch, in sending order")
    func batchedReceive() throws {
        let subnet = LoopbackSubnet()
        let receiver = try UDPSocket(family: .ipv4)
        try receiver.bind(to: subnet.address(1))
        let sender = try UDPSocket(family: .ipv4)
        for index in 0..<10 {
            [UInt8](repeating: UInt8(index), count: 50 + index).withUnsafeBytes { _ = sender.send($0, to: subnet.address(1)) }
        }
        let batch = ReceiveBatch(capacity: 16, maxDatagramBytes: 1_472)
        var received: [[UInt8]] = []
        for _ in 0..<100 {
            guard received.count < 10 else { break }
            let count = receiver.receive(into: batch)
            for entry in 0..<count { received.append(Array(batch.bytes(at: entry))) }
            if count == 0 { sleepBriefly() }
        }
        #expect(received.count == 10)
        #expect(received.map(\.count) == (0..<10).map { 50 + $0 })
        #expect(received.map { $0[0] } == (0..<10).map { UInt8($0) })
    }

    @Test("a datagram longer than the limit is dropped and counted; one of exactly the limit is kept")
    func truncationIsDetected() throws {
        let subnet = LoopbackSubnet()
        let receiver = try UDPSocket(family: .ipv4)
        try receiver.bind(to: subnet.address(1))
        let sender = try UDPSocket(family: .ipv4)
        for size in [100, 101, 500] {
            [UInt8](repeating: 1, count: size).withUnsafeBytes { _ = sender.send($0, to: subnet.address(1)) }
        }
        let batch = ReceiveBatch(capacity: 8, maxDatagramBytes: 100)
        var kept: [Int] = []
        var seen = 0
        for _ in 0..<100 {
            guard seen < 3 else { break }
            let count = receiver.receive(into: batch)
            seen += count
            for entry in 0..<count where !batch.isDropped(at: entry) { kept.append(batch.length(at: entry)) }
            if count == 0 { sleepBriefly() }
        }
        #expect(seen == 3)
        #expect(kept == [100])
        #expect(receiver.counters.truncatedDatagrams == 2)
    }

    @Test("datagrams the kernel drops on a full receive queue are counted (SO_RXQ_OVFL)")
    func kernelDropsAreCounted() throws {
        let subnet = LoopbackSubnet()
        let receiver = try UDPSocket(family: .ipv4)
        try receiver.bind(to: subnet.address(1))
        // The kernel raises tiny requests to its minimum (a few KiB): a few datagrams fill it.
        try receiver.setReceiveBufferSize(1)
        #expect(receiver.enableKernelDropCounter())
        let sender = try UDPSocket(family: .ipv4)
        for _ in 0..<200 {
            [UInt8](repeating: 3, count: 1_000).withUnsafeBytes { _ = sender.send($0, to: subnet.address(1)) }
        }
        let batch = ReceiveBatch(capacity: 32, maxDatagramBytes: 1_472)
        var received = 0
        for _ in 0..<100 {
            let count = receiver.receive(into: batch)
            received += count
            if count == 0 { break }
        }
        #expect(received > 0 && received < 200)
        // Each datagram carries the count as it was when the datagram was queued: the next one
        // after the overflow reports it.
        [UInt8](repeating: 4, count: 10).withUnsafeBytes { _ = sender.send($0, to: subnet.address(1)) }
        for _ in 0..<100 {
            guard receiver.receive(into: batch) == 0 else { break }
            sleepBriefly()
        }
        #expect(receiver.counters.kernelReceiveDrops == 200 - received)
    }

    @Test("a send to an address where nothing listens is reported unreachable; no later datagram is lost to it")
    func portUnreachable() throws {
        let subnet = LoopbackSubnet()
        let sender = try UDPSocket(family: .ipv4)
        try sender.bind(to: subnet.address(2))
        #expect(sender.enableUnreachableReports())
        let receiver = try UDPSocket(family: .ipv4)
        try receiver.bind(to: subnet.address(1))
        // Nothing is bound at .3: the kernel answers with an ICMP port unreachable.
        let nobody = subnet.address(3)
        #expect([UInt8](repeating: 1, count: 20).withUnsafeBytes { sender.send($0, to: nobody) })
        // The queued error fails the socket's next call once; the send repeats it, so the
        // datagram to the live socket still goes out and arrives.
        var reported: [SocketAddress] = []
        let batch = ReceiveBatch(capacity: 4, maxDatagramBytes: 1_472)
        for round in 0..<200 where reported.isEmpty {
            #expect([UInt8](repeating: 2, count: 30).withUnsafeBytes { sender.send($0, to: subnet.address(1)) }, "round \(round)")
            // Receiving on the sender also meets the pending error and reads the queue.
            _ = sender.receive(into: batch)
            reported = sender.takeUnreachableDestinations()
            if reported.isEmpty { sleepBriefly() }
        }
        #expect(reported.first == nobody)
        #expect(sender.counters.unreachableReports >= 1 && sender.counters.sendErrors == 0)
        #expect(!sender.hasUnreachableDestinations && sender.takeUnreachableDestinations().isEmpty)
        let count = try receiveEventually(receiver, into: batch)
        #expect(count >= 1 && Array(batch.bytes(at: 0)) == [UInt8](repeating: 2, count: 30))
        // A report met by a receive with nothing to read: read there, and the socket is no
        // longer ready (an unread entry would keep epoll waking the loop).
        #expect([UInt8](repeating: 1, count: 20).withUnsafeBytes { sender.send($0, to: nobody) })
        var ready = pollfd(fd: sender.fileDescriptor, events: Int16(POLLIN), revents: 0)
        for _ in 0..<200 {
            guard poll(&ready, 1, 0) == 0 else { break }
            sleepBriefly()
        }
        #expect(ready.revents & Int16(POLLERR) != 0, "the report did not arrive")
        #expect(sender.receive(into: batch) == 0)
        #expect(sender.takeUnreachableDestinations() == [nobody])
        ready.revents = 0
        #expect(poll(&ready, 1, 0) == 0, "still ready: \(ready.revents)")
        // Without the option the kernel reports nothing for an unconnected socket.
        let quiet = try UDPSocket(family: .ipv4)
        try quiet.bind(to: subnet.address(4))
        #expect([UInt8](repeating: 1, count: 20).withUnsafeBytes { quiet.send($0, to: nobody) })
        sleepBriefly()
        #expect(quiet.receive(into: batch) == 0 && quiet.takeUnreachableDestinations().isEmpty)
        #expect(quiet.counters.unreachableReports == 0)
    }

    @Test("buffer sizes read back from the kernel; the drop counter option is available")
    func socketOptions() throws {
        let socket = try UDPSocket(family: .ipv4)
        let receive = try socket.setReceiveBufferSize(1 << 20)
        let send = try socket.setSendBufferSize(1 << 20)
        #expect(receive > 0 && send > 0)
        #expect(socket.enableKernelDropCounter())
        try socket.setMulticastTTL(1)
        try socket.setMulticastLoop(true)
    }

    @Test("binding an address in use fails with EADDRINUSE")
    func bindConflict() throws {
        let subnet = LoopbackSubnet()
        let first = try UDPSocket(family: .ipv4)
        try first.bind(to: subnet.address(1))
        let second = try UDPSocket(family: .ipv4)
        #expect(throws: SystemError.self) { try second.bind(to: subnet.address(1)) }
    }

    @Test("IPv6 round trip on ::1")
    func ipv6RoundTrip() throws {
        guard let loopback = SocketAddress(ip: "::1", port: 0) else {
            Issue.record("::1 does not parse")
            return
        }
        let receiver = try UDPSocket(family: .ipv6)
        do {
            try receiver.bind(to: loopback)
        } catch {
            // A host without IPv6 on loopback: nothing to test here.
            return
        }
        let address = try receiver.localAddress()
        let sender = try UDPSocket(family: .ipv6)
        let sent = [UInt8](repeating: 9, count: 64).withUnsafeBytes { sender.send($0, to: address) }
        #expect(sent)
        let batch = ReceiveBatch(capacity: 2, maxDatagramBytes: 1_452)
        #expect(try receiveEventually(receiver, into: batch) == 1)
        #expect(batch.source(at: 0)?.family == .ipv6)
    }

    private func receiveEventually(_ socket: UDPSocket, into batch: ReceiveBatch) throws -> Int {
        for _ in 0..<200 {
            let count = socket.receive(into: batch)
            if count > 0 { return count }
            sleepBriefly()
        }
        return 0
    }
}

@Suite("SocketAddress and MTU budget")
struct SocketAddressTests {
    @Test("parses and prints IPv4 and IPv6, recognises multicast groups")
    func parsing() throws {
        let v4 = try #require(SocketAddress(ip: "192.0.2.7", port: 5405))
        #expect(v4.description == "192.0.2.7:5405" && v4.family == .ipv4 && !v4.isMulticast)
        let v6 = try #require(SocketAddress(ip: "2001:db8::1", port: 5405))
        #expect(v6.description == "[2001:db8::1]:5405" && v6.family == .ipv6)
        #expect(try #require(SocketAddress(ip: "239.192.1.2", port: 1)).isMulticast)
        #expect(try #require(SocketAddress(ip: "ff15::1", port: 1)).isMulticast)
        #expect(SocketAddress(ip: "not-an-address", port: 1) == nil)
        #expect(SocketAddress(ip: "10.0.0.256", port: 1) == nil)
        #expect(v4 == SocketAddress(ip: "192.0.2.7", port: 5405))
        #expect(v4 != v4.with(port: 5406) && v4.hasSameIP(as: v4.with(port: 5406)))
    }

    @Test("spec §6.4: frame capacity = netmtu − IP/UDP − 2 × MCAST overhead − authentication − spare")
    func frameBudget() throws {
        let node = TransportConfiguration.Node(id: NodeID(1), address: try #require(SocketAddress(ip: "192.0.2.1", port: 5405)))
        let v4 = TransportConfiguration(mode: .udpu, localNode: NodeID(1), nodes: [node])
        #expect(v4.maxDatagramBytes == 1_472)
        #expect(WireCodec.multicastOverheadBytes == 41)
        #expect(v4.frameCapacityBytes(authentication: .hmacSHA256) == 1_472 - 82 - 52 - 16)
        #expect(v4.frameCapacityBytes(authentication: .chaCha20Poly1305) == 1_472 - 82 - 36 - 16)
        #expect(v4.frameCapacityBytes(authentication: .none) == 1_472 - 82 - 16)
        let node6 = TransportConfiguration.Node(id: NodeID(1), address: try #require(SocketAddress(ip: "2001:db8::1", port: 5405)))
        let v6 = TransportConfiguration(mode: .udpu, localNode: NodeID(1), nodes: [node6])
        #expect(v6.maxDatagramBytes == 1_452)
        // The default TotemSettings frame (1300) fits every mode over IPv4 and IPv6.
        for mode in PacketAuthenticator.Mode.allCases {
            #expect(v6.frameCapacityBytes(authentication: mode) >= TotemSettings().frameCapacityBytes)
        }
    }

    @Test("spec §6.2: the default group is derived from the cluster name")
    func defaultGroup() {
        let group = TransportConfiguration.defaultMulticastGroup(clusterName: "devcluster")
        #expect(group.isMulticast && group.port == 5405 && group.ip.hasPrefix("239.192."))
        #expect(group == TransportConfiguration.defaultMulticastGroup(clusterName: "devcluster"))
        #expect(group != TransportConfiguration.defaultMulticastGroup(clusterName: "devcluster", link: 1))
    }

    @Test("configuration validation names each problem")
    func validation() throws {
        let subnet = LoopbackSubnet()
        var configuration = TransportConfiguration(mode: .udpu, localNode: NodeID(9), nodes: subnet.nodes(2))
        #expect(configuration.validate().contains { $0.contains("not in the node list") })
        configuration.localNode = NodeID(1)
        #expect(configuration.validate().isEmpty)
        configuration.mode = .udp(group: subnet.address(5))
        #expect(configuration.validate().contains { $0.contains("not a multicast address") })
        configuration.netmtu = 100
        #expect(configuration.validate().contains { $0.contains("netmtu") })
    }
}

/// Sleeps 5 ms (polling loops in synchronous tests).
func sleepBriefly() {
    var time = timespec(tv_sec: 0, tv_nsec: 5_000_000)
    _ = nanosleep(&time, nil)
}
