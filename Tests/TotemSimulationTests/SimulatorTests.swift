// The scripted-scenario API of the Simulator (used by the spec §8 scenario tests) on a few small
// scenarios. These run the real core.

import Testing
import Totem
@testable import TotemSimulation

@Suite("Simulator scripting API")
struct SimulatorTests {
    static let nodes = (1...3).map { NodeID(UInt32($0)) }

    /// `run(untilConvergedWithin:)` for `#expect`, which cannot call mutating methods.
    func converge(_ simulation: inout Simulator, within limit: Duration) -> Bool {
        simulation.run(untilConvergedWithin: limit)
    }

    static func members(_ simulation: Simulator, _ node: NodeID) -> [NodeID]? {
        guard let configuration = simulation.currentConfiguration(of: node), configuration.kind == .regular else { return nil }
        return configuration.members
    }

    @Test("three nodes form one ring, deliver a submitted payload to all, and pass the checker")
    func formRingAndDeliver() throws {
        var simulation = Simulator(nodeCount: 3)
        #expect(converge(&simulation, within: .seconds(5)))
        for node in Self.nodes { #expect(Self.members(simulation, node) == Self.nodes) }
        let id = try simulation.submit(node: NodeID(2), payload: Array("hello".utf8))
        #expect(id == MessageID(node: NodeID(2), incarnation: 1, index: 1))
        #expect(converge(&simulation, within: .seconds(2)))
        for node in Self.nodes {
            #expect(simulation.deliveries(of: node).last?.payload == Array("hello".utf8))
            #expect(simulation.deliveries(of: node).last?.id == id)
        }
        simulation.heal()
        simulation.run(for: .milliseconds(500))
        simulation.finish()
        #expect(simulation.checker.verify().isEmpty)
    }

    @Test("a partition splits the ring and a heal merges it again")
    func partitionAndHeal() {
        var simulation = Simulator(nodeCount: 3, seed: 5)
        #expect(converge(&simulation, within: .seconds(5)))
        simulation.partition([[NodeID(1)], [NodeID(2), NodeID(3)]])
        #expect(!simulation.isReachable(from: NodeID(1), to: NodeID(2)))
        simulation.run(for: .seconds(3))
        #expect(Self.members(simulation, NodeID(1)) == [NodeID(1)])
        #expect(Self.members(simulation, NodeID(2)) == [NodeID(2), NodeID(3)])
        simulation.heal()
        #expect(converge(&simulation, within: .seconds(10)))
        simulation.finish()
        #expect(simulation.checker.verify().isEmpty, "\(simulation.checker.verify())")
    }

    @Test("a crashed node restarts as a new incarnation with its persisted ring sequence")
    func crashAndRestart() {
        var simulation = Simulator(nodeCount: 3, seed: 2)
        #expect(converge(&simulation, within: .seconds(5)))
        let persisted = simulation.persistedRingSequence(of: NodeID(3))
        #expect(persisted != nil)
        simulation.crash(node: NodeID(3))
        #expect(!simulation.isRunning(NodeID(3)))
        simulation.run(for: .seconds(2))
        #expect(Self.members(simulation, NodeID(1)) == [NodeID(1), NodeID(2)])
        simulation.restart(node: NodeID(3))
        #expect(simulation.incarnation(of: NodeID(3)) == 2)
        #expect(converge(&simulation, within: .seconds(10)))
        let ring = simulation.currentConfiguration(of: NodeID(3))?.ringID
        #expect(ring != nil && ring!.sequence > persisted!)
        simulation.heal()
        simulation.finish()
        #expect(simulation.checker.verify().isEmpty, "\(simulation.checker.verify())")
    }

    @Test("a packet filter that drops every token to node 3 pushes it out of the ring")
    func packetFilter() {
        var simulation = Simulator(nodeCount: 3, seed: 3)
        #expect(converge(&simulation, within: .seconds(5)))
        var dropped = 0
        simulation.packetFilter = { packet in
            if case .token = packet.packet, packet.to == NodeID(3) {
                dropped += 1
                return .drop
            }
            return .pass
        }
        simulation.run(for: .seconds(3))
        #expect(dropped > 0)
        let ringsOfNode1 = simulation.configurations(of: NodeID(1)).filter { $0.kind == .regular }
        #expect(ringsOfNode1.contains { !$0.members.contains(NodeID(3)) })
        simulation.heal()
        #expect(simulation.packetFilter == nil)
        #expect(converge(&simulation, within: .seconds(10)))
        simulation.finish()
        #expect(simulation.checker.verify().isEmpty, "\(simulation.checker.verify())")
    }

    @Test("a paused node queues its input and catches up afterwards")
    func pause() {
        var simulation = Simulator(nodeCount: 3, seed: 4)
        #expect(converge(&simulation, within: .seconds(5)))
        simulation.pause(node: NodeID(2), for: .milliseconds(600))
        #expect(simulation.isPaused(NodeID(2)))
        simulation.run(for: .milliseconds(599))
        #expect(simulation.isPaused(NodeID(2)))
        simulation.run(for: .milliseconds(2))
        #expect(!simulation.isPaused(NodeID(2)))
        #expect(converge(&simulation, within: .seconds(10)))
        simulation.heal()
        simulation.finish()
        #expect(simulation.checker.verify().isEmpty, "\(simulation.checker.verify())")
    }

    @Test("the observer sees inputs and effects")
    func observer() {
        var simulation = Simulator(nodeCount: 2, startingNodes: false)
        var inputs = 0
        var batches = 0
        simulation.observer = { observation in
            switch observation {
            case .packet, .timer: inputs += 1
            case .effects: batches += 1
            }
        }
        simulation.start(node: NodeID(1))
        simulation.start(node: NodeID(2))
        simulation.run(for: .seconds(1))
        #expect(inputs > 0 && batches > inputs)
    }
}
