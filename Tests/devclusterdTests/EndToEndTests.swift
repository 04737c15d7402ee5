// The daemon as users run it: real devclusterd processes on 127.0.0.1-3 with their own
// configurations, state directories and sockets. Rings form, a kill -9 is detected, a restarted
// node rejoins, a SIGTERM leave is seen faster than a token timeout, different keys or cluster
// names never share a ring; plus --check-config, keygen and the CLI without a daemon.
// Every child is killed by PID when the test ends, also when it fails.

import Foundation
import Glibc
import Synchronization
import Testing
@testable import devclusterd

/// The devclusterd executable built next to the test binary, or `nil`.
let daemonExecutable: String? = {
    var candidates: [String] = []
    if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        candidates.append(FileSystem.parentDirectory(of: executable) + "/devclusterd")
    }
    candidates.append(FileSystem.parentDirectory(of: Bundle.main.bundlePath) + "/devclusterd")
    candidates.append(Bundle.main.bundlePath + "/devclusterd")
    // Tests/devclusterdTests/EndToEndTests.swift -> <package>/.build/debug/devclusterd
    let package = FileSystem.parentDirectory(of: FileSystem.parentDirectory(of: FileSystem.parentDirectory(of: #filePath)))
    candidates.append(package + "/.build/debug/devclusterd")
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}()

/// The output of a command that ran to completion.
struct CommandResult {
    var status: Int32
    var output: String
    var error: String
}

/// Children started by one test; `killAll` ends every one still running, by PID.
final class Children {
    private var processes: [Process] = []

    /// Starts devclusterd with `arguments`, standard output written to a new file `log` and
    /// standard error to `errorLog` (the same file when not given), with `environment` added to
    /// the test's own.
    func start(_ arguments: [String], log: String, errorLog: String? = nil, environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(daemonExecutable))
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, added in added }
        }
        // An existing file is emptied in place, not replaced: its inode stays (JournalLogTests
        // names it in JOURNAL_STREAM).
        func emptyFile(_ path: String) throws -> FileHandle {
            if let existing = FileHandle(forWritingAtPath: path) {
                try existing.truncate(atOffset: 0)
                return existing
            }
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        }
        let handle = try emptyFile(log)
        process.standardOutput = handle
        process.standardError = try errorLog.map(emptyFile) ?? handle
        try process.run()
        processes.append(process)
        return process
    }

    /// Waits for `process` to exit, up to `timeout`; kills it if it does not.
    @discardableResult
    func waitForExit(_ process: Process, timeout: Duration) async -> Int32? {
        let exited = await eventually(within: timeout, every: .milliseconds(10)) { !process.isRunning }
        guard exited else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    func killAll() {
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        processes.removeAll()
    }
}

/// Runs devclusterd with `arguments` to completion (commands that exit by themselves).
func runCommand(_ arguments: [String]) throws -> CommandResult {
    try runProcess(try #require(daemonExecutable), arguments)
}

/// Runs `executable` with `arguments` to completion, collecting both outputs.
func runProcess(_ executable: String, _ arguments: [String]) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, output: String(decoding: outputData, as: UTF8.self),
                         error: String(decoding: errorData, as: UTF8.self))
}

/// One daemon's files.
struct TestNode {
    var index: Int
    var directory: String
    var configuration: String { directory + "/devcluster.conf" }
    var socket: String { directory + "/run/devclusterd.sock" }
    var state: String { directory + "/state" }
    var log: String { directory + "/daemon.log" }
    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
}

