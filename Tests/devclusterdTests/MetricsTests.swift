// The Prometheus endpoint: `[metrics] listen` (valid forms and each refusal), the HTTP rules
// (request heads, 400/404/405/408/431/503/505, HEAD, Connection: close), the text format and its
// escaping, the token rotation histogram, and a real daemon scraped over loopback with a raw TCP
// client, its numbers matching `status --json` and its text passing Debian's `promtool check
// metrics` (required when DEVCLUSTER_REQUIRE_PROMTOOL=1, as .ci/run sets it).

import Foundation
import Glibc
import Testing
import Totem
import TotemRuntime
@testable import devclusterd

/// `promtool`, when installed (Debian: package prometheus).
let promtoolPath: String? = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// `.ci/run` installs promtool and sets DEVCLUSTER_REQUIRE_PROMTOOL=1: a missing promtool then fails.
let promtoolRequired = ProcessInfo.processInfo.environment["DEVCLUSTER_REQUIRE_PROMTOOL"] == "1"

/// Runs `promtool check metrics` on `text`; `nil` when promtool is absent and not required.
func promtoolProblems(_ text: String) async throws -> String? {
    guard let promtool = promtoolPath else {
        try #require(!promtoolRequired, "DEVCLUSTER_REQUIRE_PROMTOOL=1 but promtool is not installed (apt-get install prometheus)")
        print("promtool not installed: the text format is checked by these tests only (apt-get install prometheus)")
        return nil
    }
    let file = try makeTemporaryDirectory()
    defer { removeDirectory(file) }
    try text.write(toFile: file + "/metrics.txt", atomically: true, encoding: .utf8)
    // promtool reads the metrics on standard input.
    let result = await Tool.run("/bin/sh", ["-c", "\"$0\" check metrics < \"$1\"", promtool, file + "/metrics.txt"], timeout: .seconds(20))
    return result.succeeded ? "" : "\(result)"
}

@Suite("Metrics: configuration, HTTP, text format")
struct MetricsUnitTests {
    private func parse(_ extra: String) throws -> DaemonConfiguration {
        try threeNodeConfiguration(extra: extra)
    }

