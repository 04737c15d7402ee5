// Unit tests of start-up, GATHER, COMMIT and leave (spec §1.2, §4.3-§4.7, §4.13, §4.14).
import Testing
@testable import Totem

@Suite("Membership (spec §4)")
struct StartupAndMembershipTests {
    let one = NodeID(1), two = NodeID(2), three = NodeID(3)

    @Test("§4.14: a lone node enters GATHER and multicasts its JOIN at start")
    func startEntersGatherAndSendsJoin() {
        var node = SingleRingProtocol(nodeID: one, settings: .simulation, persistedRingSequence: nil)
        let effects = node.start(now: .zero)
        #expect(node.state == .gather)
        #expect(effects.contains(.multicast(.join(JoinMessage(sender: one, ringSequence: 1, processors: [one], failed: [])))))
        #expect(effects.contains { if case .armTimer(.join, _) = $0 { true } else { false } })
        #expect(effects.contains { if case .armTimer(.consensus, _) = $0 { true } else { false } })
    }

    @Test("§1.2: the ring sequence starts one above the persisted value, and COMMIT persists the new one first")
    func persistedRingSequence() {
        var node = SingleRingProtocol(nodeID: one, settings: .simulation, persistedRingSequence: 40)
        #expect(node.ringID.sequence == 41)
        _ = node.start(now: .zero)
        let effects = node.receive(.join(JoinMessage(sender: one, ringSequence: 41, processors: [one], failed: [])), now: .zero)
        #expect(node.state == .commit)
        #expect(node.ringID == RingID(representative: one, sequence: 45))
        let persistIndex = effects.firstIndex(of: .persistRingSequence(45))
        let sendIndex = effects.firstIndex { if case .unicast(.commitToken, _) = $0 { true } else { false } }
        #expect(persistIndex != nil && sendIndex != nil)
        if let persistIndex, let sendIndex { #expect(persistIndex < sendIndex, "persist must precede the commit token") }
    }

    @Test("receive(into:) appends the same effects as receive, after what the array held; the core's buffer is not shared")
    func receiveIntoAppends() {
        var returning = SingleRingProtocol(nodeID: one, settings: .simulation, persistedRingSequence: nil)
        var appending = returning
        _ = returning.start(now: .zero)
        _ = appending.start(now: .zero)
        // While gathering, each JOIN from a processor not yet known makes the node send a new JOIN.
        for step in 0..<4 {
            let newcomer = NodeID(UInt32(2 + step))
            let join = JoinMessage(sender: newcomer, ringSequence: 1, processors: [newcomer], failed: [])
            let now = MonotonicInstant.zero + .milliseconds(5 * step)
            let expected = returning.receive(.join(join), now: now)
            #expect(!expected.isEmpty, "step \(step)")
            // The first time into an array already holding an effect (appended after it); then
            // into empty ones, which trade buffers with the core: each must hold its input's only.
            let held: [Effect] = step == 0 ? [.cancelTimer(.mergeDetect)] : []
            var effects = held
            appending.receive(.join(join), now: now, into: &effects)
            #expect(effects == held + expected, "step \(step)")
        }
    }

    @Test("§4.14/T1: a lone node forms a singleton ring: empty transitional, then regular of itself")
    func singletonRing() {
        var cluster = TestCluster(nodeCount: 1)
        cluster.run(for: .milliseconds(50))
        #expect(cluster.state(one) == .operational)
        let changes = cluster.configurations[one] ?? []
        #expect(changes.map(\.kind) == [.transitional, .regular])
        #expect(changes.first?.members == [])
        #expect(changes.last?.members == [one])
        #expect(changes.last?.joined == [one])
    }

    @Test("T2: three nodes booting together converge on one ring with rep 1")
    func threeNodesFormOneRing() {
        var cluster = TestCluster(nodeCount: 3)
        cluster.run(for: .seconds(2))
        #expect(cluster.formedOneRing(of: [one, two, three]))
        #expect(cluster.nodes[two]?.ringID.representative == one)
    }

    @Test("§4.4: an operational node ignores a JOIN whose fail list contains it")
    func operationalIgnoresJoinFailingMe() {
        var cluster = TestCluster(nodeCount: 2)
        cluster.run(for: .seconds(1))
        #expect(cluster.formedOneRing(of: [one, two]))
        var node = cluster.nodes[one]!
        let join = JoinMessage(sender: three, ringSequence: 100, processors: [three], failed: [one])
        _ = node.receive(.join(join), now: cluster.now)
        #expect(node.state == .operational)
    }

    @Test("§4.4: an operational node ignores a stale JOIN from its own ring with an older ring seq")
    func operationalIgnoresStaleJoin() {
        var cluster = TestCluster(nodeCount: 2)
        cluster.run(for: .seconds(1))
        var node = cluster.nodes[one]!
        let stale = JoinMessage(sender: two, ringSequence: node.ringID.sequence - 1, processors: [one, two, three], failed: [])
        _ = node.receive(.join(stale), now: cluster.now)
        #expect(node.state == .operational)
    }

    @Test("§4.4/§4.12: a JOIN from a new processor pulls an operational node into GATHER with the union")
    func joinFromNewProcessorStartsGather() {
        var cluster = TestCluster(nodeCount: 2)
        cluster.run(for: .seconds(1))
        var node = cluster.nodes[one]!
        let join = JoinMessage(sender: three, ringSequence: 1, processors: [three], failed: [])
        let effects = node.receive(.join(join), now: cluster.now)
        #expect(node.state == .gather)
        #expect(effects.contains(.multicast(.join(JoinMessage(
            sender: one, ringSequence: node.ringID.sequence, processors: [one, two, three], failed: [])))))
    }

    @Test("§4.5: the consensus timeout declares silent processors failed and restarts GATHER")
    func consensusTimeoutFailsSilentNodes() {
        var node = SingleRingProtocol(nodeID: one, settings: .simulation, persistedRingSequence: nil)
        _ = node.start(now: .zero)
        // Node 2 announces itself but never answers again.
        _ = node.receive(.join(JoinMessage(sender: two, ringSequence: 1, processors: [two], failed: [])), now: .zero)
        #expect(node.state == .gather)
        // The pause detector runs every token/5; without it a JOIN 400 ms later looks stale.
        _ = node.timerExpired(.pauseCheck, now: .milliseconds(380))
        let effects = node.timerExpired(.consensus, now: .milliseconds(400))
        #expect(effects.contains(.multicast(.join(JoinMessage(sender: one, ringSequence: 1, processors: [one, two], failed: [two])))))
        // Our own JOIN now gives consensus among {1}: a ring of one.
        let commit = node.receive(.join(JoinMessage(sender: one, ringSequence: 1, processors: [one, two], failed: [two])), now: .milliseconds(400))
        #expect(node.state == .commit)
        #expect(commit.contains { if case .unicast(.commitToken(let token), to: one) = $0 { token.members == [one] } else { false } })
    }

    @Test("ours: COMMIT gives up when a new member's JOIN names a processor outside the new ring")
    func commitAbandonedForAJoinNamingOthers() {
        // Node 1 reaches consensus with node 2 alone and commits ring {1, 2}.
        var node = SingleRingProtocol(nodeID: one, settings: .simulation, persistedRingSequence: nil)
        _ = node.start(now: .zero)
        // The first JOIN widens our view (GATHER again); the second agrees with it: consensus.
        _ = node.receive(.join(JoinMessage(sender: two, ringSequence: 1, processors: [one, two], failed: [])), now: .zero)
        _ = node.receive(.join(JoinMessage(sender: two, ringSequence: 1, processors: [one, two], failed: [])), now: .zero)
        #expect(node.state == .commit)
        let committed = node.ringID
        // An older JOIN of node 2 naming a subset of the new ring does not abort it ...
        _ = node.receive(.join(JoinMessage(sender: two, ringSequence: 1, processors: [two], failed: [])), now: .milliseconds(1))
        #expect(node.state == .commit && node.ringID == committed)
        // ... nor does a processor outside the new ring that is not a new member.
        _ = node.receive(.join(JoinMessage(sender: three, ringSequence: 1, processors: [one, two, three], failed: [])), now: .milliseconds(2))
        #expect(node.state == .commit)
        // Node 2 has heard node 3 meanwhile: it will never accept the commit token of {1, 2}.
        // Its JOIN carries its old ring sequence (below the new ring's), which the spec ignores;
        // we gather again at once with the union instead of waiting for a token timeout.
        let effects = node.receive(.join(JoinMessage(sender: two, ringSequence: 1, processors: [one, two, three], failed: [])),
                                   now: .milliseconds(3))
        #expect(node.state == .gather)
        #expect(effects.contains { if case .multicast(.join(let join)) = $0 { join.processors == [one, two, three] } else { false } })
    }

    @Test("§4.7: GATHER accepts a commit token only if its members equal proc − fail and its entry is ours")
    func gatherCommitTokenAcceptance() {
        var node = SingleRingProtocol(nodeID: two, settings: .simulation, persistedRingSequence: nil)
        _ = node.start(now: .zero)
        _ = node.receive(.join(JoinMessage(sender: one, ringSequence: 1, processors: [one, two], failed: [])), now: .zero)
        let ring = RingID(representative: one, sequence: 9)
        func token(members: [NodeID], index: Int, ring: RingID = ring) -> Packet {
            .commitToken(CommitToken(sender: one, ringID: ring, tokenSequence: 1, memberIndex: index,
                                     members: members, entries: Array(repeating: .empty, count: members.count)))
        }
        _ = node.receive(token(members: [one, two, three], index: 1), now: .zero)
        #expect(node.state == .gather, "members differ from proc − fail")
        _ = node.receive(token(members: [one, two], index: 0), now: .zero)
        #expect(node.state == .gather, "entry 0 is not ours")
        _ = node.receive(token(members: [one, two], index: 1, ring: RingID(representative: one, sequence: 1)), now: .zero)
        #expect(node.state == .gather, "ring seq not above ours")
        // Found by PacketFuzzer: a token whose ring names a representative other than its lowest member.
        _ = node.receive(token(members: [one, two], index: 1, ring: RingID(representative: NodeID(255), sequence: 9)), now: .zero)
        #expect(node.state == .gather, "representative is not the lowest member")
        let effects = node.receive(token(members: [one, two], index: 1), now: .zero)
        #expect(node.state == .commit)
        #expect(effects.contains { if case .unicast(.commitToken(let forwarded), to: one) = $0 { forwarded.memberIndex == 2 } else { false } })
    }

    @Test("§4.13/T21: a graceful leave lets the others reform without waiting for consensus")
    func gracefulLeave() {
        var cluster = TestCluster(nodeCount: 3)
        cluster.run(for: .seconds(2))
        #expect(cluster.formedOneRing(of: [one, two, three]))
        let leaveAt = cluster.now
        cluster.leave(three)
        let leaveMessage = cluster.log.last { if case .multicast(.join(let join)) = $0.effect { join.isLeave } else { false } }
        if case .multicast(.join(let join))? = leaveMessage?.effect {
            #expect(join.processors == [one, two])
            #expect(join.failed == [three])
        } else {
            Issue.record("no LEAVE multicast")
        }
        cluster.crash(three)
        // Well under the token timeout (300 ms) and consensus (360 ms).
        cluster.run(for: .milliseconds(100))
        #expect(cluster.formedOneRing(of: [one, two]))
        let transitional = cluster.configurations[one]?.last { $0.kind == .transitional }
        #expect(transitional?.left == [three])
        #expect(transitional?.leftGracefully == [three], "the leaver is reported as leaving gracefully")
        #expect(cluster.now - leaveAt <= .milliseconds(100))
    }

    @Test("P9: set equality does not depend on order")
    func nodeSetEquality() {
        #expect(NodeSet([three, one, two]) == NodeSet([one, two, three]))
        #expect(NodeSet([one, one, two]).elements == [one, two])
        #expect(NodeSet([one, two]).isSubset(of: NodeSet([three, two, one])))
        #expect(!NodeSet([one, NodeID(4)]).isSubset(of: NodeSet([three, two, one])))
    }
}

