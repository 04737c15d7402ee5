// devclusterd on a real network with real IPv4 multicast (transport = udp): three daemons, each in
// its own network namespace, joined by veths to a bridge in a fourth namespace (see
// NamespaceSupport.swift). They form one ring; a link cut splits it into {1, 2} and {3} and
// healing the link merges it again; one-way cuts made with nftables never make two nodes disagree
// about a ring, and the ring heals when the rule goes; clusters with different names sharing the
// multicast group never mix. Needs root, ip and nft: without them the suite is skipped, not passed.

import Foundation
import Glibc
import Testing
@testable import devclusterd

/// Safety facts gathered from every sample of a cluster's `members --json`.
///
/// Only operational views count for the ring check: in commit and recovery a node already
/// reports the id of the ring it is forming but still the members of its old ring.
struct SafetyRecord {
    /// Each operational ring id seen, with its members and the node that first reported it.
    private(set) var rings: [String: (members: [Int64], node: Int)] = [:]
    /// Two views of one ring id with different members (a safety violation).
    private(set) var disagreements: [String] = []
    /// Daemons found not running.
    private(set) var crashes: [String] = []
    /// Queries a running daemon did not answer.
    private(set) var unanswered: [String] = []
    private(set) var samples = 0

    mutating func record(_ views: [Int: MembershipView?], cluster: NamespaceCluster, phase: String) {
        samples += 1
        for (index, view) in views.sorted(by: { $0.key < $1.key }) {
            if !cluster.isRunning(index) {
                if crashes.count < 10 { crashes.append("\(phase): node \(index) ended (\(cluster.ending(index) ?? "?"))") }
                continue
            }
            guard let view else {
                if unanswered.count < 10 { unanswered.append("\(phase): node \(index) did not answer members --json") }
                continue
            }
            guard view.isOperational, let ring = view.ring else { continue }
            if let known = rings[ring] {
                if known.members != view.members, disagreements.count < 10 {
                    disagreements.append("\(phase): ring \(ring) is \(known.members) at node \(known.node) but \(view.members) at node \(index)")
                }
            } else {
                rings[ring] = (view.members, index)
            }
        }
    }

    /// The operational rings seen, `id [members]`, in id order.
    var ringSummary: String {
        rings.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.members)" }.joined(separator: ", ")
    }
}

private func oneRing(_ views: [Int: MembershipView?], members: [Int64]) -> Bool {
    MembershipView.oneRing(views, members: members)
}

/// Fails the test with every node's view and log tail unless `condition` holds.
private func requireCluster(_ condition: Bool, _ what: String, _ cluster: NamespaceCluster,
                            sourceLocation: SourceLocation = #_sourceLocation) async throws {
    guard !condition else { return }
    let message = "\(what): \(describe(await cluster.views()))\n\(cluster.logTails())"
    try #require(condition, "\(message)", sourceLocation: sourceLocation)
}

private func describe(_ views: [Int: MembershipView?]) -> String {
    views.sorted { $0.key < $1.key }.map { "n\($0.key): \($0.value.map(\.description) ?? "no answer")" }.joined(separator: "; ")
}

// Not serialized: each test has its own namespaces, bridge, addresses and temporary directory,
// so the four run side by side (about 15 s instead of 30 s).
@Suite("devclusterd in network namespaces (udp multicast)",
       .enabled(if: NamespacePrerequisites.satisfied,
                "needs root, ip (iproute2) and nft (nftables) to build network namespaces; the missing ones are printed"))
struct NamespaceTests {
    static let token = Duration.milliseconds(NamespaceCluster.tokenMilliseconds)
    /// The bound for a ring to form, split or heal: many token and consensus periods.
    static let formation = Duration.seconds(15)

