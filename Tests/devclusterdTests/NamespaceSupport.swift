// Helpers for NamespaceTests: the host prerequisites, bounded runs of ip/nft/devclusterd, and a
// three-node cluster where each devclusterd runs in its own network namespace, joined by veths
// to a bridge in a fourth "hub" namespace. Nothing is added to the root namespace (no bridge, no
// veth end, no route); the daemons are reached through their Unix control sockets, which are
// files under the test's temporary directory. Every process is killed by PID and every
// namespace deleted by name when the cluster is destroyed, also after a failure.

import Foundation
import Glibc
import Testing
@testable import devclusterd

// MARK: - Prerequisites

/// What the namespace tests need from the host: root, `ip` (iproute2) and `nft` (nftables).
enum NamespacePrerequisites {
    /// Absolute path of `ip`, or `nil`.
    static let ip: String? = findTool("ip")
    /// Absolute path of `nft`, or `nil`.
    static let nft: String? = findTool("nft")
    /// Absolute path of `python3` (for the raw-socket tests: forged ICMP, recorded and replayed
    /// datagrams), or `nil`.
    static let python: String? = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"].first { access($0, X_OK) == 0 }

    /// The prerequisites this host lacks, in words; empty when the tests can run.
    static let missing: [String] = {
        var missing: [String] = []
        if getuid() != 0 {
            missing.append("root (running as uid \(getuid()); creating network namespaces needs CAP_SYS_ADMIN and CAP_NET_ADMIN)")
        }
        if ip == nil { missing.append("ip (apt-get install iproute2)") }
        if nft == nil { missing.append("nft (apt-get install nftables)") }
        return missing
    }()

    /// Whether the tests can run; prints (once) what is missing when they cannot, so a skip is visible.
    static let satisfied: Bool = {
        if !missing.isEmpty {
            print("devclusterd namespace tests SKIPPED: missing \(missing.joined(separator: "; "))")
        }
        return missing.isEmpty
    }()

    /// `name` in PATH or in the sbin directories (a root shell has them; a test runner may not).
    private static func findTool(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        return directories.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}


// MARK: - Bounded commands

/// The outcome of a command run to completion (or killed at its deadline).
struct ToolResult: Sendable, CustomStringConvertible {
    var status: Int32
    var output: String
    var error: String
    var timedOut: Bool

    var succeeded: Bool { status == 0 && !timedOut }

    var description: String {
        "status \(status)\(timedOut ? " (killed at its deadline)" : ""), stdout \(output.debugDescription), stderr \(error.debugDescription)"
    }
}

enum Tool {
    /// Runs `executable arguments` to completion, polling (without blocking a thread) every 2 ms;
    /// past `timeout` the child is killed by its PID. Output goes to unnamed temporary files, so a
    /// chatty child can never block on a full pipe.
    static func run(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(10)) async -> ToolResult {
        var result = ToolResult(status: -1, output: "", error: "", timedOut: false)
        guard let output = tmpfile(), let error = tmpfile() else {
            result.error = "tmpfile failed: errno \(errno)"
            return result
        }
        defer {
            fclose(output)
            fclose(error)
        }
        guard let process = launch(executable, arguments, output: output, error: error, result: &result) else { return result }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        for _ in 0..<100_000 {
            guard process.isRunning && clock.now < deadline else { break }
            try? await Task.sleep(for: .milliseconds(2))
        }
        finish(process, output: output, error: error, result: &result)
        return result
    }

    /// As `run`, blocking the calling thread: for cleanup in `defer`, which cannot await.
    static func runBlocking(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(10)) -> ToolResult {
        var result = ToolResult(status: -1, output: "", error: "", timedOut: false)
        guard let output = tmpfile(), let error = tmpfile() else {
            result.error = "tmpfile failed: errno \(errno)"
            return result
        }
        defer {
            fclose(output)
            fclose(error)
        }
        guard let process = launch(executable, arguments, output: output, error: error, result: &result) else { return result }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        for _ in 0..<100_000 {
            guard process.isRunning && clock.now < deadline else { break }
            usleep(2_000)
        }
        finish(process, output: output, error: error, result: &result)
        return result
    }

    private static func launch(_ executable: String, _ arguments: [String], output: UnsafeMutablePointer<FILE>,
                               error: UnsafeMutablePointer<FILE>, result: inout ToolResult) -> Process? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(fileDescriptor: fileno(output), closeOnDealloc: false)
        process.standardError = FileHandle(fileDescriptor: fileno(error), closeOnDealloc: false)
        do {
            try process.run()
        } catch {
            result.error = "cannot run \(executable): \(error)"
            return nil
        }
        return process
    }

