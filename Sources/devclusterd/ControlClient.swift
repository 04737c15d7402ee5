// The CLI's side of the control socket: connect, check that the daemon is who it should be (root
// or this user), send one request line, read its response line, with a timeout, and explain a
// missing daemon or a refusal in plain words. Blocking I/O; never on the loop.

import Glibc

/// Why the client got no answer.
struct ControlClientError: Error, Equatable, CustomStringConvertible {
    var message: String

    init(_ message: String) {
        self.message = message
    }

    var description: String { message }
}

/// A blocking connection to a daemon's control socket.
final class ControlClient {
    let path: String
    private let descriptor: Int32
    private var framer = LineFramer(maximumLineBytes: 64 << 20)
    private var lines: [[UInt8]] = []
    private var nextID: Int64 = 1

    /// Connects to `path` and checks who listens there.
    ///
    /// The server must run as root or as this process's user (`SO_PEERCRED`): a socket another
    /// user put in the daemon's place (in a shared directory, say) could otherwise feed a root
    /// CLI a fake cluster.
    ///
    /// - Parameter timeout: for each later send and receive.
    /// - Throws: `ControlClientError` saying whether no daemon runs, who else listens, or what
    ///   else failed.
    init(path: String, timeout: Duration = .seconds(10)) throws(ControlClientError) {
        self.path = path
        do {
            descriptor = try UnixSocket.connect(to: path)
        } catch {
            throw ControlClientError("cannot connect to \(path): " + Self.explain(error.code, fallback: error.problem))
        }
        guard let server = UnixSocket.peerCredentials(of: descriptor) else {
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
    static func explain(_ code: Int32, fallback: String) -> String {
        switch code {
        case ECONNREFUSED: "no daemon is running (connection refused)"
        case ENOENT: "no daemon is running (the socket does not exist)"
        case EACCES, EPERM: "permission denied (run as root or the daemon's user, or be allowed in the daemon's [control] section)"
        case ENOTSOCK: "it is not a socket"
        case ENAMETOOLONG: "the path is too long for a Unix socket"
        default: fallback
        }
    }

    /// Sends `command` with `arguments` and waits for its response.
    ///
    /// - Returns: the result, or the daemon's error.
    /// - Throws: `ControlClientError` when there is no proper response.
    func call(_ command: String, arguments: JSONObject = JSONObject()) throws(ControlClientError) -> Result<JSONValue, ControlError> {
        let id = nextID
        nextID += 1
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
            let response: (id: JSONValue, outcome: Result<JSONValue, ControlError>)
            do {
                response = try ControlResponse.decode(line: line)
            } catch {
                if (try? JSONParser.parse(line))?["event"] != nil { continue }
                throw ControlClientError("\(path): \(error.message)")
            }
            if response.id == .integer(id) || response.id == .null { return response.outcome }
        }
        throw ControlClientError("\(path): no response to request \(id)")
    }

    /// Writes one message line.
    func send(_ message: JSONValue) throws(ControlClientError) {
        var bytes: [UInt8] = []
        message.encode(into: &bytes)
        bytes.append(0x0A)
        try sendRaw(bytes)
    }

    /// Writes bytes as they are (tests use it for malformed input).
    func sendRaw(_ bytes: [UInt8]) throws(ControlClientError) {
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

    /// The next line, or `nil` when none came within the receive timeout (for `watch`).
    func nextLine() throws(ControlClientError) -> [UInt8]? {
        do {
            return try readLine()
        } catch {
            if error.message.hasSuffix("did not answer in time") { return nil }
            throw error
        }
    }

    /// Reads the next line.
    func readLine() throws(ControlClientError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        for _ in 0..<1_000_000 {
            if !lines.isEmpty { return lines.removeFirst() }
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer.withUnsafeBytes { bytes in
                    framer.append(UnsafeRawBufferPointer(rebasing: bytes[0..<count])) { item in
                        switch item {
                        case .line(let line): lines.append(Array(line))
                        case .tooLong: break
                        }
                    }
                }
            } else if count == 0 {
                throw ControlClientError("\(path): the daemon closed the connection without answering")
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                throw ControlClientError("\(path): the daemon did not answer in time")
            } else {
                throw ControlClientError("\(path): receiving failed: \(String(cString: strerror(errno)))")
            }
        }
        throw ControlClientError("\(path): no complete line received")
    }
}
