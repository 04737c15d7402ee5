// devclusterd as a Type=notify service, without systemd: the test binds the notify socket itself
// (a Unix datagram socket, by path or in the abstract namespace), starts real daemons with
// NOTIFY_SOCKET and WATCHDOG_USEC pointing at it, and reads what arrives: READY=1 once the ring is
// up, STATUS= with ring, members and quorum on changes only, WATCHDOG=1 periodically, RELOADING=1
// then READY=1 on SIGHUP, STOPPING=1 on SIGTERM. A NOTIFY_SOCKET that leads nowhere changes
// nothing but one warning. Children are killed by PID and files removed, also on failure.

import Foundation
import Glibc
import Testing
import Totem
import TotemRuntime
@testable import devclusterd

/// A notification as it arrived, with when: the kernel's receive time (SO_TIMESTAMP), so that a
/// test task the scheduler runs late does not see a gap that was not there.
struct Notification {
    var fields: [String]
    /// Wall-clock time of arrival, since the Unix epoch.
    var at: Duration

    /// The wall clock now, comparable with `at`.
    static var now: Duration {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return .seconds(Int64(time.tv_sec)) + .nanoseconds(Int64(time.tv_nsec))
    }

    func has(_ field: String) -> Bool { fields.contains(field) }
    func value(_ name: String) -> String? {
        fields.first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
    }
    var isWatchdogOnly: Bool { fields == ["WATCHDOG=1"] }
}

/// The stand-in for systemd's notify socket: a bound, non-blocking Unix datagram socket.
final class NotifySocketListener {
    /// The NOTIFY_SOCKET value that reaches it.
    let environmentValue: String
    private let descriptor: Int32
    private let path: String?
    private var received: [Notification] = []

    /// Binds `path`, or the abstract name `@name` when `path` starts with `@`.
    init(_ value: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket: errno \(errno)") }
        environmentValue = value
        let address: NotifySocketAddress
        switch NotifySocketAddress.parse(value) {
        case .success(let parsed): address = parsed
        case .failure(let problem):
            close(descriptor)
            throw TestFailure(problem.description)
        }
        if case .path(let path) = address { self.path = path } else { path = nil }
        var on: Int32 = 1
        guard setsockopt(descriptor, SOL_SOCKET, SO_TIMESTAMP, &on, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            let code = errno
            close(descriptor)
            throw TestFailure("SO_TIMESTAMP: errno \(code)")
        }
        let result = address.withAddress { bind(descriptor, $0, $1) }
        guard result == 0 else {
            let code = errno
            close(descriptor)
            throw TestFailure("bind \(value): errno \(code)")
        }
    }

    deinit {
        close(descriptor)
        if let path { unlink(path) }
    }

