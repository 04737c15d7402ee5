// Unit tests of the OPERATIONAL ordering algorithm (spec §3): token acceptance, retransmission,
// flow control, aru, delivery services, hold and token loss.
import Testing
@testable import Totem

@Suite("Ordering (spec §3)")
struct OperationalTests {
    let one = NodeID(1), two = NodeID(2), three = NodeID(3)

    /// A formed three-node ring, quiet, with no packets in flight.
    func formedRing(nodeCount: Int = 3, settings: TotemSettings = .simulation) -> TestCluster {
        var cluster = TestCluster(nodeCount: nodeCount, settings: settings)
        cluster.run(for: .seconds(2))
        return cluster
    }

    /// The token node `id` would accept next: same ring, fresh token sequence.
    func freshToken(for node: SingleRingProtocol, sequence: SequenceNumber, aru: SequenceNumber,
                    requests: [RetransmitRequest] = []) -> Token {
        Token(sender: two, ringID: node.ringID, tokenSequence: node.lastTokenSequence &+ 1, sequence: sequence,
              aru: aru, aruSetter: nil, flowControlCount: 0, backlog: 0, retransmitFlag: false,
              retransmitRequests: requests)
    }

    @Test("ours: a successor reported unreachable that answers no liveness probe is failed, well before the token timeout")
    func unreachableSuccessor() throws {
        var cluster = formedRing()
        cluster.crash(three)
        // Node 2 forwards the token to node 3; the kernel answers "port unreachable". The report
        // is not trusted: node 3 is asked, with the key, whether it is alive.
        var node = try #require(cluster.nodes[two])
        let effects = node.peerUnreachable(three, now: cluster.now)
        cluster.nodes[two] = node
        let probes = effects.compactMap { effect -> LivenessProbe? in
            if case .unicast(.livenessProbe(let probe), let to) = effect, to == three { probe } else { nil }
        }
        #expect(probes.count == 1 && probes.first?.sender == two)
        #expect(node.state == .operational && node.statistics.unreachableReports == 1)
        #expect(cluster.timers[two]?[.livenessCheck] == nil)  // armed by executing the effects
        cluster.execute(effects, at: two)
        #expect(cluster.timers[two]?[.livenessCheck] != nil)
        // Three probes 40 ms apart, no answer: failed. Then one JOIN round (join = 10 ms here),
        // far below token + consensus (300 + 360 ms).
        let reportedAt = cluster.now
        cluster.run(for: .milliseconds(250))
        #expect(cluster.formedOneRing(of: [one, two]), "states: \(cluster.ids.map { cluster.state($0) })")
        let after = try #require(cluster.nodes[two])
        #expect(after.statistics.successorsUnreachable == 1 && after.statistics.unreachableRefuted == 0)
        #expect(cluster.now - reportedAt < cluster.settings.token)
    }

    @Test("ours: a forged unreachable report about a live successor is refuted by its answer; the ring is untouched")
    func forgedUnreachableReportIsRefuted() throws {
        var cluster = formedRing()
        let ring = try #require(cluster.nodes[two]?.ringID)
        for round in 1...20 {
            var node = try #require(cluster.nodes[two])
            let effects = node.peerUnreachable(three, now: cluster.now)
            cluster.nodes[two] = node
            cluster.execute(effects, at: two)
            cluster.run(for: .milliseconds(200))
            let after = try #require(cluster.nodes[two])
            #expect(after.statistics.unreachableReports == round && after.statistics.unreachableRefuted == round)
        }
        for id in cluster.ids {
            let node = try #require(cluster.nodes[id])
            #expect(node.state == .operational && node.ringID == ring && node.members == [one, two, three], "node \(id)")
            #expect(node.statistics.successorsUnreachable == 0)
        }
        // A reply to an older probe (a replay) does not close a new check.
        var node = try #require(cluster.nodes[two])
        _ = node.peerUnreachable(three, now: cluster.now)
        let stale = LivenessProbe(sender: three, nonce: 1)
        _ = node.receive(.livenessReply(stale), now: cluster.now)
        #expect(node.livenessCheck != nil && node.statistics.unreachableRefuted == 20)
        // Reports while a check is open are counted, not probed again.
        let again = node.peerUnreachable(three, now: cluster.now)
        #expect(!again.contains { if case .unicast(.livenessProbe, _) = $0 { true } else { false } })
        #expect(node.statistics.unreachableReports == 22)
    }