/// Writes a configuration for node `index` (1-based) of `count` nodes on 127.0.0.1...
func makeNode(_ index: Int, of count: Int, in base: String, port: UInt16, clusterName: String = "e2e",
                      keyFile: String? = nil, logLevel: String = "info", channels: String? = nil,
                      extra: String = "", configuredEntity: Bool = false, options: String = "") throws -> TestNode {
    let node = TestNode(index: index, directory: "\(base)/n\(index)")
    try FileManager.default.createDirectory(atPath: node.directory, withIntermediateDirectories: true)
    var text = """
        [totem]
        cluster_name = \(clusterName)
        transport = udpu
        mcastport = \(port)
        token = \(EndToEndTests.tokenMilliseconds)
        token_coefficient = 0

        """
    if let keyFile { text += "crypto = hmac-sha256\nkeyfile = \(keyFile)\n" }
    for other in 1...count {
        text += "\n[node]\nnodeid = \(other)\nname = server\(other)\naddr = 127.0.0.\(other)\n"
    }
    text += """

        [options]
        nodeid = \(index)
        control_socket = \(node.socket)
        state_dir = \(node.state)
        log_level = \(logLevel)
        \(options)
        \(configuredEntity ? "entity_id = 02:00:00:00:00:\(index < 10 ? "0" : "")\(index)" : "")


        """
    text += channels ?? """
        [device_state]
        type = event_channel
        publish_event = device_state
        subscribe_event = device_state

        """
    text += extra
    try text.write(toFile: node.configuration, atomically: true, encoding: .utf8)
    return node
}

/// The ring and member ids a daemon reports, or `nil` when it does not answer.
func membership(_ node: TestNode) -> (ring: String, members: [Int64])? {
    guard let client = try? ControlClient(path: node.socket, timeout: .seconds(2)),
          case .success(let result)? = try? client.call("members"),
          let ring = result["ring"]?.stringValue, let members = result["members"]?.arrayValue
    else { return nil }
    return (ring, members.filter { $0["member"] == true }.compactMap { $0["nodeid"]?.integerValue })
}

/// Whether all `nodes` report one ring made of exactly `members`.
func formed(_ nodes: [TestNode], members: [Int64]) -> Bool {
    let views = nodes.map(membership)
    guard let first = views[0] else { return false }
    return views.allSatisfy { $0?.ring == first.ring && $0?.members == members }
}

/// A UDP port for a test cluster (it may use the port and the one above it): below the kernel's
/// ephemeral range (32768 and up, where other sockets of the suite get their ports), never one
/// handed out before in this test process, and free on 127.0.0.1 when handed out. Random ports
/// in 20000-60000 collided once ("Address already in use" at a daemon's start).
func randomPort() -> UInt16 {
    for _ in 0..<1_000 {
        let port = UInt16.random(in: 10_000...16_000) * 2
        let fresh = handedOutPorts.withLock { $0.insert(port).inserted }
        if fresh, isFreeUDPPort(port), isFreeUDPPort(port + 1) { return port }
    }
    return UInt16.random(in: 20_000...32_000)
}

private let handedOutPorts = Mutex<Set<UInt16>>([])