    /// Reads every datagram waiting now, each with the time the kernel received it.
    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        // One control item: cmsghdr (16 bytes on 64-bit Linux), then a struct timeval.
        var control = [UInt8](repeating: 0, count: 64)
        for _ in 0..<1_000 {
            let (count, stamp) = buffer.withUnsafeMutableBytes { data in
                control.withUnsafeMutableBytes { controlBytes -> (Int, Duration?) in
                    var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                    return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                        var message = msghdr()
                        message.msg_iov = vectorPointer
                        message.msg_iovlen = 1
                        message.msg_control = controlBytes.baseAddress
                        message.msg_controllen = controlBytes.count
                        let count = recvmsg(descriptor, &message, 0)
                        guard count > 0, message.msg_controllen >= 16 + MemoryLayout<timeval>.size else { return (count, nil) }
                        let header = controlBytes.load(as: cmsghdr.self)
                        guard header.cmsg_level == SOL_SOCKET, header.cmsg_type == SO_TIMESTAMP else { return (count, nil) }
                        let time = controlBytes.loadUnaligned(fromByteOffset: 16, as: timeval.self)
                        return (count, .seconds(Int64(time.tv_sec)) + .microseconds(Int64(time.tv_usec)))
                    }
                }
            }
            guard count > 0 else { return }
            let text = String(decoding: buffer[0..<count], as: UTF8.self)
            received.append(Notification(fields: text.split(separator: "\n").map(String.init), at: stamp ?? Notification.now))
        }
    }

    /// Every notification received so far (and not yet taken by `next`), in order.
    var all: [Notification] {
        drain()
        return received
    }

    /// Waits up to `timeout` for the first notification that `matches`; returns it and removes it
    /// and everything before it from the queue, which `skipped` receives.
    func next(within timeout: Duration, skipped: inout [Notification],
              where matches: (Notification) -> Bool) async -> Notification? {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        for _ in 0..<100_000 {
            drain()
            if let index = received.firstIndex(where: matches) {
                skipped += received[..<index]
                let found = received[index]
                received.removeFirst(index + 1)
                return found
            }
            if clock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    /// As `next(within:skipped:where:)`, discarding what came before.
    func next(within timeout: Duration, where matches: (Notification) -> Bool) async -> Notification? {
        var skipped: [Notification] = []
        return await next(within: timeout, skipped: &skipped, where: matches)
    }

    /// Waits `duration` and returns everything that arrived meanwhile (the queue is emptied).
    func collect(for duration: Duration) async -> [Notification] {
        try? await Task.sleep(for: duration)
        drain()
        defer { received.removeAll() }
        return received
    }
}

@Suite("systemd notifications", .serialized)
struct SystemdNotifyTests {
    /// Starts node `index` of `nodes` with `environment`.
    private static func start(_ node: TestNode, _ nodes: TestNodes, environment: [String: String]) throws -> Process {
        try nodes.children.start(["--foreground", "--config", node.configuration], log: node.log, environment: environment)
    }

    @Test func readyAfterTheRingStatusWatchdogReloadAndStop() async throws {
        let nodes = try TestNodes(1)
        defer { nodes.tearDown() }
        let listener = try NotifySocketListener(nodes.base + "/notify")
        let node = nodes.nodes[0]
        // 1 s: a WATCHDOG=1 every 500 ms.
        let process = try Self.start(node, nodes, environment: ["NOTIFY_SOCKET": listener.environmentValue, "WATCHDOG_USEC": "1000000"])

        var beforeReady: [Notification] = []
        let ready = await listener.next(within: .seconds(20), skipped: &beforeReady) { $0.has("READY=1") }
        let readyNotification = try #require(ready, "no READY=1; got \(beforeReady.map(\.fields)); log:\n\(node.logText)")
        // The ring is up when READY=1 arrives: the daemon reports it operational, with the ring
        // that STATUS names.
        let status = try #require(cliJSON(["--socket", node.socket, "status"]), "no status; log:\n\(node.logText)")
        #expect(status["state"]?.stringValue == "operational")
        // The version is the one --version prints, in both forms of status.
        #expect(status["version"]?.stringValue == Devclusterd.version)
        let human = try runCommand(["--socket", node.socket, "status"])
        #expect(human.output.contains("=== ==> Version: \(Devclusterd.version)\n"), "\(human.output)")
        let version = try runCommand(["--version"])
        #expect(version.status == 0 && version.output == "devclusterd \(Devclusterd.version)\n", "\(version)")
        let ring = try #require(status["ring"]?.stringValue)
        #expect(readyNotification.value("STATUS") == "ring \(ring), members: server1; quorate (1 of 1 configured nodes)")
        #expect(beforeReady.contains { $0.value("STATUS") == "starting: forming the first ring" })
        #expect(!beforeReady.contains { $0.has("READY=1") })

        // WATCHDOG=1 about every 500 ms, and nothing else while nothing changes.
        let backlog = await listener.collect(for: .zero)
        #expect(backlog.allSatisfy { $0.isWatchdogOnly }, "\(backlog.map(\.fields))")
        let quiet = await listener.collect(for: .milliseconds(2_300))
        let pings = quiet.filter(\.isWatchdogOnly)
        #expect(pings.count >= 3, "\(quiet.map(\.fields))")
        #expect(quiet.allSatisfy { $0.isWatchdogOnly }, "sent while nothing changed: \(quiet.map(\.fields))")
        for (earlier, later) in zip(pings, pings.dropFirst()) {
            // systemd's limit is WATCHDOG_USEC (1 s); the daemon pings at half of it.
            #expect(later.at - earlier.at < .seconds(1), "a gap of \(later.at - earlier.at)")
            #expect(later.at - earlier.at > .milliseconds(300), "a gap of \(later.at - earlier.at)")
        }

        // SIGHUP: RELOADING=1 with the monotonic time, then READY=1 again.
        let before = MonotonicClock.now().nanoseconds / 1_000
        kill(process.processIdentifier, SIGHUP)
        let reloading = try #require(await listener.next(within: .seconds(5)) { !$0.isWatchdogOnly })
        let after = MonotonicClock.now().nanoseconds / 1_000
        #expect(reloading.has("RELOADING=1"), "\(reloading.fields)")
        let stamp = try #require(reloading.value("MONOTONIC_USEC").flatMap { Int64($0) }, "\(reloading.fields)")
        #expect(stamp >= before && stamp <= after)
        #expect(reloading.value("STATUS") == "reloading \(node.configuration)")
        let reloaded = try #require(await listener.next(within: .seconds(5)) { !$0.isWatchdogOnly })
        #expect(reloaded.has("READY=1"), "\(reloaded.fields)")
        #expect(reloaded.value("STATUS") == readyNotification.value("STATUS"))

        // SIGTERM: STOPPING=1, then no more watchdog notifications.
        kill(process.processIdentifier, SIGTERM)
        let stopping = try #require(await listener.next(within: .seconds(5)) { !$0.isWatchdogOnly })
        #expect(stopping.has("STOPPING=1"), "\(stopping.fields)")
        #expect(stopping.value("STATUS") == "stopping: received SIGTERM")
        #expect(await nodes.children.waitForExit(process, timeout: .seconds(10)) == 0)
        #expect(listener.all.isEmpty, "after STOPPING=1: \(listener.all.map(\.fields))")
    }

    @Test func statusFollowsMembersAndQuorumWithoutRepeats() async throws {
        let nodes = try TestNodes(2)
        defer { nodes.tearDown() }
        let listener = try NotifySocketListener(nodes.base + "/notify")
        _ = try Self.start(nodes.nodes[0], nodes, environment: ["NOTIFY_SOCKET": listener.environmentValue])
        let ready = try #require(await listener.next(within: .seconds(20)) { $0.has("READY=1") }, "log:\n\(nodes.nodes[0].logText)")
        #expect(ready.value("STATUS")?.hasSuffix("members: server1; not quorate (1 of 2 configured nodes)") == true,
                "\(ready.fields)")

        let second = try Self.start(nodes.nodes[1], nodes, environment: [:])
        let joined = await listener.next(within: .seconds(20)) { $0.value("STATUS")?.contains("server1, server2") == true }
        let both = try #require(joined, "no STATUS with both; log:\n\(nodes.nodes[0].logText)")
        #expect(both.value("STATUS")?.hasSuffix("members: server1, server2; quorate (2 of 2 configured nodes)") == true)
        #expect(!both.has("READY=1"))

        kill(second.processIdentifier, SIGTERM)
        let left = await listener.next(within: .seconds(20)) { $0.value("STATUS")?.contains("not quorate") == true }
        let alone = try #require(left, "no STATUS after the leave; log:\n\(nodes.nodes[0].logText)")
        #expect(alone.value("STATUS")?.hasSuffix("members: server1; not quorate (1 of 2 configured nodes)") == true)

        // Nothing more while nothing changes (no watchdog here: WATCHDOG_USEC is not set).
        let quiet = await listener.collect(for: .seconds(1))
        #expect(quiet.isEmpty, "\(quiet.map(\.fields))")
    }

    @Test func abstractSocketAndAWatchdogOfAnotherProcess() async throws {
        let nodes = try TestNodes(1)
        defer { nodes.tearDown() }
        let name = "@devcluster-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let listener = try NotifySocketListener(name)
        // WATCHDOG_PID names another process (PID 1): the watchdog is not the daemon's.
        _ = try Self.start(nodes.nodes[0], nodes, environment: ["NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"])
        var beforeReady: [Notification] = []
        let ready = await listener.next(within: .seconds(20), skipped: &beforeReady) { $0.has("READY=1") }
        #expect(ready != nil, "no READY=1 through \(name); log:\n\(nodes.nodes[0].logText)")
        let later = await listener.collect(for: .milliseconds(600))
        #expect(!(beforeReady + later).contains { $0.has("WATCHDOG=1") }, "\((beforeReady + later).map(\.fields))")
    }

    @Test func aNotifySocketLeadingNowhereBreaksNothing() async throws {
        let nodes = try TestNodes(1)
        defer { nodes.tearDown() }
        let node = nodes.nodes[0]
        let process = try Self.start(node, nodes, environment: ["NOTIFY_SOCKET": nodes.base + "/nobody-listens", "WATCHDOG_USEC": "100000"])
        let up = await eventually(within: .seconds(20)) { formed([node], members: [1]) }
        try #require(up, "no ring; log:\n\(node.logText)")
        // The watchdog keeps failing (every 50 ms): the warning is logged once.
        try await Task.sleep(for: .milliseconds(500))
        #expect(cliJSON(["--socket", node.socket, "status"])?["state"]?.stringValue == "operational")
        kill(process.processIdentifier, SIGTERM)
        #expect(await nodes.children.waitForExit(process, timeout: .seconds(10)) == 0)
        let warnings = node.logText.split(separator: "\n").filter { $0.contains("cannot notify systemd") }
        #expect(warnings.count == 1, "\(warnings)")
    }

    /// The supervisor on an event loop of the test's own, without a daemon around it.
    private static func supervise(_ listener: NotifySocketListener, watchdogMicroseconds: Int, readyDeadline: Duration,
                                  on loop: EventLoop) async throws -> LoopBound<SystemdSupervisor> {
        let variables = ["NOTIFY_SOCKET": listener.environmentValue, "WATCHDOG_USEC": String(watchdogMicroseconds)]
        let environment = SystemdEnvironment(lookup: { variables[$0] }, processID: getpid())
        let logger = LogCollector().makeLogger()
        let made = await onLoop(loop) {
            SystemdSupervisor.make(environment, eventLoop: loop, logger: logger, readyDeadline: readyDeadline).map { LoopBound($0, eventLoop: loop) }
        }
        return try #require(made ?? nil)
    }

    @Test func watchdogNotificationsStopWhileTheLoopIsStuck() async throws {
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let listener = try NotifySocketListener(directory + "/notify")
        let loop = try EventLoop(name: "systemd-test")
        defer {
            loop.stop()
            loop.join()
        }
        // WATCHDOG_USEC 100 ms: a WATCHDOG=1 every 50 ms while the loop turns.
        let supervisor = try await Self.supervise(listener, watchdogMicroseconds: 100_000, readyDeadline: .seconds(60), on: loop)
        defer { withExtendedLifetime(supervisor) {} }
        let turning = await listener.collect(for: .milliseconds(500)).filter(\.isWatchdogOnly)
        #expect(turning.count >= 4, "\(turning.count) in 500 ms")
        // The loop busy for 700 ms: nothing meanwhile, then the notifications resume.
        let stuckAt = Notification.now
        _ = loop.execute { usleep(700_000) }
        let around = await listener.collect(for: .milliseconds(1_200)).filter(\.isWatchdogOnly)
        let during = around.filter { $0.at > stuckAt + .milliseconds(100) && $0.at < stuckAt + .milliseconds(650) }
        #expect(during.isEmpty, "\(during.count) sent while the loop was stuck")
        #expect(around.filter { $0.at > stuckAt + .milliseconds(750) }.count >= 3, "\(around.map { $0.at - stuckAt })")
    }

    @Test func readyAfterTheDeadlineWhenNoRingFormsThenStatusOnly() async throws {
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let listener = try NotifySocketListener(directory + "/notify")
        let loop = try EventLoop(name: "systemd-test")
        defer {
            loop.stop()
            loop.join()
        }
        let started = Notification.now
        let supervisor = try await Self.supervise(listener, watchdogMicroseconds: 10_000_000, readyDeadline: .seconds(1), on: loop)
        let ready = try #require(await listener.next(within: .seconds(5)) { $0.has("READY=1") })
        #expect(ready.at - started >= .milliseconds(950), "\(ready.at - started)")
        #expect(ready.value("STATUS") == "no ring formed within 1 s of start; still trying (see the log and \"devclusterd status\")")
        // The ring, later: a status, no second READY=1; the same status again sends nothing.
        _ = await onLoop(loop) {
            supervisor.value.ringInstalled(status: "ring 1.5, members: server1")
            supervisor.value.ringInstalled(status: "ring 1.5, members: server1")
            supervisor.value.update(status: "ring 1.5, members: server1")
        }
        let later = await listener.collect(for: .milliseconds(200)).filter { !$0.isWatchdogOnly }
        #expect(later.map(\.fields) == [["STATUS=ring 1.5, members: server1"]])
        // A reload before and after; STOPPING=1 ends it all.
        _ = await onLoop(loop) {
            supervisor.value.reloading("test.conf")
            supervisor.value.reloaded(status: "ring 1.5, members: server1")
            supervisor.value.stopping("received SIGTERM")
            supervisor.value.ringInstalled(status: "ring 1.9, members: server1")
        }
        let fields = await listener.collect(for: .milliseconds(200)).filter { !$0.isWatchdogOnly }.map { $0.fields.filter { !$0.hasPrefix("MONOTONIC_USEC=") } }
        #expect(fields == [["RELOADING=1", "STATUS=reloading test.conf"], ["READY=1", "STATUS=ring 1.5, members: server1"],
                           ["STOPPING=1", "STATUS=stopping: received SIGTERM"]])
    }

    @Test func theEnvironmentAsSystemdDocumentsIt() {
        func read(_ variables: [String: String], pid: Int32 = 42) -> SystemdEnvironment {
            SystemdEnvironment(lookup: { variables[$0] }, processID: pid)
        }
        // Unset or empty: not under systemd, silently.
        #expect(read([:]) == SystemdEnvironment(lookup: { _ in nil }, processID: 42))
        #expect(read([:]).notifySocket == nil && read([:]).problems.isEmpty)
        #expect(read(["NOTIFY_SOCKET": ""]).notifySocket == nil && read(["NOTIFY_SOCKET": ""]).problems.isEmpty)
        #expect(read(["NOTIFY_SOCKET": "/run/systemd/notify"]).notifySocket == .path("/run/systemd/notify"))
        #expect(read(["NOTIFY_SOCKET": "@/org/freedesktop/systemd1/notify"]).notifySocket == .abstract("/org/freedesktop/systemd1/notify"))
        for unusable in ["relative/path", "@", "vsock:2:1234", "/" + String(repeating: "x", count: 200)] {
            let environment = read(["NOTIFY_SOCKET": unusable])
            #expect(environment.notifySocket == nil)
            #expect(environment.problems.count == 1 && environment.problems[0].contains("NOTIFY_SOCKET"), "\(environment.problems)")
        }
        // The watchdog: half of WATCHDOG_USEC, only for the process WATCHDOG_PID names (if set).
        #expect(read(["WATCHDOG_USEC": "3000000"]).watchdogInterval == .milliseconds(1_500))
        #expect(read(["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "42"]).watchdogInterval == .milliseconds(1_500))
        #expect(read(["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "43"]).watchdogInterval == nil)
        #expect(read(["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "43"]).problems.isEmpty)
        for bad in ["0", "-5", "abc", "99999999999999999999"] {
            let environment = read(["WATCHDOG_USEC": bad])
            #expect(environment.watchdogInterval == nil && environment.problems.count == 1, "\(bad): \(environment.problems)")
        }
        #expect(read(["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "x"]).problems.count == 1)
    }
}
