// The client's side of the control socket: connect, check that the daemon is who it should be (root
// or this user), send request lines, read response and event lines with a timeout, and explain a
// missing daemon or a refusal in plain words. Blocking I/O (with non-blocking variants for a client
// that pipelines); never on an event loop. Used by the CLI, the benchmark and the tests.

import Glibc

/// Why the client got no answer.
public struct ControlClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, for people.
    public var message: String
    /// Whether the receive timeout passed without a complete line.
    public var isTimeout: Bool
    /// Whether the daemon closed the connection.
    public var isClosed: Bool

    public init(_ message: String, isTimeout: Bool = false, isClosed: Bool = false) {
        self.message = message
        self.isTimeout = isTimeout
        self.isClosed = isClosed
    }

    public var description: String { message }
}

/// A connection to a daemon's control socket.
///
/// `call` sends a request and waits for its response, skipping pushed events; `nextMessage` and
/// `receiveLines` read what comes next (events of a subscription). Lines are cut by one
/// `LineFramer` over one receive buffer that is reused: `receiveLines` hands out lines where they
/// lie in that buffer, without decoding them (only a line split between two reads is joined, and
/// lines read ahead by `call` are kept as copies), so a client that reads many events (the
/// benchmark) pays only for the bytes.
public final class ControlClient {
    /// The socket's path, for messages.
    public let path: String
    /// The connected socket (blocking; the `…Available` methods do not wait).
    public let descriptor: Int32
    private var framer = LineFramer(maximumLineBytes: 64 << 20)
    /// Complete lines read by a `receiveLines` pass that stopped early or by `readLine`, not yet
    /// handed out.
    private var lines: [[UInt8]] = []
    private var receiveBuffer: [UInt8]
    private var nextID: Int64 = 1

    /// Connects to `path` and checks who listens there.
    ///
    /// The server must run as root or as this process's user (`SO_PEERCRED`): a socket another
    /// user put in the daemon's place (in a shared directory, say) could otherwise feed a root
    /// CLI a fake cluster.
    ///
    /// - Parameters:
    ///   - timeout: for each later blocking send and receive.
    ///   - receiveBufferBytes: how much one receive may read (a subscriber reading a stream of
    ///     events wants a large one: fewer system calls).
    /// - Throws: `ControlClientError` saying whether no daemon runs, who else listens, or what
    ///   else failed.
    public init(path: String, timeout: Duration = .seconds(10), receiveBufferBytes: Int = 64 * 1024) throws(ControlClientError) {
        self.path = path
        receiveBuffer = [UInt8](repeating: 0, count: max(4096, receiveBufferBytes))
        do {
            descriptor = try UnixSocket.connect(to: path)
        } catch {
            throw ControlClientError("cannot connect to \(path): " + Self.explain(error.code, fallback: error.problem))
        }
        guard let server = UnixSocket.peerProcess(of: descriptor) else {
            _ = close(descriptor)
            throw ControlClientError("cannot connect to \(path): cannot tell who listens on it (SO_PEERCRED failed)")
        }
        guard server.userID == 0 || server.userID == UInt32(geteuid()) else {
            _ = close(descriptor)
            throw ControlClientError("refusing \(path): it is served by \(UnixSocket.describeUser(server.userID)) "
                + "(pid \(server.processID)), neither root nor you (\(UnixSocket.describeUser(UInt32(geteuid())))); "
                + "it is not a devclusterd you can trust. Check the path, and who can write to its directory")
        }
        var time = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        _ = close(descriptor)
    }

    /// Plain words for the usual reasons a connect fails.
    public static func explain(_ code: Int32, fallback: String) -> String {
        switch code {
        case ECONNREFUSED: "no daemon is running (connection refused)"
        case ENOENT: "no daemon is running (the socket does not exist)"
        case EACCES, EPERM: "permission denied (run as root or the daemon's user, or be allowed in the daemon's [control] section)"
        case ENOTSOCK: "it is not a socket"
        case ENAMETOOLONG: "the path is too long for a Unix socket"
        default: fallback
        }
    }

    /// A fresh request id (ids count up from 1 on each connection).
    public func makeID() -> Int64 {
        defer { nextID += 1 }
        return nextID
    }

    /// Sends `request` (with a fresh id) and waits for its response.
    ///
    /// - Returns: the result, or the daemon's error.
    /// - Throws: `ControlClientError` when there is no proper response.
    public func call(_ request: some ControlCommand) throws(ControlClientError) -> Result<JSONValue, ControlError> {
        try call(request.command, arguments: request.arguments)
    }

    /// Sends `command` with `arguments` and waits for its response.
    ///
    /// - Returns: the result, or the daemon's error.
    /// - Throws: `ControlClientError` when there is no proper response.
    public func call(_ command: String, arguments: JSONObject = JSONObject()) throws(ControlClientError) -> Result<JSONValue, ControlError> {
        let id = makeID()
        do {
            try send(ControlRequest(id: .integer(id), command: command, arguments: arguments).json)
        } catch {
            // A daemon that refused this connection (too many clients, not allowed) wrote why
            // and closed: that line, not the failed write, is the answer.
            if let refusal = try? readLine(), let response = try? ControlResponse.decode(line: refusal),
               case .failure = response.outcome {
                return response.outcome
            }
            throw error
        }
        // Lines that are not our response (events of a subscription) are skipped; bounded so a
        // flood of them cannot keep us here forever.
        for _ in 0..<100_000 {
            let line = try readLine()
            switch try decode(line) {
            case .event: continue
            case .response(let responseID, let outcome):
                if responseID == .integer(id) || responseID == .null { return outcome }
            }
        }
        throw ControlClientError("\(path): no response to request \(id)")
    }

