// Real Asterisk 22 servers sharing device state and MWI through res_devcluster and devclusterd,
// each server in its own network namespace (scripts/asterisk-testbed.sh): the seed's walk-through
// word for word, aggregation by Asterisk itself, MWI, kill -9 of a server (its states leave the
// others' hints, and come back with it), devclusterd restarted under a running Asterisk, and bad
// module configuration. Skipped (with a printed reason) where Asterisk is not built; .ci/run
// builds it and requires them.

import Foundation
import Glibc
import Testing
@testable import devclusterd

@Suite("Asterisk servers through res_devcluster", .serialized, .enabled(if: AsteriskTestbed.shouldRun))
struct AsteriskTests {
    typealias Bed = AsteriskTestbed

    /// The seed's walk-through on three servers: `devstate change` on server 1, `core show hints`
    /// on 2 and 3 shows InUse, DEVICE_STATE() agrees, NOT_INUSE brings Idle back.
    @Test func theSeedWalkThrough() async throws {
        try await Bed.up(3)
        defer { Bed.down() }
        #expect(await Bed.hints(2)["1234@devstate_test"] == "Idle")

        _ = await Bed.rx(1, "devstate change Custom:mystate INUSE")
        for server in [2, 3] {
            let took = await Bed.waitFor(within: .seconds(5)) { await Bed.hints(server)["1234@devstate_test"] == "InUse" }
            await Bed.check(took, sourceLocation: #_sourceLocation) { "server \(server): \(await Bed.rx(server, "core show hints"))" }
            #expect(await Bed.deviceState(server, "Custom:mystate") == "INUSE")
        }
        // Through AMI too: Getvar of the dialplan function on server 3.
        let (_, answer) = await Bed.probe(from: 3, ["--action", Bed.address(3), "Getvar", "Variable=DEVICE_STATE(Custom:mystate)"])
        #expect(answer?["response"]?["Value"] == "INUSE", "\(answer?.encoded ?? "no answer")")

        _ = await Bed.rx(1, "devstate change Custom:mystate NOT_INUSE")
        for server in [2, 3] {
            let took = await Bed.waitFor(within: .seconds(5)) { await Bed.hints(server)["1234@devstate_test"] == "Idle" }
            await Bed.check(took, sourceLocation: #_sourceLocation) { "server \(server): \(await Bed.rx(server, "core show hints"))" }
            #expect(await Bed.deviceState(server, "Custom:mystate") == "NOT_INUSE")
        }
        // The module's own view: connected, three members.
        let status = await Bed.rx(2, "devcluster show status")
        #expect(status.lowercased().contains("connected"), "\(status)")
        let members = await Bed.rx(2, "devcluster show members")
        for name in ["server1", "server2", "server3"] { #expect(members.contains(name), "\(members)") }
    }

    /// Asterisk folds the servers' entries itself: INUSE on one server and RINGING on another
    /// reads RINGINUSE on a third.
    @Test func aggregationAcrossServers() async throws {
        try await Bed.up(3)
        defer { Bed.down() }
        _ = await Bed.rx(1, "devstate change Custom:agg INUSE")
        _ = await Bed.rx(2, "devstate change Custom:agg RINGING")
        let folded = await Bed.waitFor(within: .seconds(5)) { await Bed.deviceState(3, "Custom:agg") == "RINGINUSE" }
        await Bed.check(folded, sourceLocation: #_sourceLocation) { "server 3 reads \(String(describing: await Bed.deviceState(3, "Custom:agg")))" }
        // Each server folds its own entry with the others' alike.
        #expect(await Bed.deviceState(1, "Custom:agg") == "RINGINUSE")
        #expect(await Bed.deviceState(2, "Custom:agg") == "RINGINUSE")
        // Server 2 goes back to NOT_INUSE: INUSE everywhere.
        _ = await Bed.rx(2, "devstate change Custom:agg NOT_INUSE")
        let back = await Bed.waitFor(within: .seconds(5)) { await Bed.deviceState(3, "Custom:agg") == "INUSE" }
        #expect(back != nil)
    }

    /// MWI changed on server 1 with AMI MWIUpdate: servers 2 and 3 raise MessageWaiting with the
    /// new and old counts, as with res_corosync.
    @Test func messageWaitingReachesTheOtherServers() async throws {
        try await Bed.up(3)
        defer { Bed.down() }
        let (result, answer) = await Bed.probe(from: 1, [
            "--expect", Bed.address(2), "MessageWaiting", "Mailbox=1234@default", "New=2", "Old=5",
            "--expect", Bed.address(3), "MessageWaiting", "Mailbox=1234@default", "New=2", "Old=5",
            "--action", Bed.address(1), "MWIUpdate", "Mailbox=1234@default", "NewMessages=2", "OldMessages=5",
            "--timeout", "10",
        ])
        if result.status != 0 {
            let one = await Bed.rx(1, "devcluster show status"), two = await Bed.rx(2, "devcluster show status")
            let mailboxes = await Bed.run(["dc", "1", "mwi", "list"])
            Issue.record("MWI not seen: \(result)\nserver 1: \(one)\nserver 2: \(two)\ndaemon 1: \(mailboxes.output)\n\(Bed.log(1))")
        }
        #expect(answer?["response"]?["Response"] == "Success", "\(answer?.encoded ?? "")")
        #expect(answer?["events"]?.arrayValue?.count == 2, "\(answer?.encoded ?? "")")
        #expect(answer?["events"]?.arrayValue?.map { $0["event"]?["SystemName"] } == ["server2", "server3"], "\(answer?.encoded ?? "")")
        // Back to zero: the others follow.
        let (cleared, _) = await Bed.probe(from: 1, [
            "--expect", Bed.address(3), "MessageWaiting", "Mailbox=1234@default", "New=0", "Old=0",
            "--action", Bed.address(1), "MWIUpdate", "Mailbox=1234@default", "NewMessages=0", "OldMessages=0",
            "--timeout", "10",
        ])
        #expect(cleared.status == 0, "\(cleared)")
    }

    /// kill -9 of server 1 (Asterisk and devclusterd) while it holds INUSE and BUSY: the others'
    /// hints go back to what the remaining servers say (here Idle); restarted, server 1's states
    /// come back without anyone setting them again. (Asterisk + res_corosync keeps the dead
    /// server's InUse in `core show hints` for over a minute.)
    @Test func aKilledServersStatesLeaveTheHintsAndComeBack() async throws {
        try await Bed.up(3)
        defer { Bed.down() }
        _ = await Bed.rx(1, "devstate change Custom:mystate INUSE")
        _ = await Bed.rx(1, "devstate change Custom:trial2 BUSY")
        let seen = await Bed.waitFor(within: .seconds(5)) {
            let hints = await Bed.hints(2)
            return hints["1234@devstate_test"] == "InUse" && hints["2002@devstate_test"] == "Busy"
        }
        try await Bed.require(seen) { "\(await Bed.rx(2, "core show hints"))" }
        // Server 3 holds a state of its own, which must survive the purge of server 1's.
        _ = await Bed.rx(3, "devstate change Custom:trial3 INUSE")
        // Asterisk keeps Custom: states in astdb and commits it at most once a second: a kill -9
        // sooner would lose them on server 1 itself, and the cluster would then rightly follow
        // server 1's own view when it returns.
        try await Task.sleep(for: .milliseconds(1_500))

        let killed = await Bed.run(["kill", "1"])
        try #require(killed.succeeded, "\(killed)")
        for server in [2, 3] {
            let took = await Bed.waitFor(within: .seconds(10)) {
                let hints = await Bed.hints(server)
                return hints["1234@devstate_test"] == "Idle" && hints["2002@devstate_test"] == "Idle"
            }
            await Bed.check(took, sourceLocation: #_sourceLocation) { "server \(server) still shows server 1's states: \(await Bed.rx(server, "core show hints"))" }
            if let took { print("Asterisk tests: server \(server)'s hints purged \(took) after kill -9 of server 1") }
            #expect(await Bed.deviceState(server, "Custom:mystate") == "UNKNOWN")
        }
        // Server 3's own state is untouched.
        #expect(await Bed.hints(2)["2003@devstate_test"] == "InUse")

        let restarted = await Bed.run(["start", "1"], timeout: .seconds(120))
        try #require(restarted.succeeded, "\(restarted)")
        for server in [2, 3] {
            let back = await Bed.waitFor(within: .seconds(10)) {
                let hints = await Bed.hints(server)
                return hints["1234@devstate_test"] == "InUse" && hints["2002@devstate_test"] == "Busy"
            }
            await Bed.check(back, sourceLocation: #_sourceLocation) { "server \(server) after server 1 restarted: \(await Bed.rx(server, "core show hints"))" }
        }
        // And the restarted server sees the others' states again.
        let seesThree = await Bed.waitFor(within: .seconds(10)) { await Bed.hints(1)["2003@devstate_test"] == "InUse" }
        await Bed.check(seesThree, sourceLocation: #_sourceLocation) { "\(await Bed.rx(1, "core show hints"))" }
    }

    /// devclusterd restarted under a running Asterisk: the module reconnects, re-sends its own
    /// states and re-reads the cluster's; changes made on either side meanwhile are not lost.
    @Test func devclusterdRestartedUnderARunningAsterisk() async throws {
        try await Bed.up(3)
        defer { Bed.down() }
        _ = await Bed.rx(2, "devstate change Custom:mystate INUSE")
        let seen = await Bed.waitFor(within: .seconds(5)) { await Bed.hints(1)["1234@devstate_test"] == "InUse" }
        try #require(seen != nil)

        let stopped = await Bed.run(["kill-daemon", "2"])
        try #require(stopped.succeeded, "\(stopped)")
        let disconnected = await Bed.waitFor(within: .seconds(5)) {
            await Bed.rx(2, "devcluster show status").lowercased().contains("disconnected")
        }
        await Bed.check(disconnected, sourceLocation: #_sourceLocation) { "\(await Bed.rx(2, "devcluster show status"))" }
        // While server 2's daemon is away: a change on server 2's Asterisk, and one on server 1.
        _ = await Bed.rx(2, "devstate change Custom:trial2 BUSY")
        _ = await Bed.rx(1, "devstate change Custom:trial3 RINGING")
        // Asterisk keeps answering meanwhile.
        #expect(await Bed.deviceState(2, "Custom:trial2") == "BUSY")

        let started = await Bed.run(["start-daemon", "2"], timeout: .seconds(60))
        try #require(started.succeeded, "\(started)")
        let reconnected = await Bed.waitFor(within: .seconds(15)) {
            let status = await Bed.rx(2, "devcluster show status").lowercased()
            return status.contains("connected") && !status.contains("disconnected")
        }
        await Bed.check(reconnected, sourceLocation: #_sourceLocation) { "\(await Bed.rx(2, "devcluster show status"))" }
        let synced = await Bed.waitFor(within: .seconds(10)) {
            let onOne = await Bed.hints(1), onTwo = await Bed.hints(2), onThree = await Bed.hints(3)
            return onOne["2002@devstate_test"] == "Busy" && onThree["2002@devstate_test"] == "Busy"
                && onTwo["2003@devstate_test"] == "Ringing" && onOne["1234@devstate_test"] == "InUse"
        }
        await Bed.check(synced, sourceLocation: #_sourceLocation) { "after the restart: 1 \(await Bed.hints(1)), 2 \(await Bed.hints(2)), 3 \(await Bed.hints(3))" }
    }

    /// Bad module configuration: a clear message in Asterisk's log, and the module declines to
    /// load; the good configuration loads again.
    @Test func badModuleConfigurationIsDeclinedWithAClearMessage() async throws {
        try await Bed.up(1)
        defer { Bed.down() }
        let run = ProcessInfo.processInfo.environment["DEVCLUSTER_TESTBED_RUN"] ?? "/tmp/devcluster-testbed"
        let configuration = "\(run)/server1/etc/res_devcluster.conf"
        let good = try String(contentsOfFile: configuration, encoding: .utf8)
        defer { try? good.write(toFile: configuration, atomically: true, encoding: .utf8) }
        _ = await Bed.rx(1, "module unload res_devcluster.so")

        let cases: [(name: String, text: String, expected: [String])] = [
            ("unknown option", good + "\npublish_evnt = mwi\n", ["publish_evnt"]),
            ("relative socket path", good.replacingOccurrences(of: "socket =", with: "socket = relative/path.sock ;"),
             ["socket", "relative/path.sock"]),
            ("invalid regex", good + "\ndevice_filter = ^(Custom:\n", ["device_filter", "^(Custom:"]),
            ("unknown event type", good + "\nsubscribe_event = devstate\n", ["subscribe_event", "devstate"]),
        ]
        for bad in cases {
            try bad.text.write(toFile: configuration, atomically: true, encoding: .utf8)
            let before = Bed.log(1).count
            _ = await Bed.rx(1, "module load res_devcluster.so")
            let shown = await Bed.rx(1, "module show like res_devcluster")
            #expect(shown.contains("Not Running"), "\(bad.name): the module loaded anyway: \(shown)")
            let logged = await Bed.waitFor(within: .seconds(3)) {
                let added = String(Bed.log(1).dropFirst(before))
                return bad.expected.allSatisfy { added.contains($0) }
            }
            await Bed.check(logged, sourceLocation: #_sourceLocation) { "\(bad.name): \(String(Bed.log(1).dropFirst(before)))" }
        }
        try good.write(toFile: configuration, atomically: true, encoding: .utf8)
        _ = await Bed.rx(1, "module load res_devcluster.so")
        let reloaded = await Bed.rx(1, "module show like res_devcluster")
        #expect(reloaded.contains(" Running") && !reloaded.contains("Not Running"), "\(reloaded)")
        let connected = await Bed.waitFor(within: .seconds(10)) {
            let status = await Bed.rx(1, "devcluster show status").lowercased()
            return status.contains("connected") && !status.contains("disconnected")
        }
        await Bed.check(connected, sourceLocation: #_sourceLocation) { "\(await Bed.rx(1, "devcluster show status"))" }
    }

    /// Issue 14, finding 9 for the module: a socket at the configured path served by another
    /// user (someone who created it first) is refused before anything is sent or believed.
    @Test func aSocketServedByAnotherUserIsRefused() async throws {
        try await Bed.up(1)
        defer { Bed.down() }
        let run = ProcessInfo.processInfo.environment["DEVCLUSTER_TESTBED_RUN"] ?? "/tmp/devcluster-testbed"
        let configuration = "\(run)/server1/etc/res_devcluster.conf"
        let good = try String(contentsOfFile: configuration, encoding: .utf8)
        defer { try? good.write(toFile: configuration, atomically: true, encoding: .utf8) }
        let python = try #require(NamespacePrerequisites.python)
        let directory = "\(run)/impostor"
        let path = directory + "/devclusterd.sock"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try #require(chown(directory, 65_534, 65_534) == 0, "chown \(directory): errno \(errno)")
        // nobody listens at the path (and never answers): the kernel completes the connection,
        // and SO_PEERCRED names nobody.
        let impostor = Process()
        impostor.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        impostor.arguments = ["--reuid", "65534", "--regid", "65534", "--clear-groups", python, "-c",
                              "import socket, sys, time\ns = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen(16)\ntime.sleep(30)",
                              path]
        try impostor.run()
        defer { if impostor.isRunning { kill(impostor.processIdentifier, SIGKILL); impostor.waitUntilExit() } }
        let listening = await Bed.waitFor(within: .seconds(5)) { FileManager.default.fileExists(atPath: path) }
        try #require(listening != nil, "the impostor never listened at \(path)")

        _ = await Bed.rx(1, "module unload res_devcluster.so")
        try good.replacingOccurrences(of: "socket =", with: "socket = \(path) ;").write(toFile: configuration, atomically: true, encoding: .utf8)
        _ = await Bed.rx(1, "module load res_devcluster.so")
        let refused = await Bed.waitFor(within: .seconds(10)) {
            await Bed.rx(1, "devcluster show status").contains("neither root nor")
        }
        await Bed.check(refused, sourceLocation: #_sourceLocation) { "\(await Bed.rx(1, "devcluster show status"))\n\(Bed.log(1).suffix(2_000))" }
        #expect(Bed.log(1).contains("served by uid 65534"), "Asterisk's log does not say who served the socket")
    }
}