    @Test("ours: a liveness probe is answered with its nonce in every state, and ignored from ourselves")
    func livenessProbeIsAnswered() throws {
        let cluster = formedRing()
        var node = try #require(cluster.nodes[three])
        let effects = node.receive(.livenessProbe(LivenessProbe(sender: two, nonce: 77)), now: cluster.now)
        #expect(effects == [.unicast(.livenessReply(LivenessProbe(sender: three, nonce: 77)), to: two)])
        var gathering = SingleRingProtocol(nodeID: one, settings: .simulation, persistedRingSequence: nil)
        _ = gathering.start(now: .zero)
        let answer = gathering.receive(.livenessProbe(LivenessProbe(sender: two, nonce: 5)), now: .zero)
        #expect(answer.contains(.unicast(.livenessReply(LivenessProbe(sender: one, nonce: 5)), to: two)))
        #expect(gathering.receive(.livenessProbe(LivenessProbe(sender: one, nonce: 5)), now: .zero).isEmpty)
    }

    @Test("ours: an unreachable report about anyone but the successor, or outside OPERATIONAL, changes nothing")
    func unreachableOthersIgnored() {
        let cluster = formedRing()
        var node = cluster.nodes[two]!
        // Node 2's successor is node 3: a report about node 1, or about itself, is not acted on.
        #expect(node.peerUnreachable(one, now: cluster.now).isEmpty)
        #expect(node.peerUnreachable(two, now: cluster.now).isEmpty)
        #expect(node.state == .operational && node.statistics.successorsUnreachable == 0)
        // A node not yet in a ring (GATHER) ignores it too: the consensus timeout decides there.
        var gathering = SingleRingProtocol(nodeID: one, settings: .simulation, persistedRingSequence: nil)
        _ = gathering.start(now: .zero)
        #expect(gathering.peerUnreachable(two, now: .zero).isEmpty && gathering.state == .gather)
    }

