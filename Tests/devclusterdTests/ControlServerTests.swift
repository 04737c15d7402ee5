// Tests of the control socket on a real event loop: dispatch, errors for every kind of bad line,
// pipelining, overlong lines, half-closed clients, connection limits, socket file handling, and a
// client that never reads being dropped while others are still served.

import Foundation
import Glibc
import Synchronization
import Testing
import Totem
import TotemRuntime
@testable import devclusterd

/// Answers `echo` (its arguments), `big` (10 kB), and fails everything else.
private final class EchoHandler: ControlRequestHandler {
    func handle(_ request: ControlRequest, reply: ControlReply) {
        switch request.command {
        case "echo": reply.succeed(.object(request.arguments))
        case "big": reply.succeed(.string(String(repeating: "x", count: 10_000)))
        case "subscribe":
            // What a service does for a subscription: it keeps the connection until it closes.
            reply.connection?.onClose {}
            reply.succeed(.object([:]))
        case "paced":
            // What a replay does: answers, then sends `count` lines of 10 kB as the client reads.
            guard let connection = reply.connection, let count = request.arguments["count"]?.integerValue else { return }
            reply.succeed(.object([:]))
            var next: Int64 = 0
            let filler = String(repeating: "x", count: 10_000)
            connection.sendPaced { [weak connection] in
                for _ in 0..<4 where next < count {
                    connection?.push(event: "paced", data: ["n": .integer(next), "pad": .string(filler)])
                    next += 1
                }
                return next == count
            }
        default: reply.fail(ControlError(.unknownCommand, "no command \(request.command)"))
        }
    }
}

/// The server and its handler (which the server holds weakly), confined to the loop.
private final class ServerFixture {
    let handler = EchoHandler()
    var server: ControlServer?
}

/// A server at `<temporary>/c.sock` on its own loop, closed and removed after `body`.
private func withServer(limits: ControlServer.Limits = ControlServer.Limits(), logs: LogCollector = LogCollector(),
                        _ body: (_ path: String, _ loop: EventLoop, _ fixture: LoopBound<ServerFixture>) async throws -> Void) async throws {
    let directory = try makeTemporaryDirectory()
    defer { removeDirectory(directory) }
    let path = directory + "/c.sock"
    let loop = try EventLoop(name: "control-test")
    defer {
        loop.stop()
        loop.join()
    }
    let logger = logs.makeLogger(level: .warning)
    let started: Result<LoopBound<ServerFixture>, UnixSocket.Failure>? = await onLoop(loop) {
        let fixture = ServerFixture()
        do throws(UnixSocket.Failure) {
            fixture.server = try ControlServer(path: path, group: nil, eventLoop: loop, logger: logger, limits: limits, handler: fixture.handler)
            return .success(LoopBound(fixture, eventLoop: loop))
        } catch {
            return .failure(error)
        }
    }
    let fixture = try #require(try started?.get())
    do {
        try await body(path, loop, fixture)
    } catch {
        _ = await onLoop(loop) { fixture.value.server?.close() }
        throw error
    }
    _ = await onLoop(loop) { fixture.value.server?.close() }
}

/// The response to one raw line.
private func response(to line: String, path: String) throws -> JSONValue {
    let client = try ControlClient(path: path, timeout: .seconds(5))
    try client.sendRaw(Array((line + "\n").utf8))
    return try JSONParser.parse(client.readLine())
}

@Suite("Control server", .serialized)
struct ControlServerTests {
    @Test func dispatchesRequestsAndAnswersErrors() async throws {
        try await withServer { path, _, _ in
            let client = try ControlClient(path: path, timeout: .seconds(5))
            #expect(try client.call("echo", arguments: ["a": 1]) == .success(["a": 1]))
            #expect(try client.call("nope") == .failure(ControlError(.unknownCommand, "no command nope")))
        }
    }

