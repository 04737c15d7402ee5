// The control socket on the event loop: accepts clients, reads request lines, hands each request
// to the handler, and writes responses and events without ever blocking the loop. A client that
// reads slowly has its requests paused; one that stops reading, or lets pushed output pass a
// bound, is dropped. Confined to the loop.

import Glibc
import Totem

/// Receives the requests of every control connection, on the loop thread.
protocol ControlRequestHandler: AnyObject {
    /// Answers `request` through `reply`, now or later (at most once).
    func handle(_ request: ControlRequest, reply: ControlReply)
}

/// The way to answer one request. Answering after the connection closed does nothing.
struct ControlReply {
    /// The request's id, echoed in the response.
    let id: JSONValue
    /// The connection the request came on; services keep it to push events to subscribers.
    /// `nil` only for replies made without a socket (`init(id:send:)`).
    let connection: ControlConnection?
    private let deliver: (JSONValue) -> Void

    /// A reply on `connection`.
    init(id: JSONValue, connection: ControlConnection) {
        self.id = id
        self.connection = connection
        deliver = { [weak connection] message in connection?.send(message) }
    }

    /// A reply handed to `send` (tests and in-process callers).
    init(id: JSONValue, send: @escaping (JSONValue) -> Void) {
        self.id = id
        connection = nil
        deliver = send
    }

    /// Sends `{"id":..,"ok":true,"result":result}`.
    func succeed(_ result: JSONValue) {
        deliver(ControlResponse.success(id: id, result: result))
    }

    /// Sends `{"id":..,"ok":false,"error":{...}}`.
    func fail(_ error: ControlError) {
        deliver(ControlResponse.failure(id: id, error: error))
    }
}

/// The listening control socket and its connections.
final class ControlServer {
    /// Bounds that keep one client from costing the daemon without limit.
    struct Limits: Sendable {
        /// Clients connected at once; more are told `too_many_connections` and closed.
        var maximumConnections = 128
        /// Output (responses and events) a client may leave unread before it is dropped.
        var maximumOutputBytes = 4 << 20
        /// Above this much unread output the daemon stops reading the client's requests (so a
        /// pipelining client that reads slowly is slowed down, not dropped) ...
        var pauseReadingAboveBytes = 1 << 20
        /// ... and reads again once the backlog is below this.
        var resumeReadingBelowBytes = 256 << 10
        /// A client whose requests are paused and who reads nothing for this long is dropped.
        var stallTimeout: Duration = .seconds(30)
        /// Longest request line.
        var maximumLineBytes = ControlProtocol.maximumLineBytes
        /// Reads per wake-up per client, of up to `readBufferBytes` each: at most 16 KiB of
        /// requests (about 130 publications, half a millisecond) between two looks at the
        /// ring's sockets and timers, so that a busy client cannot delay the token. 64 KiB held
        /// the token about 2 ms per rotation behind a publisher's requests.
        var readsPerWakeup = 1
        var readBufferBytes = 16 * 1024
    }

    let path: String
    let limits: Limits
    private let eventLoop: EventLoop
    private let logger: DaemonLogger
    private weak var handler: ControlRequestHandler?
    private let listenDescriptor: Int32
    private let socketInode: UInt64
    private var registration: EventLoop.Registration?
    let writability: WritabilityWatcher
    private var connections: [Int: ControlConnection] = [:]
    private var nextConnectionNumber = 1
    private let readBuffer: UnsafeMutableRawBufferPointer
    private(set) var droppedSlowClients = 0

    /// Binds and listens at `path` (mode 0600, or 0660 with a group), and watches it. Loop thread only.
    ///
    /// - Throws: `UnixSocket.Failure` when the socket cannot be created (a live daemon on it, a
    ///   file that is not a socket, no permission, an unknown group).
    init(path: String, group: String?, eventLoop: EventLoop, logger: DaemonLogger, limits: Limits = Limits(),
         handler: ControlRequestHandler) throws(UnixSocket.Failure) {
        eventLoop.preconditionInEventLoop()
        var groupID: gid_t?
        if let group {
            guard let id = UnixSocket.groupID(named: group) else {
                throw UnixSocket.Failure(path: path, problem: "control_socket_group \"\(group)\" is not a group on this host", code: ENOENT)
            }
            groupID = id
        }
        let (descriptor, inode) = try UnixSocket.listen(at: path, mode: group == nil ? 0o600 : 0o660, group: groupID)
        do {
            writability = try WritabilityWatcher(eventLoop: eventLoop)
        } catch {
            _ = Glibc.close(descriptor)
            UnixSocket.removeIfOwned(path, inode: inode)
            throw UnixSocket.Failure(path: path, problem: "\(error)", code: error.code)
        }
        self.path = path
        self.limits = limits
        self.eventLoop = eventLoop
        self.logger = logger
        self.handler = handler
        listenDescriptor = descriptor
        socketInode = inode
        readBuffer = .allocate(byteCount: limits.readBufferBytes, alignment: 16)
        do {
            registration = try eventLoop.register(fileDescriptor: descriptor) { [unowned self] in acceptConnections() }
        } catch {
            writability.close()
            _ = Glibc.close(descriptor)
            UnixSocket.removeIfOwned(path, inode: inode)
            throw UnixSocket.Failure(path: path, problem: "\(error)", code: error.code)
        }
    }

