// The randomized sweep after TigerBeetle's VOPR (STYLE §6.3): a few hundred seeds over 3-7 nodes
// and the fault matrix, each with a short fault phase, each checked for EVS and liveness.
// A failure names the seed and the exact command that replays it. Serialized: its 300 CPU-bound
// cases would otherwise take both of a two-core machine's test threads for minutes, and the
// end-to-end tests' polling would wait behind them.

import Testing
import Totem
@testable import TotemSimulation

@Suite("Seed sweep", .serialized)
struct SeedSweepTests {
    @Test("EVS safety during faults and liveness after the heal", arguments: 0..<300 as Range<UInt64>)
    func sweep(seed: UInt64) {
        let report = RandomizedRun(options: SeedSweep.options(seed: seed, nodes: 3...7)).run()
        #expect(report.violations.isEmpty, "seed \(seed): \(report.summaryLine)\n\(report.failureDescription())")
    }
}

@Suite("totem-sim --sweep")
struct SweepArgumentTests {
    @Test("--sweep FIRST-LAST with --max-nodes parses into a sweep command")
    func parsesSweep() throws {
        let command = try SimulationOptions.parse(["--sweep", "1-10000", "--max-nodes", "9"])
        #expect(command == .sweep(seeds: 1...10_000, nodes: 3...9))
        #expect(try SimulationOptions.parse(["--sweep=7-7"]) == .sweep(seeds: 7...7, nodes: 3...9))
    }

    @Test("bad sweep arguments are rejected with a specific message")
    func rejectsBadSweep() {
        for (arguments, expected) in [
            (["--sweep", "5"], "--sweep takes a seed range FIRST-LAST with FIRST <= LAST, not '5'"),
            (["--sweep", "9-3"], "--sweep takes a seed range FIRST-LAST with FIRST <= LAST, not '9-3'"),
            (["--sweep", "1-5", "--seed", "3"], "--sweep derives seed and node count itself; drop --seed and --nodes"),
            (["--sweep", "1-5", "--max-nodes", "2"], "--max-nodes must be an integer in 3...32, not '2'"),
        ] {
            #expect(throws: SimulationOptions.ArgumentError(message: expected)) { try SimulationOptions.parse(arguments) }
        }
    }

    @Test("a sweep seed's options derive from the seed alone and stay inside the matrix")
    func optionsAreDeterministic() {
        for seed in 0..<200 as Range<UInt64> {
            let options = SeedSweep.options(seed: seed, nodes: 3...9)
            #expect(options == SeedSweep.options(seed: seed, nodes: 3...9))
            #expect((3...9).contains(options.nodes))
            #expect(options.loss <= 0.3)
        }
        let counts = Set((0..<200 as Range<UInt64>).map { SeedSweep.options(seed: $0, nodes: 3...9).nodes })
        #expect(counts == Set(3...9), "every node count of the range is drawn")
    }
}
