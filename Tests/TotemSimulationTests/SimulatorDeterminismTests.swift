// Same seed and options, same trace, byte for byte; another seed, another trace (STYLE §6.3).
// These run the real core, so they need it to work.

import Testing
import Totem
@testable import TotemSimulation

@Suite("Simulator determinism")
struct SimulatorDeterminismTests {
    static func options(seed: UInt64) -> SimulationOptions {
        var options = SimulationOptions(seed: seed, nodes: 4)
        options.durationMilliseconds = 2_000
        options.loss = 0.05
        options.duplicate = 0.02
        options.reorder = 0.02
        options.partitions = true
        options.crashes = true
        options.rate = 30
        return options
    }

    @Test("the same seed and options give a byte-identical trace")
    func sameSeedSameTrace() {
        let first = RandomizedRun(options: Self.options(seed: 7)).run()
        let second = RandomizedRun(options: Self.options(seed: 7)).run()
        #expect(first.trace.events.count > 100)
        #expect(first.trace.renderJSONLines() == second.trace.renderJSONLines())
        #expect(first.summaryLine == second.summaryLine)
    }

    @Test("a different seed gives a different trace")
    func differentSeedDifferentTrace() {
        let first = RandomizedRun(options: Self.options(seed: 7)).run()
        let second = RandomizedRun(options: Self.options(seed: 8)).run()
        #expect(first.trace.renderJSONLines() != second.trace.renderJSONLines())
    }

    @Test("the fault plan depends only on the seed, node count, settings and fault phase")
    func faultPlanIsIndependentOfLoad() {
        let plan = FaultPlan.random(
            seed: 11, nodeCount: 5, settings: .simulation, faultPhase: .seconds(10), partitions: true, crashes: true)
        let again = FaultPlan.random(
            seed: 11, nodeCount: 5, settings: .simulation, faultPhase: .seconds(10), partitions: true, crashes: true)
        #expect(plan == again)
        #expect(!plan.faults.isEmpty)
        // A longer fault phase extends the plan without changing its beginning.
        let longer = FaultPlan.random(
            seed: 11, nodeCount: 5, settings: .simulation, faultPhase: .seconds(20), partitions: true, crashes: true)
        #expect(Array(longer.faults.prefix(plan.faults.count)) == plan.faults)
        // Partitions and crashes come from separate streams.
        let partitionsOnly = FaultPlan.random(
            seed: 11, nodeCount: 5, settings: .simulation, faultPhase: .seconds(10), partitions: true, crashes: false)
        #expect(partitionsOnly.faults == plan.faults.filter { fault in
            switch fault.action {
            case .crash, .restart, .pause: false
            default: true
            }
        })
    }

    @Test("the fault plan never has all nodes crashed at once")
    func faultPlanKeepsOneNodeUp() {
        for seed: UInt64 in 0..<50 {
            let plan = FaultPlan.random(
                seed: seed, nodeCount: 3, settings: .simulation, faultPhase: .seconds(30), partitions: false, crashes: true)
            var down: Set<NodeID> = []
            for fault in plan.faults {
                switch fault.action {
                case .crash(let node): down.insert(node)
                case .restart(let node): down.remove(node)
                default: break
                }
                #expect(down.count <= 2, "seed \(seed) at \(fault.time)")
            }
        }
    }
}