    private static func finish(_ process: Process, output: UnsafeMutablePointer<FILE>, error: UnsafeMutablePointer<FILE>,
                               result: inout ToolResult) {
        if process.isRunning {
            result.timedOut = true
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        result.status = process.terminationStatus
        result.output = readAll(output)
        result.error = readAll(error)
    }

    private static func readAll(_ file: UnsafeMutablePointer<FILE>) -> String {
        let descriptor = fileno(file)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        var offset: off_t = 0
        // Bounded: at most 1 MiB is read back.
        for _ in 0..<256 {
            let count = pread(descriptor, &chunk, chunk.count, offset)
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk[0..<count])
            offset += off_t(count)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

// MARK: - The cluster

/// What one daemon reports with `members --json`.
struct MembershipView: Sendable, Equatable, CustomStringConvertible {
    /// `"1.12"`, or `nil` before the node started.
    var ring: String?
    /// `operational`, `gather`, `commit` or `recovery`.
    var state: String
    /// Node ids with `"member": true`, ascending.
    var members: [Int64]

    var isOperational: Bool { state == "operational" }

    /// Whether `views` (node index -> view, `nil` for no answer) show one operational ring made
    /// of exactly `members`.
    static func oneRing(_ views: [Int: MembershipView?], members: [Int64]) -> Bool {
        let rings = Set(views.values.map { $0?.ring })
        return rings.count == 1 && views.values.allSatisfy { $0?.isOperational == true && $0?.members == members }
    }

    var description: String { "\(ring ?? "-") \(state) \(members)" }
}

/// Three (or more) devclusterd processes, each in network namespace `dcl-<suffix>-n<i>` with
/// `eth0` = 10.213.X.i/24, its veth peer `p<i>` on bridge `br0` in `dcl-<suffix>-hub`.
///
/// Use: create, `defer { cluster.destroy() }`, then `try await cluster.setUp(...)`; `destroy`
/// undoes whatever `setUp` got done.
final class NamespaceCluster {
    struct Node {
        var index: Int
        var namespace: String
        var address: String
        var clusterName: String
        var directory: String
        var configuration: String { directory + "/devcluster.conf" }
        var socket: String { directory + "/run/devclusterd.sock" }
        var state: String { directory + "/state" }
        var log: String { directory + "/daemon.log" }
        var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
    }

    /// Token timeout of the test clusters, in milliseconds.
    static let tokenMilliseconds = 500
    static let port = 5405

    /// Random, unique per run: names the namespaces.
    let suffix: String
    /// The third octet of 10.213.X.0/24 and 239.192.X.1, taken from the suffix.
    let subnet: Int
    let hub: String
    private(set) var base: String?
    private(set) var nodes: [Node] = []
    private var processes: [Int: Process] = [:]
    /// Namespaces created so far, deleted by `destroy`.
    private var createdNamespaces: [String] = []
    private var destroyed = false

    var groupAddress: String { "239.192.\(subnet).1" }

    init() {
        let random = UInt32.random(in: 0...UInt32.max)
        suffix = String(random, radix: 16)
        subnet = Int(random % 254) + 1
        hub = "dcl-\(suffix)-hub"
    }

    // MARK: Setting up

    /// Builds the namespaces, bridge and veths, writes a key and one configuration per node
    /// (`clusterNames[i - 1]` for node i) protecting datagrams with `crypto`, and starts every daemon.
    func setUp(clusterNames: [String], crypto: String = "hmac-sha256") async throws {
        let ip = try #require(NamespacePrerequisites.ip)
        let daemon = try #require(daemonExecutable, "devclusterd was not found next to the test binary; build it with swift build")
        let base = try makeTemporaryDirectory()
        self.base = base

        let keygen = await Tool.run(daemon, ["keygen", "--output", base + "/authkey"])
        try #require(keygen.succeeded, "keygen: \(keygen)")

        try await create(namespace: hub)
        try await must(ip, ["-n", hub, "link", "set", "lo", "up"])
        try await must(ip, ["-n", hub, "link", "add", "br0", "type", "bridge"])
        // No snooping: the bridge floods multicast to every port, whatever IGMP it saw.
        try await must(ip, ["-n", hub, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0", "stp_state", "0", "forward_delay", "0"])
        try await must(ip, ["-n", hub, "link", "set", "br0", "up"])

        let count = clusterNames.count
        for index in 1...count {
            let node = Node(index: index, namespace: "dcl-\(suffix)-n\(index)", address: "10.213.\(subnet).\(index)",
                            clusterName: clusterNames[index - 1], directory: "\(base)/n\(index)")
            try await create(namespace: node.namespace)
            try await must(ip, ["-n", node.namespace, "link", "set", "lo", "up"])
            try await must(ip, ["-n", node.namespace, "link", "add", "eth0", "type", "veth", "peer", "name", "p\(index)", "netns", hub])
            try await must(ip, ["-n", hub, "link", "set", "p\(index)", "master", "br0"])
            try await must(ip, ["-n", hub, "link", "set", "p\(index)", "up"])
            try await must(ip, ["-n", node.namespace, "addr", "add", node.address + "/24", "dev", "eth0"])
            try await must(ip, ["-n", node.namespace, "link", "set", "eth0", "up"])
            // No 224.0.0.0/4 route and no default route: the daemon names the interface with
            // IP_MULTICAST_IF, so the multicasts leave by eth0 without one.
            try writeConfiguration(node, count: count, keyFile: base + "/authkey", crypto: crypto)
            nodes.append(node)
        }
        for node in nodes { try start(node.index) }
    }

    private func create(namespace: String) async throws {
        let ip = try #require(NamespacePrerequisites.ip)
        let result = await Tool.run(ip, ["netns", "add", namespace])
        try #require(result.succeeded, "ip netns add \(namespace): \(result)")
        createdNamespaces.append(namespace)
    }

    /// Runs a command that must succeed.
    func must(_ executable: String, _ arguments: [String]) async throws {
        let result = await Tool.run(executable, arguments)
        try #require(result.succeeded, "\(executable) \(arguments.joined(separator: " ")): \(result)")
    }

    private func writeConfiguration(_ node: Node, count: Int, keyFile: String, crypto: String) throws {
        try FileManager.default.createDirectory(atPath: node.directory + "/run", withIntermediateDirectories: true)
        var text = """
            [totem]
            cluster_name = \(node.clusterName)
            transport = udp
            mcastaddr = \(groupAddress)
            mcastport = \(Self.port)
            token = \(Self.tokenMilliseconds)
            token_coefficient = 0
            crypto = \(crypto)
            keyfile = \(keyFile)

            """
        for other in 1...count {
            text += "\n[node]\nnodeid = \(other)\nname = server\(other)\naddr = 10.213.\(subnet).\(other)\n"
        }
        text += """

            [options]
            nodeid = \(node.index)
            control_socket = \(node.socket)
            state_dir = \(node.state)
            log_level = info

            """ + seedEventChannels
        try text.write(toFile: node.configuration, atomically: true, encoding: .utf8)
    }

    /// Starts node `index`'s daemon: `ip netns exec NS devclusterd --foreground --config FILE`.
    /// `ip netns exec` execs the daemon in place, so the child's PID is the daemon's.
    func start(_ index: Int) throws {
        let ip = try #require(NamespacePrerequisites.ip)
        let daemon = try #require(daemonExecutable)
        let node = nodes[index - 1]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = ["netns", "exec", node.namespace, daemon, "--foreground", "--config", node.configuration]
        _ = FileManager.default.createFile(atPath: node.log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: node.log))
        handle.seekToEndOfFile()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        processes[index] = process
    }

    // MARK: Observing

    /// Whether node `index`'s daemon (the process this cluster started) still runs.
    func isRunning(_ index: Int) -> Bool { processes[index]?.isRunning ?? false }

    /// The PID of node `index`'s daemon.
    func pid(_ index: Int) -> pid_t? { processes[index]?.processIdentifier }

    /// `devclusterd --socket PATH members --json`, parsed; `nil` when the CLI fails.
    func membership(_ index: Int) async -> MembershipView? {
        guard let daemon = daemonExecutable else { return nil }
        let result = await Tool.run(daemon, ["--socket", nodes[index - 1].socket, "members", "--json"], timeout: .seconds(5))
        guard result.succeeded,
              let value = try? JSONParser.parse(result.output.trimmingCharacters(in: .whitespacesAndNewlines)),
              let state = value["state"]?.stringValue, let entries = value["members"]?.arrayValue
        else { return nil }
        return MembershipView(ring: value["ring"]?.stringValue, state: state,
                              members: entries.filter { $0["member"] == true }.compactMap { $0["nodeid"]?.integerValue })
    }

    /// Node `index`'s counters from `status --json`.
    func counters(_ index: Int) async throws -> JSONValue {
        let daemon = try #require(daemonExecutable)
        let status = await Tool.run(daemon, ["--socket", nodes[index - 1].socket, "status", "--json"])
        try #require(status.succeeded, "status of node \(index): \(status)")
        let report = try JSONParser.parse(status.output.trimmingCharacters(in: .whitespacesAndNewlines))
        return try #require(report["counters"])
    }

    /// One counter of node `index` (`counters(index)[name]`), which must exist.
    func counter(_ index: Int, _ name: String) async throws -> Int64 {
        try #require(try await counters(index)[name]?.integerValue, "node \(index) has no counter \(name)")
    }

    /// `members --json` of each node in `indices` (all nodes by default).
    func views(_ indices: [Int]? = nil) async -> [Int: MembershipView?] {
        var views: [Int: MembershipView?] = [:]
        for index in indices ?? nodes.map(\.index) { views[index] = await membership(index) }
        return views
    }

    /// Whether nodes `indices` all report the same operational ring made of exactly `members`.
    func formed(_ indices: [Int], members: [Int64]) async -> Bool {
        MembershipView.oneRing(await views(indices), members: members)
    }

    /// The last `lines` lines of each daemon's log, for failure messages.
    func logTails(lines: Int = 15) -> String {
        nodes.map { node in
            "--- node \(node.index) (\(node.namespace)) log tail:\n"
                + node.logText.split(separator: "\n").suffix(lines).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    // MARK: Faults

    /// `ip link set DEV up|down`: node `index`'s own `eth0`, or (`hubSide`) its port `p<index>`
    /// on the bridge, which leaves node `index`'s interface administratively up without carrier.
    func setLink(_ index: Int, up: Bool, hubSide: Bool) async throws {
        let ip = try #require(NamespacePrerequisites.ip)
        let arguments = hubSide
            ? ["-n", hub, "link", "set", "p\(index)", up ? "up" : "down"]
            : ["-n", nodes[index - 1].namespace, "link", "set", "eth0", up ? "up" : "down"]
        try await must(ip, arguments)
    }

    /// Loads an nftables script (`nft -f`) inside node `index`'s namespace.
    func loadRules(_ index: Int, _ script: String) async throws {
        let ip = try #require(NamespacePrerequisites.ip)
        let nft = try #require(NamespacePrerequisites.nft)
        let base = try #require(base)
        let file = "\(base)/rules-n\(index).nft"
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        try await must(ip, ["netns", "exec", nodes[index - 1].namespace, nft, "-f", file])
    }

    /// Removes every nftables rule in node `index`'s namespace (the namespace is the test's own).
    func flushRules(_ index: Int) async throws {
        let ip = try #require(NamespacePrerequisites.ip)
        let nft = try #require(NamespacePrerequisites.nft)
        try await must(ip, ["netns", "exec", nodes[index - 1].namespace, nft, "flush", "ruleset"])
    }

    // MARK: Tearing down

    /// SIGTERM to every daemon, then up to `grace` for them to exit; how each ended: `exit 0`,
    /// `signal 6`, or `still running after SIGTERM (killed)`.
    func stopAll(grace: Duration = .seconds(5)) -> [Int: String] {
        for process in processes.values where process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let clock = ContinuousClock()
        let deadline = clock.now + grace
        for _ in 0..<10_000 {
            guard processes.values.contains(where: \.isRunning) && clock.now < deadline else { break }
            usleep(5_000)
        }
        var endings: [Int: String] = [:]
        for (index, process) in processes {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                endings[index] = "still running after SIGTERM (killed)"
            } else {
                endings[index] = Self.ending(of: process)
            }
        }
        return endings
    }

    /// `exit N` or `signal N` for a process that ended.
    static func ending(of process: Process) -> String {
        process.terminationReason == .exit ? "exit \(process.terminationStatus)" : "signal \(process.terminationStatus)"
    }

    /// How node `index`'s daemon ended, or `nil` while it runs.
    func ending(_ index: Int) -> String? {
        guard let process = processes[index], !process.isRunning else { return nil }
        return Self.ending(of: process)
    }

    /// Kills every daemon still running (by PID), deletes every namespace created, removes the
    /// temporary directory. Idempotent; never throws.
    func destroy() {
        guard !destroyed else { return }
        destroyed = true
        for process in processes.values where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        processes.removeAll()
        if let ip = NamespacePrerequisites.ip {
            for namespace in createdNamespaces.reversed() {
                let result = Tool.runBlocking(ip, ["netns", "delete", namespace], timeout: .seconds(5))
                if !result.succeeded { print("devclusterd namespace tests: cannot delete namespace \(namespace): \(result)") }
            }
        }
        createdNamespaces.removeAll()
        if let base { removeDirectory(base) }
    }

    deinit { destroy() }
}
