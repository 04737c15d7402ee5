// What a PBX adapter (res_devcluster) uses, with real daemons on 127.0.0.1-3: adapter_register
// with the right and a wrong entity id, the `servers` topic (each other server's own state, a
// cleared state, a departed server), devstate_clear, and the snapshot's local states.

import Foundation
import Glibc
import Testing
@testable import devclusterd

@Suite("End to end: the adapter protocol", .serialized)
struct AdapterEndToEndTests {
    @Test func registerSubscribeToServersClearAndDepart() async throws {
        let cluster = try TestNodes(3)
        defer { cluster.tearDown() }
        let (children, nodes) = (cluster.children, cluster.nodes)
        let processes = try await startRing(nodes, children: children)
        let cli1 = ["--socket", nodes[0].socket]

        // A state of node 3's own before the adapter connects: the snapshot lists it as local.
        #expect(try runCommand(["--socket", nodes[2].socket, "devstate", "set", "Custom:own", "BUSY"]).status == 0)
        let connection = try RawControlConnection(path: nodes[2].socket)

        // A wrong entity id is refused with a specific code and message, and logged once.
        for id in 1...2 {
            let refused = try connection.call(
                #"{"id":\#(id),"cmd":"adapter_register","args":{"entity_id":"02:00:00:00:00:09","name":"res_devcluster","system_name":"server3"}}"#,
                id: Int64(id))
            #expect(refused["ok"] == false)
            #expect(refused["error"]?["code"] == "entity_mismatch", "\(refused.encoded)")
            let message = refused["error"]?["message"]?.stringValue ?? ""
            #expect(message.contains("02:00:00:00:00:09") && message.contains("02:00:00:00:00:03") && message.contains("entity_id"), "\(message)")
        }
        let logged = await eventually(within: .seconds(2)) { nodes[2].logText.contains("adapter refused") }
        #expect(logged)
        #expect(nodes[2].logText.components(separatedBy: "adapter refused").count == 2, "logged more than once:\n\(nodes[2].logText)")
        let malformed = try connection.call(#"{"id":3,"cmd":"adapter_register","args":{"entity_id":"02:00:00:00:00","name":"x"}}"#, id: 3)
        #expect(malformed["error"]?["code"] == "invalid_argument", "\(malformed.encoded)")

        // The right one is accepted and shows in status.
        let registered = try connection.call(
            #"{"id":4,"cmd":"adapter_register","args":{"entity_id":"02:00:00:00:00:03","name":"res_devcluster","system_name":"server3","version":"22.10.1"}}"#,
            id: 4)
        #expect(registered["result"] == ["entity_id": "02:00:00:00:00:03", "nodeid": 3, "name": "server3", "cluster": "e2e"],
                "\(registered.encoded)")
        let adapters = cliJSON(["--socket", nodes[2].socket, "status"])?["adapters"]
        #expect(adapters == [["name": "res_devcluster", "entity_id": "02:00:00:00:00:03", "system_name": "server3", "version": "22.10.1"]])

        let subscribed = try connection.call(#"{"id":5,"cmd":"subscribe","args":{"topics":["servers"],"snapshot":true}}"#, id: 5)
        #expect(subscribed["result"]?["topics"] == ["servers"], "\(subscribed.encoded)")
        let snapshot = subscribed["result"]?["snapshot"]
        #expect(snapshot?["entity_id"] == "02:00:00:00:00:03")
        #expect(snapshot?["local_devices"] == [["device": "Custom:own", "state": "BUSY"]])
        #expect(snapshot?["local_mailboxes"] == [])

        // Node 1's own state reaches the adapter with node 1's entity id; node 3's own does not.
        #expect(try runCommand(["--socket", nodes[2].socket, "devstate", "set", "Custom:own", "INUSE"]).status == 0)
        #expect(try runCommand(cli1 + ["devstate", "set", "Custom:a", "INUSE"]).status == 0)
        let first = try connection.awaitEvents(1, within: .seconds(5))
        #expect(first, "no server_device event: \(connection.eventLines)")
        #expect(connection.events.first == ["event": "server_device", "data": [
            "device": "Custom:a", "entity_id": "02:00:00:00:00:01", "nodeid": 1, "name": "server1", "state": "INUSE",
        ]], "\(connection.eventLines)")

        // devstate clear on node 1: the adapter hears null; the CLI says what happened.
        let cleared = try runCommand(cli1 + ["devstate", "clear", "Custom:a"])
        #expect(cleared.status == 0 && cleared.output == "Custom:a: cleared on this server; cluster-wide state UNKNOWN\n", "\(cleared)")
        let clearedSeen = try connection.awaitEvent(within: .seconds(5)) { $0["data"]?["state"] == .null }
        #expect(clearedSeen, "\(connection.eventLines)")
        #expect(connection.events.last?["data"]?["device"] == "Custom:a")
        let again = try runCommand(cli1 + ["devstate", "clear", "Custom:a"])
        #expect(again.output == "Custom:a: this server did not report it; cluster-wide state UNKNOWN\n", "\(again)")
        let unreported = cliJSON(["--socket", nodes[2].socket, "devstate", "get", "Custom:a"])
        #expect(unreported?["servers"] == [], "\(unreported?.encoded ?? "")")

        // Node 2 holds a state and is killed: the adapter is told it left, with its entity id.
        #expect(try runCommand(["--socket", nodes[1].socket, "devstate", "set", "Custom:b", "RINGING"]).status == 0)
        let ringing = try connection.awaitEvent(within: .seconds(5)) { $0["data"]?["device"] == "Custom:b" }
        #expect(ringing, "\(connection.eventLines)")
        kill(processes[1].processIdentifier, SIGKILL)
        let departed = try connection.awaitEvent(within: .seconds(10)) { $0["event"] == "server_left" }
        #expect(departed, "\(connection.eventLines)")
        #expect(connection.events.last?["data"] == ["entity_id": "02:00:00:00:00:02", "nodeid": 2, "name": "server2"])
        #expect(connection.events.map { $0["event"]?.stringValue ?? "?" } == ["server_device", "server_device", "server_device", "server_left"],
                "\(connection.eventLines)")
    }

    @Test func anAdapterThatDisconnectsIsNoLongerListed() async throws {
        let cluster = try TestNodes(1)
        defer { cluster.tearDown() }
        _ = try await startRing(cluster.nodes, children: cluster.children)
        let socket = cluster.nodes[0].socket
        do {
            let connection = try RawControlConnection(path: socket)
            let registered = try connection.call(
                #"{"id":1,"cmd":"adapter_register","args":{"entity_id":"02:00:00:00:00:01","name":"res_devcluster"}}"#, id: 1)
            #expect(registered["ok"] == true, "\(registered.encoded)")
            #expect(cliJSON(["--socket", socket, "status"])?["adapters"]?.arrayValue?.count == 1)
        }
        let gone = await eventually(within: .seconds(5)) { cliJSON(["--socket", socket, "status"])?["adapters"] == [] }
        #expect(gone)
        #expect(cluster.nodes[0].logText.contains("adapter res_devcluster disconnected"))
    }
}