    @Test("§3.3/T4: every node delivers every message, in the same order")
    func agreedOrder() throws {
        var cluster = formedRing()
        for index in 0..<60 {
            try cluster.submit([UInt8(index)], at: NodeID(UInt32(index % 3 + 1)))
        }
        cluster.run(for: .seconds(1))
        let reference = cluster.delivered[one]?.map(\.payload) ?? []
        #expect(reference.count == 60)
        #expect(Set(reference) == Set((0..<60).map { [UInt8($0)] }))
        for id in [two, three] { #expect(cluster.delivered[id]?.map(\.payload) == reference) }
    }

    @Test("§3.3 (P3, T7): a duplicate token (token sequence not newer) is ignored")
    func duplicateTokenIgnored() {
        let cluster = formedRing()
        var node = cluster.nodes[two]!
        var token = freshToken(for: node, sequence: node.highSeqReceived, aru: node.aru)
        token.tokenSequence = node.lastTokenSequence
        let before = node.statistics.tokensAccepted
        let effects = node.receive(.token(token), now: cluster.now)
        #expect(node.statistics.tokensAccepted == before)
        #expect(!effects.contains { if case .unicast = $0 { true } else { false } })
    }

    @Test("§3.3: a token of another ring is ignored")
    func foreignTokenIgnored() {
        let cluster = formedRing()
        var node = cluster.nodes[two]!
        var token = freshToken(for: node, sequence: .zero, aru: .zero)
        token.ringID = RingID(representative: three, sequence: 999)
        let effects = node.receive(.token(token), now: cluster.now)
        #expect(effects.isEmpty)
        #expect(node.state == .operational)
    }

    @Test("§3.5/P1 (T6): a gap is requested only after it persisted for miss_count_const token visits")
    func retransmitRequestAfterMissCount() {
        let cluster = formedRing()
        var node = cluster.nodes[two]!
        let base = node.highSeqReceived
        // The token says two messages exist that we never saw.
        var requestsSeen: [[RetransmitRequest]] = []
        for _ in 0..<(node.settings.missCountConstant + 1) {
            let token = freshToken(for: node, sequence: base.advanced(by: 2), aru: base)
            let effects = node.receive(.token(token), now: cluster.now)
            for effect in effects {
                if case .unicast(.token(let forwarded), _) = effect { requestsSeen.append(forwarded.retransmitRequests) }
            }
        }
        #expect(requestsSeen.count == node.settings.missCountConstant + 1)
        for visit in 0..<(node.settings.missCountConstant - 1) { #expect(requestsSeen[visit].isEmpty, "visit \(visit) asked too early") }
        #expect(requestsSeen.last?.map(\.sequence) == [base.advanced(by: 1), base.advanced(by: 2)])
    }

    @Test("§3.5: a request for a message we hold is served by multicasting it and leaves the list")
    func retransmitRequestServed() throws {
        let cluster = formedRing()
        var node = cluster.nodes[two]!
        let base = node.highSeqReceived
        _ = try node.submit([7, 7, 7], now: cluster.now)
        // This visit sequences our message as base + 1.
        _ = node.receive(.token(freshToken(for: node, sequence: base, aru: base)), now: cluster.now)
        let held = base.next
        #expect(node.regularQueue.contains(held))
        let request = RetransmitRequest(ringID: node.ringID, sequence: held)
        let foreignRequest = RetransmitRequest(ringID: RingID(representative: three, sequence: 3), sequence: held)
        let token = freshToken(for: node, sequence: held, aru: base, requests: [foreignRequest, request])
        let effects = node.receive(.token(token), now: cluster.now)
        #expect(effects.contains { if case .multicast(.multicast(let message)) = $0 { message.sequence == held } else { false } })
        let forwarded = effects.compactMap { if case .unicast(.token(let token), _) = $0 { token } else { nil } }.first
        #expect(forwarded?.retransmitRequests == [foreignRequest], "served request removed, other ring's left alone")
    }

    @Test("§3.4 (T28): a node sends at most max_messages per visit and the token's fcc counts it")
    func flowControlPerVisit() throws {
        let cluster = formedRing()
        var node = cluster.nodes[two]!
        for index in 0..<40 { _ = try node.submit(Array(repeating: UInt8(index), count: 1_200), now: cluster.now) }
        let token = freshToken(for: node, sequence: node.highSeqReceived, aru: node.aru)
        let effects = node.receive(.token(token), now: cluster.now)
        let sent = effects.filter { if case .multicast(.multicast) = $0 { true } else { false } }.count
        #expect(sent == node.settings.maxMessages)
        let forwarded = effects.compactMap { if case .unicast(.token(let token), _) = $0 { token } else { nil } }.first
        #expect(forwarded?.flowControlCount == UInt32(node.settings.maxMessages))
        #expect(forwarded?.sequence == token.sequence.advanced(by: UInt32(node.settings.maxMessages)))
        #expect((forwarded?.backlog ?? 0) > 0, "the remaining queue is announced as backlog")
    }

    @Test("§3.4: with the window used up by others this visit sends nothing")
    func flowControlWindowFull() throws {
        let cluster = formedRing()
        var node = cluster.nodes[two]!
        _ = try node.submit([1, 2, 3], now: cluster.now)
        var token = freshToken(for: node, sequence: node.highSeqReceived, aru: node.aru)
        token.flowControlCount = UInt32(node.settings.windowSize)
        let effects = node.receive(.token(token), now: cluster.now)
        #expect(!effects.contains { if case .multicast(.multicast) = $0 { true } else { false } })
        // A corrupt count far above the window must not wrap into a huge allowance (P18).
        token.tokenSequence &+= 1
        token.flowControlCount = UInt32.max
        let corrupt = node.receive(.token(token), now: cluster.now)
        #expect(!corrupt.contains { if case .multicast(.multicast) = $0 { true } else { false } })
    }

    @Test("§3.7: a node behind the token aru lowers it and names itself")
    func tokenAruLowered() {
        let cluster = formedRing()
        var node = cluster.nodes[two]!
        let base = node.highSeqReceived
        let token = freshToken(for: node, sequence: base.advanced(by: 3), aru: base.advanced(by: 3))
        let effects = node.receive(.token(token), now: cluster.now)
        let forwarded = effects.compactMap { if case .unicast(.token(let token), _) = $0 { token } else { nil } }.first
        #expect(forwarded?.aru == base)
        #expect(forwarded?.aruSetter == two)
    }

    @Test("§1.5/§3.9 (E14): a safe message waits until two rotations show every member holds it")
    func safeDeliveryWaitsForAru() throws {
        var cluster = formedRing()
        // Node 3 never receives node 1's multicasts: it cannot hold the safe message.
        cluster.filter = { packet, from, to in
            if case .multicast(let message) = packet, from == NodeID(1), to == NodeID(3) { return message.sequence.rawValue > 1_000_000 }
            return true
        }
        try cluster.submit([42], at: one, delivery: .safe)
        cluster.run(for: .milliseconds(30))
        #expect((cluster.delivered[one] ?? []).isEmpty, "safe message delivered before node 3 has it")
        #expect((cluster.delivered[two] ?? []).isEmpty)
        // Heal: node 3 gets the retransmission; now everyone delivers it.
        cluster.filter = { _, _, _ in true }
        cluster.run(for: .milliseconds(200))
        for id in [one, two, three] { #expect(cluster.delivered[id]?.map(\.payload) == [[42]], "node \(id)") }
    }

    @Test("§3.10 (T29): an idle ring's representative holds the token and a submit cancels the hold")
    func idleHoldAndHoldCancel() throws {
        var cluster = formedRing()
        cluster.run(for: .seconds(1))
        #expect(cluster.nodes[one]?.tokenHeld == true, "rep holds the idle token")
        #expect(cluster.timers[one]?[.tokenHold] != nil)
        var node = cluster.nodes[two]!
        node.tokenHeld = true
        let effects = try node.submit([1], now: cluster.now)
        #expect(effects.contains(.multicast(.tokenHoldCancel(TokenHoldCancel(sender: two, ringID: node.ringID)))))
        // Delivered well before the hold period would have released the token.
        let submittedAt = cluster.now
        try cluster.submit([9], at: two)
        while (cluster.delivered[three] ?? []).isEmpty && cluster.now - submittedAt < .seconds(1) {
            guard cluster.step(until: cluster.now + .seconds(1)) else { break }
        }
        #expect(cluster.delivered[three]?.last?.payload == [9])
        #expect(cluster.now - submittedAt < cluster.settings.hold)
    }

    @Test("ours: a submit at the representative holding an unsent token sends the message with that token, no hold cancel")
    func representativeSubmitRidesTheHeldToken() throws {
        var cluster = formedRing()
        // Step until node 1 holds a token it has not sent (the hold timer resends it now and then).
        for _ in 0..<1_000 {
            if cluster.nodes[one]?.holdsUnsentToken == true { break }
            guard cluster.step(until: cluster.now + .seconds(1)) else { break }
        }
        let representative = try #require(cluster.nodes[one])
        #expect(representative.tokenHeld && representative.holdsUnsentToken)
        guard case .token(let held) = try #require(representative.lastSentToken) else {
            Issue.record("the held packet is not a token")
            return
        }
        var node = representative
        let effects = try node.submit([7], now: cluster.now)
        #expect(!effects.contains { if case .multicast(.tokenHoldCancel) = $0 { true } else { false } })
        let sentMessages = effects.compactMap { effect -> DataMessage? in
            if case .multicast(.multicast(let message)) = effect { message } else { nil }
        }
        #expect(sentMessages.map(\.sequence) == [held.sequence.next])
        let tokens = effects.compactMap { effect -> (Token, NodeID)? in
            if case .unicast(.token(let token), let to) = effect { (token, to) } else { nil }
        }
        let (sent, destination) = try #require(tokens.first)
        #expect(tokens.count == 1 && destination == two)
        #expect(sent.tokenSequence == held.tokenSequence, "the held token was never sent: its token sequence is still new")
        #expect(sent.sequence == held.sequence.next && sent.flowControlCount == held.flowControlCount + 1)
        // The message is first in every effect list: multicast before the token (spec §3.3).
        let messageIndex = try #require(effects.firstIndex { if case .multicast(.multicast) = $0 { true } else { false } })
        let tokenIndex = try #require(effects.firstIndex { if case .unicast(.token, _) = $0 { true } else { false } })
        #expect(messageIndex < tokenIndex)
        #expect(!node.holdsUnsentToken && !node.tokenHeld)

        // Run it in the cluster: everyone delivers it, one token hop after the submit.
        let submittedAt = cluster.now
        try cluster.submit([7], at: one)
        for _ in 0..<1_000 {
            if cluster.ids.allSatisfy({ (cluster.delivered[$0] ?? []).last?.payload == [7] }) { break }
            guard cluster.step(until: cluster.now + .seconds(1)) else { break }
        }
        for id in cluster.ids { #expect(cluster.delivered[id]?.last?.payload == [7], "node \(id)") }
        #expect(cluster.now - submittedAt < cluster.settings.hold)
        // The ring carries on and holds again once idle.
        cluster.run(for: .seconds(1))
        #expect(cluster.nodes[one]?.state == .operational && cluster.nodes[one]?.members == [one, two, three])
    }

    @Test("ours: once the hold timer has sent the held token, a submit at the representative cancels the hold as the spec does")
    func representativeSubmitAfterHoldExpiry() throws {
        var cluster = formedRing()
        var node = try #require(cluster.nodes[one])
        for _ in 0..<1_000 {
            node = try #require(cluster.nodes[one])
            if node.tokenHeld && !node.holdsUnsentToken { break }
            guard cluster.step(until: cluster.now + .seconds(1)) else { break }
        }
        #expect(node.tokenHeld && !node.holdsUnsentToken)
        let effects = try node.submit([8], now: cluster.now)
        #expect(effects.contains(.multicast(.tokenHoldCancel(TokenHoldCancel(sender: one, ringID: node.ringID)))))
        #expect(!effects.contains { if case .multicast(.multicast) = $0 { true } else { false } })
    }

    @Test("§3.10 (T8): one lost token is recovered by retransmission without a membership change")
    func singleTokenLossRetransmitted() throws {
        var cluster = formedRing()
        var dropped = 0
        let changesBefore = (cluster.configurations[one] ?? []).count
        try cluster.submit([5], at: one)
        cluster.filter = { packet, _, to in
            if case .token = packet, to == NodeID(3), dropped == 0 { dropped += 1; return false }
            return true
        }
        cluster.run(for: .milliseconds(500))
        #expect(dropped == 1)
        #expect(cluster.formedOneRing(of: [one, two, three]))
        #expect((cluster.configurations[one] ?? []).count == changesBefore, "no membership change")
        #expect(cluster.delivered[three]?.map(\.payload) == [[5]])
    }

    @Test("§3.10 (T9/T10): when tokens stop reaching a node, the others form a ring without it")
    func tokenLossExcludesNode() {
        var cluster = formedRing()
        cluster.crash(three)
        cluster.run(for: .seconds(2))
        #expect(cluster.formedOneRing(of: [one, two]))
        let transitional = cluster.configurations[one]?.last { $0.kind == .transitional }
        #expect(transitional?.members == [one, two])
        #expect(transitional?.left == [three])
        #expect(transitional?.leftGracefully == [], "a crashed node did not leave gracefully")
    }

    @Test("§3.10: a JOIN arriving after a long pause is dropped as stale")
    func pauseDetectorDropsJoin() {
        var node = SingleRingProtocol(nodeID: one, settings: .simulation, persistedRingSequence: nil)
        _ = node.start(now: .zero)
        let join = JoinMessage(sender: two, ringSequence: 1, processors: [two], failed: [])
        _ = node.receive(.join(join), now: .milliseconds(500))
        #expect(node.membershipSets.processors == NodeSet([one]), "join after a 500 ms pause must be ignored")
        _ = node.timerExpired(.pauseCheck, now: .milliseconds(501))
        _ = node.receive(.join(join), now: .milliseconds(502))
        #expect(node.membershipSets.processors == NodeSet([one, two]))
    }

    @Test("§1.3: serial comparison agrees with a wide-integer model inside the window (50,000 pairs)")
    func serialComparisonDifferential() {
        var random = SplitMix64(seed: 0x5EED)
        func next() -> UInt64 { random.next() }
        for _ in 0..<50_000 {
            // A base anywhere (often near the wrap) and an offset within ±2×window.
            let base: UInt64 = next() % 2 == 0 ? next() % (1 << 32) : (1 << 32) - next() % 40_000
            let offset = Int64(next() % 65_536) - 32_768
            let a = SequenceNumber(UInt32(truncatingIfNeeded: base))
            let b = SequenceNumber(UInt32(truncatingIfNeeded: Int64(base) + offset))
            #expect((a < b) == (offset > 0), "a=\(a) b=\(b) offset=\(offset)")
            #expect(a.distance(to: b) == Int32(offset))
        }
    }
}
