// The fault matrix of a seed sweep: how one seed picks its node count and faults, shared by the
// test suite's sweep and `totem-sim --sweep`, so a failing seed replays the same everywhere.

import Totem

/// One of the wider faults a sweep can leave out (`totem-sim --sweep ... --without`).
public enum SweepFault: String, Sendable, Hashable, CaseIterable {
    /// Packets late by 0.5-5 s.
    case late
    /// Partitions into three or more groups.
    case groups
    /// Overlapping partition episodes.
    case overlapping
    /// Crashes during a ring sequence persist.
    case persistCrashes = "persist-crashes"
    /// Multicasts waiting unread in their destination's socket while tokens are read (spec P1).
    case readLag = "read-lag"
}

/// Derives the options of one sweep run from its seed alone.
public enum SeedSweep {
    /// The options of sweep seed `seed`: node count in `nodes`, a fault phase of 2-4 s, loss up
    /// to 30%, duplication, reordering, late packets, partitions (up to four groups, and
    /// overlapping episodes), crashes (some during a persist) and pauses, multicasts read late
    /// (behind tokens, spec P1), occasional large
    /// (fragmented) messages and safe delivery, each drawn from the seed. The faults in
    /// `without` are left out; the rest of the options stay as they would be with them.
    public static func options(
        seed: UInt64, nodes: ClosedRange<Int> = 3...7, without: Set<SweepFault> = []
    ) -> SimulationOptions {
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
        // The wider faults, drawn after the others so that the older knobs of a seed stay put
        // and always drawn so that leaving one out changes nothing else.
        let late = [0, 0, 0.002, 0.01, 0.03][random.index(below: 5)]
        let maxGroups = random.chance(0.5) ? 2 + random.index(below: 3) : 2
        let overlapping = random.chance(0.4)
        let persistCrashes = random.chance(0.6)
        // Drawn last of all, so that the seeds of the sweep before it keep their other knobs.
        let readLag = [0, 0, 0.1, 0.5][random.index(below: 4)]
        if !without.contains(.late) { options.late = late }
        if !without.contains(.groups) { options.maxGroups = min(maxGroups, options.nodes) < 3 ? 2 : maxGroups }
        if !without.contains(.overlapping) { options.overlapping = overlapping }
        if !without.contains(.persistCrashes) { options.persistCrashes = options.crashes && persistCrashes }
        if !without.contains(.readLag) { options.readLag = readLag }
        return options
    }
}
