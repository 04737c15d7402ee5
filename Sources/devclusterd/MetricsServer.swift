// The Prometheus endpoint's TCP side on the daemon's event loop: a non-blocking listening
// socket, a bounded number of connections, each read until its request head is complete (at
// most 8 KiB, within 5 s), answered once with `Connection: close` and closed. Writes never block
// the loop: what the socket does not take waits for it to be writable (WritabilityWatcher).
// The HTTP rules live in MetricsHTTP; the numbers in MetricsReport.

import Glibc
import Totem
import TotemRuntime

/// The listening metrics socket and its connections. Loop thread only.
final class MetricsServer {
    /// Bounds that keep scrapers (or anyone who can reach the port) from costing the daemon.
    struct Limits: Sendable {
        /// The request head (request line and headers) may be at most this long: 431 beyond.
        var maximumHeaderBytes = 8 << 10
        /// A connection must send its whole request head within this: 408 and closed otherwise.
        var readTimeout: Duration = .seconds(5)
        /// A response must be taken by the client within this after it was made: closed otherwise.
        var writeTimeout: Duration = .seconds(10)
        /// After its response, a connection's further input is read and dropped for at most this
        /// long (so that closing does not reset it before the client has read the response).
        var lingerTimeout: Duration = .seconds(2)
        /// Connections at once; more are answered 503 and closed at once.
        var maximumConnections = 16
    }

    /// Why the endpoint could not be opened.
    struct Failure: Error, CustomStringConvertible {
        var endpoint: DaemonConfiguration.Endpoint
        var problem: String

        var description: String { "[metrics] listen: \(problem)" }
    }

    let endpoint: DaemonConfiguration.Endpoint
    let limits: Limits
    private let eventLoop: EventLoop
    private let logger: DaemonLogger
    private let render: () -> [UInt8]
    private let listenDescriptor: Int32
    private var registration: EventLoop.Registration?
    private let writability: WritabilityWatcher
    private var connections: [Int32: MetricsConnection] = [:]
    private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
    /// Requests answered, by status code (for the log and the tests).
    private(set) var responses: [Int: Int] = [:]
    /// Connections closed at the read or write timeout, and refused over the connection cap.
    private(set) var timedOut = 0
    private(set) var refused = 0

