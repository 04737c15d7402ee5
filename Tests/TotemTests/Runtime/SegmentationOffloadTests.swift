// UDP segmentation offload on the send path: which datagrams SendVector joins into one segmented
// send, that the kernel hands receivers the same datagrams in order, and the fallback when it
// refuses a segmented send.

import Glibc
import Testing
@testable import Totem
@testable import TotemRuntime

@Suite("Segmentation offload")
struct SegmentationOffloadTests {
    /// Datagram `index` of a test: `length` bytes, each the index (so order shows in the bytes).
    private static func datagram(_ index: Int, length: Int) -> [UInt8] {
        [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: length)
    }

    /// Adds `datagrams` to `vector` for the address at `name` and returns each entry's
    /// datagram lengths.
    private static func entries(
        _ datagrams: [[UInt8]], into vector: SendVector, names: [UnsafeMutablePointer<sockaddr_storage>],
        coalescing: Bool = true
    ) -> [[Int]] {
        for (index, datagram) in datagrams.enumerated() {
            datagram.withUnsafeBytes { bytes in
                vector.add(bytes, name: names[index], nameLength: socklen_t(MemoryLayout<sockaddr_in>.size),
                           coalescing: coalescing)
            }
        }
        return (0..<vector.count).map { entry in
            (0..<vector.segmentCount(at: entry)).map { vector.datagram(at: entry, segment: $0).count }
        }
    }

    @Test("runs join while every datagram but the last has the first one's length")
    func joiningRules() {
        let a = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 2)
        defer { a.deallocate() }
        let b = a + 1
        // Kept alive for the vector's pointers until the entries have been read.
        let lengths = [100, 100, 100, 60, 100, 120, 100, 100, 100]
        let targets = [a, a, a, a, a, a, b, b, a]
        let datagrams = lengths.enumerated().map { Self.datagram($0.offset, length: $0.element) }
        let vector = SendVector(capacity: 64)
        let result = Self.entries(datagrams, into: vector, names: targets)
        // 60 may end a run but not continue one; 120 is longer than the run's segments; a new
        // address starts a new entry.
        #expect(result == [[100, 100, 100, 60], [100], [120], [100, 100], [100]])
        #expect(vector.datagramCount == 9)
        vector.removeAll()
        #expect(vector.count == 0 && vector.datagramCount == 0)

