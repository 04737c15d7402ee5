// The seed's devstate_test walk-through with real daemons on 127.0.0.1-3: a state set on one
// server shows on the others and in their hints, NOT_INUSE brings Idle back, a kill -9 drops the
// dead server's states, a restarted server keeps its own and sees the cluster's at once, MWI
// travels, and publish-only / subscribe-only channels behave as configured.

import Foundation
import Glibc
import Testing
@testable import devclusterd

@Suite("End to end: distributed device state", .serialized)
struct DeviceStateEndToEndTests {
    @Test func theSeedWalkThroughOnThreeServers() async throws {
        let base = try makeTemporaryDirectory()
        let children = Children()
        defer {
            children.killAll()
            removeDirectory(base)
        }
        let port = randomPort()
        let nodes = try (1...3).map { try makeNode($0, of: 3, in: base, port: port, channels: seedChannels, configuredEntity: true) }
        var processes = try nodes.map { try children.start(["--foreground", "--config", $0.configuration], log: $0.log) }
        let formedAll = await eventually(within: .seconds(20)) { formed(nodes, members: [1, 2, 3]) }
        try #require(formedAll, "no ring of three: \(nodes.map(\.logText))")

        // status: quorate, exit 0.
        let status = try runCommand(["--socket", nodes[0].socket, "status", "--json"])
        #expect(status.status == 0)
        #expect(status.output.contains("\"quorate\":true"))

        // INUSE on server1: server2's devstate get and server3's hints follow.
        let set = try runCommand(["--socket", nodes[0].socket, "devstate", "set", "Custom:mystate", "INUSE"])
        #expect(set.status == 0, "\(set.error)")
        let seenOn2 = await eventually(within: .seconds(5)) {
            cliJSON(["--socket", nodes[1].socket, "devstate", "get", "Custom:mystate"])?["state"] == "INUSE"
        }
        #expect(seenOn2)
        let get = cliJSON(["--socket", nodes[1].socket, "devstate", "get", "Custom:mystate"])
        #expect(get?["device"] == "Custom:mystate")
        #expect(get?["servers"]?.arrayValue?.map { $0["name"] } == ["server1"])
        let hintsOn3 = await eventually(within: .seconds(5)) {
            cliJSON(["--socket", nodes[2].socket, "hints"]) == ["hints": [
                ["exten": "1234", "context": "devstate_test", "devices": "Custom:mystate", "state": "InUse", "watchers": 0],
            ]]
        }
        #expect(hintsOn3)
        let human = try runCommand(["--socket", nodes[2].socket, "hints"])
        #expect(human.output.contains("1234@devstate_test       : Custom:mystate        State:InUse           Watchers  0"))

        // MWI from server1 reaches server3.
        #expect(try runCommand(["--socket", nodes[0].socket, "mwi", "set", "1234@default", "2", "5"]).status == 0)
        let mwiOn3 = await eventually(within: .seconds(5)) {
            let answer = cliJSON(["--socket", nodes[2].socket, "mwi", "get", "1234"])
            return answer?["mailbox"] == "1234" && answer?["context"] == "default" && answer?["new"] == 2 && answer?["old"] == 5
        }
        #expect(mwiOn3)

        // NOT_INUSE brings Idle back.
        #expect(try runCommand(["--socket", nodes[0].socket, "devstate", "set", "Custom:mystate", "NOT_INUSE"]).status == 0)
        let idle = await eventually(within: .seconds(5)) {
            cliJSON(["--socket", nodes[2].socket, "hints"])?["hints"]?.arrayValue?.first?["state"] == "Idle"
        }
        #expect(idle)

        // server2 holds INUSE and is killed: the others drop it within failure detection.
        #expect(try runCommand(["--socket", nodes[1].socket, "devstate", "set", "Custom:mystate", "INUSE"]).status == 0)
        let inUseOn3 = await eventually(within: .seconds(5)) {
            cliJSON(["--socket", nodes[2].socket, "devstate", "get", "Custom:mystate"])?["state"] == "INUSE"
        }
        #expect(inUseOn3)
        // Let the write of server2's table settle (it is written before the publication).
        kill(processes[1].processIdentifier, SIGKILL)
        processes[1].waitUntilExit()
        let dropped = await eventually(within: .seconds(6)) {
            cliJSON(["--socket", nodes[2].socket, "devstate", "get", "Custom:mystate"])?["state"] == "NOT_INUSE"
                && cliJSON(["--socket", nodes[0].socket, "hints"])?["hints"]?.arrayValue?.first?["state"] == "Idle"
        }
        #expect(dropped)

        // server2 restarts: it keeps its own INUSE and at once sees the cluster's MWI.
        processes[1] = try children.start(["--foreground", "--config", nodes[1].configuration], log: nodes[1].log)
        let rejoined = await eventually(within: .seconds(20)) { formed(nodes, members: [1, 2, 3]) }
        try #require(rejoined, "server2 did not rejoin: \(nodes[1].logText)")
        let restored = await eventually(within: .seconds(5)) {
            cliJSON(["--socket", nodes[0].socket, "devstate", "get", "Custom:mystate"])?["state"] == "INUSE"
                && cliJSON(["--socket", nodes[1].socket, "mwi", "get", "1234@default"])?["new"] == 2
        }
        #expect(restored, "\(nodes[1].logText)")
        #expect(nodes[1].logText.contains("restored 1 local device state(s)"))

        // ping: every member answers.
        let ping = cliJSON(["--socket", nodes[0].socket, "ping"])
        #expect(ping?["nodes"]?.arrayValue?.allSatisfy { $0["rtt_ms"]?.doubleValue != nil } == true)
        #expect(ping?["nodes"]?.arrayValue?.count == 3)

        // Bad input: clear errors, exit 2 for a usage mistake (with a suggestion), the daemon still answers.
        let bad = try runCommand(["--socket", nodes[0].socket, "devstate", "set", "Custom:mystate", "INUS"])
        #expect(bad.status == 2 && bad.error.contains("unknown device state \"INUS\" (did you mean \"INUSE\"?)"), "\(bad)")
        #expect(try runCommand(["--socket", nodes[0].socket, "mwi", "set", "1234", "x", "1"]).status == 2)
        #expect(membership(nodes[0]) != nil)
    }

