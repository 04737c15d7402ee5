// The control client against a scripted server on a Unix socket: the response to a call is found
// among events, events that came in the same read are not lost, lines are handed out in place,
// and a closed connection and a missing daemon are told apart.

import DevclusterControl
import Glibc
import Synchronization
import Testing

/// A one-connection server on a fresh socket path: accepts one client, reads one request line,
/// writes `reply` in one write, then keeps the connection until `close()`.
private final class ScriptedServer: Sendable {
    let directory: String
    let path: String
    private let listener: Int32
    private let connection = Mutex<Int32>(-1)
    private let done = Mutex(false)

    init(reply: String) throws {
        var template = Array("/tmp/dcc-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ControlClientError("mkdtemp: errno \(errno)") }
        directory = String(cString: made)
        path = directory + "/s.sock"
        let descriptor = try UnixSocket.makeStreamSocket(nonBlocking: false, path: path)
        listener = descriptor
        let bound = try UnixSocket.withAddress(path) { bind(descriptor, $0, $1) }
        guard bound == 0, listen(descriptor, 4) == 0 else {
            _ = Glibc.close(descriptor)
            _ = rmdir(directory)
            throw ControlClientError("bind/listen: errno \(errno)")
        }
        let bytes = Array(reply.utf8)
        let thread = Thread { [self] in
            let accepted = accept(descriptor, nil, nil)
            guard accepted >= 0 else { return }
            connection.withLock { $0 = accepted }
            var request = [UInt8](repeating: 0, count: 4096)
            var received = 0
            // Until the request's newline, bounded.
            for _ in 0..<100 where !request[0..<received].contains(0x0A) && received < request.count {
                let count = request.withUnsafeMutableBytes { recv(accepted, $0.baseAddress! + received, $0.count - received, 0) }
                guard count > 0 else { return }
                received += count
            }
            _ = bytes.withUnsafeBytes { send(accepted, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            done.withLock { $0 = true }
        }
        thread.start()
    }

    /// Closes the client's connection (the daemon going away).
    func hangUp() {
        connection.withLock { descriptor in
            if descriptor >= 0 { _ = shutdown(descriptor, Int32(SHUT_RDWR)) }
        }
    }

    func close() {
        hangUp()
        _ = shutdown(listener, Int32(SHUT_RDWR))
        _ = Glibc.close(listener)
        connection.withLock { if $0 >= 0 { _ = Glibc.close($0) } }
        _ = unlink(path)
        _ = rmdir(directory)
    }
}

/// `Thread` from Foundation is not used by the library; a minimal detached pthread for the server.
private final class Thread: @unchecked Sendable {
    private let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    func start() {
        let box = Unmanaged.passRetained(self)
        var handle = pthread_t()
        let created = pthread_create(&handle, nil, { context in
            let thread = Unmanaged<Thread>.fromOpaque(context!).takeRetainedValue()
            thread.body()
            return nil
        }, box.toOpaque())
        if created == 0 { pthread_detach(handle) } else { box.release() }
    }
}

@Suite("Control client", .serialized)
struct ControlClientTests {
    @Test func theResponseIsFoundAmongEventsAndLaterEventsAreKept() throws {
        let server = try ScriptedServer(reply: """
            {"event":"device","data":{"device":"Custom:a","state":"INUSE","previous":"NOT_INUSE"}}
            {"id":1,"ok":true,"result":{"topics":["device"]}}
            {"event":"device","data":{"device":"Custom:b","state":"BUSY","previous":"NOT_INUSE"}}
            {"event":"mwi","data":{"mailbox":"1","context":"default","new":1,"old":0}}

            """)
        defer { server.close() }
        let client = try ControlClient(path: server.path, timeout: .seconds(5))
        let outcome = try client.call(ControlCommands.Watch(topics: ["device"]))
        #expect(outcome == .success(["topics": ["device"]]))
        // The two events that came in the same read as the response are still there, in order.
        var lines: [String] = []
        for _ in 0..<20 where lines.count < 2 {
            try client.receiveLines(timeoutMilliseconds: 200) { lines.append(String(decoding: $0, as: UTF8.self)) }
        }
        #expect(lines.count == 2)
        let events = try lines.map { line throws(ControlClientError) in try client.decode(Array(line.utf8)) }
        #expect(events.first == .event(ControlEvent(name: "device", data: ["device": "Custom:b", "state": "BUSY", "previous": "NOT_INUSE"])))
        guard case .event(let last)? = events.last else {
            Issue.record("not an event: \(String(describing: events.last))")
            return
        }
        #expect(last.typed == .mwi(mailbox: "1", context: "default", new: 1, old: 0))
        // Nothing more within a short wait; then a hang-up is told as such.
        var extra = 0
        try client.receiveLines(timeoutMilliseconds: 100) { _ in extra += 1 }
        #expect(extra == 0)
        server.hangUp()
        #expect(try client.receiveLines(timeoutMilliseconds: 2_000) { _ in } == false)
    }

    @Test func aMissingDaemonIsExplained() {
        do {
            _ = try ControlClient(path: "/tmp/dcc-test-missing-\(getpid()).sock", timeout: .seconds(1))
            Issue.record("connected to a socket that does not exist")
        } catch {
            #expect(error.message.contains("no daemon is running (the socket does not exist)"), "\(error)")
        }
        do {
            _ = try ControlClient(path: String(repeating: "x", count: 200), timeout: .seconds(1))
            Issue.record("connected to an over-long path")
        } catch {
            #expect(error.message.contains("too long"), "\(error)")
        }
    }
}
