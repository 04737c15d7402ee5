// Who may use the control socket, on real processes: a daemon on loopback, and the CLI run as
// other users through setpriv (root runs these tests). Read-only callers may ask but not change,
// unlisted callers are refused at connect, per-user and total caps hold and the CLI prints the
// daemon's refusal, the socket directory gets its group, a directory others can write to is
// refused, a socket served by another user is refused by the CLI, and a key file others can
// read is refused. Every child is killed by PID when the test ends, also when it fails.

import Foundation
import Glibc
import Testing
@testable import devclusterd

private let setpriv = "/usr/bin/setpriv"
/// `nobody`/`nogroup` on Debian; the tests name them by id.
private let nobody: UInt32 = 65_534
/// A user id with no account, in no group.
private let stranger: UInt32 = 65_533

/// Processes started by one test, killed by PID at the end.
private final class Processes {
    private var started: [Process] = []

    /// Starts `devclusterd arguments` as `user` (`nil`: as this process), output to `log`.
    func start(_ arguments: [String], as user: (uid: UInt32, gid: UInt32, groups: [UInt32])?, log: String) throws -> Process {
        let process = Process()
        let daemon = try #require(daemonExecutable)
        if let user {
            process.executableURL = URL(fileURLWithPath: setpriv)
            let groups = user.groups.isEmpty ? ["--clear-groups"] : ["--groups", user.groups.map(String.init).joined(separator: ",")]
            process.arguments = ["--reuid", String(user.uid), "--regid", String(user.gid)] + groups + [daemon] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: daemon)
            process.arguments = arguments
        }
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        started.append(process)
        return process
    }

    func killAll() {
        for process in started where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        started.removeAll()
    }
}