    @Test func publishOnlyAndSubscribeOnlyChannels() async throws {
        let base = try makeTemporaryDirectory()
        let children = Children()
        defer {
            children.killAll()
            removeDirectory(base)
        }
        let port = randomPort()
        let publisher = try makeNode(1, of: 2, in: base, port: port, channels: """
            [device_state]
            type = event_channel
            publish_event = device_state

            """, configuredEntity: true)
        let subscriber = try makeNode(2, of: 2, in: base, port: port, channels: """
            [device_state]
            type = event_channel
            subscribe_event = device_state

            """, configuredEntity: true)
        for node in [publisher, subscriber] {
            _ = try children.start(["--foreground", "--config", node.configuration], log: node.log)
        }
        let formedBoth = await eventually(within: .seconds(20)) { formed([publisher, subscriber], members: [1, 2]) }
        try #require(formedBoth)
        #expect(try runCommand(["--socket", publisher.socket, "devstate", "set", "Custom:a", "BUSY"]).status == 0)
        let seen = await eventually(within: .seconds(5)) {
            cliJSON(["--socket", subscriber.socket, "devstate", "get", "Custom:a"])?["state"] == "BUSY"
        }
        #expect(seen)
        // The subscriber publishes nothing: a state set there would reach no other server, so it
        // is refused (as mwi set is without an mwi channel), and nobody reports Custom:b.
        let refused = try runCommand(["--socket", subscriber.socket, "devstate", "set", "Custom:b", "INUSE"])
        #expect(refused.status == 1 && refused.error.contains("no event channel publishes device_state on this node"), "\(refused)")
        // Nobody reports Custom:b: UNKNOWN, as Asterisk's Custom provider says.
        #expect(cliJSON(["--socket", publisher.socket, "devstate", "get", "Custom:b"])?["state"] == "UNKNOWN")
        #expect(cliJSON(["--socket", subscriber.socket, "devstate", "get", "Custom:b"])?["state"] == "UNKNOWN")
        let channels = cliJSON(["--socket", publisher.socket, "channels"])
        #expect(channels?["channels"]?.arrayValue?.first?["published"] == 1)
    }
}