    @Test func everyMalformedLineGetsASpecificError() async throws {
        try await withServer { path, _, _ in
            func error(_ line: String) throws -> (id: JSONValue?, code: String?, message: String?) {
                let value = try response(to: line, path: path)
                #expect(value["ok"] == false, "\(line)")
                return (value["id"], value["error"]?["code"]?.stringValue, value["error"]?["message"]?.stringValue)
            }
            let notJSON = try error("{bad")
            #expect(notJSON.id == .null && notJSON.code == "parse_error")
            #expect(notJSON.message == "the line is not valid JSON: unexpected \"b\" at byte 1")
            #expect(try error("[1]").message == "a request must be a JSON object, got an array")
            #expect(try error(#"{"id":[1],"cmd":"echo"}"#).message == "\"id\" must be a number or a string, got an array")
            let missing = try error(#"{"id":5}"#)
            #expect(missing.id == 5 && missing.code == "invalid_request" && missing.message == "missing \"cmd\" (the command name)")
            #expect(try error(#"{"id":"x","cmd":1}"#).message == "\"cmd\" must be a string, got a number")
            #expect(try error(#"{"id":5,"cmd":"echo","args":[]}"#).message == "\"args\" must be an object, got an array")
            #expect(try error(#"{"id":5,"cmd":"echo","extra":1}"#).message == "unknown member \"extra\"; a request has \"id\", \"cmd\" and \"args\"")
            #expect(try error("\u{FF}").code == "parse_error")
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withServer { path, _, _ in
            let client = try ControlClient(path: path, timeout: .seconds(5))
            var batch = ""
            for id in 1...200 { batch += #"{"id":\#(id),"cmd":"echo","args":{"n":\#(id)}}"# + "\n" }
            try client.sendRaw(Array(batch.utf8))
            for id in 1...200 {
                let line = try JSONParser.parse(client.readLine())
                #expect(line == ["id": .integer(Int64(id)), "ok": true, "result": ["n": .integer(Int64(id))]])
            }
        }
    }

    @Test func anOverlongLineIsAnsweredAndTheConnectionStaysUsable() async throws {
        try await withServer { path, _, _ in
            let client = try ControlClient(path: path, timeout: .seconds(5))
            try client.sendRaw(Array(String(repeating: "x", count: ControlProtocol.maximumLineBytes + 1).utf8) + [0x0A])
            try client.send(ControlRequest(id: 9, command: "echo").json)
            let first = try JSONParser.parse(client.readLine())
            #expect(first["id"] == .null && first["error"]?["code"] == "line_too_long")
            #expect(first["error"]?["message"]?.stringValue == "a request line is longer than 152920 bytes (room for an event_publish of the "
                + "largest payload, 65536 bytes, as payload_base64, with its attributes); it was skipped up to the next newline")
            let second = try JSONParser.parse(client.readLine())
            #expect(second == ["id": 9, "ok": true, "result": [:]])
        }
    }

    @Test func aClientThatClosesItsSideStillGetsItsAnswers() async throws {
        try await withServer { path, _, _ in
            let descriptor = try UnixSocket.connect(to: path)
            defer { _ = close(descriptor) }
            let request = Array(#"{"id":1,"cmd":"echo"}"#.utf8)  // no final newline
            _ = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
            shutdown(descriptor, Int32(SHUT_WR))
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            for _ in 0..<100 {
                let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { break }
                received += buffer[0..<count]
            }
            #expect(String(decoding: received, as: UTF8.self) == #"{"id":1,"ok":true,"result":{}}"# + "\n")
        }
    }

    @Test func aClientThatNeverReadsIsDroppedWithoutBlockingOthers() async throws {
        var limits = ControlServer.Limits()
        limits.pauseReadingAboveBytes = 64 << 10
        limits.stallTimeout = .milliseconds(300)
        try await withServer(limits: limits) { path, loop, fixture in
            let slow = try ControlClient(path: path, timeout: .seconds(5))
            // 30,000 answers of about 70 bytes: far more than the kernel's buffers and the pause
            // mark, so the daemon stops reading this client, waits for it to read, and gives up.
            // The send blocks once the daemon stops reading, and fails when it hangs up.
            let request = #"{"id":1,"cmd":"echo","args":{"pad":"0123456789012345678901234567890123456789"}}"# + "\n"
            let clock = ContinuousClock()
            let start = clock.now
            try? slow.sendRaw(Array(String(repeating: request, count: 30_000).utf8))
            let dropped = await eventually(within: .seconds(10)) {
                await onLoop(loop) { fixture.value.server?.droppedSlowClients ?? 0 } == 1
            }
            #expect(dropped)
            #expect(clock.now - start >= .milliseconds(250), "dropped before the stall timeout")
            // The loop kept serving: another client is answered at once.
            let other = try ControlClient(path: path, timeout: .seconds(2))
            let answeredAt = clock.now
            #expect(try other.call("echo", arguments: ["still": "here"]) == .success(["still": "here"]))
            #expect(clock.now - answeredAt < .seconds(1))
            #expect(await onLoop(loop) { fixture.value.server?.connectionCount } == 1)
        }
    }

    @Test func outputBeyondTheBoundDropsTheClientAtOnce() async throws {
        var limits = ControlServer.Limits()
        limits.maximumOutputBytes = 256 << 10
        try await withServer(limits: limits) { path, loop, fixture in
            let slow = try ControlClient(path: path, timeout: .seconds(5))
            // 100 answers of 10 kB from one read: past the bound before the loop comes back.
            try slow.sendRaw(Array(String(repeating: #"{"id":1,"cmd":"big"}"# + "\n", count: 100).utf8))
            let dropped = await eventually(within: .seconds(5)) {
                await onLoop(loop) { fixture.value.server?.droppedSlowClients ?? 0 } == 1
            }
            #expect(dropped)
            let other = try ControlClient(path: path, timeout: .seconds(2))
            #expect(try other.call("echo") == .success([:]))
        }
    }

    @Test func aPipeliningClientThatReadsSlowlyIsPausedNotDropped() async throws {
        var limits = ControlServer.Limits()
        limits.pauseReadingAboveBytes = 64 << 10
        limits.resumeReadingBelowBytes = 16 << 10
        limits.maximumOutputBytes = 256 << 10
        limits.stallTimeout = .seconds(5)
        try await withServer(limits: limits) { path, loop, fixture in
            let descriptor = try UnixSocket.connect(to: path)
            defer { _ = close(descriptor) }
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let count = 30_000
            // The writer blocks whenever the daemon stops reading; it runs beside the reader.
            let writer = Task.detached { () -> Bool in
                var batch: [UInt8] = []
                for id in 1...count { batch += Array(#"{"id":\#(id),"cmd":"echo","args":{"pad":"0123456789"}}"#.utf8) + [0x0A] }
                var sent = 0
                while sent < batch.count {
                    let result = batch.withUnsafeBytes { send(descriptor, $0.baseAddress! + sent, min(4096, $0.count - sent), Int32(MSG_NOSIGNAL)) }
                    guard result > 0 else { return false }
                    sent += result
                }
                return true
            }
            var framer = LineFramer(maximumLineBytes: 1 << 16)
            var received = 0
            var lastID: Int64 = 0
            var inOrder = true
            var buffer = [UInt8](repeating: 0, count: 4096)
            var reads = 0
            while received < count && reads < 1_000_000 {
                reads += 1
                let length = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
                guard length > 0 else { break }
                buffer.withUnsafeBytes { bytes in
                    framer.append(UnsafeRawBufferPointer(rebasing: bytes[0..<length])) { item in
                        guard case .line(let line) = item, let id = (try? JSONParser.parse(line))?["id"]?.integerValue else { return }
                        inOrder = inOrder && id == lastID + 1
                        lastID = id
                        received += 1
                    }
                }
                // A slow reader: a pause now and then lets the backlog build up.
                if reads % 64 == 0 { try await Task.sleep(for: .milliseconds(2)) }
            }
            #expect(await writer.value)
            #expect(received == count && inOrder)
            #expect(await onLoop(loop) { fixture.value.server?.droppedSlowClients } == 0)
        }
    }

    @Test func pacedOutputOfAnySizeReachesASlowReaderAndWhatFollowsItComesAfter() async throws {
        var limits = ControlServer.Limits()
        limits.maximumOutputBytes = 256 << 10
        limits.pauseReadingAboveBytes = 128 << 10
        limits.resumeReadingBelowBytes = 32 << 10
        limits.stallTimeout = .seconds(5)
        try await withServer(limits: limits) { path, loop, fixture in
            let descriptor = try UnixSocket.connect(to: path)
            defer { _ = close(descriptor) }
            // 2,000 lines of 10 kB (20 MB, 80 times the output limit), then an echo pipelined behind.
            let count = 2_000
            let requests = #"{"id":1,"cmd":"paced","args":{"count":\#(count)}}"# + "\n" + #"{"id":2,"cmd":"echo","args":{"after":true}}"# + "\n"
            #expect(Array(requests.utf8).withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == requests.utf8.count)
            try await Task.sleep(for: .milliseconds(500))  // silent at first: the output must not pile up meanwhile
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var framer = LineFramer(maximumLineBytes: 1 << 16)
            var order: [String] = []
            var numbers: [Int64] = []
            var buffer = [UInt8](repeating: 0, count: 32 << 10)
            for reads in 0..<1_000_000 where order.last != "echo" {
                let length = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
                guard length > 0 else { break }
                buffer.withUnsafeBytes { bytes in
                    framer.append(UnsafeRawBufferPointer(rebasing: bytes[0..<length])) { item in
                        guard case .line(let line) = item, let value = try? JSONParser.parse(line) else { return }
                        if value["id"] == 1 { order.append("answer") }
                        if value["id"] == 2 { order.append("echo") }
                        if let number = value["data"]?["n"]?.integerValue {
                            if order.last != "paced" { order.append("paced") }
                            numbers.append(number)
                        }
                    }
                }
                if reads % 16 == 0 { try await Task.sleep(for: .milliseconds(1)) }
            }
            #expect(order == ["answer", "paced", "echo"])
            #expect(numbers == Array(0..<Int64(count)))
            #expect(await onLoop(loop) { fixture.value.server?.droppedSlowClients } == 0)
        }
    }

    @Test func outputWaitingBehindPacedOutputCountsAgainstTheLimit() async throws {
        var limits = ControlServer.Limits()
        limits.maximumOutputBytes = 256 << 10
        try await withServer(limits: limits) { path, loop, fixture in
            let client = try ControlClient(path: path, timeout: .seconds(5))
            // A replay the client never reads, then 100 answers of 10 kB queued behind it: those
            // are made, and they pass the limit.
            try client.sendRaw(Array((#"{"id":1,"cmd":"paced","args":{"count":100000}}"# + "\n").utf8))
            try await Task.sleep(for: .milliseconds(200))
            #expect(await onLoop(loop) { fixture.value.server?.droppedSlowClients } == 0)
            try client.sendRaw(Array(String(repeating: #"{"id":2,"cmd":"big"}"# + "\n", count: 100).utf8))
            let dropped = await eventually(within: .seconds(5)) {
                await onLoop(loop) { fixture.value.server?.droppedSlowClients ?? 0 } == 1
            }
            #expect(dropped)
        }
    }

    @Test func connectionsBeyondTheLimitAreToldWhy() async throws {
        var limits = ControlServer.Limits()
        limits.maximumConnections = 2
        try await withServer(limits: limits) { path, _, _ in
            let first = try ControlClient(path: path, timeout: .seconds(5))
            let second = try ControlClient(path: path, timeout: .seconds(5))
            #expect(try first.call("echo") == .success([:]))
            #expect(try second.call("echo") == .success([:]))
            let third = try ControlClient(path: path, timeout: .seconds(5))
            let refusal = try JSONParser.parse(third.readLine())
            #expect(refusal["error"]?["code"] == "too_many_connections")
        }
    }

    @Test func refusalsAreLoggedOncePerPeriodWithACount() async throws {
        var limits = ControlServer.Limits()
        limits.maximumConnections = 1
        limits.refusalLogPeriod = .milliseconds(800)
        let logs = LogCollector()
        try await withServer(limits: limits, logs: logs) { path, loop, fixture in
            let first = try ControlClient(path: path, timeout: .seconds(5))
            #expect(try first.call("echo") == .success([:]))
            // 40 refused clients: each is told why (the CLI path: a write, then the refusal line).
            for _ in 0..<40 {
                let refused = try ControlClient(path: path, timeout: .seconds(5))
                guard case .failure(let error) = try refused.call("echo") else {
                    Issue.record("a client beyond the limit was served")
                    break
                }
                #expect(error.code == .tooManyConnections)
            }
            let refusedLines = { logs.messages.filter { $0.contains("control socket: refused") } }
            #expect(await onLoop(loop) { fixture.value.server?.refusedConnections } == 40)
            // One line at once, the other 39 as one line with their count when the period ends.
            let summarised = await eventually(within: .seconds(5)) { refusedLines().count == 2 }
            #expect(summarised, "\(refusedLines())")
            let lines = refusedLines()
            #expect(lines.first?.contains("refused a client: too many connections") == true)
            #expect(lines.last?.hasSuffix("refused 39 more clients in the last 800 ms: 39 too many connections") == true, "\(lines)")
            try await Task.sleep(for: .milliseconds(1_000))
            #expect(refusedLines().count == 2)
        }
    }

    @Test func theRefusalLogWritesTheFirstAtOnceAndTheRestAsOneCountPerPeriod() {
        var log = RefusalLog()
        let period = Duration.seconds(10)
        let start = MonotonicInstant.milliseconds(1_000)
        var logged = log.record("too many connections", now: start, period: period)
        #expect(logged)
        for step in 1...7 {
            logged = log.record(step <= 5 ? "too many connections" : "uid 7 not allowed", now: start + .milliseconds(Int64(step)), period: period)
            #expect(!logged, "refusal \(step) of the period was logged on its own")
        }
        #expect(log.nextLogTime(period: period) == start + period)
        var line = log.flush(now: start + period, period: period)
        #expect(line == "refused 7 more clients in the last 10 s: 5 too many connections, 2 uid 7 not allowed")
        line = log.flush(now: start + period, period: period)
        #expect(line == nil)
        // Within the new period the next refusal is counted; after a quiet period it is logged at once.
        logged = log.record("too many connections", now: start + period + .seconds(1), period: period)
        #expect(!logged)
        line = log.flush(now: start + period * 2, period: period)
        #expect(line == "refused 1 more client in the last 10 s: 1 too many connections")
        logged = log.record("too many connections", now: start + period * 4, period: period)
        #expect(logged)
    }

    @Test func anIdleClientIsDisconnectedButASubscriberIsKept() async throws {
        var limits = ControlServer.Limits()
        // Long beside the busy client's 200 ms between requests: under a loaded CI machine a
        // 600 ms timeout once dropped the busy client too (a sleep plus a call took longer).
        limits.idleTimeout = .milliseconds(1_500)
        try await withServer(limits: limits) { path, loop, fixture in
            let idle = try ControlClient(path: path, timeout: .seconds(5))
            let subscriber = try ControlClient(path: path, timeout: .seconds(5))
            let busy = try ControlClient(path: path, timeout: .seconds(5))
            #expect(try idle.call("echo") == .success([:]))
            #expect(try subscriber.call("subscribe") == .success([:]))
            let clock = ContinuousClock()
            let start = clock.now
            // The busy client asks every 200 ms and is never idle that long.
            for _ in 0..<10 {
                #expect(try busy.call("echo") == .success([:]))
                try await Task.sleep(for: .milliseconds(200))
            }
            let line = try JSONParser.parse(idle.readLine())
            #expect(line["error"]?["code"] == "idle_timeout")
            #expect(clock.now - start >= .milliseconds(1_400))
            #expect(throws: ControlClientError.self) { try idle.readLine() }
            #expect(try subscriber.call("echo", arguments: ["still": "here"]) == .success(["still": "here"]))
            #expect(try busy.call("echo") == .success([:]))
            #expect(await onLoop(loop) { fixture.value.server?.idleDisconnections } == 1)
            #expect(await onLoop(loop) { fixture.value.server?.connectionCount } == 2)
        }
    }

    @Test func peerCredentialsNameTheListeningProcessForAClient() throws {
        // What the CLI checks (the server must be root or itself): here this process listens.
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let path = directory + "/own.sock"
        let (descriptor, _) = try UnixSocket.listen(at: path, mode: 0o600, group: nil)
        defer { _ = close(descriptor) }
        let client = try UnixSocket.connect(to: path)
        defer { _ = close(client) }
        let server = try #require(UnixSocket.peerCredentials(of: client))
        #expect(server.userID == UInt32(geteuid()) && server.processID == getpid())
    }

    @Test func theSocketIsPrivateAndNeverStolen() async throws {
        try await withServer { path, loop, _ in
            var status = stat()
            #expect(stat(path, &status) == 0)
            #expect(status.st_mode & 0o777 == 0o600)
            #expect(status.st_mode & S_IFMT == S_IFSOCK)
            // A second server on the same path refuses: a daemon is live there.
            let logger = LogCollector().makeLogger()
            let second: String? = await onLoop(loop) {
                let handler = EchoHandler()
                do {
                    let server = try ControlServer(path: path, group: nil, eventLoop: loop, logger: logger, handler: handler)
                    server.close()
                    return "listening"
                } catch {
                    return "\(error)"
                }
            }
            #expect(second == "\(path): another devclusterd is already listening on this socket")
        }
    }

    @Test func aStaleSocketIsReplacedAndAFileIsNot() async throws {
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let loop = try EventLoop(name: "control-test")
        defer {
            loop.stop()
            loop.join()
        }
        let logger = LogCollector().makeLogger()
        // A socket file nobody listens on, as a crashed daemon leaves it.
        let stale = directory + "/stale.sock"
        let descriptor = try UnixSocket.makeStreamSocket(nonBlocking: false, path: stale)
        _ = try UnixSocket.withAddress(stale) { bind(descriptor, $0, $1) }
        _ = close(descriptor)
        let plain = directory + "/plain"
        _ = FileManager.default.createFile(atPath: plain, contents: Data("x".utf8))
        let outcome: [String]? = await onLoop(loop) {
            var results: [String] = []
            for path in [stale, plain] {
                do {
                    let server = try ControlServer(path: path, group: nil, eventLoop: loop, logger: logger, handler: EchoHandler())
                    results.append("listening")
                    server.close()
                } catch {
                    results.append("\(error)")
                }
            }
            return results
        }
        #expect(outcome == ["listening", "\(plain): exists and is not a socket; refusing to replace it"])
        #expect(access(stale, F_OK) != 0, "close() removes the socket file")
        #expect(FileManager.default.fileExists(atPath: plain))
    }

    @Test func anUnknownGroupIsAClearError() async throws {
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let loop = try EventLoop(name: "control-test")
        defer {
            loop.stop()
            loop.join()
        }
        let logger = LogCollector().makeLogger()
        let path = directory + "/g.sock"
        let message: String? = await onLoop(loop) {
            do {
                let server = try ControlServer(path: path, group: "no-such-group-dcd", eventLoop: loop, logger: logger, handler: EchoHandler())
                server.close()
                return "listening"
            } catch {
                return "\(error)"
            }
        }
        #expect(message == "\(path): control_socket_group \"no-such-group-dcd\" is not a group on this host")
    }

    @Test func theClientExplainsAMissingDaemon() throws {
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let missing = directory + "/none.sock"
        #expect(throws: ControlClientError("cannot connect to \(missing): no daemon is running (the socket does not exist)")) {
            _ = try ControlClient(path: missing)
        }
        let stale = directory + "/stale.sock"
        let descriptor = try UnixSocket.makeStreamSocket(nonBlocking: false, path: stale)
        _ = try UnixSocket.withAddress(stale) { bind(descriptor, $0, $1) }
        _ = close(descriptor)
        #expect(throws: ControlClientError("cannot connect to \(stale): no daemon is running (connection refused)")) {
            _ = try ControlClient(path: stale)
        }
    }
}
