// The knobs of a randomized run, their command-line syntax (parsed by hand) and the replay
// command that reproduces a run. It does not run anything.

import Totem

/// Everything that determines a randomized run; the same options give the same trace.
public struct SimulationOptions: Sendable, Equatable {
    public var seed: UInt64
    public var nodes: Int
    /// Length of the fault phase in milliseconds.
    public var durationMilliseconds: Int64 = 30_000
    public var loss: Double = 0
    public var duplicate: Double = 0
    public var reorder: Double = 0
    public var partitions = false
    /// Most groups a one-at-a-time partition episode splits the nodes into (2 or more).
    public var maxGroups = 2
    /// Overlapping partition episodes, each with its own start and end (see `FaultPlan`).
    public var overlapping = false
    public var crashes = false
    /// With `crashes`: some crashes happen during a ring sequence persist (the disk one step
    /// behind).
    public var persistCrashes = false
    /// Probability a packet to another node is late by 0.5-5 s.
    public var late: Double = 0
    /// Probability a multicast copy waits unread in its destination's socket for 0.2-3 ms
    /// (`NetworkConditions.multicastReadLag`).
    public var readLag: Double = 0
    /// Messages per second per node.
    public var rate: Double = 50
    /// Largest payload in bytes.
    public var maxSize = 300
    /// Fraction of messages submitted with safe delivery.
    public var safe: Double = 0
    /// Where to write the JSON Lines trace (not part of the replay command).
    public var tracePath: String?

    public init(seed: UInt64, nodes: Int) {
        self.seed = seed
        self.nodes = nodes
    }

    /// The command line that reproduces this run (every option spelled out, no trace file).
    public var replayCommand: String {
        var words = ["swift run -c release totem-sim", "--seed \(seed)", "--nodes \(nodes)",
                     "--duration-ms \(durationMilliseconds)", "--loss \(loss)", "--duplicate \(duplicate)",
                     "--reorder \(reorder)"]
        if late > 0 { words.append("--late \(late)") }
        if readLag > 0 { words.append("--read-lag \(readLag)") }
        if partitions { words.append("--partitions") }
        if maxGroups != 2 { words.append("--max-groups \(maxGroups)") }
        if overlapping { words.append("--overlapping") }
        if crashes { words.append("--crashes") }
        if persistCrashes { words.append("--persist-crashes") }
        words += ["--rate \(rate)", "--max-size \(maxSize)", "--safe \(safe)"]
        return words.joined(separator: " ")
    }

    public static let usage = """
        usage: totem-sim --seed S --nodes N [options]
               totem-sim --sweep FIRST-LAST [--max-nodes N] [--without FAULTS]

        Runs N Totem cores over a simulated network: a fault phase, then a heal (network restored,
        crashed nodes restarted), submissions for 2 s more, then until every node is idle in one
        ring (or 60 s after the heal). Checks the EVS properties and liveness; exits 0 iff there
        are no violations. The same seed and options always give the same trace.

        options:
          --seed S               random seed (unsigned 64-bit integer), required
          --nodes N              number of nodes, 1...\(WireLimits.maxNodes), required
          --duration-ms D        length of the fault phase in virtual ms (default 30000)
          --loss P               probability a packet to another node is lost (0...1, default 0)
          --duplicate P          probability a packet is delivered twice (0...1, default 0)
          --reorder P            probability a packet is delayed by 1-5 ms (0...1, default 0)
          --late P               probability a packet is delayed by 0.5-5 s, past the token
                                 timeout, into a later ring (0...1, default 0)
          --read-lag P           probability a multicast waits 0.2-3 ms unread in its
                                 destination's socket, so that tokens are read first and drain
                                 it, as udp mode's runtime does (spec P1) (0...1, default 0)
          --partitions           random partition episodes, one at a time: isolation, splits,
                                 one-way cuts, flapping links
          --max-groups G         most groups a --partitions split makes (2...32, default 2)
          --overlapping          overlapping partition episodes with their own start and end:
                                 splits into 2-4 groups, one-way isolation, one-way link cuts
          --crashes              random crashes with restarts, and pauses
          --persist-crashes      with --crashes, half the crashes happen during the node's next
                                 ring sequence persist: its disk keeps the previous value
          --rate R               messages per second per node (default 50)
          --max-size B           largest message in bytes; sizes are uniform up to it, but never
                                 below the 12-byte envelope (default 300)
          --safe P               fraction of messages sent with safe delivery (0...1, default 0)
          --trace FILE           write the trace as JSON Lines to FILE
          -h, --help             print this help

        sweep:
          --sweep FIRST-LAST     run every seed in FIRST...LAST, each with its own node count
                                 (3...N) and faults drawn from the seed (loss up to 30%,
                                 duplication, reordering, partitions, crashes, large and safe
                                 messages); prints each failing seed with its replay command
          --max-nodes N          largest node count of a sweep (default 9)
          --without FAULTS       leave out some of the wider faults in every seed: a comma list
                                 of late, groups, overlapping, persist-crashes, read-lag
        """