@Suite("Replayed packets (issue: replays from an earlier ring do not disturb the ring)")
struct ReplayTests {
    @Test("every packet of an earlier ring, replayed after a new ring formed, changes nothing")
    func replayOfEarlierRing() throws {
        var cluster = TestCluster(nodeCount: 3)
        cluster.run(for: .seconds(2))
        let ids = cluster.ids
        #expect(cluster.formedOneRing(of: ids))
        for index in 0..<20 { try cluster.submit([UInt8(index)], at: ids[index % 3]) }
        cluster.run(for: .milliseconds(300))
        // Everything multicast or unicast in the first ring, as an attacker could record it.
        let earlierRing = cluster.nodes[ids[0]]!.ringID
        let recorded: [Packet] = cluster.log.compactMap { record in
            switch record.effect {
            case .multicast(let packet), .unicast(let packet, _): packet
            default: nil
            }
        }
        // A node leaves and comes back: the cluster moves on to newer rings.
        cluster.crash(ids[2])
        cluster.run(for: .seconds(2))
        cluster.restart(ids[2])
        cluster.run(for: .seconds(2))
        #expect(cluster.formedOneRing(of: ids))
        let current = cluster.nodes[ids[0]]!.ringID
        #expect(current.sequence > earlierRing.sequence)
        let changesBefore = ids.map { cluster.configurations[$0]?.count ?? 0 }
        let deliveredBefore = ids.map { cluster.delivered[$0]?.count ?? 0 }
        for packet in recorded where !(packet.isJoinFromNonMember(of: ids)) {
            for id in ids { cluster.inFlight.append((id, packet)) }
        }
        cluster.run(for: .seconds(2))
        #expect(cluster.formedOneRing(of: ids))
        #expect(cluster.nodes[ids[0]]?.ringID == current, "a replay moved the ring from \(current)")
        #expect(ids.map { cluster.configurations[$0]?.count ?? 0 } == changesBefore)
        #expect(ids.map { cluster.delivered[$0]?.count ?? 0 } == deliveredBefore, "a replay was delivered again")
    }
}

extension Packet {
    /// JOINs are answered by membership by design (a rebooted node's JOIN looks the same);
    /// the members' own old JOINs are covered by the stale-join rule of spec §4.4.
    func isJoinFromNonMember(of members: [NodeID]) -> Bool {
        if case .join(let join) = self { return !members.contains(join.sender) }
        return false
    }
}
