// The services' seed sweep and its command line: how one seed picks its ring faults (the ring
// sweep's `SeedSweep`), client rate, departure and disk crashes; running a range of seeds; and
// `totem-sim --services ...` parsed by hand. It prints nothing (totem-sim does).

import Totem
import TotemSimulation

/// Derives service runs from seeds and runs ranges of them.
public enum ServiceSweep {
    /// The node counts a sweep draws from unless told otherwise.
    public static let defaultNodes = 3...7

    /// The options of sweep seed `seed`: the ring sweep's node count and faults for that seed
    /// (loss, duplication, reordering, late packets, partitions into up to four groups,
    /// overlapping episodes, crashes and restarts, crashes during a ring sequence persist),
    /// then, from a stream of its own, 2-10 client requests per second per node, sometimes a
    /// server leaving for good in the first half of the fault phase, and crashes during the
    /// services' disk writes (with crashes, unless `persist-crashes` is left out). Half the
    /// departures happen at the departing node's first merge from their time on, when what it
    /// re-publishes for the nodes that joined is not delivered yet. A quarter of the seeds give
    /// the cores a 4 KiB send queue, so that the services' submits wait in their backlog.
    public static func options(seed: UInt64, nodes: ClosedRange<Int> = defaultNodes, without: Set<SweepFault> = []) -> ServiceRunOptions {
        let ring = SeedSweep.options(seed: seed, nodes: nodes, without: without)
        var random = SeededGenerator(seed: seed, stream: ServiceStream.sweep)
        var options = ServiceRunOptions(ring: ring)
        options.operationsPerSecond = [2, 5, 10][random.index(below: 3)]
        let departs = random.chance(0.3)
        let departing = NodeID(UInt32(1 + random.index(below: ring.nodes)))
        let departAt = Duration.milliseconds(random.integer(in: 100...max(100, ring.durationMilliseconds / 2)))
        let atMerge = random.chance(0.5)
        if departs { options.departure = ServiceRunOptions.Departure(node: departing, at: departAt, atMerge: atMerge) }
        let diskCrashes = random.chance(0.6)
        options.serviceDiskCrashes = ring.crashes && diskCrashes && !without.contains(.persistCrashes)
        if random.chance(0.25) { options.sendQueueBytes = 4_096 }
        options.sweep = (nodes, without)
        return options
    }

    /// Runs seeds `seeds`, calling `failed` with the report of each run with a violation.
    ///
    /// - Returns: How many runs there were, how many failed, and what they did in all.
    public static func run(seeds: ClosedRange<UInt64>, nodes: ClosedRange<Int> = defaultNodes, without: Set<SweepFault> = [],
                           failed: (ServiceReport) -> Void) -> (runs: Int, failures: Int, totals: ServiceRunStatistics) {
        var runs = 0
        var failures = 0
        var totals = ServiceRunStatistics()
        for seed in seeds {
            let report = ServiceRun(options: options(seed: seed, nodes: nodes, without: without)).run()
            runs += 1
            totals.add(report.statistics)
            if !report.violations.isEmpty {
                failures += 1
                failed(report)
            }
        }
        return (runs, failures, totals)
    }
}

/// `totem-sim --services ...`: a sweep of service runs, or one seed's run with its trace.
public enum ServiceCommand: Sendable, Equatable {
    /// Every seed of the range, each with `ServiceSweep.options(seed:nodes:without:)`.
    case sweep(seeds: ClosedRange<UInt64>, nodes: ClosedRange<Int>, without: Set<SweepFault>)
    /// One seed's run, printing its trace of service events.
    case replay(seed: UInt64, nodes: ClosedRange<Int>, without: Set<SweepFault>)

    public typealias ArgumentError = SimulationOptions.ArgumentError

    public static let usage = """
        services: totem-sim --services (--sweep FIRST-LAST | --seed S) [--max-nodes N] [--without FAULTS]

        Runs the cluster services (membership, device state, MWI, retained events) on every node:
        clients set and clear device states, set MWI and publish retained alerts through the
        seed's faults (those of --sweep, plus servers leaving for good and crashes during the
        services' disk writes). During the faults no node may show a state no server set; after
        the heal every node must show Asterisk's aggregate of the live servers' last states,
        nothing of departed servers, MWI as the last write in ring order and every unexpired
        retained alert. Exits 0 iff there are no violations.

          --services --sweep FIRST-LAST
                                 run every seed in FIRST...LAST; prints each failing seed with
                                 its replay command
          --services --seed S    one seed's run, printing its trace of service events
          --max-nodes N          largest node count (3...N, default \(ServiceSweep.defaultNodes.upperBound))
          --without FAULTS       as for --sweep
        """

    /// Whether `arguments` ask for the services (`--services` among them).
    public static func isRequested(_ arguments: [String]) -> Bool { arguments.contains("--services") }

    /// Parses `arguments` (without the program name); `--flag value` and `--flag=value` both work.
    public static func parse(_ arguments: [String]) throws(ArgumentError) -> ServiceCommand {
        var seeds: ClosedRange<UInt64>?
        var seed: UInt64?
        var maxNodes = ServiceSweep.defaultNodes.upperBound
        var without: Set<SweepFault> = []
        var scanner = SimulationOptions.ArgumentScanner(arguments)
        while let flag = scanner.next() {
            switch flag {
            case "--services": try scanner.noValue()
            case "--sweep": seeds = try scanner.seedRange()
            case "--seed": seed = try scanner.seed()
            case "--max-nodes": maxNodes = try scanner.integer(in: 3...WireLimits.maxNodes)
            case "--without": without.formUnion(try scanner.faults())
            default: throw ArgumentError(message: "unknown argument '\(scanner.argument)' with --services (see --help)")
            }
        }
        let nodes = ServiceSweep.defaultNodes.lowerBound...maxNodes
        switch (seeds, seed) {
        case (let seeds?, nil): return .sweep(seeds: seeds, nodes: nodes, without: without)
        case (nil, let seed?): return .replay(seed: seed, nodes: nodes, without: without)
        case (.some, .some): throw ArgumentError(message: "--services takes --sweep FIRST-LAST or --seed S, not both")
        case (nil, nil): throw ArgumentError(message: "--services needs --sweep FIRST-LAST or --seed S (see --help)")
        }
    }
}