    deinit {
        readBuffer.deallocate()
    }

    /// Clients connected now.
    var connectionCount: Int { connections.count }

    /// Closes every connection and the listening socket, and removes the socket file.
    func close() {
        eventLoop.preconditionInEventLoop()
        guard let registration else { return }
        eventLoop.deregister(registration)
        self.registration = nil
        for connection in connections.values.sorted(by: { $0.number < $1.number }) {
            connection.close(reason: "the daemon is stopping")
        }
        _ = Glibc.close(listenDescriptor)
        UnixSocket.removeIfOwned(path, inode: socketInode)
        writability.close()
    }

    // MARK: Accepting

    private func acceptConnections() {
        // A few per wake-up; the listening socket stays readable while more wait.
        for _ in 0..<16 {
            let descriptor = accept(listenDescriptor, nil, nil)
            guard descriptor >= 0 else {
                if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                    logger.warning("control socket \(path): accept failed: \(String(cString: strerror(errno)))")
                }
                return
            }
            let flags = fcntl(descriptor, F_GETFL)
            _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            guard connections.count < limits.maximumConnections else {
                refuse(descriptor)
                continue
            }
            let number = nextConnectionNumber
            nextConnectionNumber += 1
            let connection = ControlConnection(number: number, descriptor: descriptor, server: self)
            do {
                connection.registration = try eventLoop.register(fileDescriptor: descriptor) { [unowned connection] in
                    connection.readable()
                }
            } catch {
                logger.warning("control client \(number): cannot watch its socket: \(error)")
                _ = Glibc.close(descriptor)
                continue
            }
            connections[number] = connection
            logger.debug("control client \(number) connected (\(connections.count) connected)")
        }
    }

    /// Tells a client over the limit why, in one best-effort write, and closes it.
    private func refuse(_ descriptor: Int32) {
        let error = ControlError(.tooManyConnections, "\(limits.maximumConnections) control clients are connected already; try again later")
        var line: [UInt8] = []
        ControlResponse.failure(id: .null, error: error).encode(into: &line)
        line.append(0x0A)
        _ = line.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        _ = Glibc.close(descriptor)
        logger.warning("control socket: refused a client, \(limits.maximumConnections) are connected already")
    }

    // MARK: Used by ControlConnection

    /// Reads once from `connection`'s socket into the shared buffer and feeds it to the
    /// connection. Returns what `read(2)` returned.
    func read(into connection: ControlConnection) -> Int {
        let count = Glibc.read(connection.descriptor, readBuffer.baseAddress, readBuffer.count)
        if count > 0 { connection.consume(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count])) }
        return count
    }

    /// Decodes one request line and hands it to the handler (or answers the decoding error).
    func dispatch(_ line: UnsafeBufferPointer<UInt8>, on connection: ControlConnection) {
        let request: ControlRequest
        do {
            request = try ControlRequest.decode(line: line)
        } catch {
            connection.send(ControlResponse.failure(id: error.id, error: error.error))
            return
        }
        guard let handler else {
            connection.send(ControlResponse.failure(id: request.id, error: ControlError(.unavailable, "the daemon is stopping")))
            return
        }
        handler.handle(request, reply: ControlReply(id: request.id, connection: connection))
    }

    /// Forgets a closed connection.
    func removed(_ connection: ControlConnection, reason: String) {
        connections.removeValue(forKey: connection.number)
        logger.debug("control client \(connection.number) disconnected: \(reason)")
    }

    /// Counts and logs a client dropped for too much unread output.
    func dropSlow(_ connection: ControlConnection, pending: Int) {
        droppedSlowClients += 1
        logger.warning("control client \(connection.number) dropped: \(pending) bytes of responses and events unread "
            + "(limit \(limits.maximumOutputBytes)); a client must keep reading its socket")
    }

    /// Counts and logs a client dropped for reading nothing while paused.
    func dropStalled(_ connection: ControlConnection) {
        droppedSlowClients += 1
        logger.warning("control client \(connection.number) dropped: it read nothing for \(limits.stallTimeout) while "
            + "\(connection.pendingOutputBytes) bytes of responses waited; a client must keep reading its socket")
    }

    /// The loop everything here runs on.
    var loop: EventLoop { eventLoop }
}
