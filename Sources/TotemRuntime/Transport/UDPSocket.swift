// A non-blocking UDP socket: options (buffers, multicast), bind, batched send and receive, and
// the counters of what went wrong. Owns one file descriptor; knows nothing of Totem packets.

import CSystem
import Glibc
import Totem

/// A non-blocking IPv4 or IPv6 UDP socket with batched I/O (`recvmmsg`, `sendmmsg`).
///
/// Operating errors of the data path are counted, never thrown: a full send buffer (`EAGAIN`)
/// drops the datagram (the protocol retransmits), a truncated datagram is dropped, and the
/// kernel's own receive-queue drops are read from `SO_RXQ_OVFL` ancillary data when enabled.
/// Set-up errors (bind, options) are thrown as `SystemError`.
///
/// Confined to the event-loop thread that owns it; deliberately not `Sendable`.
public final class UDPSocket {
    /// What happened on this socket, for statistics.
    public struct Counters: Sendable, Equatable {
        public var datagramsReceived = 0
        public var bytesReceived = 0
        /// Datagrams longer than the receive buffer allows, dropped.
        public var truncatedDatagrams = 0
        /// The kernel's count of datagrams it dropped on this socket's full receive queue
        /// (SO_RXQ_OVFL), as carried by the last datagram received; 0 when the option is
        /// unavailable. The kernel stamps each datagram with the count at the time it was
        /// queued, so drops show up with the next datagram that gets through.
        public var kernelReceiveDrops = 0
        /// Receive calls that failed with something other than "nothing to read".
        public var receiveErrors = 0
        public var datagramsSent = 0
        /// Of `datagramsSent`, those that left in segmented runs (UDP_SEGMENT).
        public var segmentedDatagramsSent = 0
        public var bytesSent = 0
        /// Datagrams dropped because the send buffer was full (`EAGAIN`).
        public var sendWouldBlock = 0
        /// Datagrams the kernel refused for another reason (unreachable, no route, ...).
        public var sendErrors = 0
        /// The `errno` of the last failed send, 0 if none.
        public var lastSendError: Int32 = 0
        /// ICMP errors the kernel reported for datagrams sent (with `enableUnreachableReports()`).
        public var unreachableReports = 0

        public init() {}
    }

    /// The address family of the socket.
    public let family: SocketAddress.Family
    /// The file descriptor; -1 after `close()`.
    public private(set) var fileDescriptor: Int32
    public private(set) var counters = Counters()
    /// Whether the kernel attaches its drop counter to received datagrams.
    public private(set) var reportsKernelDrops = false
    /// Whether `send(_:)` may hand the kernel runs of datagrams to segment (UDP_SEGMENT); see
    /// `enableSegmentationOffload()`. Turned off for good when the kernel refuses a run.
    public private(set) var segmentationOffload = false
    /// The `errno` with which the kernel refused a segmented run, 0 if it never did.
    public private(set) var segmentationOffloadRefusal: Int32 = 0
    private var segmentationNoticePending = false
    /// Whether received messages may carry several datagrams (see `enableReceiveCoalescing()`).
    public private(set) var receivesCoalesced = false
    /// Whether the kernel reports ICMP errors for datagrams sent (see `enableUnreachableReports()`).
    public private(set) var reportsUnreachable = false
    /// Destinations the kernel reported "port unreachable" for, since the last take.
    private var unreachableDestinations: [SocketAddress] = []
    /// Whether `unreachableDestinations` has entries: one load for the runtime after each batch.
    public private(set) var hasUnreachableDestinations = false

    /// Opens a non-blocking, close-on-exec UDP socket.
    public init(family: SocketAddress.Family) throws(SystemError) {
        self.family = family
        let domain = family == .ipv4 ? AF_INET : AF_INET6
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        fileDescriptor = socket(domain, type, 0)
        guard fileDescriptor >= 0 else { throw .last("socket") }
    }

    deinit {
        close()
    }

    /// Closes the socket; later calls do nothing.
    public func close() {
        guard fileDescriptor >= 0 else { return }
        _ = Glibc.close(fileDescriptor)
        fileDescriptor = -1
    }

    // MARK: Set-up

    /// Binds to `address` (use port 0 for an ephemeral port).
    public func bind(to address: SocketAddress) throws(SystemError) {
        precondition(address.family == family, "binding a \(family) socket to \(address)")
        let result = address.withSocketAddress { Glibc.bind(fileDescriptor, $0, $1) }
        guard result == 0 else { throw .last("bind \(address)") }
    }