    /// What the command line asks for.
    public enum Command: Sendable, Equatable {
        case help
        case run(SimulationOptions)
        /// Every seed of the range, each with `SeedSweep.options(seed:nodes:)`.
        case sweep(seeds: ClosedRange<UInt64>, nodes: ClosedRange<Int>, without: Set<SweepFault> = [])
    }

    /// A command-line mistake, with a message for the user.
    public struct ArgumentError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public init(message: String) { self.message = message }
        public var description: String { message }
    }

    /// Reads a command line flag by flag; `--flag value` and `--flag=value` both work (also for
    /// `totem-sim --services`, which ServiceSimulation parses).
    public struct ArgumentScanner {
        private var remaining: ArraySlice<String>
        private var inlineValue: String?
        /// The current flag, without an inline value.
        public private(set) var flag = ""
        /// The current argument as given.
        public private(set) var argument = ""

        public init(_ arguments: [String]) { remaining = arguments[...] }

        /// Moves to the next flag; `nil` at the end.
        public mutating func next() -> String? {
            guard let argument = remaining.popFirst() else { return nil }
            self.argument = argument
            flag = argument
            inlineValue = nil
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                flag = String(argument[..<equals])
                inlineValue = String(argument[argument.index(after: equals)...])
            }
            return flag
        }

        /// The current flag's value: inline, else the next argument.
        public mutating func value() throws(ArgumentError) -> String {
            if let inlineValue { return inlineValue }
            guard let next = remaining.popFirst() else { throw ArgumentError(message: "\(flag) needs a value") }
            return next
        }

        /// Refuses an inline value for a flag that takes none.
        public func noValue() throws(ArgumentError) {
            if inlineValue != nil { throw ArgumentError(message: "\(flag) takes no value") }
        }

        /// `--sweep`'s value: a seed range FIRST-LAST.
        public mutating func seedRange() throws(ArgumentError) -> ClosedRange<UInt64> {
            let text = try value()
            let bounds = text.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 2, let first = UInt64(bounds[0]), let last = UInt64(bounds[1]), first <= last else {
                throw ArgumentError(message: "\(flag) takes a seed range FIRST-LAST with FIRST <= LAST, not '\(text)'")
            }
            return first...last
        }

        /// `--without`'s value: a comma list of wider faults.
        public mutating func faults() throws(ArgumentError) -> Set<SweepFault> {
            let text = try value()
            var faults: Set<SweepFault> = []
            for name in text.split(separator: ",", omittingEmptySubsequences: false) {
                guard let fault = SweepFault(rawValue: String(name)) else {
                    throw ArgumentError(message: "\(flag) takes a comma list of "
                        + SweepFault.allCases.map(\.rawValue).joined(separator: ", ") + ", not '\(text)'")
                }
                faults.insert(fault)
            }
            return faults
        }

        /// `--seed`'s value: an unsigned 64-bit integer.
        public mutating func seed() throws(ArgumentError) -> UInt64 {
            let text = try value()
            guard let parsed = UInt64(text) else {
                throw ArgumentError(message: "\(flag) must be an unsigned 64-bit integer, not '\(text)'")
            }
            return parsed
        }

        /// The value as an integer in `range`.
        public mutating func integer(in range: ClosedRange<Int>) throws(ArgumentError) -> Int {
            let text = try value()
            guard let parsed = Int(text), range.contains(parsed) else {
                throw ArgumentError(message: "\(flag) must be an integer in \(range.lowerBound)...\(range.upperBound), not '\(text)'")
            }
            return parsed
        }
    }

    /// Parses `arguments` (without the program name). `--flag value` and `--flag=value` both work.
    public static func parse(_ arguments: [String], settings: TotemSettings = .simulation) throws(ArgumentError) -> Command {
        var seed: UInt64?
        var nodes: Int?
        var options = SimulationOptions(seed: 0, nodes: 1)
        var sweepSeeds: ClosedRange<UInt64>?
        var maxNodes = 9
        var without: Set<SweepFault> = []
        var scanner = ArgumentScanner(arguments)
        while let flag = scanner.next() {
            switch flag {
            case "-h", "--help":
                return .help
            case "--seed":
                seed = try scanner.seed()
            case "--nodes":
                nodes = try scanner.integer(in: 1...WireLimits.maxNodes)
            case "--duration-ms":
                options.durationMilliseconds = Int64(try scanner.integer(in: 0...86_400_000))
            case "--loss":
                options.loss = try probability(flag, try scanner.value())
            case "--duplicate":
                options.duplicate = try probability(flag, try scanner.value())
            case "--reorder":
                options.reorder = try probability(flag, try scanner.value())
            case "--safe":
                options.safe = try probability(flag, try scanner.value())
            case "--late":
                options.late = try probability(flag, try scanner.value())
            case "--read-lag":
                options.readLag = try probability(flag, try scanner.value())
            case "--partitions":
                try scanner.noValue()
                options.partitions = true
            case "--max-groups":
                options.maxGroups = try scanner.integer(in: 2...WireLimits.maxNodes)
            case "--overlapping":
                try scanner.noValue()
                options.overlapping = true
            case "--persist-crashes":
                try scanner.noValue()
                options.persistCrashes = true
            case "--crashes":
                try scanner.noValue()
                options.crashes = true
            case "--rate":
                let text = try scanner.value()
                guard let rate = Double(text), rate.isFinite, rate >= 0, rate <= 1_000_000 else {
                    throw ArgumentError(message: "--rate must be a number of messages per second in 0...1000000, not '\(text)'")
                }
                options.rate = rate
            case "--max-size":
                options.maxSize = try scanner.integer(in: 0...settings.maxMessageBytes)
            case "--sweep":
                sweepSeeds = try scanner.seedRange()
            case "--max-nodes":
                maxNodes = try scanner.integer(in: 3...WireLimits.maxNodes)
            case "--without":
                without.formUnion(try scanner.faults())
            case "--trace":
                let path = try scanner.value()
                guard !path.isEmpty else { throw ArgumentError(message: "--trace needs a file name") }
                options.tracePath = path
            default:
                throw ArgumentError(message: "unknown argument '\(scanner.argument)' (see --help)")
            }
        }
        if let sweepSeeds {
            guard seed == nil, nodes == nil else {
                throw ArgumentError(message: "--sweep derives seed and node count itself; drop --seed and --nodes")
            }
            return .sweep(seeds: sweepSeeds, nodes: 3...maxNodes, without: without)
        }
        guard without.isEmpty else { throw ArgumentError(message: "--without is a sweep option (see --help)") }
        guard let seed else { throw ArgumentError(message: "--seed is required (see --help)") }
        guard let nodes else { throw ArgumentError(message: "--nodes is required (see --help)") }
        options.seed = seed
        options.nodes = nodes
        return .run(options)
    }

    private static func probability(_ flag: String, _ text: String) throws(ArgumentError) -> Double {
        guard let value = Double(text), value >= 0, value <= 1 else {
            throw ArgumentError(message: "\(flag) must be a probability in 0...1, not '\(text)'")
        }
        return value
    }
}