/// Whether a UDP socket can bind 127.0.0.1:`port` now.
private func isFreeUDPPort(_ port: UInt16) -> Bool {
    let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard descriptor >= 0 else { return false }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

@Suite("End to end: devclusterd processes", .serialized)
struct EndToEndTests {
    /// The test clusters' token timeout; detection of a crash takes about token + consensus (1.2 × token).
    static let tokenMilliseconds = 500

    /// The time at the start of a daemon log line (`2026-12-06T09:38:44.916Z ...`).
    static func logTimestamp(_ line: String) -> Date? {
        guard let stamp = line.split(separator: " ").first else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: String(stamp))
    }

    @Test func threeDaemonsFormARingDetectFailuresAndSeeGracefulLeavesFast() async throws {
        try #require(daemonExecutable != nil, "devclusterd was not found next to the test binary; build it with swift build")
        let base = try makeTemporaryDirectory()
        let children = Children()
        defer {
            children.killAll()
            removeDirectory(base)
        }
        let keygen = try runCommand(["keygen", "--output", base + "/keys/authkey"])
        #expect(keygen.status == 0, "\(keygen.error)")
        let port = randomPort()
        let nodes = try (1...3).map { try makeNode($0, of: 3, in: base, port: port, keyFile: base + "/keys/authkey") }
        var processes = try nodes.map { try children.start(["--foreground", "--config", $0.configuration], log: $0.log) }

        let ringOfThree = await eventually(within: .seconds(10)) { formed(nodes, members: [1, 2, 3]) }
        try #require(ringOfThree, "no ring of 3: \(nodes.map(membership)); log of node 1:\n\(nodes[0].logText)")

        // The CLI as a script sees it.
        let json = try runCommand(["--socket", nodes[0].socket, "members", "--json"])
        #expect(json.status == 0)
        let members = try JSONParser.parse(json.output.trimmingCharacters(in: .newlines))
        #expect(members["members"]?.arrayValue?.map { $0["member"] } == [true, true, true])
        #expect(members["members"]?.arrayValue?.first?["addresses"] == ["127.0.0.1"])
        let human = try runCommand(["--config", nodes[1].configuration, "members"])
        #expect(human.status == 0 && human.output.contains("=== Node Name: server3\n=== ==> ID: 3 (0x3)\n=== ==> Address: 127.0.0.3\n=== ==> Member: Yes\n"))
        let status = try runCommand(["--socket", nodes[2].socket, "status", "--json"])
        let statusResult = try JSONParser.parse(status.output.trimmingCharacters(in: .newlines))
        #expect(statusResult["authentication"] == "hmac-sha256" && statusResult["members"] == 3)
        #expect(statusResult["node"]?["name"] == "server3")
        #expect(FileManager.default.fileExists(atPath: nodes[0].state + "/entity_id"))
        // Three daemons on one host derive distinct entity ids (the MAC address mixed with each
        // node id, or random): no conflict. (PapercutTests shows a shared configured id.)
        let entities = Set(nodes.map { try? String(contentsOfFile: $0.state + "/entity_id", encoding: .utf8) })
        #expect(entities.count == 3, "\(entities)")
        #expect((members["entity_conflicts"]?.arrayValue ?? []).isEmpty && !human.output.contains("WARNING"))

        // SIGHUP applies the new log level.
        let debugConfiguration = try String(contentsOfFile: nodes[0].configuration, encoding: .utf8)
            .replacingOccurrences(of: "log_level = info", with: "log_level = debug")
        try debugConfiguration.write(toFile: nodes[0].configuration, atomically: true, encoding: .utf8)
        kill(processes[0].processIdentifier, SIGHUP)
        let reloaded = await eventually(within: .seconds(5)) {
            guard let client = try? ControlClient(path: nodes[0].socket, timeout: .seconds(2)),
                  case .success(let result)? = try? client.call("status") else { return false }
            return result["log_level"] == "debug"
        }
        #expect(reloaded, "log level not applied on SIGHUP:\n\(nodes[0].logText)")

        // kill -9: the others notice at once (port unreachable), at worst by token loss.
        let clock = ContinuousClock()
        let logBeforeKill = nodes[0].logText.utf8.count
        let killedAt = clock.now
        let killedAtWall = Date()
        kill(processes[2].processIdentifier, SIGKILL)
        let detected = await eventually(within: .seconds(10), every: .milliseconds(10)) { formed(Array(nodes[0...1]), members: [1, 2]) }
        let polled = clock.now - killedAt
        try #require(detected, "the crash of node 3 was not detected: \(nodes.prefix(2).map(membership))")
        let token = Duration.milliseconds(Self.tokenMilliseconds)
        // Timed by node 1's own log (when it installed the ring without node 3), not by this
        // test's polling, which a suite starving the test process on two cores delays by seconds
        // (6.5 s once in CI). Token loss plus consensus is about 2.2 tokens (1.1 s here); the
        // slack covers a second gather round when the daemons themselves are starved.
        let afterKill = String(decoding: nodes[0].logText.utf8.dropFirst(logBeforeKill), as: UTF8.self)
        let detectedAt = afterKill.split(separator: "\n").first { $0.contains("regular configuration") && $0.contains("members [1, 2]") }
            .flatMap { Self.logTimestamp(String($0)) }
        let detection = try #require(detectedAt.map { Duration.milliseconds(Int64(($0.timeIntervalSince(killedAtWall) * 1_000).rounded())) },
                                     "node 1 logged no regular configuration of [1, 2]:\n\(afterKill.suffix(1_500))")
        #expect(detection < token * 2.2 + .seconds(4), "crash detection took \(detection) by node 1's log (\(polled) by polling)")
        // Node 3's host is up: the kernel answers the token node 2 sends it with "port
        // unreachable"; node 3 answers none of node 2's liveness probes, and node 2 re-forms the
        // ring without waiting for the timeouts.
        #expect(nodes[1].logText.contains("nothing listens at node 3's address"), "node 2 log:\n\(nodes[1].logText)")
        #expect(nodes[1].logText.contains("its successor answered none of 3 liveness probes"), "node 2 log:\n\(nodes[1].logText)")
        print("devclusterd end to end: kill -9 detected after \(detection) (token \(token))")

        // It rejoins after a restart.
        processes[2] = try children.start(["--foreground", "--config", nodes[2].configuration], log: nodes[2].log)
        let rejoined = await eventually(within: .seconds(10)) { formed(nodes, members: [1, 2, 3]) }
        try #require(rejoined, "node 3 did not rejoin: \(nodes.map(membership))")

        // SIGTERM: a graceful leave, seen by the others faster than a token timeout.
        let logBeforeLeave = nodes[0].logText.utf8.count
        let terminatedAt = clock.now
        let terminatedAtWall = Date()
        kill(processes[2].processIdentifier, SIGTERM)
        let left = await eventually(within: .seconds(10), every: .milliseconds(2)) { formed(Array(nodes[0...1]), members: [1, 2]) }
        let leave = clock.now - terminatedAt
        #expect(left)
        // The survivors must log it as a leave, not as a failure found by token loss. Alone this
        // takes 5-50 ms; under the whole suite on two cores up to 0.74 s was seen, so the time
        // bound is the failure-detection time, and a slow leave prints the survivors' log.
        let survivorLog = String(decoding: nodes[0].logText.utf8.dropFirst(logBeforeLeave), as: UTF8.self)
        #expect(survivorLog.contains("left (graceful)"), "node 1 did not log a graceful leave:\n\(survivorLog.suffix(1_500))")
        #expect(!survivorLog.contains("failed"), "node 1 took the leave for a failure:\n\(survivorLog.suffix(1_500))")
        // Timed by node 1's own log (when it installed the ring without node 3), not by this
        // test's polling: when the whole suite starves the test process of CPU, the poll above
        // can come seconds late (1.97 s once in CI, while node 1 had the new ring in 17 ms).
        let formedAt = survivorLog.split(separator: "\n").first { $0.contains("regular configuration") && $0.contains("members [1, 2]") }
            .flatMap { Self.logTimestamp(String($0)) }
        let leaveByLog = formedAt.map { Duration.milliseconds(Int64(($0.timeIntervalSince(terminatedAtWall) * 1_000).rounded())) }
        let measured = try #require(leaveByLog, "node 1 logged no regular configuration of [1, 2]:\n\(survivorLog.suffix(1_500))")
        #expect(measured < token * 2.2, "the graceful leave took \(measured) by node 1's log (\(leave) by polling), failure detection takes about \(token * 2.2)")
        print("devclusterd end to end: SIGTERM leave seen after \(leave) (token \(token))")
        if leave > token / 2 { print("devclusterd end to end: slow leave; node 1's log ends:\n\(survivorLog.suffix(1_500))") }
        #expect(await children.waitForExit(processes[2], timeout: .seconds(5)) == 0)
        #expect(!FileManager.default.fileExists(atPath: nodes[2].socket), "the socket is removed on exit")

        let log = nodes[0].logText
        #expect(log.contains(" info  ring 1."))
        #expect(log.contains(" formed: server1, server2, server3"))
        #expect(log.contains(" warning server3 failed\n"), "\(log)")
        #expect(log.contains(" notice server3 left (graceful)\n"), "\(log)")
        #expect(log.contains(" notice reloaded \(nodes[0].configuration): applied log_level info -> debug\n"), "\(log)")
        #expect(nodes[2].logText.contains(" notice received SIGTERM: leaving the ring and stopping\n"))
    }

    @Test func differentKeysOrClusterNamesNeverShareARing() async throws {
        try #require(daemonExecutable != nil, "devclusterd was not found next to the test binary; build it with swift build")
        let base = try makeTemporaryDirectory()
        let children = Children()
        defer {
            children.killAll()
            removeDirectory(base)
        }
        for name in ["a", "b"] {
            let result = try runCommand(["keygen", "--output", "\(base)/\(name).key"])
            #expect(result.status == 0)
        }
        let keyPort = randomPort()
        let keyed = [
            try makeNode(1, of: 2, in: base + "/keys", port: keyPort, keyFile: base + "/a.key"),
            try makeNode(2, of: 2, in: base + "/keys", port: keyPort, keyFile: base + "/b.key"),
        ]
        let namePort = keyPort == 60_000 ? keyPort - 1 : keyPort + 1
        let named = [
            try makeNode(1, of: 2, in: base + "/names", port: namePort, clusterName: "alpha"),
            try makeNode(2, of: 2, in: base + "/names", port: namePort, clusterName: "beta"),
        ]
        let nodes = keyed + named
        for node in nodes { _ = try children.start(["--foreground", "--config", node.configuration], log: node.log) }
        let alone = await eventually(within: .seconds(10)) {
            nodes.allSatisfy { node in membership(node)?.members == [Int64(node.index)] }
        }
        try #require(alone, "\(nodes.map(membership))")
        // Several token and join periods: each stays alone the whole time.
        let clock = ContinuousClock()
        let until = clock.now + .seconds(3)
        var samples = 0
        while clock.now < until && samples < 1_000 {
            samples += 1
            for node in nodes {
                let view = membership(node)
                #expect(view?.members == [Int64(node.index)], "node \(node.directory) joined another: \(String(describing: view))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(keyed[0].logText.contains("authentication failed for a datagram from 127.0.0.2:\(keyPort)"), "\(keyed[0].logText)")
        #expect(keyed[0].logText.contains("different cluster key"))
        let status = try ControlClient(path: keyed[1].socket).call("status")
        #expect((try status.get()["counters"]?["authentication_failures"]?.integerValue ?? 0) > 0)
        #expect(named[0].logText.contains("of another cluster"), "\(named[0].logText)")
    }

    @Test func checkConfigReportsEveryProblemOrOneOKLine() throws {
        try #require(daemonExecutable != nil, "devclusterd was not found next to the test binary; build it with swift build")
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let good = try makeNode(1, of: 2, in: base, port: 5405)
        let ok = try runCommand(["--check-config", "--config", good.configuration])
        #expect(ok.status == 0)
        #expect(ok.output == "\(good.configuration): OK: cluster \"e2e\", udpu, 2 nodes, this node 1 (server1), crypto none, "
            + "1 event channel, 0 hints, control socket \(good.socket)\n")

        let bad = base + "/bad.conf"
        try """
            [totem]
            cluster_name = x
            mcastport = 99999
            tokn = 1000

            [options]
            log_level = loud
            """.write(toFile: bad, atomically: true, encoding: .utf8)
        let failed = try runCommand(["--check-config", "--config", bad])
        #expect(failed.status == 1)
        #expect(failed.output.isEmpty)
        let lines = failed.error.split(separator: "\n").map(String.init)
        #expect(lines.contains("\(bad):3: [totem] mcastport: expected a port number 1-65535, got \"99999\""))
        #expect(lines.contains { $0.hasPrefix("\(bad):4: [totem] tokn: unknown option (did you mean \"token\"?)") })
        #expect(lines.contains("\(bad):7: [options] log_level: expected one of debug, info, notice, warning, error, got \"loud\""))
        #expect(lines.last?.hasPrefix("devclusterd: ") == true && lines.last?.hasSuffix(" problems found") == true)

        let keyless = try makeNode(1, of: 2, in: base + "/keyless", port: 5405, keyFile: base + "/missing.key")
        let missingKey = try runCommand(["--check-config", "--config", keyless.configuration])
        #expect(missingKey.status == 1)
        #expect(missingKey.error.hasPrefix("\(keyless.configuration): [totem] keyfile: key file \(base)/missing.key does not exist; "
            + "create one with \"devclusterd keygen --output \(base)/missing.key\""))

        let missingFile = try runCommand(["--check-config", "--config", base + "/nope.conf"])
        #expect(missingFile.status == 1)
        #expect(missingFile.error.hasPrefix("\(base)/nope.conf: cannot read the configuration file: No such file or directory"))
    }

    @Test func keygenWritesAPrivateKeyAndRefusesToOverwrite() throws {
        try #require(daemonExecutable != nil, "devclusterd was not found next to the test binary; build it with swift build")
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let path = base + "/etc/devcluster/authkey"
        let first = try runCommand(["keygen", "--output", path])
        #expect(first.status == 0, "\(first.error)")
        #expect(first.output.contains("wrote a new 256-byte cluster key to \(path) (mode 0400)"))
        var status = stat()
        #expect(stat(path, &status) == 0 && status.st_mode & 0o777 == 0o400 && status.st_size == 256)
        #expect(stat(base + "/etc/devcluster", &status) == 0 && status.st_mode & 0o777 == 0o700)
        let key = try Data(contentsOf: URL(fileURLWithPath: path))

        let again = try runCommand(["keygen", "--output", path])
        #expect(again.status == 1)
        #expect(again.error == "devclusterd: keygen: \(path) exists; use --force to replace it (every node of the cluster then needs the new key)\n")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == key)

        let forced = try runCommand(["keygen", "--output", path, "--force"])
        #expect(forced.status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) != key)
        #expect(stat(path, &status) == 0 && status.st_mode & 0o777 == 0o400 && status.st_size == 256)
        // Replaced through a temporary file that is gone afterwards.
        #expect(try FileManager.default.contentsOfDirectory(atPath: base + "/etc/devcluster") == ["authkey"])
    }

    @Test func theCLIWithoutADaemonSaysSo() throws {
        try #require(daemonExecutable != nil, "devclusterd was not found next to the test binary; build it with swift build")
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let missing = try runCommand(["--socket", base + "/none.sock", "members"])
        #expect(missing.status == 1)
        #expect(missing.error == "devclusterd: cannot connect to \(base)/none.sock: no daemon is running (the socket does not exist)\n")

        // A socket left by a crashed daemon: nobody listens.
        let node = try makeNode(1, of: 1, in: base, port: 5405)
        try FileManager.default.createDirectory(atPath: FileSystem.parentDirectory(of: node.socket), withIntermediateDirectories: true)
        let descriptor = try UnixSocket.makeStreamSocket(nonBlocking: false, path: node.socket)
        _ = try UnixSocket.withAddress(node.socket) { bind(descriptor, $0, $1) }
        _ = close(descriptor)
        let refused = try runCommand(["--config", node.configuration, "status"])
        #expect(refused.status == 1)
        #expect(refused.error == "devclusterd: cannot connect to \(node.socket): no daemon is running (connection refused)\n")

        let usage = try runCommand(["membres"])
        #expect(usage.status == 2)
        #expect(usage.error.hasPrefix("devclusterd: unknown command \"membres\" (did you mean \"members\"?)"))
        #expect(usage.error.contains("usage: devclusterd --foreground"))
    }
}