    /// The address the socket is bound to (with the port the kernel chose for port 0).
    public func localAddress() throws(SystemError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fileDescriptor, $0, &length) }
        }
        guard result == 0 else { throw .last("getsockname") }
        guard let address = withUnsafePointer(to: &storage, { SocketAddress(UnsafeRawPointer($0), length: Int(length)) }) else {
            throw SystemError("getsockname", code: EAFNOSUPPORT)
        }
        return address
    }

    /// Sets `SO_REUSEADDR`: several sockets may then bind the same multicast group and port.
    public func setReuseAddress(_ enabled: Bool) throws(SystemError) {
        try setOption(SOL_SOCKET, SO_REUSEADDR, Int32(enabled ? 1 : 0), name: "SO_REUSEADDR")
    }

    /// Asks for a receive buffer of `bytes` and returns what the kernel reports afterwards.
    ///
    /// The kernel caps the request at `net.core.rmem_max` and reports twice the granted size
    /// (it counts its bookkeeping); the caller logs the figure so a too-small cap is visible.
    @discardableResult
    public func setReceiveBufferSize(_ bytes: Int) throws(SystemError) -> Int {
        try setOption(SOL_SOCKET, SO_RCVBUF, Int32(clamping: bytes), name: "SO_RCVBUF")
        return Int(try getOption(SOL_SOCKET, SO_RCVBUF, name: "SO_RCVBUF"))
    }

    /// Asks for a send buffer of `bytes` and returns what the kernel reports afterwards.
    @discardableResult
    public func setSendBufferSize(_ bytes: Int) throws(SystemError) -> Int {
        try setOption(SOL_SOCKET, SO_SNDBUF, Int32(clamping: bytes), name: "SO_SNDBUF")
        return Int(try getOption(SOL_SOCKET, SO_SNDBUF, name: "SO_SNDBUF"))
    }

    /// Asks the kernel to attach its receive-queue drop counter (SO_RXQ_OVFL) to every
    /// datagram. Returns false, and changes nothing, where the option is unavailable.
    @discardableResult
    public func enableKernelDropCounter() -> Bool {
        let option = csystem_so_rxq_ovfl()
        guard option >= 0 else { return false }
        var enabled: Int32 = 1
        let result = setsockopt(fileDescriptor, SOL_SOCKET, option, &enabled, socklen_t(MemoryLayout<Int32>.size))
        reportsKernelDrops = result == 0
        return reportsKernelDrops
    }

    /// Lets `send(_:)` pass runs of equal-sized datagrams to one address as single segmented
    /// sends, if this kernel knows UDP_SEGMENT (Linux 4.18+).
    ///
    /// - Returns: whether segmentation is on.
    @discardableResult
    public func enableSegmentationOffload() -> Bool {
        segmentationOffload = csystem_udp_segment_supported(fileDescriptor) != 0
        return segmentationOffload
    }

    /// "segmentation offload on", "unavailable" (this kernel lacks it) or "off" (not wanted),
    /// for set-up reports.
    public func segmentationReport(wanted: Bool) -> String {
        "segmentation offload \(segmentationOffload ? "on" : wanted ? "unavailable" : "off")"
    }

    /// "receive coalescing on", "unavailable" or "off", for set-up reports.
    public func coalescingReport(wanted: Bool) -> String {
        "receive coalescing \(receivesCoalesced ? "on" : wanted ? "unavailable" : "off")"
    }

    /// Lets the kernel queue runs of segmented datagrams whole on this socket (UDP_GRO), for a
    /// `ReceiveBatch` made with `coalesced`. Needs Linux 5.0+.
    ///
    /// - Returns: whether coalescing is on.
    @discardableResult
    public func enableReceiveCoalescing() -> Bool {
        receivesCoalesced = csystem_enable_udp_gro(fileDescriptor) == 0
        return receivesCoalesced
    }

    /// Has the kernel report ICMP errors for datagrams this socket sends (IP_RECVERR): a
    /// "port unreachable" says that nothing listens at the destination any more (its daemon is
    /// gone, its host is up), and `takeUnreachableDestinations()` returns it.
    ///
    /// With the option on, a queued error also makes the socket's next call fail once with it
    /// (ECONNREFUSED for port unreachable) whatever that call is about; `send` and `receive`
    /// then read the queue and try again, so no datagram is lost to another's error. An entry
    /// left in the queue keeps the socket ready for epoll, so `receive` also reads the queue
    /// whenever it finds no datagram.
    ///
    /// - Returns: whether the kernel accepted the option.
    @discardableResult
    public func enableUnreachableReports() -> Bool {
        reportsUnreachable = csystem_enable_error_queue(fileDescriptor, family == .ipv4 ? AF_INET : AF_INET6) == 0
        return reportsUnreachable
    }

    /// The destinations reported unreachable since the last call, oldest first (each once per
    /// report; the same address may appear several times).
    public func takeUnreachableDestinations() -> [SocketAddress] {
        guard hasUnreachableDestinations else { return [] }
        defer {
            unreachableDestinations.removeAll()
            hasUnreachableDestinations = false
        }
        return unreachableDestinations
    }

    /// Reads the error queue (a bounded number of entries; the kernel keeps reporting the rest)
    /// and notes the destinations of "port unreachable" reports. Reading it also clears the
    /// pending error. Returns the number of entries read.
    @discardableResult
    private func readErrorQueue() -> Int {
        var address = sockaddr_storage()
        var length = socklen_t(0)
        var read = 0
        for _ in 0..<Self.errorQueueEntriesPerRead {
            let result = csystem_read_port_unreachable(fileDescriptor, &address, &length)
            if result < 0 { break }
            read += 1
            counters.unreachableReports += 1
            guard result == 1, let destination = withUnsafeBytes(of: &address, { SocketAddress($0.baseAddress!, length: Int(length)) })
            else { continue }
            // A burst of token retransmissions to a dead node must not grow this without bound.
            if unreachableDestinations.count < Self.errorQueueEntriesPerRead { unreachableDestinations.append(destination) }
            hasUnreachableDestinations = true
        }
        return read
    }

    private static let errorQueueEntriesPerRead = 64

    /// A line for the log if the kernel refused a segmented run since the last call, else nil.
    public func takeSegmentationNotice() -> String? {
        guard segmentationNoticePending else { return nil }
        segmentationNoticePending = false
        return "the kernel refused a segmented send (\(String(cString: strerror(segmentationOffloadRefusal)))); "
            + "segmentation offload is off for this socket, datagrams go one by one"
    }

    /// Joins multicast `group` on the interface that carries `interfaceAddress`.
    public func joinMulticastGroup(_ group: SocketAddress, interfaceAddress: SocketAddress) throws(SystemError) {
        precondition(group.family == family && interfaceAddress.family == family, "family mismatch joining \(group)")
        switch family {
        case .ipv4:
            var request = ip_mreqn()
            request.imr_multiaddr = group.ipv4Address
            request.imr_address = interfaceAddress.ipv4Address
            request.imr_ifindex = 0
            try setOption(Int32(IPPROTO_IP), IP_ADD_MEMBERSHIP, request, name: "IP_ADD_MEMBERSHIP \(group.ip)")
        case .ipv6:
            var request = ipv6_mreq()
            request.ipv6mr_multiaddr = group.ipv6Address
            request.ipv6mr_interface = try Self.interfaceIndex(of: interfaceAddress)
            try setOption(Int32(IPPROTO_IPV6), IPV6_ADD_MEMBERSHIP, request, name: "IPV6_JOIN_GROUP \(group.ip)")
        }
    }

    /// Sends multicasts out of the interface that carries `interfaceAddress`.
    public func setMulticastInterface(_ interfaceAddress: SocketAddress) throws(SystemError) {
        precondition(interfaceAddress.family == family, "family mismatch for \(interfaceAddress)")
        switch family {
        case .ipv4:
            var request = ip_mreqn()
            request.imr_address = interfaceAddress.ipv4Address
            try setOption(Int32(IPPROTO_IP), IP_MULTICAST_IF, request, name: "IP_MULTICAST_IF \(interfaceAddress.ip)")
        case .ipv6:
            let index = Int32(bitPattern: try Self.interfaceIndex(of: interfaceAddress))
            try setOption(Int32(IPPROTO_IPV6), IPV6_MULTICAST_IF, index, name: "IPV6_MULTICAST_IF \(interfaceAddress.ip)")
        }
    }

    /// Whether this host's own sockets receive the multicasts sent from this socket.
    public func setMulticastLoop(_ enabled: Bool) throws(SystemError) {
        let value = Int32(enabled ? 1 : 0)
        switch family {
        case .ipv4: try setOption(Int32(IPPROTO_IP), IP_MULTICAST_LOOP, value, name: "IP_MULTICAST_LOOP")
        case .ipv6: try setOption(Int32(IPPROTO_IPV6), IPV6_MULTICAST_LOOP, value, name: "IPV6_MULTICAST_LOOP")
        }
    }

    /// How many routers a multicast may cross (1: the local network only).
    public func setMulticastTTL(_ ttl: Int) throws(SystemError) {
        precondition((0...255).contains(ttl), "multicast TTL \(ttl) outside 0...255")
        let value = Int32(ttl)
        switch family {
        case .ipv4: try setOption(Int32(IPPROTO_IP), IP_MULTICAST_TTL, value, name: "IP_MULTICAST_TTL")
        case .ipv6: try setOption(Int32(IPPROTO_IPV6), IPV6_MULTICAST_HOPS, value, name: "IPV6_MULTICAST_HOPS")
        }
    }

    // MARK: Data path

    /// Sends one datagram to `address`. Failures are counted, not thrown.
    ///
    /// - Returns: whether the kernel accepted the datagram.
    @discardableResult
    public func send(_ datagram: UnsafeRawBufferPointer, to address: SocketAddress) -> Bool {
        address.withSocketAddress { name, length in send(datagram, name: name, length: length) }
    }

    /// One `sendto`, repeated once if it met an error queued for another datagram.
    @discardableResult
    private func send(_ datagram: UnsafeRawBufferPointer, name: UnsafePointer<sockaddr>, length: socklen_t) -> Bool {
        for attempt in 0..<2 {
            let result = sendto(fileDescriptor, datagram.baseAddress, datagram.count, Int32(MSG_DONTWAIT), name, length)
            if result >= 0 {
                counters.datagramsSent += 1
                counters.bytesSent += result
                return true
            }
            let error = errno
            if attempt == 0 && takesQueuedError(error) { continue }
            countSendFailure(error, datagrams: 1)
            return false
        }
        return false
    }

    /// Whether a call that failed with `error` met an error the kernel had queued (see
    /// `enableUnreachableReports()`): usually an earlier datagram's ICMP report. The queue is
    /// read; if it held anything, the call is worth repeating once.
    private func takesQueuedError(_ error: Int32) -> Bool {
        guard reportsUnreachable, error != EAGAIN, error != EWOULDBLOCK, error != EINTR else { return false }
        return readErrorQueue() > 0
    }

    /// Sends every entry of `vector` in order with as few `sendmmsg` calls as possible, then
    /// empties it. A full send buffer drops the rest of the vector; any other failure drops
    /// only the entry it concerns. Both are counted per datagram.
    ///
    /// An entry carrying a segmented run that the kernel refuses as such
    /// (`refusesSegmentation(_:)`) turns segmentation off for this socket and is sent again one
    /// datagram at a time, so a route that cannot take segmented packets costs one refused
    /// call, not a datagram.
    func send(_ vector: SendVector) {
        var start = 0
        var attempts = 0
        var repeatedEntry = -1
        // Each iteration sends at least one entry or skips one, so `count + 1` calls suffice;
        // the extra bound only guards against a kernel that keeps answering EINTR.
        while start < vector.count && attempts <= vector.count + 8 {
            attempts += 1
            let sent = csystem_sendmmsg(
                fileDescriptor, vector.headers + start, UInt32(vector.count - start), Int32(MSG_DONTWAIT))
            if sent > 0 {
                for index in start..<start + Int(sent) {
                    counters.bytesSent += Int(vector.headers[index].msg_len)
                    let segments = vector.segmentCount(at: index)
                    counters.datagramsSent += segments
                    if segments > 1 { counters.segmentedDatagramsSent += segments }
                }
                start += Int(sent)
                continue
            }
            let error = errno
            if error == EINTR { continue }
            // Each entry is repeated at most once for a queued error.
            if repeatedEntry != start && takesQueuedError(error) {
                repeatedEntry = start
                continue
            }
            if error == EAGAIN || error == EWOULDBLOCK {
                var remaining = 0
                for index in start..<vector.count { remaining += vector.segmentCount(at: index) }
                countSendFailure(error, datagrams: remaining)
                break
            }
            // The first remaining entry failed (for example no route to its address).
            if vector.segmentCount(at: start) > 1 && Self.refusesSegmentation(error) {
                segmentationOffload = false
                segmentationOffloadRefusal = error
                segmentationNoticePending = true
                sendOneByOne(vector, entry: start)
            } else {
                countSendFailure(error, datagrams: vector.segmentCount(at: start))
            }
            start += 1
        }
        vector.removeAll()
    }

    /// Whether a failed segmented send says "not as a segmented run" rather than "not at all":
    /// `EIO` (the interface cannot checksum it), `EMSGSIZE` or `EINVAL` (a segment is larger than
    /// the route's MTU, or the socket sends without checksums), `EOPNOTSUPP`.
    private static func refusesSegmentation(_ error: Int32) -> Bool {
        error == EIO || error == EINVAL || error == EMSGSIZE || error == EOPNOTSUPP
    }

    /// Sends the datagrams of one entry of `vector` with one call each.
    private func sendOneByOne(_ vector: SendVector, entry index: Int) {
        let header = vector.headers[index].msg_hdr
        for segment in 0..<vector.segmentCount(at: index) {
            send(vector.datagram(at: index, segment: segment),
                 name: header.msg_name.assumingMemoryBound(to: sockaddr.self), length: header.msg_namelen)
        }
    }

    /// Receives up to `batch.capacity` messages without blocking and splits them into
    /// datagrams (see `ReceiveBatch`). Truncated datagrams are marked dropped in the batch and
    /// counted.
    ///
    /// - Returns: the number of datagram entries filled (0 when nothing was waiting).
    public func receive(into batch: ReceiveBatch) -> Int {
        // A coalesced message would not fit a plain batch's buffers and would be lost whole.
        precondition(!receivesCoalesced || batch.coalesced, "a socket with UDP_GRO on needs a coalesced ReceiveBatch")
        batch.prepare()
        var received = csystem_recvmmsg(fileDescriptor, batch.headers, UInt32(batch.capacity), Int32(MSG_DONTWAIT))
        var error = received < 0 ? errno : 0
        if received < 0 && reportsUnreachable {
            if error == EAGAIN || error == EWOULDBLOCK {
                // Woken with nothing to read: a queued error that left no pending one (a local
                // error) keeps the socket reported as ready until it is read.
                readErrorQueue()
            } else if takesQueuedError(error) {
                received = csystem_recvmmsg(fileDescriptor, batch.headers, UInt32(batch.capacity), Int32(MSG_DONTWAIT))
                error = received < 0 ? errno : 0
            }
        }
        guard received > 0 else {
            if received < 0 && error != EAGAIN && error != EWOULDBLOCK && error != EINTR { counters.receiveErrors += 1 }
            return 0
        }
        batch.split(messages: Int(received))
        counters.truncatedDatagrams += batch.overflowDatagrams
        guard batch.count > 0 else { return 0 }
        for index in 0..<batch.count {
            counters.datagramsReceived += 1
            counters.bytesReceived += batch.length(at: index)
            if batch.isTruncated(at: index) {
                counters.truncatedDatagrams += 1
                batch.drop(at: index)
            }
        }
        if reportsKernelDrops, let drops = batch.receiveQueueOverflowCount(at: batch.count - 1) {
            counters.kernelReceiveDrops = Int(drops)
        }
        return batch.count
    }

    private func countSendFailure(_ error: Int32, datagrams: Int) {
        if error == EAGAIN || error == EWOULDBLOCK {
            counters.sendWouldBlock += datagrams
        } else {
            counters.sendErrors += datagrams
            counters.lastSendError = error
        }
    }

    // MARK: Helpers

    /// Sets a socket option whose value is a plain C structure or integer.
    private func setOption<Value>(_ level: Int32, _ option: Int32, _ value: Value, name: String) throws(SystemError) {
        let result = withUnsafeBytes(of: value) { bytes in
            setsockopt(fileDescriptor, level, option, bytes.baseAddress, socklen_t(bytes.count))
        }
        guard result == 0 else { throw .last("setsockopt \(name)") }
    }

    private func getOption(_ level: Int32, _ option: Int32, name: String) throws(SystemError) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fileDescriptor, level, option, &value, &length) == 0 else { throw .last("getsockopt \(name)") }
        return value
    }

    /// The index of the interface that has `address` assigned (IPv6 multicast needs it).
    static func interfaceIndex(of address: SocketAddress) throws(SystemError) -> UInt32 {
        if address.scopeID != 0 { return address.scopeID }
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { throw .last("getifaddrs") }
        defer { freeifaddrs(list) }
        var entry = list
        var visited = 0
        while let current = entry, visited < 10_000 {
            visited += 1
            entry = current.pointee.ifa_next
            guard let raw = current.pointee.ifa_addr,
                let candidate = SocketAddress(UnsafeRawPointer(raw), length: MemoryLayout<sockaddr_storage>.size),
                candidate.hasSameIP(as: address),
                let name = current.pointee.ifa_name
            else { continue }
            let index = if_nametoindex(name)
            if index != 0 { return index }
        }
        throw SystemError("no interface has address \(address.ip)", code: EADDRNOTAVAIL)
    }
}
