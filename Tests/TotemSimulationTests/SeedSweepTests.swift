// The randomized sweep after TigerBeetle's VOPR (STYLE §6.3): a few hundred seeds over 3-7 nodes
// and the fault matrix, each with a short fault phase, each checked for EVS and liveness.
// A failure names the seed and the exact command that replays it.

import Testing
import Totem
@testable import TotemSimulation

@Suite("Seed sweep")
struct SeedSweepTests {
    /// The options of sweep seed `seed`: everything derives from the seed, so the replay
    /// command reproduces the run exactly.
    static func options(seed: UInt64) -> SimulationOptions {
        var random = SeededGenerator(seed: seed, stream: 0x5EED)
        var options = SimulationOptions(seed: seed, nodes: 3 + random.index(below: 5))
        options.durationMilliseconds = 2_000 + Int64(random.index(below: 3)) * 1_000
        options.loss = [0, 0, 0.01, 0.05, 0.1, 0.3][random.index(below: 6)]
        options.duplicate = [0, 0, 0.05][random.index(below: 3)]
        options.reorder = [0, 0, 0.05][random.index(below: 3)]
        options.partitions = random.chance(0.5)
        options.crashes = random.chance(0.5)
        options.rate = [10, 20, 40][random.index(below: 3)]
        options.maxSize = random.chance(0.1) ? 20_000 : 300
        options.safe = random.chance(0.25) ? 0.2 : 0
        return options
    }

    @Test("EVS safety during faults and liveness after the heal", arguments: 0..<300 as Range<UInt64>)
    func sweep(seed: UInt64) {
        let report = RandomizedRun(options: Self.options(seed: seed)).run()
        #expect(report.violations.isEmpty, "seed \(seed): \(report.summaryLine)\n\(report.failureDescription())")
    }
}
