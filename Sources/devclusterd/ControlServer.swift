// The control socket on the event loop: accepts clients (checking who they are against the
// `[control]` allow-list and the connection caps), reads request lines, hands each request to the
// handler, and writes responses and events without ever blocking the loop. A client that reads
// slowly has its requests paused; one that stops reading, lets pushed output pass a bound, or sits
// idle without a subscription, is dropped. Confined to the loop.

import Glibc
import Totem
import TotemRuntime

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
    var connection: ControlConnection? {
        if case .connection(let connection) = destination { connection } else { nil }
    }
    private let destination: Destination

    /// Where the answer goes. A strong reference to the connection: a reply lives until it is
    /// answered (a ping's, at most its timeout), and answering a closed connection does nothing.
    /// No weak reference: one would give the connection a side table, and every retain and
    /// release of it would then take the runtime's slow path (measured, Benchmarks/ANALYSIS.md).
    private enum Destination {
        case connection(ControlConnection)
        case handler((JSONValue) -> Void)
    }

    /// A reply on `connection`.
    init(id: JSONValue, connection: ControlConnection) {
        self.id = id
        destination = .connection(connection)
    }

    /// A reply handed to `send` (tests and in-process callers).
    init(id: JSONValue, send: @escaping (JSONValue) -> Void) {
        self.id = id
        destination = .handler(send)
    }

    /// Sends `{"id":..,"ok":true,"result":result}`.
    func succeed(_ result: JSONValue) {
        deliver(ControlResponse.success(id: id, result: result))
    }

    /// Sends `{"id":..,"ok":false,"error":{...}}`.
    func fail(_ error: ControlError) {
        deliver(ControlResponse.failure(id: id, error: error))
    }

    private func deliver(_ message: JSONValue) {
        switch destination {
        case .connection(let connection): connection.send(message)
        case .handler(let send): send(message)
        }
    }
}

/// The listening control socket and its connections.
final class ControlServer {
    /// Bounds that keep one client from costing the daemon without limit.
    struct Limits: Sendable {
        /// Clients connected at once; more are told `too_many_connections` and closed.
        var maximumConnections = 128
        /// Clients of one user id at once; root and the daemon's user are not counted against it.
        var maximumConnectionsPerUser = 32
        /// Of `maximumConnections`, the slots only root and the daemon's user may take, so that
        /// other users' clients can never lock the operator's CLI out.
        var reservedForPrivilegedConnections = 8
        /// A client that has not subscribed to anything (and is not held) and sends nothing for
        /// this long is disconnected; `nil`: never.
        var idleTimeout: Duration? = .seconds(300)
        /// Refused connections are logged at most once per this period, with a count.
        var refusalLogPeriod: Duration = .seconds(10)
        /// Output (responses and events) a client may leave unread before it is dropped.
        var maximumOutputBytes = 4 << 20
        /// Above this much unread output the daemon stops reading the client's requests (so a
        /// pipelining client that reads slowly is slowed down, not dropped) ...
        var pauseReadingAboveBytes = 1 << 20
        /// ... and reads again once the backlog is below this.
        var resumeReadingBelowBytes = 256 << 10
        /// A client whose requests are paused and who reads nothing for this long is dropped.
        var stallTimeout: Duration = .seconds(30)
        /// The limits of `[control]` on top of the other defaults.
        init(_ control: DaemonConfiguration.Control) {
            applying(control)
        }

        init() {}

        /// Takes the connection caps and the idle timeout from `[control]`.
        mutating func applying(_ control: DaemonConfiguration.Control) {
            maximumConnections = control.maximumConnections
            maximumConnectionsPerUser = control.maximumConnectionsPerUser
            reservedForPrivilegedConnections = min(8, control.maximumConnections / 4)
            idleTimeout = control.idleTimeoutSeconds == 0 ? nil : .seconds(control.idleTimeoutSeconds)
        }

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
    private(set) var limits: Limits
    private let eventLoop: EventLoop
    private let logger: DaemonLogger
    /// Held strongly until `close` (a weak reference would slow every retain of the handler).
    private var handler: ControlRequestHandler?
    private let listenDescriptor: Int32
    private let socketInode: UInt64
    private var registration: EventLoop.Registration?
    let writability: WritabilityWatcher
    private var connections: [Int: ControlConnection] = [:]
    private var nextConnectionNumber = 1
    private let readBuffer: UnsafeMutableRawBufferPointer
    private(set) var droppedSlowClients = 0
    /// Who may do what (replaced on reload).
    var access: ControlAccess
    /// Connected clients per user id (for the per-user cap).
    private var connectionsPerUser: [UInt32: Int] = [:]
    /// Refusals not yet logged, by reason, and when the last refusal line was written.
    private var refusals = RefusalLog()
    private var refusalTimer: EventLoop.TimerID?
    private var idleTimer: EventLoop.TimerID?
    /// Connections refused so far (any reason), and disconnected for idleness.
    private(set) var refusedConnections = 0
    private(set) var idleDisconnections = 0