/// Runs `devclusterd arguments` as `user` (uid, gid, supplementary groups) to completion.
private func runAs(_ uid: UInt32, _ gid: UInt32, groups: [UInt32] = [], _ arguments: [String]) throws -> CommandResult {
    let groupArguments = groups.isEmpty ? ["--clear-groups"] : ["--groups", groups.map(String.init).joined(separator: ",")]
    return try runProcess(setpriv, ["--reuid", String(uid), "--regid", String(gid)] + groupArguments + [try #require(daemonExecutable)] + arguments)
}

/// A one-node configuration on 127.0.0.1 in `directory` with `options` and `control` added.
private func writeConfiguration(in directory: String, port: UInt16, options: String = "", control: String) throws -> String {
    let path = directory + "/devcluster.conf"
    try """
        [totem]
        cluster_name = access
        transport = udpu
        mcastport = \(port)
        token = 500

        [node]
        nodeid = 1
        name = server1
        addr = 127.0.0.1

        [options]
        control_socket = \(directory)/run/devclusterd.sock
        state_dir = \(directory)/state
        \(options)

        [control]
        \(control)

        [device_state]
        type = event_channel
        publish_event = device_state
        subscribe_event = device_state
        """.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// Whether root's CLI gets a status from `socket`.
private func answers(_ socket: String) -> Bool {
    guard let client = try? ControlClient(path: socket, timeout: .seconds(2)), case .success? = try? client.call("status") else { return false }
    return true
}

private func mode(of path: String) -> (mode: mode_t, group: gid_t)? {
    var status = stat()
    guard stat(path, &status) == 0 else { return nil }
    return (status.st_mode & 0o7777, status.st_gid)
}

@Suite("Control socket access: devclusterd processes and other users", .serialized)
struct ControlAccessTests {
    /// What every test needs: the binary, root (to run others as other users), setpriv.
    private func requirements() throws {
        try #require(daemonExecutable != nil, "devclusterd was not found next to the test binary; build it with swift build")
        try #require(geteuid() == 0, "these tests run the CLI as other users and must run as root")
        try #require(FileManager.default.isExecutableFile(atPath: setpriv), "\(setpriv) (util-linux) is needed to run as other users")
    }

    @Test func readOnlyUsersMayAskButNotChangeOthersAreRefusedAndTheCapsHold() async throws {
        try requirements()
        let base = try makeTemporaryDirectory()
        let processes = Processes()
        defer {
            processes.killAll()
            removeDirectory(base)
        }
        #expect(chmod(base, 0o755) == 0)
        let configuration = try writeConfiguration(in: base, port: randomPort(), control: """
            read_only_users = nobody
            max_connections = 6
            max_connections_per_user = 2
            """)
        let socket = base + "/run/devclusterd.sock"
        let log = base + "/daemon.log"
        _ = try processes.start(["--foreground", "--config", configuration], as: nil, log: log)
        let logText = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        let up = await eventually(within: .seconds(10)) { answers(socket) }
        try #require(up, "the daemon did not answer: \(logText())")
        // Everyone may reach the socket; the daemon decides by the caller's credentials.
        #expect(mode(of: base + "/run")?.mode == 0o755)
        #expect(mode(of: socket)?.mode == 0o666)

        // Root changes state, and the log names it with its uid and pid.
        let set = try runCommand(["--socket", socket, "devstate", "set", "Custom:acl", "INUSE"])
        #expect(set.status == 0, "\(set.error)")
        #expect(logText().contains("ran devstate_set (further devstate_set requests on this connection are logged at debug level)"))
        #expect(logText().contains("(uid 0 pid "))

        // nobody is read-only: it asks, and is told why it may not change anything.
        let asked = try runAs(nobody, nobody, ["--socket", socket, "devstate", "get", "Custom:acl", "--json"])
        #expect(asked.status == 0, "\(asked.error)")
        #expect(asked.output.contains("INUSE"))
        let changed = try runAs(nobody, nobody, ["--socket", socket, "devstate", "set", "Custom:acl", "NOT_INUSE"])
        #expect(changed.status == 1)
        #expect(changed.error.contains("devstate_set changes state, and user nobody (uid 65534) has read-only access"), "\(changed.error)")
        #expect(changed.error.hasSuffix("(permission_denied)\n"))
        let debug = try runAs(nobody, nobody, ["--socket", socket, "debug", "on"])
        #expect(debug.status == 1 && debug.error.contains("(permission_denied)"))
        // The state did not change.
        let after = try runCommand(["--socket", socket, "devstate", "get", "Custom:acl", "--json"])
        #expect(after.output.contains("INUSE") && !after.output.contains("NOT_INUSE"))

        // A user on no list is refused at connect, and the CLI prints the daemon's reason.
        let refused = try runAs(stranger, stranger, ["--socket", socket, "status"])
        #expect(refused.status == 1)
        #expect(refused.error.contains("devclusterd: status: uid 65533 may not use this control socket"), "\(refused.error)")
        #expect(refused.error.contains("(permission_denied)"))

        // Per user: two clients of nobody (watchers) hold its cap; a third is refused, root is not.
        for index in 0..<2 {
            _ = try processes.start(["--socket", socket, "watch"], as: (nobody, nobody, []), log: base + "/watch\(index).log")
        }
        let watching = await eventually(within: .seconds(5)) {
            guard let client = try? ControlClient(path: socket, timeout: .seconds(2)),
                  case .success(let status)? = try? client.call("status") else { return false }
            return status["control_clients"]?.integerValue == 3
        }
        #expect(watching)
        let third = try runAs(nobody, nobody, ["--socket", socket, "status"])
        #expect(third.status == 1)
        #expect(third.error.contains("has 2 control connections already (limit 2 per user"), "\(third.error)")
        #expect(third.error.contains("(too_many_connections)"))

        // In all: 6 slots, the last kept for root. Root's idle clients fill them; its CLI is then
        // told too_many_connections (not "Broken pipe").
        var idle: [ControlClient] = []
        for _ in 0..<3 { idle.append(try ControlClient(path: socket, timeout: .seconds(5))) }
        let lastSlot = try runCommand(["--socket", socket, "status"])
        #expect(lastSlot.status == 0, "root may take the reserved slot: \(lastSlot.error)")
        idle.append(try ControlClient(path: socket, timeout: .seconds(5)))
        let stranded = await eventually(within: .seconds(5)) {
            let result = try? runCommand(["--socket", socket, "status"])
            return result?.status == 1 && result?.error.contains("(too_many_connections)") == true
        }
        #expect(stranded)
        let full = try runCommand(["--socket", socket, "status"])
        #expect(full.error.hasPrefix("devclusterd: status: 6 control clients are connected already (limit 6)"), "\(full.error)")
        #expect(!full.error.contains("Broken pipe"))

        // 30 more refusals add at most one line (the count of a period that ended meanwhile): they
        // are counted, not logged one by one.
        let refusalLines = { logText().components(separatedBy: "\n").filter { $0.contains("control socket: refused") }.count }
        let before = refusalLines()
        #expect(before >= 1 && before <= 2, "\(logText())")
        for _ in 0..<30 {
            guard let client = try? ControlClient(path: socket, timeout: .seconds(2)) else { break }
            guard case .failure(let error)? = try? client.call("status"), error.code == .tooManyConnections else {
                Issue.record("a client beyond the limit was not refused")
                break
            }
        }
        #expect(refusalLines() - before <= 1, "\(logText())")
        idle.removeAll()
    }

    @Test func aReloadAppliesTheAllowListAtOnce() async throws {
        try requirements()
        let base = try makeTemporaryDirectory()
        let processes = Processes()
        defer {
            processes.killAll()
            removeDirectory(base)
        }
        #expect(chmod(base, 0o755) == 0)
        let port = randomPort()
        let configuration = try writeConfiguration(in: base, port: port, control: "read_only_users = nobody")
        let socket = base + "/run/devclusterd.sock"
        let log = base + "/daemon.log"
        let daemon = try processes.start(["--foreground", "--config", configuration], as: nil, log: log)
        let logText = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        let up = await eventually(within: .seconds(10)) { answers(socket) }
        try #require(up, "the daemon did not answer: \(logText())")
        let check = try runCommand(["--check-config", "--config", configuration])
        #expect(check.output.hasSuffix("; control socket access: full control: root, the daemon's user; read-only: users nobody (65534)\n"),
                "\(check.output)")
        let refused = try runAs(nobody, nobody, ["--socket", socket, "devstate", "set", "Custom:reload", "INUSE"])
        #expect(refused.status == 1 && refused.error.contains("(permission_denied)"))

        // Writes `control` as the [control] section, sends SIGHUP, waits for `logLine` to be logged
        // once more, then runs `devstate set Custom:reload STATE` as nobody.
        func reload(_ control: String, logLine: String, thenSet state: String) async throws -> CommandResult {
            let before = logText().components(separatedBy: logLine).count
            _ = try writeConfiguration(in: base, port: port, control: control)
            #expect(kill(daemon.processIdentifier, SIGHUP) == 0)
            let logged = await eventually(within: .seconds(5)) { logText().components(separatedBy: logLine).count > before }
            #expect(logged, "no \"\(logLine)\" after the reload: \(logText())")
            return try runAs(nobody, nobody, ["--socket", socket, "devstate", "set", "Custom:reload", state])
        }

        // nobody gets full control: SIGHUP applies it without a restart.
        let allowed = try await reload("users = nobody",
            logLine: "applied [control] (full control: root, the daemon's user, users nobody (65534))", thenSet: "INUSE")
        #expect(allowed.status == 0, "\(allowed.error)")

        // A name the host does not know: the reload is refused and the running rules stay.
        let still = try await reload("users = nobody, no-such-user-dcd",
            logLine: "[control] users: \"no-such-user-dcd\" is not a user on this host", thenSet: "NOT_INUSE")
        #expect(still.status == 0, "\(still.error)")

        // Back to read-only: the very next change is refused.
        let denied = try await reload("read_only_users = nobody",
            logLine: "applied [control] (full control: root, the daemon's user; read-only: users nobody (65534))", thenSet: "INUSE")
        #expect(denied.status == 1 && denied.error.contains("has read-only access"), "\(denied.error)")
        #expect(daemon.isRunning)
    }

    @Test func theSocketDirectoryGetsTheGroupAndItsMembersTheirRole() async throws {
        try requirements()
        let base = try makeTemporaryDirectory()
        let processes = Processes()
        defer {
            processes.killAll()
            removeDirectory(base)
        }
        #expect(chmod(base, 0o755) == 0)
        let group = try #require(UnixSocket.groupID(named: "nogroup") ?? UnixSocket.groupID(named: "nobody"))
        let groupName = UnixSocket.groupID(named: "nogroup") != nil ? "nogroup" : "nobody"
        let configuration = try writeConfiguration(in: base, port: randomPort(), options: "control_socket_group = \(groupName)",
                                                   control: "read_only_groups = \(groupName)")
        let socket = base + "/run/devclusterd.sock"
        let log = base + "/daemon.log"
        _ = try processes.start(["--foreground", "--config", configuration], as: nil, log: log)
        let up = await eventually(within: .seconds(10)) { answers(socket) }
        try #require(up, "the daemon did not answer: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        #expect(mode(of: base + "/run").map { $0.mode == 0o750 && $0.group == group } == true, "\(String(describing: mode(of: base + "/run")))")
        #expect(mode(of: socket).map { $0.mode == 0o660 && $0.group == group } == true)

        // A member (its primary group) reaches the socket and is read-only.
        let status = try runAs(nobody, group, ["--socket", socket, "status"])
        #expect(status.status == 0, "\(status.error)")
        let set = try runAs(nobody, group, ["--socket", socket, "mwi", "set", "100@default", "1", "0"])
        #expect(set.status == 1 && set.error.contains("(permission_denied)"), "\(set.error)")
        // A member through a supplementary group only: the same.
        let supplementary = try runAs(stranger, stranger, groups: [group], ["--socket", socket, "status"])
        #expect(supplementary.status == 0, "\(supplementary.error)")
        // Not a member: the file system keeps it out.
        let outsider = try runAs(stranger, stranger, ["--socket", socket, "status"])
        #expect(outsider.status == 1)
        #expect(outsider.error.contains("permission denied"), "\(outsider.error)")

        // A directory that exists already is left as it is, and the log says what to change.
        let existing = base + "/existing"
        try FileManager.default.createDirectory(atPath: existing + "/run", withIntermediateDirectories: true)
        #expect(chmod(existing + "/run", 0o700) == 0)
        let second = try writeConfiguration(in: existing, port: randomPort(), options: "control_socket_group = \(groupName)",
                                            control: "read_only_groups = \(groupName)")
        let secondLog = existing + "/daemon.log"
        _ = try processes.start(["--foreground", "--config", second], as: nil, log: secondLog)
        let secondUp = await eventually(within: .seconds(10)) { answers(existing + "/run/devclusterd.sock") }
        #expect(secondUp)
        let text = (try? String(contentsOfFile: secondLog, encoding: .utf8)) ?? ""
        #expect(text.contains("members of control_socket_group cannot reach the control socket: its directory \(existing)/run "
            + "has mode 0700 and group id 0; run chgrp \(group) \(existing)/run and chmod 0750 \(existing)/run"), "\(text)")
        #expect(mode(of: existing + "/run")?.mode == 0o700)
    }

    @Test func aWritableSocketDirectoryAndAnotherUsersSocketAreRefused() async throws {
        try requirements()
        let base = try makeTemporaryDirectory()
        let processes = Processes()
        defer {
            processes.killAll()
            removeDirectory(base)
        }
        #expect(chmod(base, 0o755) == 0)
        // The daemon refuses a socket directory others (or its group) can write to, sticky or not.
        for (permissions, who) in [(0o1777 as mode_t, "every user"), (0o770, "its group")] {
            let directory = base + "/shared-\(String(permissions, radix: 8))"
            try FileManager.default.createDirectory(atPath: directory + "/run", withIntermediateDirectories: true)
            #expect(chmod(directory + "/run", permissions) == 0)
            let configuration = try writeConfiguration(in: directory, port: randomPort(), control: "")
            let log = directory + "/daemon.log"
            let daemon = try processes.start(["--foreground", "--config", configuration], as: nil, log: log)
            let exited = await eventually(within: .seconds(10)) { !daemon.isRunning }
            #expect(exited)
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(daemon.terminationStatus == 1)
            #expect(text.contains("not started: \(directory)/run: is writable by \(who)"), "\(text)")
        }

        // A user's own "daemon" in a directory it owns: root's CLI will not talk to it.
        let fake = base + "/fake"
        try FileManager.default.createDirectory(atPath: fake, withIntermediateDirectories: true)
        #expect(chown(fake, nobody, nobody) == 0)
        let configuration = try writeConfiguration(in: fake, port: randomPort(), control: "")
        #expect(chown(configuration, nobody, nobody) == 0)
        let socket = fake + "/run/devclusterd.sock"
        let impostor = try processes.start(["--foreground", "--config", configuration], as: (nobody, nobody, []), log: base + "/fake.log")
        let listening = await eventually(within: .seconds(10)) { UnixSocket.isLive(socket) }
        try #require(listening, "the impostor did not start: \((try? String(contentsOfFile: base + "/fake.log", encoding: .utf8)) ?? "")")
        let members = try runCommand(["--socket", socket, "members"])
        #expect(members.status == 1)
        #expect(members.error.contains("refusing \(socket): it is served by user nobody (uid 65534) (pid \(impostor.processIdentifier)), "
            + "neither root nor you"), "\(members.error)")
        #expect(members.output.isEmpty)
        // Its owner may use it.
        let own = try runAs(nobody, nobody, ["--socket", socket, "status"])
        #expect(own.status == 0, "\(own.error)")
    }

    @Test func aKeyFileOthersCanReadOrAnotherUserOwnsIsRefused() throws {
        try requirements()
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let key = base + "/authkey"
        let keygen = try runCommand(["keygen", "--output", key])
        #expect(keygen.status == 0, "\(keygen.error)")
        let node = try makeNode(1, of: 2, in: base, port: randomPort(), keyFile: key)
        let good = try runCommand(["--check-config", "--config", node.configuration])
        #expect(good.status == 0, "\(good.error)")
        #expect(chmod(key, 0o644) == 0)
        let open = try runCommand(["--check-config", "--config", node.configuration])
        #expect(open.status == 1)
        #expect(open.error.hasPrefix("\(node.configuration): [totem] keyfile: permissions 0644 for \(key) are too open: "
            + "the key must be readable by its owner only; run chmod 0400 \(key)\n"), "\(open.error)")
        // The daemon refuses to start with it, too.
        let started = try runCommand(["--foreground", "--config", node.configuration])
        #expect(started.status == 1)
        #expect(started.error.contains("permissions 0644 for \(key) are too open"))
        #expect(chmod(key, 0o400) == 0 && chown(key, nobody, nobody) == 0)
        let foreign = try runCommand(["--check-config", "--config", node.configuration])
        #expect(foreign.status == 1)
        #expect(foreign.error.contains("key file \(key) belongs to user id 65534: it must belong to root or to the daemon's user (0); "
            + "run chown root \(key)"), "\(foreign.error)")
    }
}
