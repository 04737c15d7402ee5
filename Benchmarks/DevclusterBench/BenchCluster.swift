// The N-node cluster a scenario runs on: namespaces dcb-n1..N plus dcb-hub with bridge br0,
// node i = 10.214.0.i/24 on eth0, one configuration and one devclusterd per node (started with
// `ip netns exec`, which execs in place, so the child PID is the daemon's). Tearing down kills
// by PID and deletes the namespaces by name; the same teardown runs on SIGINT/SIGTERM.

import DevclusterControl
import Foundation
import Glibc
import Synchronization

/// What the SIGINT handler must undo: daemon PIDs, namespaces, the temporary directory.
final class CleanupRegistry: Sendable {
    struct State: Sendable {
        var pids: Set<Int32> = []
        var namespaces: [String] = []
        var directories: [String] = []
        var ip: String = "/usr/sbin/ip"
    }

    static let shared = CleanupRegistry()
    let state = Mutex(State())

    /// Kills every registered daemon (SIGKILL, by PID), deletes the namespaces and directories.
    func cleanUpNow() {
        let snapshot = state.withLock { current -> State in
            let copy = current
            current = State(ip: current.ip)
            return copy
        }
        for pid in snapshot.pids {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
        for namespace in snapshot.namespaces.reversed() {
            _ = Command.run(snapshot.ip, ["netns", "delete", namespace], timeout: 5)
        }
        for directory in snapshot.directories { try? FileManager.default.removeItem(atPath: directory) }
    }
}

/// Bounded child processes through posix_spawn.
enum Command {
    /// Spawns `arguments` with stdout and stderr appended to `log` (or /dev/null); returns the PID.
    static func spawn(_ executable: String, _ arguments: [String], log: String?) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let target = log ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, target, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group: a terminal's Ctrl-C reaches only the bench, which then stops the
        // daemons itself (by PID).
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else { throw BenchError("cannot run \(executable): \(String(cString: strerror(result)))") }
        return pid
    }

    /// Runs to completion; kills it (by PID) at the deadline. Returns the exit status (-1: killed
    /// or not run).
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], timeout: Double = 10, log: String? = nil) -> Int32 {
        guard let pid = try? spawn(executable, arguments, log: log) else { return -1 }
        let deadline = monotonicNanoseconds() + UInt64(timeout * 1e9)
        var status: Int32 = 0
        for _ in 0..<1_000_000 {
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid { return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1 }
            if done < 0 { return -1 }
            if monotonicNanoseconds() > deadline { break }
            usleep(2_000)
        }
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, 0)
        return -1
    }

    /// `name` in PATH or the sbin directories.
    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        return directories.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

final class BenchCluster {
    static let prefix = "dcb"
    static let hub = "dcb-hub"
    static let network = "10.214.0"
    static let multicastGroup = "239.192.214.1"

    let nodeCount: Int
    let transport: String
    let tokenMilliseconds: Int?
    let daemon: String
    /// Whether the configuration declares the `bench` event channel (needs the event commands).
    let benchChannel: Bool
    let ip: String
    let base: String
    private(set) var pids: [Int: pid_t] = [:]