    /// The socket file's mode: 0600 when only root and the daemon's user may use it, 0660 with
    /// `control_socket_group`, 0666 when `[control]` allows other users and no group narrows
    /// who reaches the socket (every caller is then checked by its credentials).
    static func socketMode(group: String?, allowsOtherUsers: Bool) -> mode_t {
        if group != nil { return 0o660 }
        return allowsOtherUsers ? 0o666 : 0o600
    }

    /// Binds and listens at `path` (mode from `socketMode`), and watches it. Loop thread only.
    ///
    /// - Throws: `UnixSocket.Failure` when the socket cannot be created (a live daemon on it, a
    ///   file that is not a socket, no permission, an unknown group).
    init(path: String, group: String?, access: ControlAccess = ControlAccess(control: .init(), daemonUserID: UInt32(geteuid())),
         eventLoop: EventLoop, logger: DaemonLogger, limits: Limits = Limits(),
         handler: ControlRequestHandler) throws(UnixSocket.Failure) {
        eventLoop.preconditionInEventLoop()
        var groupID: gid_t?
        if let group {
            guard let id = UnixSocket.groupID(named: group) else {
                throw UnixSocket.Failure(path: path, problem: "control_socket_group \"\(group)\" is not a group on this host", code: ENOENT)
            }
            groupID = id
        }
        let mode = Self.socketMode(group: group, allowsOtherUsers: access.control.allowsOtherUsers)
        let (descriptor, inode) = try UnixSocket.listen(at: path, mode: mode, group: groupID)
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
        self.access = access
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
        if let idleTimeout = limits.idleTimeout {
            let timer = eventLoop.makeTimer { [unowned self] in disconnectIdleClients() }
            idleTimer = timer
            eventLoop.arm(timer, at: MonotonicClock.now() + Self.idleSweepPeriod(idleTimeout))
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
        if let idleTimer { eventLoop.removeTimer(idleTimer) }
        idleTimer = nil
        if let refusalTimer { eventLoop.removeTimer(refusalTimer) }
        refusalTimer = nil
        logRefusals()
        for connection in connections.values.sorted(by: { $0.number < $1.number }) {
            connection.close(reason: "the daemon is stopping")
        }
        _ = Glibc.close(listenDescriptor)
        UnixSocket.removeIfOwned(path, inode: socketInode)
        writability.close()
        handler = nil
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
            guard let peer = UnixSocket.peerCredentials(of: descriptor) else {
                refuse(descriptor, ControlError(.permissionDenied, "the daemon cannot tell who is connecting (SO_PEERCRED failed)"),
                       reason: "unidentified")
                continue
            }
            if let (error, reason) = admissionRefusal(for: peer) {
                refuse(descriptor, error, reason: reason)
                continue
            }
            let number = nextConnectionNumber
            nextConnectionNumber += 1
            let connection = ControlConnection(number: number, descriptor: descriptor, peer: peer, server: self)
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
            connectionsPerUser[peer.userID, default: 0] += 1
            logger.debug("control client \(number) connected: \(peer), \(access.role(of: peer)?.rawValue ?? "no role") "
                + "(\(connections.count) connected)")
        }
    }