    private func problems(_ extra: String) -> [String] {
        do {
            _ = try threeNodeConfiguration(extra: extra)
            return []
        } catch let error as ConfigurationErrors {
            return error.errors.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    @Test func listenTakesAnIPv4OrBracketedIPv6AddressAndAPort() throws {
        let v4 = try parse("[metrics]\nlisten = 127.0.0.1:9405\n")
        #expect(v4.metrics?.listen.description == "127.0.0.1:9405")
        let v6 = try parse("[metrics]\nlisten = [::1]:9405\n")
        #expect(v6.metrics?.listen.description == "[::1]:9405" && v6.metrics?.listen.address.isLoopback == true)
        #expect(try parse("").metrics == nil, "no section: no endpoint")
        #expect(try DaemonConfiguration.parse(text: v6.fileText, path: "x", host: loopbackHost) == v6)
        #expect(v4.restartRequiredChanges(to: v6) == ["[metrics] listen (127.0.0.1:9405 -> [::1]:9405)"])
    }

    @Test func listenRefusesAMissingOrInvalidValueSpecifically() {
        let expected = "ADDRESS:PORT to serve Prometheus metrics on, e.g. 127.0.0.1:9405 or [::1]:9405 (no host names)"
        let missing = problems("[metrics]\n")
        #expect(missing.count == 1 && missing[0].hasSuffix("[metrics] listen: missing; expected \(expected)"), "\(missing)")
        for bad in ["localhost:9405", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "::1:9405", "[::1]", "[127.0.0.1]:9405", "[::1]9405", ""] {
            let found = problems("[metrics]\nlisten = \(bad)\n")
            #expect(found.count == 1 && found[0].hasSuffix("[metrics] listen: expected \(expected), got \"\(bad)\""), "\(bad): \(found)")
        }
        let unknown = problems("[metrics]\nlisten = 127.0.0.1:9405\nlistn = 1\n")
        #expect(unknown.count == 1 && unknown[0].contains("unknown option (did you mean \"listen\"?)"), "\(unknown)")
    }

    @Test func requestHeadsAreReadWithinTheBound() {
        func examine(_ text: String, limit: Int = 64) -> MetricsHTTP.Head {
            MetricsHTTP.examine(Array(text.utf8)[...], maximumHeaderBytes: limit)
        }
        #expect(examine("GET /metrics HTTP/1.1\r\nHost: x\r\n") == .incomplete)
        #expect(examine("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") == .request(method: "GET", target: "/metrics", version: "HTTP/1.1"))
        #expect(examine("GET /metrics HTTP/1.0\n\n") == .request(method: "GET", target: "/metrics", version: "HTTP/1.0"))
        #expect(examine("GET /metrics HTTP/1.1\r\nX: " + String(repeating: "a", count: 80)) == .tooLarge)
        // The end of the head must fall within the bound, not merely arrive.
        #expect(examine("GET /metrics HTTP/1.1\r\nX: " + String(repeating: "a", count: 80) + "\r\n\r\n") == .tooLarge)
        #expect(examine("GARBAGE\r\n\r\n") == .malformed("the request line is not METHOD TARGET HTTP/VERSION"))
        #expect(examine("get /metrics HTTP/1.1\r\n\r\n") == .malformed("the method \"get\" is not a token of capital letters"))
        #expect(examine("GET /metrics SPDY/3\r\n\r\n") == .malformed("\"SPDY/3\" is not an HTTP version"))
        #expect(examine("GET /m\u{7}etrics HTTP/1.1\r\n\r\n") == .malformed("the request line has bytes other than printable ASCII"))
        // Fed a byte at a time, resuming where the last search stopped, the end is still found
        // when it straddles two reads.
        let request = Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        var searched = 0
        var found: MetricsHTTP.Head = .incomplete
        for count in 1...request.count {
            found = MetricsHTTP.examine(request[0..<count], maximumHeaderBytes: 64, searchedBytes: searched)
            if found != .incomplete { break }
            searched = count
        }
        #expect(found == .request(method: "GET", target: "/metrics", version: "HTTP/1.1") && searched == request.count - 1)
    }

    @Test func responsesFollowMethodPathAndVersion() throws {
        var rendered = 0
        func respond(_ head: MetricsHTTP.Head) -> MetricsHTTP.Response? {
            MetricsHTTP.respond(to: head) {
                rendered += 1
                return Array("x 1\n".utf8)
            }
        }
        let ok = try #require(respond(.request(method: "GET", target: "/metrics?name=x", version: "HTTP/1.1")))
        #expect(String(decoding: ok.encoded, as: UTF8.self) == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            + "Content-Length: 4\r\nConnection: close\r\n\r\nx 1\n")
        let head = try #require(respond(.request(method: "HEAD", target: "/metrics", version: "HTTP/1.0")))
        #expect(String(decoding: head.encoded, as: UTF8.self).hasSuffix("Content-Length: 4\r\nConnection: close\r\n\r\n"))
        #expect(rendered == 2)
        let post = try #require(respond(.request(method: "POST", target: "/metrics", version: "HTTP/1.1")))
        #expect(post.status == 405 && post.extraHeaders == ["Allow: GET, HEAD"])
        #expect(respond(.request(method: "GET", target: "/", version: "HTTP/1.1"))?.status == 404)
        #expect(respond(.request(method: "GET", target: "/metrics", version: "HTTP/2.0"))?.status == 505)
        #expect(respond(.tooLarge)?.status == 431)
        #expect(respond(.malformed("x"))?.status == 400)
        #expect(respond(.incomplete) == nil)
        #expect(rendered == 2, "errors never build the metrics")
    }

    @Test func textFormatWritesFamiliesAndEscapes() {
        var text = MetricsText()
        text.family("a_total", .counter, help: "Back\\slash and\nnewline.", [.init([("l", "q\"b\\n\nx")], .integer(3))])
        text.single("b_seconds", .gauge, help: "B.", .seconds(.milliseconds(1_500)))
        text.histogram("c_seconds", help: "C.", bounds: [0.5, 1], bucketCounts: [1, 2, 3], sumSeconds: 7.25, count: 6)
        #expect(text.text == """
            # HELP a_total Back\\\\slash and\\nnewline.
            # TYPE a_total counter
            a_total{l="q\\"b\\\\n\\nx"} 3
            # HELP b_seconds B.
            # TYPE b_seconds gauge
            b_seconds 1.5
            # HELP c_seconds C.
            # TYPE c_seconds histogram
            c_seconds_bucket{le="0.5"} 1
            c_seconds_bucket{le="1"} 3
            c_seconds_bucket{le="+Inf"} 6
            c_seconds_sum 7.25
            c_seconds_count 6

            """)
        #expect(MetricsText.isValidName("devcluster_up") && !MetricsText.isValidName("9x") && !MetricsText.isValidName("a-b"))
        #expect(MetricsText.format(.infinity) == "+Inf" && MetricsText.format(2) == "2" && MetricsText.format(0.0005) == "0.0005")
    }

    @Test func tokenRotationsFallInTheirBuckets() {
        var rotation = TokenRotationStatistics()
        #expect(rotation.last == nil && rotation.count == 0)
        rotation.record(.microseconds(500))       // exactly on the first bound: in it
        rotation.record(.microseconds(501))
        rotation.record(.milliseconds(180))
        rotation.record(.seconds(60))             // above every bound
        rotation.record(.nanoseconds(-5))         // counts as zero
        #expect(rotation.bucketCounts == [2, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])
        #expect(rotation.count == 5 && rotation.last == .nanoseconds(-5))
        #expect(rotation.sumNanoseconds == 500_000 + 501_000 + 180_000_000 + 60_000_000_000)
    }

    @Test func aFullDocumentPassesPromtool() async throws {
        var statistics = RuntimeStatistics()
        statistics.reformations[.tokenLost] = 2
        statistics.replayRefusals["duplicate"] = 4
        statistics.tokenRotation.record(.milliseconds(3))
        let snapshot = MetricsSnapshot(
            version: "0.1.0", nodeID: NodeID(rawValue: 1)!, nodeName: "server \"1\"", clusterName: "pbx", entityID: "02:00:00:00:00:01",
            ringID: RingID(representative: NodeID(rawValue: 1)!, sequence: 12), state: .operational, members: 3, configuredNodes: 3,
            uptime: .seconds(90), statistics: statistics, sendQueueMessages: 0, sendQueueBytes: 0, controlClients: 2,
            services: MetricsSnapshot.Services(
                quorate: true, quorumPresent: 3, quorumConfigured: 3, localDevices: 1, knownDevices: 2, localMailboxes: 0,
                knownMailboxes: 1, backlogMessages: 0, backlogDropped: 0, retainedEvents: 5, retainedBytes: 2_000,
                retainedDroppedAtEventCap: 0, retainedDroppedAtByteCap: 1, stateRecordsWritten: 4, persistenceFailures: 0,
                persistenceDegraded: false, unpersistedChanges: 0, watchers: 1, adapters: 0))
        let text = MetricsReport.text(snapshot).text
        #expect(text.contains("devcluster_ring_reformations_total{cause=\"token_lost\"} 2\n"))
        #expect(text.contains("devcluster_ring_reformations_total{cause=\"join_received\"} 0\n"))
        #expect(text.contains("devcluster_freshness_refused_total{reason=\"duplicate\"} 4\n"))
        #expect(text.contains("devcluster_token_rotation_seconds_bucket{le=\"0.005\"} 1\n"))
        #expect(text.contains("devcluster_ring_info{ring=\"1.12\",representative=\"1\"} 1\n"))
        #expect(text.contains("name=\"server \\\"1\\\"\""))
        if let problems = try await promtoolProblems(text) { #expect(problems.isEmpty, "\(problems)\n\(text)") }
    }
}

@Suite("Metrics: the responder on its own loop")
struct MetricsServerTests {
    @Test func servesOverIPv6LoopbackAndClosesOnStop() async throws {
        let loop = try EventLoop(name: "metrics-test")
        defer {
            loop.stop()
            loop.join()
        }
        let port = randomPort()
        let endpoint = try #require(DaemonConfiguration.Endpoint(parsing: "[::1]:\(port)"))
        let logger = LogCollector().makeLogger(level: .warning)
        let opened: Result<LoopBound<MetricsServer>, MetricsServer.Failure>? = await onLoop(loop) {
            do throws(MetricsServer.Failure) {
                let server = try MetricsServer(endpoint: endpoint, eventLoop: loop, logger: logger) { Array("x_total 1\n".utf8) }
                return .success(LoopBound(server, eventLoop: loop))
            } catch {
                return .failure(error)
            }
        }
        let server = try #require(try opened?.get())
        let socket = Glibc.socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        try #require(socket >= 0)
        defer { _ = close(socket) }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = port.bigEndian
        address.sin6_addr = in6addr_loopback
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        try #require(connected == 0, "connect to [::1]:\(port): errno \(errno)")
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        _ = setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = Array("GET /metrics HTTP/1.1\r\n\r\n".utf8).withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        let (response, closed) = readUntilClosed(socket, timeout: .seconds(5))
        #expect(closed && response.hasPrefix("HTTP/1.1 200 OK\r\n") && response.hasSuffix("\r\n\r\nx_total 1\n"), "\(response.debugDescription)")
        #expect(await onLoop(loop) { server.value.responses[200] } == 1)
        _ = await onLoop(loop) { server.value.close() }
        // Closed: nothing listens there any more.
        let again = Glibc.socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        defer { _ = close(again) }
        let refused = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(again, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        #expect(refused == -1 && errno == ECONNREFUSED)
    }
}

// MARK: - A real daemon over loopback

/// One HTTP exchange over a raw TCP socket: sends `request` (in pieces if asked), reads until the
/// server closes or `timeout` passes. Returns what was read and whether the server closed.
func httpExchange(port: UInt16, _ request: [UInt8], timeout: Duration = .seconds(10)) throws -> (response: String, closed: Bool) {
    let socket = try connectTCP(port: port)
    defer { _ = close(socket) }
    if !request.isEmpty {
        _ = request.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
    return readUntilClosed(socket, timeout: timeout)
}

/// A blocking TCP connection to 127.0.0.1:`port`, reads timing out after 200 ms.
func connectTCP(port: UInt16) throws -> Int32 {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw TestFailure("socket: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard result == 0 else {
        let error = errno
        _ = close(socket)
        throw TestFailure("connect to 127.0.0.1:\(port): errno \(error)")
    }
    var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
    _ = setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return socket
}

/// Reads until end of file, a reset, or `timeout`.
func readUntilClosed(_ socket: Int32, timeout: Duration) -> (response: String, closed: Bool) {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    for _ in 0..<100_000 where clock.now < deadline {
        let count = recv(socket, &buffer, buffer.count, 0)
        if count > 0 {
            bytes.append(contentsOf: buffer[0..<count])
        } else if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return (String(decoding: bytes, as: UTF8.self), true)
        }
    }
    return (String(decoding: bytes, as: UTF8.self), false)
}

/// A parsed HTTP response: status line, headers (lower-cased names) and body.
struct HTTPResponse {
    var statusLine: String
    var headers: [String: String]
    var body: String

    init(_ text: String) throws {
        guard let split = text.range(of: "\r\n\r\n") else { throw TestFailure("no end of headers in \(text.debugDescription)") }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        statusLine = lines[0]
        headers = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw TestFailure("bad header line \(line.debugDescription)") }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        body = String(text[split.upperBound...])
    }

    /// The value of the unlabelled sample `name`, or of the one with exactly `labels`.
    func sample(_ name: String, _ labels: String = "") -> Int64? {
        let prefix = labels.isEmpty ? name + " " : name + "{" + labels + "} "
        guard let line = body.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
        return Int64(line.dropFirst(prefix.count))
    }
}

@Suite("Metrics: a real daemon scraped over loopback", .serialized)
struct MetricsEndToEndTests {
    @Test func scrapesMatchStatusAndBadOrSlowClientsAreBoundedWhileTheRingAndControlSocketServe() async throws {
        try #require(daemonExecutable != nil, "devclusterd was not found next to the test binary; build it with swift build")
        let base = try makeTemporaryDirectory()
        let children = Children()
        defer {
            children.killAll()
            removeDirectory(base)
        }
        let ringPort = randomPort()
        let metricsPort = ringPort &+ 1
        let nodes = try (1...2).map { index in
            try makeNode(index, of: 2, in: base, port: ringPort, extra: index == 1 ? "\n[metrics]\nlisten = 127.0.0.1:\(metricsPort)\n" : "",
                         configuredEntity: true)
        }
        let processes = try await startRing(nodes, children: children)
        #expect(try runCommand(["--socket", nodes[0].socket, "devstate", "set", "Custom:metrics", "INUSE"]).status == 0)

        // A scrape: status line, headers, content type, and the numbers status --json shows.
        let exchange = try httpExchange(port: metricsPort, Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        #expect(exchange.closed, "Connection: close")
        let scrape = try HTTPResponse(exchange.response)
        #expect(scrape.statusLine == "HTTP/1.1 200 OK")
        #expect(scrape.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        #expect(scrape.headers["connection"] == "close")
        #expect(scrape.headers["content-length"] == String(scrape.body.utf8.count))
        let status = try #require(cliJSON(["--socket", nodes[0].socket, "status"]))
        let counters = try #require(status["counters"])
        #expect(scrape.sample("devcluster_ring_members") == status["members"]?.integerValue)
        #expect(scrape.sample("devcluster_configured_nodes") == status["configured_nodes"]?.integerValue)
        #expect(scrape.sample("devcluster_rings_installed_total") == counters["rings_installed"]?.integerValue)
        #expect(scrape.sample("devcluster_authentication_failures_total") == counters["authentication_failures"]?.integerValue)
        #expect(scrape.sample("devcluster_freshness_refused_total", "reason=\"duplicate\"")
            == counters["freshness_refused_duplicate"]?.integerValue)
        #expect(scrape.sample("devcluster_quorate") == 1 && status["quorum"]?["quorate"] == true)
        #expect(scrape.sample("devcluster_local_devices") == status["device_state"]?["local_devices"]?.integerValue)
        #expect(scrape.sample("devcluster_local_devices") == 1 && scrape.sample("devcluster_known_devices") == 1)
        #expect(scrape.sample("devcluster_build_info", "version=\"\(Devclusterd.version)\"") == 1)
        #expect(scrape.sample("devcluster_ring_state", "state=\"operational\"") == 1)
        let ring = try #require(status["ring"]?.stringValue)
        #expect(scrape.body.contains("devcluster_ring_info{ring=\"\(ring)\",representative=\"1\"} 1\n"))
        #expect((scrape.sample("devcluster_messages_delivered_total") ?? 0) > 0)
        #expect((scrape.sample("devcluster_token_rotation_seconds_count") ?? 0) > 0, "a two-node ring passes the token")
        if let problems = try await promtoolProblems(scrape.body) { #expect(problems.isEmpty, "\(problems)\n\(scrape.body)") }

        // HEAD: the same headers, no body. Other methods, paths and garbage: their status, then closed.
        let head = try httpExchange(port: metricsPort, Array("HEAD /metrics HTTP/1.1\r\n\r\n".utf8))
        let headResponse = try HTTPResponse(head.response)
        #expect(headResponse.statusLine == "HTTP/1.1 200 OK" && headResponse.body.isEmpty && head.closed)
        #expect(Int(headResponse.headers["content-length"] ?? "") ?? 0 > 1_000)
        let post = try HTTPResponse(try httpExchange(port: metricsPort, Array("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n".utf8)).response)
        #expect(post.statusLine == "HTTP/1.1 405 Method Not Allowed" && post.headers["allow"] == "GET, HEAD")
        let other = try HTTPResponse(try httpExchange(port: metricsPort, Array("GET / HTTP/1.1\r\n\r\n".utf8)).response)
        #expect(other.statusLine == "HTTP/1.1 404 Not Found")
        let garbage = try HTTPResponse(try httpExchange(port: metricsPort, Array("\u{16}\u{3}\u{1} hello\r\n\r\n".utf8)).response)
        #expect(garbage.statusLine == "HTTP/1.1 400 Bad Request")
        let oversized = try httpExchange(port: metricsPort, Array(("GET /metrics HTTP/1.1\r\nX: " + String(repeating: "a", count: 20_000)).utf8))
        #expect(try HTTPResponse(oversized.response).statusLine == "HTTP/1.1 431 Request Header Fields Too Large" && oversized.closed)

        // Slow clients: 16 connections that never finish their request fill the endpoint; the
        // 17th is refused at once; the control socket and the ring carry on; after the 5 s read
        // timeout each slow one gets a 408 and is closed, and scrapes work again.
        // Connections just answered count until the daemon has seen their clients close (it reads
        // what they still send first): let it finish them.
        try await Task.sleep(for: .milliseconds(300))
        var slow: [Int32] = []
        defer { for socket in slow { _ = close(socket) } }
        for _ in 0..<16 {
            let socket = try connectTCP(port: metricsPort)
            slow.append(socket)
            _ = Array("GET /metrics HTTP/1.1\r\n".utf8).withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        let started = ContinuousClock.now
        // The daemon accepts them on its next turns: wait until the 17th is refused.
        let refused = await eventually(within: .seconds(3)) {
            let response = (try? httpExchange(port: metricsPort, Array("GET /metrics HTTP/1.1\r\n\r\n".utf8), timeout: .seconds(2)))?.response
            return response?.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n") == true
        }
        #expect(refused, "a 17th connection is refused while 16 are open")
        #expect(membership(nodes[0])?.members == [1, 2], "the control socket answers while scrapers stall")
        #expect(try runCommand(["--socket", nodes[1].socket, "devstate", "set", "Custom:metrics2", "BUSY"]).status == 0)
        let delivered = await eventually(within: .seconds(3)) {
            cliJSON(["--socket", nodes[0].socket, "devstate", "get", "Custom:metrics2"])?["state"] == "BUSY"
        }
        #expect(delivered, "the ring carries on while scrapers stall")
        for socket in slow {
            let (response, closed) = readUntilClosed(socket, timeout: .seconds(8))
            #expect(response.hasPrefix("HTTP/1.1 408 Request Timeout\r\n") && closed, "\(response.debugDescription)")
        }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .seconds(4) && elapsed < .seconds(9), "closed at the 5 s read timeout, after \(elapsed)")
        let again = try HTTPResponse(try httpExchange(port: metricsPort, Array("GET /metrics HTTP/1.0\r\n\r\n".utf8)).response)
        #expect(again.statusLine == "HTTP/1.1 200 OK" && again.sample("devcluster_known_devices") == 2)

        // A graceful leave re-forms the ring: counted under its cause.
        let installedBefore = again.sample("devcluster_rings_installed_total") ?? 0
        #expect(again.sample("devcluster_ring_reformations_total", "cause=\"leave_received\"") == 0)
        kill(processes[1].processIdentifier, SIGTERM)
        let reformed = await eventually(within: .seconds(10)) {
            guard let text = try? httpExchange(port: metricsPort, Array("GET /metrics HTTP/1.1\r\n\r\n".utf8)).response,
                  let scrape = try? HTTPResponse(text) else { return false }
            return scrape.sample("devcluster_ring_reformations_total", "cause=\"leave_received\"") == 1
                && scrape.sample("devcluster_ring_members") == 1 && scrape.sample("devcluster_rings_installed_total") == installedBefore + 1
        }
        #expect(reformed, "a SIGTERM leave is counted as leave_received")
    }

    @Test func anEndpointThatCannotBeBoundStopsTheStartWithItsReason() async throws {
        try #require(daemonExecutable != nil, "devclusterd was not found next to the test binary; build it with swift build")
        let base = try makeTemporaryDirectory()
        let children = Children()
        defer {
            children.killAll()
            removeDirectory(base)
        }
        // 192.0.2.1 (TEST-NET-1) is no address of this host: bind fails.
        let node = try makeNode(1, of: 1, in: base, port: randomPort(), extra: "\n[metrics]\nlisten = 192.0.2.1:9405\n")
        let process = try children.start(["--foreground", "--config", node.configuration], log: node.log)
        let status = await children.waitForExit(process, timeout: .seconds(10))
        #expect(status == 1)
        #expect(node.logText.contains("[metrics] listen: cannot listen on 192.0.2.1:9405: bind: Cannot assign requested address"), "\(node.logText)")
    }
}
