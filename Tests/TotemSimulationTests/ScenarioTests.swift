// The deterministic scenarios of totem-spec §8 (T1-T33) that need faults, each a named test.
// T1, T2, T4, T6-T10, T21, T28, T29 are unit-level tests in TotemTests/Protocol; T31 (foreign
// cluster, malformed packets) is covered by WireCodecTests, WireFuzzTests and the runtime's
// "forged, foreign, malformed" ring test, because cluster ids live in the wire codec.

import Testing
@testable import Totem
@testable import TotemSimulation

@Suite("Scenarios (totem-spec §8)")
struct ScenarioTests {
    static func ids(_ count: Int) -> [NodeID] { (1...count).map { NodeID(UInt32($0)) } }

    func converge(_ simulation: inout Simulator, within limit: Duration) -> Bool {
        simulation.run(untilConvergedWithin: limit)
    }

    func run(_ simulation: inout Simulator, within limit: Duration, until condition: (Simulator) -> Bool) -> Bool {
        simulation.run(within: limit, until: condition)
    }

    func regularMembers(_ simulation: Simulator, _ node: NodeID) -> [NodeID]? {
        guard let configuration = simulation.currentConfiguration(of: node), configuration.kind == .regular else { return nil }
        return configuration.members
    }

    func ringID(_ simulation: Simulator, _ node: NodeID) -> RingID? {
        simulation.currentConfiguration(of: node)?.ringID
    }

    /// Submits `count` small messages round-robin from `nodes`, advancing `spacing` between them.
    func load(_ simulation: inout Simulator, from nodes: [NodeID], count: Int, spacing: Duration = .milliseconds(2)) {
        for index in 0..<count {
            let node = nodes[index % nodes.count]
            if simulation.isRunning(node) && !simulation.isPaused(node) {
                _ = try? simulation.submit(node: node, payload: Array(repeating: UInt8(index & 0xFF), count: 40))
            }
            simulation.run(for: spacing)
        }
    }

    /// Heals, waits for one ring, lets it settle, ends the trace and returns every violation.
    func finish(_ simulation: inout Simulator, within limit: Duration = .seconds(20)) -> [Violation] {
        simulation.heal()
        let converged = simulation.run(untilConvergedWithin: limit)
        if converged { simulation.run(for: .milliseconds(500)) }
        simulation.finish()
        var violations = simulation.checker.verify()
        if !converged { violations.append(Violation(.liveness, at: simulation.now, "did not converge")) }
        return violations
    }