    /// `call`, with the daemon's error as a thrown `ControlClientError` (`command: message (code)`).
    public func result(_ command: String, arguments: JSONObject = JSONObject()) throws(ControlClientError) -> JSONValue {
        switch try call(command, arguments: arguments) {
        case .success(let result): return result
        case .failure(let error): throw ControlClientError("\(path): \(command) failed: \(error.message) (\(error.code.rawValue))")
        }
    }

    /// Writes one message line.
    public func send(_ message: JSONValue) throws(ControlClientError) {
        var bytes: [UInt8] = []
        message.encode(into: &bytes)
        bytes.append(0x0A)
        try sendRaw(bytes)
    }

    /// Writes bytes as they are, waiting up to the send timeout (tests use it for malformed input).
    public func sendRaw(_ bytes: [UInt8]) throws(ControlClientError) {
        var written = 0
        var attempts = 0
        while written < bytes.count && attempts < 100_000 {
            attempts += 1
            let result = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + written, $0.count - written, Int32(MSG_NOSIGNAL)) }
            if result > 0 {
                written += result
            } else if result < 0 && errno == EINTR {
                continue
            } else {
                throw ControlClientError("\(path): sending failed: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Writes what the socket takes now, without waiting (a pipelining client's writer).
    ///
    /// - Returns: how many bytes were written (0 when the socket is full).
    /// - Throws: when the connection is broken.
    public func sendAvailable(_ bytes: UnsafeRawBufferPointer) throws(ControlClientError) -> Int {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        for _ in 0..<100 {
            let result = Glibc.send(descriptor, base, bytes.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            if result >= 0 { return result }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return 0 }
            throw ControlClientError("\(path): sending failed: \(String(cString: strerror(errno)))", isClosed: errno == EPIPE)
        }
        return 0
    }

    /// The next message, or `nil` when no line came within the receive timeout (for `watch`).
    public func nextMessage() throws(ControlClientError) -> ControlMessage? {
        guard let line = try nextLine() else { return nil }
        return try decode(line)
    }

    /// The next line, or `nil` when none came within the receive timeout.
    public func nextLine() throws(ControlClientError) -> [UInt8]? {
        do {
            return try readLine()
        } catch {
            if error.isTimeout { return nil }
            throw error
        }
    }

    /// Reads the next line, waiting up to the receive timeout.
    public func readLine() throws(ControlClientError) -> [UInt8] {
        for _ in 0..<1_000_000 {
            if !lines.isEmpty { return lines.removeFirst() }
            try receive(flags: 0) { lines.append(Array($0)) }
        }
        throw ControlClientError("\(path): no complete line received")
    }

    /// Waits up to `timeoutMilliseconds` for data, then hands each complete line it read
    /// (without its newline, valid only during the call) to `body`.
    ///
    /// - Returns: `false` once the daemon closed the connection.
    /// - Throws: when receiving fails otherwise.
    @discardableResult
    public func receiveLines(timeoutMilliseconds: Int32, _ body: (UnsafeBufferPointer<UInt8>) -> Void) throws(ControlClientError) -> Bool {
        if !lines.isEmpty { return deliverHeldLines(body) }
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, timeoutMilliseconds) > 0 else { return true }
        return try receiveAvailable(body)
    }

    /// Reads once without waiting and hands each complete line to `body` (see `receiveLines`).
    ///
    /// - Returns: `false` once the daemon closed the connection.
    @discardableResult
    public func receiveAvailable(_ body: (UnsafeBufferPointer<UInt8>) -> Void) throws(ControlClientError) -> Bool {
        if !lines.isEmpty { return deliverHeldLines(body) }
        do {
            try receive(flags: Int32(MSG_DONTWAIT), body)
            return true
        } catch {
            if error.isTimeout { return true }
            if error.isClosed { return false }
            throw error
        }
    }

    /// Decodes a line as a response or a pushed event.
    public func decode(_ line: some Collection<UInt8>) throws(ControlClientError) -> ControlMessage {
        do {
            return try ControlMessage.decode(line: line)
        } catch {
            throw ControlClientError("\(path): \(error.message)")
        }
    }

    private func deliverHeldLines(_ body: (UnsafeBufferPointer<UInt8>) -> Void) -> Bool {
        let held = lines
        lines.removeAll()
        for line in held { line.withUnsafeBufferPointer { body($0) } }
        return true
    }

    /// One `recv` into the receive buffer; the lines it completes go to `body`.
    private func receive(flags: Int32, _ body: (UnsafeBufferPointer<UInt8>) -> Void) throws(ControlClientError) {
        for _ in 0..<100 {
            let count = receiveBuffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, flags) }
            if count > 0 {
                receiveBuffer.withUnsafeBytes { bytes in
                    framer.append(UnsafeRawBufferPointer(rebasing: bytes[0..<count])) { item in
                        switch item {
                        case .line(let line): body(line)
                        case .tooLong: break
                        }
                    }
                }
                return
            } else if count == 0 {
                throw ControlClientError("\(path): the daemon closed the connection without answering", isClosed: true)
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                throw ControlClientError("\(path): the daemon did not answer in time", isTimeout: true)
            } else {
                throw ControlClientError("\(path): receiving failed: \(String(cString: strerror(errno)))")
            }
        }
    }
}
