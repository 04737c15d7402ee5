// The fault matrix of a seed sweep: how one seed picks its node count and faults, shared by the
// test suite's sweep and `totem-sim --sweep`, so a failing seed replays the same everywhere.

import Totem

/// Derives the options of one sweep run from its seed alone.
public enum SeedSweep {
    /// The options of sweep seed `seed`: node count in `nodes`, a fault phase of 2-4 s, loss up
    /// to 30%, duplication, reordering, partitions, crashes and pauses, occasional large
    /// (fragmented) messages and safe delivery, each drawn from the seed.
    public static func options(seed: UInt64, nodes: ClosedRange<Int> = 3...7) -> SimulationOptions {
        var random = SeededGenerator(seed: seed, stream: 0x5EED)
        var options = SimulationOptions(seed: seed, nodes: nodes.lowerBound + random.index(below: nodes.count))
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
}