    @Test("T3: staggered boot of 5 nodes over 2 s converges to one ring; every change satisfies EVS")
    func staggeredBoot() {
        var simulation = Simulator(nodeCount: 5, seed: 3, startingNodes: false)
        var random = SeededGenerator(seed: 3)
        let starts = Self.ids(5).map { ($0, random.integer(in: 0...2_000)) }.sorted { $0.1 < $1.1 }
        for (node, at) in starts {
            simulation.run(until: .milliseconds(at))
            simulation.start(node: node)
        }
        #expect(converge(&simulation, within: .seconds(10)))
        for node in Self.ids(5) { #expect(regularMembers(simulation, node) == Self.ids(5)) }
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T5: steady load with 5% loss: everything delivered by retransmission, no membership change")
    func steadyLoadWithLoss() {
        var simulation = Simulator(nodeCount: 3, seed: 5)
        #expect(converge(&simulation, within: .seconds(5)))
        let changes = simulation.configurations(of: NodeID(1)).count
        simulation.networkConditions = NetworkConditions(loss: 0.05)
        load(&simulation, from: Self.ids(3), count: 600, spacing: .milliseconds(1))
        #expect(converge(&simulation, within: .seconds(10)))
        #expect(simulation.configurations(of: NodeID(1)).count == changes, "a membership change under 5% loss")
        for node in Self.ids(3) { #expect(simulation.deliveries(of: node).count == 600) }
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T11: the representative crashes under load; the next lowest id forms the new ring")
    func representativeCrash() {
        var simulation = Simulator(nodeCount: 4, seed: 11)
        #expect(converge(&simulation, within: .seconds(5)))
        load(&simulation, from: Self.ids(4), count: 100)
        simulation.crash(node: NodeID(1))
        load(&simulation, from: Array(Self.ids(4).dropFirst()), count: 200)
        let survivors = Array(Self.ids(4).dropFirst())
        #expect(run(&simulation, within: .seconds(5)) { sim in survivors.allSatisfy { sim.currentConfiguration(of: $0)?.members == survivors } })
        #expect(ringID(simulation, NodeID(2))?.representative == NodeID(2))
        let transitional = simulation.configurations(of: NodeID(3)).last { $0.kind == .transitional }
        #expect(transitional?.members == survivors)
        #expect(transitional?.left == [NodeID(1)])
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("ours: a crash whose host answers port unreachable is noticed after the liveness probes and a JOIN round, under load, with EVS intact")
    func crashReportedUnreachable() {
        for reports in [true, false] {
            var simulation = Simulator(nodeCount: 4, seed: 21)
            simulation.reportsUnreachable = reports
            #expect(converge(&simulation, within: .seconds(5)))
            load(&simulation, from: Self.ids(4), count: 100)
            let crashedAt = simulation.now
            simulation.crash(node: NodeID(3))
            let survivors = [NodeID(1), NodeID(2), NodeID(4)]
            #expect(run(&simulation, within: .seconds(5)) { sim in survivors.allSatisfy { sim.currentConfiguration(of: $0)?.members == survivors } })
            // Without reports the token timeout (300 ms here) and the consensus timeout run out
            // first; with them node 2 re-forms the ring as soon as node 3 has answered none of
            // its liveness probes (3 x 40 ms) after its token to node 3 bounced.
            let took = simulation.now - crashedAt
            if reports {
                #expect(took < .milliseconds(250), "took \(took) with reports")
            } else {
                #expect(took > .milliseconds(300), "took \(took) without reports")
            }
            load(&simulation, from: survivors, count: 200)
            let violations = finish(&simulation)
            #expect(violations.isEmpty, "reports \(reports): \(violations)")
        }
    }

    @Test("T12: a node that never receives one sender's messages evicts itself (FAILED TO RECEIVE); the others go on")
    func failedToReceive() {
        var settings = TotemSettings.simulation
        settings.failToReceiveConstant = 200
        var simulation = Simulator(nodeCount: 3, settings: settings, seed: 12)
        #expect(converge(&simulation, within: .seconds(5)))
        // Node 3 loses every data message originated by node 2, whoever retransmits it.
        simulation.packetFilter = { packet in
            if packet.to == NodeID(3), case .multicast(let message) = packet.packet, message.originator == NodeID(2) { return .drop }
            return .pass
        }
        load(&simulation, from: [NodeID(2)], count: 200, spacing: .milliseconds(5))
        let others = [NodeID(1), NodeID(2)]
        #expect(run(&simulation, within: .seconds(20)) { sim in
            others.allSatisfy { sim.currentConfiguration(of: $0)?.members == others && sim.currentConfiguration(of: $0)?.kind == .regular }
        }, "nodes 1 and 2 should form a ring without the failing node")
        // Nodes 1 and 2 delivered everything node 2 sent.
        #expect(simulation.deliveries(of: NodeID(1)).filter { $0.sender == NodeID(2) }.count >= 100)
        let violations = finish(&simulation, within: .seconds(30))
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T13: a 2/3 partition under load, then heal: each side's messages stay in its configurations")
    func partitionUnderLoadThenHeal() {
        var simulation = Simulator(nodeCount: 3, seed: 13)
        #expect(converge(&simulation, within: .seconds(5)))
        simulation.partition([[NodeID(1), NodeID(2)], [NodeID(3)]])
        load(&simulation, from: Self.ids(3), count: 500)
        #expect(regularMembers(simulation, NodeID(1)) == [NodeID(1), NodeID(2)])
        #expect(regularMembers(simulation, NodeID(3)) == [NodeID(3)])
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T14: partition while idle, heal while idle: merge detect reunites the ring within merge + consensus")
    func idlePartitionMerges() {
        var simulation = Simulator(nodeCount: 4, seed: 14)
        #expect(converge(&simulation, within: .seconds(5)))
        simulation.partition([[NodeID(1), NodeID(2)], [NodeID(3), NodeID(4)]])
        simulation.run(for: .seconds(3))
        #expect(regularMembers(simulation, NodeID(3)) == [NodeID(3), NodeID(4)])
        simulation.healNetwork()
        let healedAt = simulation.now
        #expect(run(&simulation, within: .seconds(5)) { sim in Self.ids(4).allSatisfy { sim.currentConfiguration(of: $0)?.members == Self.ids(4) && sim.currentConfiguration(of: $0)?.kind == .regular } })
        let settings = simulation.settings
        #expect(simulation.now - healedAt < settings.merge + settings.consensus + settings.effectiveToken,
                "merged after \(simulation.now - healedAt)")
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T15: partitions flapping every ~consensus for a while, then stable: safe throughout, one ring after")
    func flappingPartitions() {
        var simulation = Simulator(nodeCount: 5, seed: 15)
        #expect(converge(&simulation, within: .seconds(5)))
        for round in 0..<12 {
            if round % 2 == 0 {
                simulation.partition([[NodeID(1), NodeID(3), NodeID(5)], [NodeID(2), NodeID(4)]])
            } else {
                simulation.healNetwork()
            }
            load(&simulation, from: Self.ids(5), count: 90, spacing: .milliseconds(4))
        }
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T16: a node crashing during GATHER is declared failed by the consensus timeout")
    func crashDuringGather() {
        var simulation = Simulator(nodeCount: 3, seed: 16)
        // Started at time 0, every node is gathering and its first JOIN is on the wire.
        #expect(simulation.membershipState(of: NodeID(3)) == .gather)
        simulation.crash(node: NodeID(3))
        let pair = [NodeID(1), NodeID(2)]
        #expect(run(&simulation, within: .seconds(5)) { sim in pair.allSatisfy { sim.currentConfiguration(of: $0)?.members == pair && sim.currentConfiguration(of: $0)?.kind == .regular } })
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T17: the commit token holder crashes during COMMIT: token loss, GATHER, a higher ring seq")
    func crashDuringCommit() throws {
        var simulation = Simulator(nodeCount: 4, seed: 17)
        #expect(converge(&simulation, within: .seconds(5)))
        let before = try #require(ringID(simulation, NodeID(1)), "node 1 has no ring after converging")
        simulation.crash(node: NodeID(4))
        #expect(run(&simulation, within: .seconds(5)) { $0.membershipState(of: NodeID(2)) == .commit })
        simulation.crash(node: NodeID(2))
        let survivors = [NodeID(1), NodeID(3)]
        #expect(run(&simulation, within: .seconds(10)) { sim in survivors.allSatisfy { sim.currentConfiguration(of: $0)?.members == survivors && sim.currentConfiguration(of: $0)?.kind == .regular } })
        let after = try #require(ringID(simulation, NodeID(1)), "node 1 has no ring after the crashes")
        #expect(after.sequence > before.sequence)
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T18: a crash during RECOVERY with old messages outstanding: the next attempt delivers an EVS-correct set")
    func crashDuringRecovery() {
        var simulation = Simulator(nodeCount: 5, seed: 18, network: NetworkConditions(loss: 0.1))
        #expect(converge(&simulation, within: .seconds(10)))
        load(&simulation, from: Self.ids(5), count: 150, spacing: .milliseconds(1))
        simulation.crash(node: NodeID(5))
        #expect(run(&simulation, within: .seconds(5)) { $0.membershipState(of: NodeID(3)) == .recovery })
        simulation.crash(node: NodeID(4))
        let survivors = Self.ids(3)
        #expect(run(&simulation, within: .seconds(10)) { sim in survivors.allSatisfy { sim.currentConfiguration(of: $0)?.members == survivors && sim.currentConfiguration(of: $0)?.kind == .regular } })
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T19 (P6): losing the commit token on either rotation is repaired by retransmission; the first ORF token is sent once")
    func commitTokenLoss() {
        for secondRotation in [false, true] {
            var simulation = Simulator(nodeCount: 3, seed: 19, startingNodes: false)
            var dropped = 0
            simulation.packetFilter = { packet in
                if case .commitToken(let token) = packet.packet, token.members.count == 3, packet.to == NodeID(3), dropped == 0,
                   (token.memberIndex == token.members.count) == secondRotation {
                    dropped += 1
                    return .drop
                }
                return .pass
            }
            var initialTokens: [RingID: Int] = [:]
            simulation.observer = { observation in
                if case .effects(_, _, let effects) = observation {
                    for case .unicast(.token(let token), _) in effects where token.tokenSequence == 0 {
                        initialTokens[token.ringID, default: 0] += 1
                    }
                }
            }
            for node in Self.ids(3) { simulation.start(node: node) }
            #expect(converge(&simulation, within: .seconds(5)), "second rotation: \(secondRotation)")
            #expect(dropped == 1, "second rotation: \(secondRotation)")
            #expect(regularMembers(simulation, NodeID(1)) == Self.ids(3))
            #expect(initialTokens.values.allSatisfy { $0 == 1 }, "initial ORF tokens per ring: \(initialTokens)")
            simulation.observer = nil
            let violations = finish(&simulation)
            #expect(violations.isEmpty, "\(violations)")
        }
    }

    @Test("T20: eight nodes booting at once converge without livelock")
    func joinStorm() {
        var simulation = Simulator(nodeCount: 8, seed: 20, network: NetworkConditions(duplicate: 0.05, reorder: 0.05))
        #expect(converge(&simulation, within: .seconds(10)))
        for node in Self.ids(8) { #expect(regularMembers(simulation, node) == Self.ids(8)) }
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T22 (P7): the lowest node crashes and restarts before the token timeout: a higher ring seq, no giant recovery")
    func fastRestartOfLowestNode() throws {
        for persisted in [true, false] {
            var simulation = Simulator(nodeCount: 3, seed: 22)
            #expect(converge(&simulation, within: .seconds(5)))
            load(&simulation, from: Self.ids(3), count: 100)
            let before = try #require(ringID(simulation, NodeID(2)), "node 2 has no ring after converging")
            simulation.crash(node: NodeID(1))
            simulation.run(for: .milliseconds(20))
            if persisted {
                simulation.restart(node: NodeID(1))
            } else {
                simulation.restart(node: NodeID(1), persisted: nil)  // T23: the file is missing
            }
            load(&simulation, from: Self.ids(3), count: 100)
            #expect(converge(&simulation, within: .seconds(10)), "persisted: \(persisted)")
            let after = try #require(ringID(simulation, NodeID(2)), "node 2 has no ring after the restart (persisted: \(persisted))")
            #expect(after.sequence > before.sequence, "persisted: \(persisted)")
            var violations = finish(&simulation)
            if !persisted {
                // Without its file the restarted node cannot know its last ring sequence, so its
                // first (singleton) ring may have a lower sequence than its previous life's: the
                // one thing a lost state file costs. Everything else must hold.
                violations.removeAll { $0.property == .alternation && $0.text.contains("node 1 (incarnation 2)") && $0.text.contains("after a regular ring with sequence") }
            }
            #expect(violations.isEmpty, "persisted: \(persisted): \(violations)")
        }
    }

    @Test("T24 (P15): a node paused for 2×token is excluded, then re-merged; its stale JOINs do no harm")
    func pausedNode() {
        var simulation = Simulator(nodeCount: 3, seed: 24)
        #expect(converge(&simulation, within: .seconds(5)))
        _ = try? simulation.submit(node: NodeID(3), payload: [1, 2, 3])
        simulation.pause(node: NodeID(3), for: simulation.settings.effectiveToken * 2)
        load(&simulation, from: [NodeID(1), NodeID(2)], count: 200)
        #expect(converge(&simulation, within: .seconds(10)))
        #expect(simulation.deliveries(of: NodeID(1)).contains { $0.payload == [1, 2, 3] })
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T25: a message held by only some members when the ring breaks is delivered consistently (E8, E11)")
    func gapAtFailure() {
        var simulation = Simulator(nodeCount: 4, seed: 25)
        #expect(converge(&simulation, within: .seconds(5)))
        // Node 4 stops hearing node 1's data, then the ring splits {1,2} | {3,4}.
        simulation.packetFilter = { packet in
            if packet.to == NodeID(4), case .multicast(let message) = packet.packet, message.originator == NodeID(1) { return .drop }
            return .pass
        }
        load(&simulation, from: Self.ids(4), count: 80, spacing: .milliseconds(1))
        simulation.partition([[NodeID(1), NodeID(2)], [NodeID(3), NodeID(4)]])
        simulation.packetFilter = nil
        load(&simulation, from: Self.ids(4), count: 80)
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T26 (P16): large messages under 2% loss with a crash mid-message: delivered whole or by nobody")
    func largeMessagesAcrossChange() throws {
        var simulation = Simulator(nodeCount: 4, seed: 26, network: NetworkConditions(loss: 0.02))
        #expect(converge(&simulation, within: .seconds(5)))
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        _ = try simulation.submit(node: NodeID(2), payload: big)
        _ = try simulation.submit(node: NodeID(1), payload: Array(big.prefix(120_000)))
        simulation.run(for: .milliseconds(3))
        simulation.crash(node: NodeID(4))
        let largest = (0..<(1_000_000 - 12)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        _ = try simulation.submit(node: NodeID(3), payload: largest)
        #expect(converge(&simulation, within: .seconds(30)))
        for node in Self.ids(3) {
            let payloads = simulation.deliveries(of: node).map(\.payload)
            #expect(payloads.filter { $0 == big }.count == 1, "node \(node)")
            #expect(payloads.filter { $0 == largest }.count == 1, "node \(node)")
        }
        let violations = finish(&simulation, within: .seconds(30))
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T27: 10,000 tiny messages are packed several to a frame and keep their order")
    func packingTinyMessages() {
        var simulation = Simulator(nodeCount: 3, seed: 27)
        #expect(converge(&simulation, within: .seconds(5)))
        var frames = 0
        simulation.observer = { observation in
            if case .effects(_, _, let effects) = observation {
                for case .multicast(.multicast) in effects { frames += 1 }
            }
        }
        for index in 0..<10_000 {
            _ = try? simulation.submit(node: NodeID(UInt32(index % 3 + 1)), payload: [UInt8(index & 0xFF), UInt8(index >> 8)])
        }
        #expect(converge(&simulation, within: .seconds(10)))
        simulation.observer = nil
        let reference = simulation.deliveries(of: NodeID(1)).map(\.id)
        #expect(reference.count == 10_000)
        for node in Self.ids(3) { #expect(simulation.deliveries(of: node).map(\.id) == reference) }
        #expect(frames > 0 && frames * 10 < 10_000, "\(frames) frames for 10,000 messages")
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T30 (P14): a one-way link failure keeps EVS safety; after the heal a single ring forms")
    func asymmetricLinkFailure() {
        var simulation = Simulator(nodeCount: 3, seed: 30)
        #expect(converge(&simulation, within: .seconds(5)))
        simulation.cut(from: NodeID(1), to: NodeID(3))
        load(&simulation, from: Self.ids(3), count: 400, spacing: .milliseconds(5))
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T32: rings whose sequence numbers wrap past 2^32 under load and a membership change")
    func sequenceWrap() {
        var settings = TotemSettings.simulation
        settings.ringSequenceOrigin = SequenceNumber(0 &- 500)
        var simulation = Simulator(nodeCount: 3, settings: settings, seed: 32)
        #expect(converge(&simulation, within: .seconds(5)))
        load(&simulation, from: Self.ids(3), count: 400, spacing: .milliseconds(1))
        simulation.crash(node: NodeID(3))
        load(&simulation, from: [NodeID(1), NodeID(2)], count: 700, spacing: .milliseconds(1))
        #expect(converge(&simulation, within: .seconds(5)))
        #expect(simulation.deliveries(of: NodeID(1)).count == simulation.deliveries(of: NodeID(2)).count)
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("T33: 16 nodes, 1% loss, random crashes and restarts, then stable: EVS throughout and one ring")
    func sixteenNodesWithCrashes() {
        var options = SimulationOptions(seed: 33, nodes: 16)
        options.loss = 0.01
        options.crashes = true
        options.durationMilliseconds = 20_000
        options.rate = 10
        let report = RandomizedRun(options: options).run()
        #expect(report.violations.isEmpty, "\(report.failureDescription())")
        #expect(report.convergedAt != nil)
    }
}
