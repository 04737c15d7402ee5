// One control client on the event loop: its request lines in, its responses and events out,
// through a bounded output buffer with backpressure (requests pause while output piles up) and
// a drop when the client stops reading, and paced output (a replay) made only as the client
// reads it. Confined to the loop; the server owns the listening side.

import Glibc
import Totem
import TotemRuntime

/// One connected control client. Loop thread only.
final class ControlConnection {
    /// Numbers clients in the order they connected (for logs).
    let number: Int
    /// The connected socket (closed by `close`).
    let descriptor: Int32
    /// Who connected (`SO_PEERCRED` at accept).
    let peer: PeerCredentials
    /// When the client last sent something (for the idle timeout).
    private var lastActivity = MonotonicClock.now()
    /// Commands that changed state on this connection already logged at info level.
    private var loggedCommands: Set<String> = []
    /// The read watch; `nil` while paused, after the client's end of input, and once closed.
    var registration: EventLoop.Registration?
    private unowned let server: ControlServer
    /// `server.limits.maximumOutputBytes`, read on every line queued: each use of the unowned
    /// `server` takes the slow path of a strong retain (the server is also weakly referenced).
    private let maximumOutputBytes: Int
    private var framer: LineFramer
    private var output: [UInt8] = []
    private var outputHead = 0
    private var isFlushScheduled = false
    private var isInputClosed = false
    /// Requests are not read while the client leaves too much output unread (backpressure).
    private var isReadingPaused = false
    /// Requests are not read while a service holds the client (its ring messages queue up).
    private(set) var isHeld = false
    /// Fires when a paused client may have stalled; made on first pause.
    private var stallTimer: EventLoop.TimerID?
    /// Bytes the kernel has taken so far, to tell a slow reader from one that stopped.
    private var bytesSent = 0
    private var bytesSentAtPause = 0
    private var closeHandlers: [() -> Void] = []
    /// The paced output being made (`sendPaced`): asked for more lines whenever the client has
    /// read the output down to `refillBelowBytes`.
    private var producer: Producer?
    /// Output queued behind `producer`, in order: lines, and producers that start when the
    /// ones before them finish. Its lines count against the output limit.
    private var waiting: [Waiting] = []
    private var waitingBytes = 0
    /// Set while `producer` runs: its lines go straight out, ahead of `waiting`.
    private var isProducing = false
    /// Makes some lines with `send`/`sendEncoded`; returns `true` when it has made its last.
    typealias Producer = () -> Bool
    private enum Waiting {
        case lines([UInt8])
        case producer(Producer)
    }
    /// A producer is asked for more once the client has read the output down to this (or to a
    /// quarter of the output limit, if less).
    static let refillBelowBytes = 256 << 10
    private let refillBelowBytes: Int
    /// Calls to a producer per turn of the loop, at most.
    static let producerCallsPerTurn = 16
    /// Whether the connection can still send.
    private(set) var isOpen = true

    /// A connection accepted by `server`; the server registers it for reading.
    init(number: Int, descriptor: Int32, peer: PeerCredentials, server: ControlServer) {
        self.number = number
        self.descriptor = descriptor
        self.peer = peer
        self.server = server
        maximumOutputBytes = server.limits.maximumOutputBytes
        refillBelowBytes = min(Self.refillBelowBytes, server.limits.maximumOutputBytes / 4)
        framer = LineFramer(maximumLineBytes: server.limits.maximumLineBytes)
    }

    /// Output made and not yet taken by the kernel (a producer's lines not made yet do not count).
    var pendingOutputBytes: Int { output.count - outputHead + waitingBytes }

    /// Whether anything is left to send: output made, or a producer not finished.
    var hasPendingOutput: Bool { pendingOutputBytes > 0 || producer != nil }

    /// Runs `body` when the connection closes (subscriptions end there).
    func onClose(_ body: @escaping () -> Void) {
        if isOpen { closeHandlers.append(body) } else { body() }
    }