    /// Samples every node about every 100 ms for `duration`, or until `until` holds, recording
    /// safety facts; returns whether `until` held.
    private func watch(_ cluster: NamespaceCluster, _ record: inout SafetyRecord, phase: String, for duration: Duration,
                       until: (([Int: MembershipView?]) -> Bool)? = nil) async -> (held: Bool, last: [Int: MembershipView?]) {
        let clock = ContinuousClock()
        let deadline = clock.now + duration
        var last: [Int: MembershipView?] = [:]
        for _ in 0..<1_000 {
            last = await cluster.views()
            record.record(last, cluster: cluster, phase: phase)
            if let until, until(last) { return (true, last) }
            if clock.now >= deadline { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return (false, last)
    }

    @Test func threeDaemonsInThreeNamespacesFormOneRingOverMulticast() async throws {
        let cluster = NamespaceCluster()
        defer { cluster.destroy() }
        let clock = ContinuousClock()
        let started = clock.now
        try await cluster.setUp(clusterNames: ["netns", "netns", "netns"])

        let formed = await eventually(within: Self.formation, every: .milliseconds(100)) { await cluster.formed([1, 2, 3], members: [1, 2, 3]) }
        try await requireCluster(formed, "no ring of 3", cluster)
        print("devclusterd netns: ring of 3 over udp multicast (\(cluster.groupAddress)) formed \(clock.now - started) after setup began")

        // It really is the multicast transport on the namespaces' addresses.
        let daemon = try #require(daemonExecutable)
        let status = await Tool.run(daemon, ["--socket", cluster.nodes[0].socket, "status", "--json"])
        try #require(status.succeeded, "\(status)")
        let report = try JSONParser.parse(status.output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(report["transport"]?["mode"] == "udp")
        #expect(report["transport"]?["multicast"]?.stringValue == "\(cluster.groupAddress):\(NamespaceCluster.port)")
        #expect(report["transport"]?["address"]?.stringValue == "10.213.\(cluster.subnet).1:\(NamespaceCluster.port)")
        #expect(report["authentication"] == "hmac-sha256")
        #expect(report["counters"]?["authentication_failures"]?.integerValue == 0)
        let members = await Tool.run(daemon, ["--socket", cluster.nodes[2].socket, "members", "--json"])
        let list = try JSONParser.parse(members.output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(list["members"]?.arrayValue?.map { $0["addresses"]?.arrayValue?.first?.stringValue ?? "" }
            == (1...3).map { "10.213.\(cluster.subnet).\($0)" })

        let endings = cluster.stopAll()
        #expect(endings == [1: "exit 0", 2: "exit 0", 3: "exit 0"], "\(cluster.logTails())")
    }

    @Test func aLinkCutSplitsTheRingAndHealingItMergesIt() async throws {
        let cluster = NamespaceCluster()
        defer { cluster.destroy() }
        try await cluster.setUp(clusterNames: ["netns", "netns", "netns"])
        let clock = ContinuousClock()
        let formed = await eventually(within: Self.formation, every: .milliseconds(100)) { await cluster.formed([1, 2, 3], members: [1, 2, 3]) }
        try await requireCluster(formed, "no ring of 3", cluster)

        // 1. The bridge port of node 3 goes down (a pulled cable): node 3's eth0 stays up,
        //    without carrier. {1, 2} form a ring; node 3 a ring of its own.
        var cutAt = clock.now
        try await cluster.setLink(3, up: false, hubSide: true)
        var split = await eventually(within: Self.formation, every: .milliseconds(50)) {
            let views = await cluster.views()
            return oneRing(views.filter { $0.key != 3 }, members: [1, 2]) && oneRing(views.filter { $0.key == 3 }, members: [3])
        }
        try await requireCluster(split, "no split into {1, 2} and {3} after the port went down", cluster)
        print("devclusterd netns: bridge port of node 3 down -> {1, 2} and {3} after \(clock.now - cutAt) (token \(Self.token))")

        var healAt = clock.now
        try await cluster.setLink(3, up: true, hubSide: true)
        var healed = await eventually(within: Self.formation, every: .milliseconds(50)) { await cluster.formed([1, 2, 3], members: [1, 2, 3]) }
        try await requireCluster(healed, "no ring of 3 after the port came back", cluster)
        print("devclusterd netns: port up -> ring of 3 after \(clock.now - healAt)")

        // 2. Node 3's own eth0 goes down (ip link set eth0 down inside its namespace).
        cutAt = clock.now
        try await cluster.setLink(3, up: false, hubSide: false)
        split = await eventually(within: Self.formation, every: .milliseconds(50)) { await cluster.formed([1, 2], members: [1, 2]) }
        try await requireCluster(split, "nodes 1 and 2 did not form a ring without 3", cluster)
        print("devclusterd netns: eth0 of node 3 down -> {1, 2} after \(clock.now - cutAt)")
        // With its interface down node 3 still hears its own multicasts through the runtime's
        // in-memory loop, so it forms a ring of its own.
        let alone = await eventually(within: .seconds(6), every: .milliseconds(100)) {
            await cluster.formed([3], members: [3])
        }
        let view = alone ? "" : describe(await cluster.views([3]))
        #expect(alone, "node 3 with eth0 down is not a ring of its own: \(view)")
        // Its sends fail meanwhile, and the log says why (they used to be only counted).
        let sendFailure = cluster.nodes[2].logText.split(separator: "\n").first { $0.contains("sending failed for") }
        #expect(sendFailure != nil, "node 3 did not log its failed sends:\n\(cluster.logTails())")
        if let sendFailure { print("devclusterd netns: node 3 with eth0 down: \(sendFailure)") }

        healAt = clock.now
        try await cluster.setLink(3, up: true, hubSide: false)
        healed = await eventually(within: Self.formation, every: .milliseconds(50)) { await cluster.formed([1, 2, 3], members: [1, 2, 3]) }
        try await requireCluster(healed, "no ring of 3 after eth0 came back", cluster)
        print("devclusterd netns: eth0 up -> ring of 3 after \(clock.now - healAt)")

        let endings = cluster.stopAll()
        #expect(endings == [1: "exit 0", 2: "exit 0", 3: "exit 0"], "\(cluster.logTails())")
    }

    @Test func oneWayCutsNeverMakeNodesDisagreeAboutARing() async throws {
        let cluster = NamespaceCluster()
        defer { cluster.destroy() }
        try await cluster.setUp(clusterNames: ["netns", "netns", "netns"])
        let others = "10.213.\(cluster.subnet).1, 10.213.\(cluster.subnet).2"
        var record = SafetyRecord()
        let pids = (1...3).map { cluster.pid($0) }

        // Sampled from the first ring of 3 on: before, the control sockets may not exist yet.
        let formed = await eventually(within: Self.formation, every: .milliseconds(100)) { await cluster.formed([1, 2, 3], members: [1, 2, 3]) }
        try await requireCluster(formed, "no ring of 3", cluster)
        _ = await watch(cluster, &record, phase: "formed", for: .zero)
        var held: Bool
        var last: [Int: MembershipView?]

        // 1. Node 3 sends nothing to the others (tokens, joins, multicasts), yet hears them and
        //    itself. An egress hook on eth0 spares the local copy of its own multicasts, which an
        //    output hook would drop too.
        try await cluster.loadRules(3, """
            table netdev dcl_cut {
                chain egress {
                    type filter hook egress device "eth0" priority 0; policy accept;
                    ip daddr { \(others), \(cluster.groupAddress) } drop
                }
            }
            """)
        (_, last) = await watch(cluster, &record, phase: "node 3 mute", for: .seconds(6))
        print("devclusterd netns: after 6 s with node 3 mute: \(describe(last))")
        try await cluster.flushRules(3)
        (held, last) = await watch(cluster, &record, phase: "healing after mute", for: Self.formation) { oneRing($0, members: [1, 2, 3]) }
        #expect(held, "no ring of 3 after node 3's egress rule was removed: \(describe(last))\n\(cluster.logTails())")

        // 2. Node 3 hears nothing from node 2, its predecessor on the ring (1 -> 2 -> 3 -> 1), so
        //    it never gets the token, while 1 and 2 hear everything from it. (Dropping what comes
        //    from node 1 instead changes nothing on an idle ring: node 3 needs nothing from 1.)
        try await cluster.loadRules(3, """
            table inet dcl_cut {
                chain input {
                    type filter hook input priority 0; policy accept;
                    ip saddr 10.213.\(cluster.subnet).2 drop
                }
            }
            """)
        (_, last) = await watch(cluster, &record, phase: "node 3 deaf to node 2", for: .seconds(6))
        print("devclusterd netns: after 6 s with node 3 deaf to node 2: \(describe(last))")
        try await cluster.flushRules(3)
        (held, last) = await watch(cluster, &record, phase: "healing after deafness", for: Self.formation) { oneRing($0, members: [1, 2, 3]) }
        #expect(held, "no ring of 3 after node 3's input rule was removed: \(describe(last))\n\(cluster.logTails())")

        print("devclusterd netns: one-way cuts: \(record.samples) samples, operational rings seen: \(record.ringSummary)")
        #expect(record.disagreements.isEmpty, "\(record.disagreements)")
        #expect(record.crashes.isEmpty, "\(record.crashes)\n\(cluster.logTails())")
        #expect(record.unanswered.isEmpty, "\(record.unanswered)")
        #expect((1...3).map { cluster.pid($0) } == pids, "a daemon was restarted")
        let endings = cluster.stopAll()
        #expect(endings == [1: "exit 0", 2: "exit 0", 3: "exit 0"], "\(cluster.logTails())")
    }

    @Test func clustersWithDifferentNamesInOneGroupNeverShareARing() async throws {
        let cluster = NamespaceCluster()
        defer { cluster.destroy() }
        // Same multicast group, port and key; node 3 belongs to another cluster.
        try await cluster.setUp(clusterNames: ["alpha", "alpha", "beta"])
        var mixed: [String] = []
        let apart = await eventually(within: Self.formation, every: .milliseconds(100)) {
            let views = await cluster.views()
            if views.contains(where: { $0.key != 3 && $0.value?.members.contains(3) == true }) || views[3]??.members.count ?? 1 > 1 {
                mixed.append(describe(views))
            }
            return oneRing(views.filter { $0.key != 3 }, members: [1, 2]) && oneRing(views.filter { $0.key == 3 }, members: [3])
        }
        try await requireCluster(apart, "no rings {1, 2} and {3}", cluster)
        #expect(mixed.isEmpty, "the clusters mixed while forming: \(mixed.prefix(3))")

        // Several token and join periods: they stay apart the whole time.
        let clock = ContinuousClock()
        let until = clock.now + .seconds(3)
        for _ in 0..<100 {
            guard clock.now < until else { break }
            let views = await cluster.views()
            for index in 1...2 {
                #expect(views[index]??.members.contains(3) != true, "node \(index) took node 3 of another cluster: \(describe(views))")
            }
            #expect(views[3]??.members == [3], "node 3 joined another cluster: \(describe(views))")
            #expect(views[3]??.ring != views[1]??.ring)
            try await Task.sleep(for: .milliseconds(100))
        }
        let log = cluster.nodes[0].logText
        let source = "10.213.\(cluster.subnet).3"
        // The cluster id in the clear header is checked before authentication: the log names
        // another cluster, not a bad key.
        #expect(log.contains("from \(source)") && log.contains("of another cluster") && !log.contains("authentication failed"),
                "node 1 does not say why it drops node 3's datagrams:\n\(log)")
        if let line = log.split(separator: "\n").first(where: { $0.contains("from \(source)") }) {
            print("devclusterd netns: node 1 about node 3 of cluster beta: \(line)")
        }
        let endings = cluster.stopAll()
        #expect(endings == [1: "exit 0", 2: "exit 0", 3: "exit 0"], "\(cluster.logTails())")
    }
}