    init(nodes: Int, transport: String, token: Int?, daemon: String, benchChannel: Bool) throws {
        guard getuid() == 0 else {
            throw BenchError("must run as root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)")
        }
        guard let ip = Command.find("ip") else { throw BenchError("`ip` (iproute2) is missing: apt-get install iproute2") }
        guard (1...16).contains(nodes) else { throw BenchError("--nodes must be 1...16") }
        nodeCount = nodes
        self.transport = transport
        tokenMilliseconds = token
        self.daemon = daemon
        self.benchChannel = benchChannel
        self.ip = ip
        var template = Array("/tmp/dcb-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError("mkdtemp failed: errno \(errno)") }
        base = String(cString: made)
        CleanupRegistry.shared.state.withLock {
            $0.ip = ip
            $0.directories.append(base)
        }
    }

    static func namespace(_ index: Int) -> String { "\(prefix)-n\(index)" }
    func directory(_ index: Int) -> String { "\(base)/n\(index)" }
    func configuration(_ index: Int) -> String { directory(index) + "/devcluster.conf" }
    func socket(_ index: Int) -> String { directory(index) + "/run/devclusterd.sock" }
    func log(_ index: Int) -> String { directory(index) + "/daemon.log" }

    /// Deletes namespaces named dcb-* left by a crashed earlier run.
    static func removeLeftovers(ip: String) {
        let listing = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        for name in listing where name.hasPrefix(prefix + "-") {
            // Daemons a crashed run left behind live only in our namespaces: end them by PID.
            let pidsFile = NSTemporaryDirectory() + "/dcb-pids-\(getpid())"
            Command.run(ip, ["netns", "pids", name], timeout: 5, log: pidsFile)
            let pids = ((try? String(contentsOfFile: pidsFile, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int32($0) }
            try? FileManager.default.removeItem(atPath: pidsFile)
            for pid in pids {
                progress("killing pid \(pid) left in namespace \(name) by an earlier run")
                kill(pid, SIGKILL)
            }
            progress("deleting namespace \(name) left by an earlier run")
            Command.run(ip, ["netns", "delete", name], timeout: 5)
        }
    }

    private func must(_ arguments: [String]) throws {
        let status = Command.run(ip, arguments, timeout: 10)
        guard status == 0 else { throw BenchError("ip \(arguments.joined(separator: " ")) failed (status \(status))") }
    }

    private func addNamespace(_ name: String) throws {
        try must(["netns", "add", name])
        CleanupRegistry.shared.state.withLock { $0.namespaces.append(name) }
    }

    /// Namespaces, bridge, veths and configurations.
    func build() throws {
        Self.removeLeftovers(ip: ip)
        try addNamespace(Self.hub)
        try must(["-n", Self.hub, "link", "set", "lo", "up"])
        try must(["-n", Self.hub, "link", "add", "br0", "type", "bridge"])
        try must(["-n", Self.hub, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0", "stp_state", "0", "forward_delay", "0"])
        try must(["-n", Self.hub, "link", "set", "br0", "up"])
        for index in 1...nodeCount {
            let name = Self.namespace(index)
            try addNamespace(name)
            try must(["-n", name, "link", "set", "lo", "up"])
            try must(["-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "p\(index)", "netns", Self.hub])
            try must(["-n", Self.hub, "link", "set", "p\(index)", "master", "br0"])
            try must(["-n", Self.hub, "link", "set", "p\(index)", "up"])
            try must(["-n", name, "addr", "add", "\(Self.network).\(index)/24", "dev", "eth0"])
            try must(["-n", name, "link", "set", "eth0", "up"])
            try writeConfiguration(index)
        }
    }

    private func writeConfiguration(_ index: Int) throws {
        try FileManager.default.createDirectory(atPath: directory(index) + "/run", withIntermediateDirectories: true)
        var text = "[totem]\ncluster_name = dcbench\ntransport = \(transport)\n"
        if transport == "udp" { text += "mcastaddr = \(Self.multicastGroup)\n" }
        text += "mcastport = 5405\ncrypto = none\n"
        // Corosync's defaults (token 3000 ms + token_coefficient 650 ms) unless --token.
        if let tokenMilliseconds { text += "token = \(tokenMilliseconds)\n" }
        // Extra [totem] lines for experiments (DCB_TOTEM="max_messages = 80;window_size = 160").
        if let extra = ProcessInfo.processInfo.environment["DCB_TOTEM"] {
            for line in extra.split(separator: ";") { text += line.trimmingCharacters(in: .whitespaces) + "\n" }
        }
        for other in 1...nodeCount {
            text += "\n[node]\nnodeid = \(other)\nname = node\(other)\naddr = \(Self.network).\(other)\n"
        }
        text += "\n[options]\nnodeid = \(index)\ncontrol_socket = \(socket(index))\nstate_dir = \(directory(index))/state\nlog_level = info\n"
        // Device state travels on the device_state channel (as in Asterisk's ais.conf).
        text += "\n[device_state]\ntype = event_channel\npublish_event = device_state\nsubscribe_event = device_state\n"
        if benchChannel { text += "\n[bench]\ntype = event_channel\npublish_event = bench\nsubscribe_event = bench\n" }
        try text.write(toFile: configuration(index), atomically: true, encoding: .utf8)
    }

    /// Starts node `index`'s daemon; returns the monotonic time of the spawn.
    @discardableResult
    func start(_ index: Int) throws -> UInt64 {
        let startedAt = monotonicNanoseconds()
        // Profiling one node: DCB_WRAP="2:valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out"
        // runs node 2's daemon under that command (same PID: ip and valgrind both exec in place).
        var command = [daemon, "--foreground", "--config", configuration(index)]
        if let wrap = ProcessInfo.processInfo.environment["DCB_WRAP"], let colon = wrap.firstIndex(of: ":"),
           Int(wrap[..<colon]) == index {
            command = wrap[wrap.index(after: colon)...].split(separator: " ").map(String.init) + command
        }
        let pid = try Command.spawn(ip, ["netns", "exec", Self.namespace(index)] + command, log: log(index))
        pids[index] = pid
        CleanupRegistry.shared.state.withLock { _ = $0.pids.insert(pid) }
        return startedAt
    }

    func startAll() throws {
        for index in 1...nodeCount { try start(index) }
    }

    /// kill -9 of node `index`'s daemon (by PID), reaped at once.
    func killHard(_ index: Int) {
        guard let pid = pids.removeValue(forKey: index) else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        CleanupRegistry.shared.state.withLock { _ = $0.pids.remove(pid) }
    }

    /// `members` of node `index`: the member node ids when the node is operational, else nil.
    func operationalMembers(_ index: Int, timeout: Double = 2) -> [Int]? {
        guard let connection = try? connectControl(path: socket(index), timeout: 0.2, requestTimeout: timeout, bufferBytes: 1 << 17),
              let reply = try? requireResult(connection, ControlCommands.members),
              reply["state"]?.stringValue == "operational",
              let members = reply["members"]?.arrayValue
        else { return nil }
        return members.filter { $0["member"]?.boolValue == true }.compactMap { $0["nodeid"]?.integerValue.map(Int.init) }.sorted()
    }

    /// Waits (bounded) until every node reports an operational ring of all N; returns seconds taken.
    func waitForRing(timeout: Double = 60) throws -> Double {
        let startedAt = monotonicNanoseconds()
        let everyone = Array(1...nodeCount)
        for _ in 0..<100_000 {
            if everyone.allSatisfy({ operationalMembers($0) == everyone }) { return seconds(from: startedAt, to: monotonicNanoseconds()) }
            for index in everyone where pids[index].map({ hasExited($0) }) ?? false {
                pids[index] = nil
                throw BenchError("daemon of node \(index) exited; log \(log(index)):\n\(logTail(index))")
            }
            guard seconds(from: startedAt, to: monotonicNanoseconds()) < timeout else { break }
            usleep(50_000)
        }
        let views = everyone.map { "node \($0): \(operationalMembers($0).map { "\($0)" } ?? "not operational")" }
        throw BenchError("ring of \(nodeCount) did not form within \(Int(timeout)) s: \(views.joined(separator: "; "))")
    }

    /// Whether `pid` ended; reaps it and forgets it in the registry when so.
    private func hasExited(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return false }
        CleanupRegistry.shared.state.withLock { _ = $0.pids.remove(pid) }
        return true
    }

    func logTail(_ index: Int, lines: Int = 15) -> String {
        let text = (try? String(contentsOfFile: log(index), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// SIGTERM to every daemon, SIGKILL after `grace`, then namespaces and the directory go.
    /// Returns how each daemon ended when one did not end cleanly.
    @discardableResult
    func tearDown(grace: Double = 5, keepLogsIn: String? = nil) -> [String] {
        var problems: [String] = []
        for pid in pids.values { kill(pid, SIGTERM) }
        let deadline = monotonicNanoseconds() + UInt64(grace * 1e9)
        var remaining = pids
        for _ in 0..<100_000 {
            guard !remaining.isEmpty && monotonicNanoseconds() < deadline else { break }
            for (index, pid) in remaining {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    remaining[index] = nil
                    if (status & 0x7f) != 0 { problems.append("node \(index) daemon ended by signal \(status & 0x7f) on SIGTERM") }
                    else if (status >> 8) & 0xff != 0 { problems.append("node \(index) daemon exited with status \((status >> 8) & 0xff)") }
                }
            }
            usleep(10_000)
        }
        for (index, pid) in remaining {
            problems.append("node \(index) daemon still running \(grace) s after SIGTERM: killed")
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
        pids.removeAll()
        // Every daemon is reaped: forget the PIDs before the registry could signal a reused one.
        CleanupRegistry.shared.state.withLock { $0.pids.removeAll() }
        if let keepLogsIn {
            try? FileManager.default.createDirectory(atPath: keepLogsIn, withIntermediateDirectories: true)
            for index in 1...nodeCount { try? FileManager.default.copyItem(atPath: log(index), toPath: "\(keepLogsIn)/n\(index).log") }
        }
        CleanupRegistry.shared.cleanUpNow()
        return problems
    }
}
