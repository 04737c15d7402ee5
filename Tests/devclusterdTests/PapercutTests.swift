// What a new user tripped over (issue 16, item 6): devstate set without a channel publishing
// device_state (refused like mwi set, and warned by --check-config and at start), several nodes
// on one host deriving distinct entity ids, a misspelt state as a usage error with a suggestion,
// JSON errors on standard output with --json, and watch telling a graceful leave from a failure.

import Foundation
import Glibc
import Testing
import DeviceState
import Totem
import TotemRuntime
@testable import devclusterd

@Suite("Papercuts: unit")
struct PapercutUnitTests {
    @Test func aMisspeltStateIsAUsageErrorWithASuggestion() throws {
        #expect(throws: UsageError("devstate set: unknown device state \"INUSEE\" (did you mean \"INUSE\"?); valid states: "
            + DeviceStateValue.validNames.joined(separator: ", "))) {
            try CommandLineParser.parse(["devstate", "set", "Custom:x", "INUSEE"])
        }
        #expect(throws: UsageError("devstate set: unknown device state \"ZZZZZZZZ\"; valid states: "
            + DeviceStateValue.validNames.joined(separator: ", "))) {
            try CommandLineParser.parse(["devstate", "set", "Custom:x", "ZZZZZZZZ"])
        }
        // Case does not matter, as for the daemon.
        #expect(try CommandLineParser.parse(["devstate", "set", "Custom:x", "inuse"])
            == .client(ClientInvocation(target: .defaultConfiguration, command: .devstateSet(device: "Custom:x", state: "inuse"), json: false)))
    }

    @Test func severalNodesOnOneHostDeriveDistinctEntityIDsFromOneMACAddress() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let net = base + "/net"
        try FileManager.default.createDirectory(atPath: net + "/eth0", withIntermediateDirectories: true)
        try "52:54:00:12:34:56\n".write(toFile: net + "/eth0/address", atomically: true, encoding: .utf8)
        var ids: [String] = []
        for node in 1...3 {
            var identity = EntityIdentity(stateDirectory: base + "/state\(node)")
            try FileManager.default.createDirectory(atPath: identity.stateDirectory, withIntermediateDirectories: true)
            identity.interfacesDirectory = net
            identity.sharedHostNodeID = NodeID(rawValue: UInt32(node))
            let derived = try identity.resolve(configured: nil)
            #expect(derived.source == .macAddressAndNodeID(interface: "eth0", node: NodeID(rawValue: UInt32(node))!))
            ids.append(derived.id.description)
        }
        #expect(ids == ["52:54:00:12:34:57", "52:54:00:12:34:54", "52:54:00:12:34:55"])
        // A configured id stays as it is; an id stored before (an upgraded install) is kept.
        var identity = EntityIdentity(stateDirectory: base + "/state1")
        identity.interfacesDirectory = net
        identity.sharedHostNodeID = NodeID(rawValue: 9)
        let configured = DaemonConfiguration.EntityID(parsing: "01:23:45:67:89:ab")!
        #expect(try identity.resolve(configured: configured).id == configured)
        try FileSystem.writeAtomically(Array("52:54:00:12:34:56\n".utf8), to: identity.filePath, mode: 0o644)
        try FileSystem.writeAtomically(Array("52:54:00:12:34:56\n".utf8), to: identity.filePath + ".prev", mode: 0o644)
        #expect(try identity.resolve(configured: nil).id.description == "52:54:00:12:34:56")
        // One node of the configuration on this host: the MAC address as it is.
        var single = EntityIdentity(stateDirectory: base + "/single")
        try FileManager.default.createDirectory(atPath: single.stateDirectory, withIntermediateDirectories: true)
        single.interfacesDirectory = net
        #expect(try single.resolve(configured: nil).id.description == "52:54:00:12:34:56")
    }

    @Test func sharingAHostIsSeenFromTheNodeAddresses() throws {
        #expect(EntityIdentity.sharesHost(try threeNodeConfiguration(), localAddresses: []), "127.0.0.1-3 are all this host")
        let spread = try DaemonConfiguration.parse(text: """
            [totem]
            cluster_name = pbx
            transport = udpu
            crypto = none
            [node]
            nodeid = 1
            addr = 10.0.0.1
            [node]
            nodeid = 2
            addr = 10.0.0.2
            [options]
            nodeid = 1
            """, path: "x", host: loopbackHost)
        let here = DaemonConfiguration.IPAddress("10.0.0.1")!
        #expect(!EntityIdentity.sharesHost(spread, localAddresses: [here]))
        #expect(EntityIdentity.sharesHost(spread, localAddresses: [here, DaemonConfiguration.IPAddress("10.0.0.2")!]))
    }

    @Test func theMulticastTTLIsOneByDefaultAndSetWithTTLForUDPOnly() throws {
        func udp(_ ttl: String?, transport: String = "udp") -> String {
            """
            [totem]
            cluster_name = pbx
            transport = \(transport)
            bindnetaddr = 127.0.0.0
            \(ttl.map { "ttl = \($0)" } ?? "")
            [node]
            nodeid = 1
            addr = 127.0.0.1
            [node]
            nodeid = 2
            addr = 127.0.0.2
            [options]
            nodeid = 1
            """
        }
        let standard = try DaemonConfiguration.parse(text: udp(nil), path: "x", host: loopbackHost)
        #expect(standard.totem.multicastTTL == 1)
        let routed = try DaemonConfiguration.parse(text: udp("8"), path: "x", host: loopbackHost)
        #expect(routed.totem.multicastTTL == 8)
        #expect(try routed.runtimeConfiguration(file: "x", authentication: .none, key: nil, log: RuntimeLog.discard).transport.multicastTTL == 8)
        #expect(try DaemonConfiguration.parse(text: routed.fileText, path: "x", host: loopbackHost) == routed)
        #expect(standard.restartRequiredChanges(to: routed) == ["[totem] ttl (1 -> 8)"])
        func problems(_ text: String) -> [String] {
            do {
                _ = try DaemonConfiguration.parse(text: text, path: "x", host: loopbackHost)
                return []
            } catch {
                return error.errors.map(\.description)
            }
        }
        #expect(problems(udp("256")) == ["x:5: [totem] ttl: expected a time-to-live 0-255 for multicast datagrams (1: they do not cross a router), got \"256\""])
        let unicast = problems(udp("2", transport: "udpu").replacingOccurrences(of: "bindnetaddr = 127.0.0.0\n", with: ""))
        #expect(unicast.count == 1 && unicast[0].hasPrefix("x:4: [totem] ttl: "), "\(unicast)")
    }

    @Test func aConfigurationThatPublishesNoDeviceStateOrMWIIsWarnedAbout() throws {
        let both = try threeNodeConfiguration()
        #expect(both.publicationWarnings.isEmpty)
        var neither = both
        neither.eventChannels = neither.eventChannels.map { channel in
            var channel = channel
            channel.publishes = []
            return channel
        }
        #expect(neither.publicationWarnings == [
            "no event channel publishes device_state: devstate set is refused on this node (nothing it set would reach another "
                + "server); add publish_event = device_state to a channel, as [device_state] in the README",
            "no event channel publishes mwi: mwi set is refused on this node (nothing it set would reach another server); "
                + "add publish_event = mwi to a channel, as [mwi] in the README",
        ])
    }
}