    /// Queues one message line. Drops the client when its unread output passes the limit.
    func send(_ message: JSONValue) {
        sendEncoded { message.encode(into: &$0) }
    }

    /// Queues one line that `write` appends already encoded (the newline is added here), for
    /// lines built once and sent to many clients. Drops the client past the output limit.
    func sendEncoded(_ write: (inout [UInt8]) -> Void) {
        guard isOpen else { return }
        if producer != nil && !isProducing {
            // Behind a replay: in order, after it.
            if case .lines(var lines)? = waiting.last {
                waiting[waiting.count - 1] = .lines([])
                let before = lines.count
                write(&lines)
                lines.append(0x0A)
                waitingBytes += lines.count - before
                waiting[waiting.count - 1] = .lines(lines)
            } else {
                var lines: [UInt8] = []
                write(&lines)
                lines.append(0x0A)
                waitingBytes += lines.count
                waiting.append(.lines(lines))
            }
        } else {
            if outputHead > 0 && outputHead >= output.count / 2 {
                output.removeSubrange(0..<outputHead)
                outputHead = 0
            }
            write(&output)
            output.append(0x0A)
        }
        let pending = pendingOutputBytes
        // A producer's own lines never drop the client: they are made only when the output is
        // down to `refillBelowBytes`, so they stay bounded by it plus one call's lines.
        guard pending <= maximumOutputBytes || isProducing else {
            server.dropSlow(self, pending: pending)
            close(reason: "output limit exceeded")
            return
        }
        scheduleFlush()
    }

    /// Sends what `produce` makes, as the client reads it: `produce` is called (on the loop)
    /// whenever the output made so far is down to `refillBelowBytes`, makes some lines with
    /// `send`/`sendEncoded`, and returns `true` after its last. Only the lines made count against
    /// the output limit, so paced output of any size never drops the client. Lines sent by others
    /// meanwhile (live events, responses) wait behind it, and count.
    func sendPaced(_ produce: @escaping Producer) {
        guard isOpen else { return }
        if producer == nil {
            producer = produce
        } else {
            waiting.append(.producer(produce))
        }
        scheduleFlush()
    }

    /// Pushes `{"event":name,"data":data}`.
    func push(event name: String, data: JSONValue) {
        send(ControlResponse.event(name, data: data))
    }

    /// Closes the socket at once (queued output is discarded) and runs the close handlers.
    func close(reason: String) {
        guard isOpen else { return }
        isOpen = false
        if let registration { server.loop.deregister(registration) }
        registration = nil
        if let stallTimer { server.loop.removeTimer(stallTimer) }
        stallTimer = nil
        server.writability.unwatch(descriptor)
        _ = Glibc.close(descriptor)
        output = []
        outputHead = 0
        producer = nil
        waiting = []
        waitingBytes = 0
        server.removed(self, reason: reason)
        let handlers = closeHandlers
        closeHandlers.removeAll()
        for handler in handlers { handler() }
    }

    // MARK: Access

    /// Whether this client may run `command` under the server's current `[control]` rules, and
    /// logs each state-changing command with the caller's uid and pid: the first of each command
    /// on a connection at info, every one at debug.
    ///
    /// - Returns: the `permission_denied` error to answer, or `nil` when allowed.
    func authorize(_ command: String) -> ControlError? {
        guard let role = server.access.role(of: peer) else {
            return ControlError(.permissionDenied, "\(UnixSocket.describeUser(peer.userID)) is no longer allowed "
                + "to use this control socket (the configuration was reloaded)")
        }
        if ControlAccess.isReadOnly(command: command) { return nil }
        guard role == .full else {
            return ControlError(.permissionDenied, "\(command) changes state, and \(UnixSocket.describeUser(peer.userID)) "
                + "has read-only access to the control socket ([control] read_only_users or read_only_groups)")
        }
        // The debug line is built only when debug logging is on: this runs for every publication.
        if loggedCommands.insert(command).inserted {
            server.logState("control client \(number) (\(peer)) ran \(command) "
                + "(further \(command) requests on this connection are logged at debug level)")
        } else {
            server.logStateDebug("control client \(number) (\(peer)) ran \(command)")
        }
        return nil
    }