    /// Binds and listens on `endpoint` and watches the socket. Loop thread only.
    ///
    /// - Parameter render: the metrics document, called on the loop thread for each GET or HEAD.
    /// - Throws: `Failure` when the address cannot be bound (in use, not an address of this host).
    init(endpoint: DaemonConfiguration.Endpoint, eventLoop: EventLoop, logger: DaemonLogger, limits: Limits = Limits(),
         render: @escaping () -> [UInt8]) throws(Failure) {
        eventLoop.preconditionInEventLoop()
        self.endpoint = endpoint
        self.limits = limits
        self.eventLoop = eventLoop
        self.logger = logger
        self.render = render
        func failure(_ call: String) -> Failure {
            Failure(endpoint: endpoint, problem: "cannot listen on \(endpoint): \(call): \(String(cString: strerror(errno)))")
        }
        let family = endpoint.address.isIPv4 ? AF_INET : AF_INET6
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            readBuffer.deallocate()
            throw failure("socket")
        }
        var one: Int32 = 1
        _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if family == AF_INET6 { _ = setsockopt(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
        let bound = Self.withAddress(endpoint) { Glibc.bind(descriptor, $0, $1) }
        guard bound == 0, listen(descriptor, 64) == 0 else {
            let error = failure(bound == 0 ? "listen" : "bind")
            _ = Glibc.close(descriptor)
            readBuffer.deallocate()
            throw error
        }
        do {
            writability = try WritabilityWatcher(eventLoop: eventLoop)
        } catch {
            _ = Glibc.close(descriptor)
            readBuffer.deallocate()
            throw Failure(endpoint: endpoint, problem: "cannot listen on \(endpoint): \(error)")
        }
        listenDescriptor = descriptor
        do {
            registration = try eventLoop.register(fileDescriptor: descriptor) { [unowned self] in acceptConnections() }
        } catch {
            writability.close()
            _ = Glibc.close(descriptor)
            readBuffer.deallocate()
            throw Failure(endpoint: endpoint, problem: "cannot listen on \(endpoint): \(error)")
        }
    }

    deinit {
        readBuffer.deallocate()
    }

    /// Connections open now.
    var connectionCount: Int { connections.count }

    /// Closes every connection and the listening socket.
    func close() {
        eventLoop.preconditionInEventLoop()
        guard let registration else { return }
        eventLoop.deregister(registration)
        self.registration = nil
        for descriptor in connections.keys.sorted() { finish(descriptor) }
        _ = Glibc.close(listenDescriptor)
        writability.close()
    }

    private static func withAddress<Result>(_ endpoint: DaemonConfiguration.Endpoint,
                                            _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        let bytes = endpoint.address.bytes
        if endpoint.address.isIPv4 {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = endpoint.port.bigEndian
            withUnsafeMutableBytes(of: &address.sin_addr) { for (index, byte) in bytes.enumerated() { $0[index] = byte } }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = endpoint.port.bigEndian
        withUnsafeMutableBytes(of: &address.sin6_addr) { for (index, byte) in bytes.enumerated() { $0[index] = byte } }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
    }

    // MARK: Connections

    private func acceptConnections() {
        // A few per wake-up; the listening socket stays readable while more wait.
        for _ in 0..<16 {
            let descriptor = accept(listenDescriptor, nil, nil)
            guard descriptor >= 0 else {
                if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED {
                    logger.warning("metrics \(endpoint): accept failed: \(String(cString: strerror(errno)))")
                }
                return
            }
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            guard connections.count < limits.maximumConnections else {
                refused += 1
                let response = MetricsHTTP.Response.error(503, "Service Unavailable",
                    "\(limits.maximumConnections) metrics connections are open already; try again later")
                let bytes = response.encoded
                _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
                _ = Glibc.close(descriptor)
                continue
            }
            let connection = MetricsConnection(descriptor: descriptor)
            do {
                connection.registration = try eventLoop.register(fileDescriptor: descriptor) { [unowned self] in readable(descriptor) }
            } catch {
                _ = Glibc.close(descriptor)
                continue
            }
            connection.timer = eventLoop.schedule(at: MonotonicClock.now() + limits.readTimeout) { [unowned self] in expire(descriptor) }
            connections[descriptor] = connection
        }
    }

    private func readable(_ descriptor: Int32) {
        guard let connection = connections[descriptor] else { return }
        let count = Glibc.read(descriptor, readBuffer.baseAddress, readBuffer.count)
        if count < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
            finish(descriptor)
            return
        }
        if count == 0 {
            // The client closed its side before a whole request: nothing to answer.
            finish(descriptor)
            return
        }
        // Keep no more than the bound (plus one byte, to tell "too large" from "exactly full").
        let room = max(0, limits.maximumHeaderBytes + 1 - connection.input.count)
        connection.input.append(contentsOf: UnsafeRawBufferPointer(rebasing: readBuffer[0..<min(count, room)]))
        let head = MetricsHTTP.examine(connection.input[...], maximumHeaderBytes: limits.maximumHeaderBytes,
                                       searchedBytes: connection.searchedBytes)
        guard let response = MetricsHTTP.respond(to: head, render: render) else {
            connection.searchedBytes = connection.input.count
            return
        }
        answer(connection, with: response)
    }

    /// Stops reading, queues the response and writes what the socket takes.
    private func answer(_ connection: MetricsConnection, with response: MetricsHTTP.Response) {
        responses[response.status, default: 0] += 1
        if let registration = connection.registration { eventLoop.deregister(registration) }
        connection.registration = nil
        connection.input = []
        connection.output = response.encoded
        if let timer = connection.timer { eventLoop.removeTimer(timer) }
        let descriptor = connection.descriptor
        connection.timer = eventLoop.schedule(at: MonotonicClock.now() + limits.writeTimeout) { [unowned self] in expire(descriptor) }
        flush(descriptor)
    }

    private func flush(_ descriptor: Int32) {
        guard let connection = connections[descriptor] else { return }
        for _ in 0..<64 where connection.outputHead < connection.output.count {
            let sent = connection.output.withUnsafeBytes { buffer in
                send(descriptor, buffer.baseAddress! + connection.outputHead, buffer.count - connection.outputHead,
                     Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if sent > 0 {
                connection.outputHead += sent
            } else if sent < 0 && errno == EINTR {
                continue
            } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                writability.watch(descriptor) { [unowned self] in flush(descriptor) }
                return
            } else {
                finish(descriptor)
                return
            }
        }
        guard connection.outputHead >= connection.output.count else {
            writability.watch(descriptor) { [unowned self] in flush(descriptor) }
            return
        }
        // All sent: no more from us, and the client sees the end of the response. Closing now
        // with request bytes still unread (an oversized head, a body) would make the kernel
        // reset the connection, which can destroy the response before the client reads it; so
        // what the client still sends is read and dropped until it closes, for a short while.
        writability.unwatch(descriptor)
        _ = shutdown(descriptor, Int32(SHUT_WR))
        if let timer = connection.timer { eventLoop.removeTimer(timer) }
        connection.timer = eventLoop.schedule(at: MonotonicClock.now() + limits.lingerTimeout) { [unowned self] in finish(descriptor) }
        do {
            connection.registration = try eventLoop.register(fileDescriptor: descriptor) { [unowned self] in discard(descriptor) }
        } catch {
            finish(descriptor)
        }
    }

    /// Reads and drops what a client sends after its response, until it closes.
    private func discard(_ descriptor: Int32) {
        guard connections[descriptor] != nil else { return }
        let count = Glibc.read(descriptor, readBuffer.baseAddress, readBuffer.count)
        if count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) { finish(descriptor) }
    }

    /// The read or write deadline passed: a 408 if no request came (best effort), then close.
    private func expire(_ descriptor: Int32) {
        guard let connection = connections[descriptor] else { return }
        // The timer fired and is gone (one-shot): `finish` must not remove it again.
        connection.timer = nil
        timedOut += 1
        if connection.output.isEmpty {
            let bytes = MetricsHTTP.Response.error(408, "Request Timeout",
                "no complete request within \(limits.readTimeout)").encoded
            _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
            responses[408, default: 0] += 1
        }
        finish(descriptor)
    }

    private func finish(_ descriptor: Int32) {
        guard let connection = connections.removeValue(forKey: descriptor) else { return }
        if let registration = connection.registration { eventLoop.deregister(registration) }
        if let timer = connection.timer { eventLoop.removeTimer(timer) }
        writability.unwatch(descriptor)
        _ = Glibc.close(descriptor)
    }
}

/// One metrics client: its request bytes, then its response. Owned by MetricsServer.
private final class MetricsConnection {
    let descriptor: Int32
    var registration: EventLoop.Registration?
    var timer: EventLoop.TimerID?
    var input: [UInt8] = []
    /// Bytes of `input` already searched for the end of the head.
    var searchedBytes = 0
    var output: [UInt8] = []
    var outputHead = 0

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }
}