        let plain = Self.entries(Array(datagrams.prefix(3)), into: vector, names: [a, a, a], coalescing: false)
        #expect(plain == [[100], [100], [100]])
    }

    @Test("a run holds at most 64 datagrams and 65,000 bytes")
    func runLimits() {
        let name = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 1)
        defer { name.deallocate() }
        let vector = SendVector(capacity: 200)
        let small = (0..<70).map { Self.datagram($0, length: 10) }
        #expect(Self.entries(small, into: vector, names: Array(repeating: name, count: 70)).map(\.count) == [64, 6])
        vector.removeAll()
        // 46 × 1,400 = 64,400 bytes fit; a 47th would make 65,800.
        let large = (0..<50).map { Self.datagram($0, length: 1_400) }
        #expect(Self.entries(large, into: vector, names: Array(repeating: name, count: 50)).map(\.count) == [46, 4])
    }

    @Test("the receiver gets the datagrams of a segmented send one by one, in order, byte for byte")
    func kernelSegments() throws {
        let subnet = LoopbackSubnet()
        let receiver = try UDPSocket(family: .ipv4)
        try receiver.bind(to: subnet.address(1))
        let sender = try UDPSocket(family: .ipv4)
        #expect(sender.enableSegmentationOffload(), "this kernel (Linux 4.18+) should offer UDP_SEGMENT")
        let sent = (0..<10).map { Self.datagram($0, length: $0 == 9 ? 300 : 1_200) }
        let received = try sendAndCollect(sent, from: sender, to: receiver, subnet: subnet)
        #expect(received == sent)
        #expect(sender.segmentationOffload)
        #expect(sender.counters.datagramsSent == 10)
        #expect(sender.counters.bytesSent == 9 * 1_200 + 300)
        #expect(sender.takeSegmentationNotice() == nil)
    }

    @Test("a refused segmented send turns offload off, is sent one by one and is logged once")
    func refusalFallsBack() throws {
        let subnet = LoopbackSubnet()
        let receiver = try UDPSocket(family: .ipv4)
        try receiver.bind(to: subnet.address(1))
        let sender = try UDPSocket(family: .ipv4)
        #expect(sender.enableSegmentationOffload())
        // Without UDP checksums the kernel refuses segmentation (EINVAL): a stand-in for an
        // interface or route that cannot take segmented packets.
        var noChecksum: Int32 = 1
        #expect(setsockopt(sender.fileDescriptor, SOL_SOCKET, 11 /* SO_NO_CHECK */, &noChecksum, socklen_t(MemoryLayout<Int32>.size)) == 0)
        let first = (0..<6).map { Self.datagram($0, length: 500) }
        #expect(try sendAndCollect(first, from: sender, to: receiver, subnet: subnet) == first)
        #expect(!sender.segmentationOffload)
        #expect(sender.segmentationOffloadRefusal == EINVAL)
        #expect(sender.counters.datagramsSent == 6 && sender.counters.sendErrors == 0)
        let notice = try #require(sender.takeSegmentationNotice())
        #expect(notice.contains("segmentation offload is off"))
        #expect(sender.takeSegmentationNotice() == nil)
        // Later sends are not joined at all.
        let second = (6..<9).map { Self.datagram($0, length: 500) }
        #expect(try sendAndCollect(second, from: sender, to: receiver, subnet: subnet) == second)
        #expect(sender.counters.datagramsSent == 9)
    }

    @Test("udpu sends a batch's multicasts peer by peer, each peer's run segmented, before a later token")
    func unicastTransportOrder() throws {
        let subnet = LoopbackSubnet()
        let configuration = TransportConfiguration(mode: .udpu, localNode: NodeID(1), nodes: subnet.nodes(3))
        let peers = try (2...3).map { node in
            let socket = try UDPSocket(family: .ipv4)
            try socket.bind(to: subnet.address(node))
            return socket
        }
        let transport = try UnicastTransport(configuration)
        defer { transport.close() }
        #expect(transport.setupReport.joined().contains("segmentation offload on, receive coalescing on"))
        #expect(transport.receivesCoalesced)
        // Four multicasts, a token for node 2, one more multicast.
        let batch = SendBatch(capacity: 8, maxDatagramBytes: transport.maxDatagramBytes)
        for index in 0..<4 { Self.datagram(index, length: 1_000).withUnsafeBytes { batch.append($0, to: .allNodes) } }
        Self.datagram(9, length: 60).withUnsafeBytes { batch.append($0, to: .node(NodeID(2))) }
        Self.datagram(5, length: 1_000).withUnsafeBytes { batch.append($0, to: .allNodes) }
        transport.send(batch)

        let expected2 = [0, 1, 2, 3, 9, 5]
        let expected3 = [0, 1, 2, 3, 5]
        for (peer, expected) in zip(peers, [expected2, expected3]) {
            let received = ReceiveBatch(capacity: 16, maxDatagramBytes: 1_472)
            var firstBytes: [Int] = []
            for _ in 0..<200 {
                guard firstBytes.count < expected.count else { break }
                let count = peer.receive(into: received)
                for entry in 0..<count { firstBytes.append(Int(received.bytes(at: entry)[0])) }
                if count == 0 { sleepBriefly() }
            }
            #expect(firstBytes == expected)
        }
        let statistics = transport.statistics.sockets
        #expect(statistics.datagramsSent == 11 && statistics.sendErrors == 0)
        // The first four multicasts form one run per peer; the token and the last multicast go
        // alone (the token follows node 3's run; the multicast is longer than the token).
        #expect(statistics.segmentedDatagramsSent == 8)
    }

    @Test("a receiver with UDP_GRO gets a segmented run as one message and splits it back, in order")
    func receiveCoalescing() throws {
        let subnet = LoopbackSubnet()
        let receiver = try UDPSocket(family: .ipv4)
        try receiver.bind(to: subnet.address(1))
        #expect(receiver.enableReceiveCoalescing(), "this kernel (Linux 5.0+) should offer UDP_GRO")
        let sender = try UDPSocket(family: .ipv4)
        #expect(sender.enableSegmentationOffload())
        // A run of twelve (the last shorter), then a lone datagram, then a run whose segments are
        // longer than the receiver accepts: each of those is dropped as truncated.
        let run = (0..<12).map { Self.datagram($0, length: $0 == 11 ? 77 : 1_000) }
        let lone = [Self.datagram(12, length: 40)]
        let oversized = (13..<16).map { Self.datagram($0, length: 1_300) }
        let batch = ReceiveBatch(capacity: 16, maxDatagramBytes: 1_200, coalesced: true)
        var received: [[UInt8]] = []
        var messages = 0
        var seen = 0
        for datagrams in [run, lone, oversized] {
            _ = try sendAndCollect(datagrams, from: sender, to: nil, subnet: subnet)
        }
        for _ in 0..<200 {
            guard seen < 16 else { break }
            let count = receiver.receive(into: batch)
            messages += batch.messageCount
            seen += count
            for entry in 0..<count where !batch.isDropped(at: entry) {
                received.append(Array(batch.bytes(at: entry)))
                #expect(batch.source(at: entry) != nil)
            }
            if count == 0 { sleepBriefly() }
        }
        #expect(seen == 16)
        #expect(received == run + lone)
        #expect(messages == 3, "one message per segmented send")
        #expect(receiver.counters.datagramsReceived == 16)
        #expect(receiver.counters.truncatedDatagrams == 3)
    }

    /// Sends `datagrams` to address 1 of `subnet` through one coalescing vector and, given a
    /// receiver, collects what arrives (bounded wait).
    private func sendAndCollect(
        _ datagrams: [[UInt8]], from sender: UDPSocket, to receiver: UDPSocket?, subnet: LoopbackSubnet
    ) throws -> [[UInt8]] {
        let name = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: 1)
        defer { name.deallocate() }
        let nameLength = subnet.address(1).write(to: name)
        let vector = SendVector(capacity: 64)
        let storage = datagrams.map { bytes -> UnsafeMutableRawBufferPointer in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
            bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
            return buffer
        }
        defer { storage.forEach { $0.deallocate() } }
        for buffer in storage {
            vector.add(UnsafeRawBufferPointer(buffer), name: name, nameLength: nameLength, coalescing: sender.segmentationOffload)
        }
        if sender.segmentationOffload && datagrams.count > 1 {
            #expect(vector.count < datagrams.count, "the vector should have joined datagrams")
        }
        sender.send(vector)
        #expect(vector.count == 0)
        guard let receiver else { return [] }

        let batch = ReceiveBatch(capacity: 16, maxDatagramBytes: 1_472)
        var received: [[UInt8]] = []
        for _ in 0..<200 {
            guard received.count < datagrams.count else { break }
            let count = receiver.receive(into: batch)
            for entry in 0..<count { received.append(Array(batch.bytes(at: entry))) }
            if count == 0 { sleepBriefly() }
        }
        return received
    }
}