    // MARK: Idle clients

    /// Whether the client has sent nothing for `timeout` while nothing keeps it: no
    /// subscription or adapter registration (those register close handlers), not held by a
    /// service, no output waiting.
    func isIdle(now: MonotonicInstant, timeout: Duration) -> Bool {
        isOpen && closeHandlers.isEmpty && !isHeld && !isReadingPaused && !hasPendingOutput && now - lastActivity >= timeout
    }

    /// Writes `error` as one line if the socket takes it at once, then closes.
    func sendBestEffortAndClose(_ error: ControlError) {
        guard isOpen else { return }
        var line: [UInt8] = []
        ControlResponse.failure(id: .null, error: error).encode(into: &line)
        line.append(0x0A)
        _ = line.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        close(reason: error.message)
    }

    // MARK: Input

    /// The socket has data (or the client's end of input): read one chunk and answer it.
    func readable() {
        for _ in 0..<server.limits.readsPerWakeup {
            guard isOpen && !isInputClosed && !isReadingPaused && !isHeld else { return }
            let count = server.read(into: self)
            if count > 0 {
                lastActivity = MonotonicClock.now()
                pauseReadingIfBacklogged()
                continue
            }
            if count == 0 {
                inputEnded()
            } else if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                return
            } else {
                close(reason: "read failed: \(String(cString: strerror(errno)))")
            }
            return
        }
    }

    /// Feeds bytes read from the socket to the framer and handles the lines they complete.
    func consume(_ bytes: UnsafeRawBufferPointer) {
        framer.append(bytes) { item in handle(item) }
    }

    private func handle(_ item: LineFramer.Item) {
        guard isOpen else { return }
        switch item {
        case .line(let line):
            server.dispatch(line, on: self)
        case .tooLong:
            let limit = server.limits.maximumLineBytes
            let message = limit == ControlProtocol.maximumLineBytes ? ControlProtocol.lineTooLongMessage
                : "a request line is longer than \(limit) bytes; it was skipped up to the next newline"
            send(ControlResponse.failure(id: .null, error: ControlError(.lineTooLong, message)))
        }
    }

    /// Stops reading this client's requests until `release()`: a service whose ring messages
    /// queue up faster than the ring sends them holds the clients that submit them, and the
    /// kernel's socket buffer then pushes back on those clients (flow control; requests already
    /// read are kept and answered). Requests of the chunk being read are still handled.
    func hold() {
        guard isOpen, !isHeld else { return }
        isHeld = true
        updateRegistration()
    }

    /// Reads requests again after `hold()`.
    func release() {
        guard isOpen, isHeld else { return }
        isHeld = false
        updateRegistration()  // level-triggered: requests that arrived meanwhile are read next
    }

    /// Stops reading requests while the client leaves more than `pauseReadingAboveBytes` of
    /// output unread; the kernel's socket buffer then pushes back on the client.
    private func pauseReadingIfBacklogged() {
        guard isOpen, !isReadingPaused, !isInputClosed, pendingOutputBytes > server.limits.pauseReadingAboveBytes else { return }
        isReadingPaused = true
        updateRegistration()
        bytesSentAtPause = bytesSent
        armStallTimer()
    }

    private func resumeReadingIfDrained() {
        guard isOpen, isReadingPaused, pendingOutputBytes <= server.limits.resumeReadingBelowBytes else { return }
        isReadingPaused = false
        if let stallTimer { server.loop.disarm(stallTimer) }
        updateRegistration()
    }

    /// Watches the socket for requests exactly when they may be read.
    private func updateRegistration() {
        let wanted = isOpen && !isInputClosed && !isReadingPaused && !isHeld
        if !wanted, let registration {
            server.loop.deregister(registration)
            self.registration = nil
        } else if wanted, registration == nil {
            do {
                registration = try server.loop.register(fileDescriptor: descriptor) { [unowned self] in readable() }
            } catch {
                close(reason: "cannot watch the socket again: \(error)")
            }
        }
    }

    private func armStallTimer() {
        let timer = stallTimer ?? server.loop.makeTimer { [unowned self] in stallTimerFired() }
        stallTimer = timer
        server.loop.arm(timer, at: MonotonicClock.now() + server.limits.stallTimeout)
    }

    private func stallTimerFired() {
        guard isOpen, isReadingPaused else { return }
        guard bytesSent > bytesSentAtPause else {
            server.dropStalled(self)
            close(reason: "stalled")
            return
        }
        bytesSentAtPause = bytesSent
        armStallTimer()
    }

    /// The client shut down its side: answer what it sent, then close once the output is out.
    private func inputEnded() {
        isInputClosed = true
        if let registration { server.loop.deregister(registration) }
        registration = nil
        framer.finish { item in handle(item) }
        if isOpen && !hasPendingOutput { close(reason: "closed by the client") }
    }

    // MARK: Output

    private func scheduleFlush() {
        guard !isFlushScheduled else { return }
        isFlushScheduled = true
        // Responses to a batch of pipelined requests, and events of one loop iteration, go out
        // together at the end of the iteration.
        server.loop.runSoon { [self] in
            isFlushScheduled = false
            flush()
        }
    }

    /// Asks the producer for more while the client has read the output down to
    /// `refillBelowBytes`; starts what waited behind a producer that finished.
    private func produce() {
        var calls = 0
        while isOpen, let current = producer, output.count - outputHead < refillBelowBytes, calls < Self.producerCallsPerTurn {
            calls += 1
            isProducing = true
            let finished = current()
            isProducing = false
            guard finished, isOpen else { continue }
            producer = nil
            while producer == nil, !waiting.isEmpty {
                switch waiting.removeFirst() {
                case .lines(let lines):
                    output.append(contentsOf: lines)
                    waitingBytes -= lines.count
                case .producer(let next):
                    producer = next
                }
            }
        }
    }

    private func flush() {
        produce()
        var attempts = 0
        while isOpen && outputHead < output.count && attempts < 64 {
            attempts += 1
            let sent = output.withUnsafeBytes { buffer in
                Glibc.send(descriptor, buffer.baseAddress! + outputHead, buffer.count - outputHead,
                           Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if sent > 0 {
                outputHead += sent
                bytesSent += sent
            } else if sent < 0 && errno == EINTR {
                continue
            } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                server.writability.watch(descriptor) { [unowned self] in flush() }
                resumeReadingIfDrained()
                return
            } else {
                close(reason: "write failed: \(String(cString: strerror(errno)))")
                return
            }
        }
        guard isOpen else { return }
        guard outputHead == output.count else {
            // Many partial writes in a row: let the loop breathe and continue when writable.
            server.writability.watch(descriptor) { [unowned self] in flush() }
            resumeReadingIfDrained()
            return
        }
        // Keep a modest buffer for the next responses; give back what a burst made large.
        if output.capacity > 1 << 20 { output = [] } else { output.removeAll(keepingCapacity: true) }
        outputHead = 0
        if producer != nil {
            // All sent and more to make: next turn of the loop (the socket took everything, so
            // there is no need to wait until it is writable).
            server.writability.unwatch(descriptor)
            scheduleFlush()
            resumeReadingIfDrained()
            return
        }
        server.writability.unwatch(descriptor)
        if isInputClosed {
            close(reason: "closed by the client")
            return
        }
        resumeReadingIfDrained()
    }
}