@Suite("Papercuts: real daemons", .serialized)
struct PapercutEndToEndTests {
    @Test func withoutADeviceStateChannelDevstateSetFailsLikeMWISetAndCheckConfigWarns() async throws {
        let cluster = try TestNodes(1, channels: """
            [alerts]
            type = event_channel
            publish_event = alarm
            subscribe_event = alarm

            """)
        defer { cluster.tearDown() }
        let node = cluster.nodes[0]
        let check = try runCommand(["--check-config", "--config", node.configuration])
        #expect(check.status == 0)
        #expect(check.error.contains("warning: no event channel publishes device_state: devstate set is refused on this node"), "\(check.error)")
        #expect(check.error.contains("warning: no event channel publishes mwi: mwi set is refused on this node"), "\(check.error)")
        _ = try await startRing(cluster.nodes, children: cluster.children)
        #expect(node.logText.contains("no event channel publishes device_state"), "the start-up log warns too")

        let devstate = try runCommand(["--socket", node.socket, "devstate", "set", "Custom:x", "BUSY"])
        #expect(devstate.status == 1)
        #expect(devstate.error.contains("no event channel publishes device_state on this node, so no other server would see the state"),
                "\(devstate.error)")
        let mwi = try runCommand(["--socket", node.socket, "mwi", "set", "1234", "1", "0"])
        #expect(mwi.status == 1 && mwi.error.contains("no event channel publishes mwi on this node"), "\(mwi.error)")
        #expect(cliJSON(["--socket", node.socket, "devstate", "get", "Custom:x"])?["state"] == "UNKNOWN", "nothing was set")
    }

    @Test func usageMistakesExitTwoAndJSONErrorsGoToStandardOutput() async throws {
        let cluster = try TestNodes(1)
        defer { cluster.tearDown() }
        let node = cluster.nodes[0]
        _ = try await startRing(cluster.nodes, children: cluster.children)

        let misspelt = try runCommand(["--socket", node.socket, "devstate", "set", "Custom:x", "INUSEE"])
        #expect(misspelt.status == 2 && misspelt.error.contains("(did you mean \"INUSE\"?)"), "\(misspelt)")

        // The daemon's error, a usage error and no daemon at all: each a JSON error object on
        // standard output (and text on standard error), with a non-zero exit.
        func jsonError(_ result: CommandResult) throws -> (code: String?, message: String?) {
            let value = try JSONParser.parse(result.output.trimmingCharacters(in: .newlines))
            #expect(value["ok"] == false)
            return (value["error"]?["code"]?.stringValue, value["error"]?["message"]?.stringValue)
        }
        let refused = try runCommand(["--socket", node.socket, "devstate", "get", "bad device", "--json"])
        #expect(refused.status == 1 && !refused.error.isEmpty)
        let refusedError = try jsonError(refused)
        #expect(refusedError.code == "invalid_argument" && refusedError.message?.contains("device name contains U+0020") == true, "\(refusedError)")
        let usage = try runCommand(["--socket", node.socket, "devstate", "set", "Custom:x", "INUSEE", "--json"])
        #expect(usage.status == 2)
        #expect(try jsonError(usage).code == "usage")
        let absent = try runCommand(["--socket", cluster.base + "/nothing.sock", "status", "--json"])
        #expect(absent.status == 1)
        #expect(try jsonError(absent).code == "no_daemon")
        // Success is unchanged: the result itself.
        #expect(cliJSON(["--socket", node.socket, "status"])?["state"] == "operational")
    }

    @Test func twoServersConfiguredWithOneEntityIDAreWarnedAbout() async throws {
        let cluster = try TestNodes(2, configuredEntity: false, options: "entity_id = 02:00:00:00:00:99")
        defer { cluster.tearDown() }
        _ = try await startRing(cluster.nodes, children: cluster.children)
        let shown = await eventually(within: .seconds(5)) {
            (try? runCommand(["--socket", cluster.nodes[0].socket, "members"]))?.output
                .contains("WARNING: nodes 1, 2 share entity id 02:00:00:00:00:99") == true
        }
        #expect(shown)
        let logged = await eventually(within: .seconds(5)) {
            cluster.nodes[0].logText.contains("entity id 02:00:00:00:00:99 is used by server1 (node 1), server2 (node 2): their device states overwrite")
        }
        #expect(logged, "\(cluster.nodes[0].logText)")
    }

    @Test func watchTellsAGracefulLeaveFromAFailureAndNamesTheViews() async throws {
        let cluster = try TestNodes(3)
        defer { cluster.tearDown() }
        let nodes = cluster.nodes
        let processes = try await startRing(nodes, children: cluster.children)
        let output = cluster.base + "/watch.out"
        _ = try cluster.children.start(["--socket", nodes[0].socket, "watch"], log: output, errorLog: cluster.base + "/watch.err")
        func lines() -> [String] {
            ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
        // Subscribed once a change made after it started shows up.
        var warmups = 0
        let subscribed = await eventually(within: .seconds(10), every: .milliseconds(200)) {
            warmups += 1
            _ = try? runCommand(["--socket", nodes[0].socket, "devstate", "set", "Custom:warmup", warmups % 2 == 0 ? "BUSY" : "INUSE"])
            return lines().contains { $0.hasPrefix("device Custom:warmup ") }
        }
        try #require(subscribed, "watch printed nothing: \(lines())")

        kill(processes[1].processIdentifier, SIGTERM)
        let graceful = await eventually(within: .seconds(10)) {
            lines().contains { $0.hasPrefix("membership server2 left gracefully (last in view ") }
        }
        #expect(graceful, "\(lines())")
        kill(processes[2].processIdentifier, SIGKILL)
        let failed = await eventually(within: .seconds(15)) {
            lines().contains { $0.hasPrefix("membership server3 failed (last in view ") }
        }
        #expect(failed, "\(lines())")
        // The restarted node joins: numbered by the first view it is in, which is the view installed.
        _ = try cluster.children.start(["--foreground", "--config", nodes[2].configuration], log: nodes[2].log)
        let joined = await eventually(within: .seconds(15)) {
            lines().contains { $0.hasPrefix("membership server3 joined (first in view ") }
        }
        #expect(joined, "\(lines())")
        let all = lines()
        if let leftLine = all.first(where: { $0.hasPrefix("membership server3 failed") }),
           let joinedLine = all.first(where: { $0.hasPrefix("membership server3 joined") }),
           let last = Int(leftLine.split(separator: " ").last?.dropLast() ?? ""),
           let first = Int(joinedLine.split(separator: " ").last?.dropLast() ?? "") {
            #expect(first > last, "joined in a later view than it left: \(all)")
            #expect(all.contains { $0.hasPrefix("membership view \(first) installed") }, "\(all)")
        } else {
            Issue.record("no view numbers in \(all)")
        }
    }
}