    /// Why `peer` may not connect now, or `nil`: not on the allow-list, over its user's cap,
    /// or no slot left for it (the last slots are kept for root and the daemon's user).
    private func admissionRefusal(for peer: PeerCredentials) -> (ControlError, String)? {
        guard access.role(of: peer) != nil else {
            let user = UnixSocket.describeUser(peer.userID)
            return (ControlError(.permissionDenied, "\(user) may not use this control socket; the daemon's "
                + "configuration allows it in [control] (users, groups, read_only_users, read_only_groups)"),
                    "uid \(peer.userID) not allowed")
        }
        let isPrivileged = access.isPrivileged(peer)
        let available = isPrivileged ? limits.maximumConnections
            : max(1, limits.maximumConnections - limits.reservedForPrivilegedConnections)
        guard connections.count < available else {
            return (ControlError(.tooManyConnections, "\(connections.count) control clients are connected already "
                + "(limit \(limits.maximumConnections)\(isPrivileged ? "" : ", of which \(limits.reservedForPrivilegedConnections) are kept for root and the daemon's user")); try again later"),
                    "too many connections")
        }
        let mine = connectionsPerUser[peer.userID] ?? 0
        guard isPrivileged || mine < limits.maximumConnectionsPerUser else {
            return (ControlError(.tooManyConnections, "user id \(peer.userID) has \(mine) control connections already "
                + "(limit \(limits.maximumConnectionsPerUser) per user, [control] max_connections_per_user); close some"),
                    "uid \(peer.userID) over its \(limits.maximumConnectionsPerUser) connections")
        }
        return nil
    }

    /// Tells a refused client why, in one best-effort write, closes it, and counts the refusal
    /// for the rate-limited log.
    private func refuse(_ descriptor: Int32, _ error: ControlError, reason: String) {
        var line: [UInt8] = []
        ControlResponse.failure(id: .null, error: error).encode(into: &line)
        line.append(0x0A)
        _ = line.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        _ = Glibc.close(descriptor)
        refusedConnections += 1
        let now = MonotonicClock.now()
        if refusals.record(reason, now: now, period: limits.refusalLogPeriod) {
            logger.warning("control socket: refused a client: \(reason) (\(error.message))")
        } else if !refusals.isFlushScheduled {
            let timer = refusalTimer ?? eventLoop.makeTimer { [unowned self] in logRefusals() }
            refusalTimer = timer
            refusals.isFlushScheduled = true
            eventLoop.arm(timer, at: refusals.nextLogTime(period: limits.refusalLogPeriod))
        }
    }

    /// Writes the refusals counted since the last line, as one line.
    private func logRefusals() {
        refusals.isFlushScheduled = false
        guard let line = refusals.flush(now: MonotonicClock.now(), period: limits.refusalLogPeriod) else { return }
        logger.warning("control socket: " + line)
    }

    /// Applies a reloaded `[control]`: the allow-list (checked again on every request, so a
    /// revoked user's next state change is refused), the connection caps and the idle timeout.
    /// The socket's mode stays until a restart.
    func apply(_ control: DaemonConfiguration.Control) {
        eventLoop.preconditionInEventLoop()
        access.control = control
        limits.applying(control)
        guard registration != nil, let idleTimeout = limits.idleTimeout else { return }
        let timer = idleTimer ?? eventLoop.makeTimer { [unowned self] in disconnectIdleClients() }
        idleTimer = timer
        eventLoop.arm(timer, at: MonotonicClock.now() + Self.idleSweepPeriod(idleTimeout))
    }

    // MARK: Idle clients

    /// How often idle clients are looked for: a quarter of the timeout, between 0.25 s and 30 s.
    static func idleSweepPeriod(_ timeout: Duration) -> Duration {
        min(.seconds(30), max(.milliseconds(250), timeout / 4))
    }

    private func disconnectIdleClients() {
        guard let idleTimeout = limits.idleTimeout, let idleTimer else { return }
        let now = MonotonicClock.now()
        let idle = connections.values.filter { $0.isIdle(now: now, timeout: idleTimeout) }.sorted { $0.number < $1.number }
        for connection in idle {
            idleDisconnections += 1
            connection.sendBestEffortAndClose(ControlError(.idleTimeout,
                "no request for \(idleTimeout) and no subscription: disconnected ([control] idle_timeout)"))
        }
        eventLoop.arm(idleTimer, at: now + Self.idleSweepPeriod(idleTimeout))
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
        let userID = connection.peer.userID
        if let count = connectionsPerUser[userID], count > 1 { connectionsPerUser[userID] = count - 1 }
        else { connectionsPerUser.removeValue(forKey: userID) }
        logger.debug("control client \(connection.number) disconnected: \(reason)")
    }

    /// Logs a state-changing request (info).
    func logState(_ text: String) { logger.info(text) }

    /// Logs a state-changing request (debug).
    func logStateDebug(_ text: @autoclosure () -> String) { logger.debug(text()) }

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

/// Refused connections counted between two log lines: the first refusal of a period is logged
/// at once, the rest as one line with counts when the period ends. Pure.
struct RefusalLog {
    private(set) var counts: [String: Int] = [:]
    private(set) var lastLogged: MonotonicInstant?
    var isFlushScheduled = false

    /// Counts a refusal; returns whether it should be logged now (the first of a period).
    mutating func record(_ reason: String, now: MonotonicInstant, period: Duration) -> Bool {
        if let lastLogged, now - lastLogged < period {
            counts[reason, default: 0] += 1
            return false
        }
        lastLogged = now
        return true
    }

    /// When the counted refusals are due to be logged.
    func nextLogTime(period: Duration) -> MonotonicInstant {
        (lastLogged ?? .zero) + period
    }

    /// The line for the refusals counted since the last one (`nil` when none), most frequent
    /// reason first; starts a new period.
    mutating func flush(now: MonotonicInstant, period: Duration) -> String? {
        let total = counts.values.reduce(0, +)
        guard total > 0 else { return nil }
        let reasons = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { "\($0.value) \($0.key)" }
        let milliseconds = period.totalMilliseconds
        let span = milliseconds < 1_000 ? "\(milliseconds) ms" : "\(milliseconds / 1_000) s"
        counts = [:]
        lastLogged = now
        return "refused \(total) more client\(total == 1 ? "" : "s") in the last \(span): " + reasons.joined(separator: ", ")
    }
}
