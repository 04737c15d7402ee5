// The schedule of faults of a randomized run's fault phase, drawn once from the seed before the
// run starts. It only plans; the RandomizedRun applies the actions to the Simulator.

import Totem

/// One fault (or the end of one) applied to a running simulation.
public enum FaultAction: Sendable, Equatable, CustomStringConvertible {
    /// Only nodes in the same group reach each other (symmetric); unlisted nodes are isolated.
    case partition([[NodeID]])
    /// Packets from `from` no longer reach `to` (one direction: an asymmetric failure).
    case cut(from: NodeID, to: NodeID)
    /// Packets from `from` reach `to` again.
    case restore(from: NodeID, to: NodeID)
    /// Every link works again.
    case healNetwork
    case crash(NodeID)
    /// The node restarts as a new incarnation with its persisted ring sequence.
    case restart(NodeID)
    /// The node processes nothing for the duration; its input is queued and handled afterwards.
    case pause(NodeID, Duration)
    /// An overlapping episode begins: its links stay cut until `.endEpisode` with the same id,
    /// whatever other episodes, partitions and heals of the network do meanwhile.
    case beginEpisode(Int, NetworkEpisode)
    /// The overlapping episode `id` ends (its links work again unless something else cuts them).
    case endEpisode(Int)
    /// The node's next `persistRingSequence` does not complete: it crashes during the write,
    /// so its disk keeps the previous ring sequence and nothing after the write leaves it (the
    /// "disk one step behind" crash; see `FaultPlan`). A `.restart` of the node (or the heal)
    /// disarms it if no persist came first.
    case crashDuringNextPersist(NodeID)

    public var description: String {
        switch self {
        case .partition(let groups):
            "partition " + groups.map { "{" + $0.map(\.description).joined(separator: ",") + "}" }.joined(separator: " ")
        case .cut(let from, let to): "cut \(from)->\(to)"
        case .restore(let from, let to): "restore \(from)->\(to)"
        case .healNetwork: "heal network"
        case .crash(let node): "crash \(node)"
        case .restart(let node): "restart \(node)"
        case .pause(let node, let duration): "pause \(node) for \(duration.totalMilliseconds)ms"
        case .beginEpisode(let id, let episode): "episode \(id) begins: \(episode)"
        case .endEpisode(let id): "episode \(id) ends"
        case .crashDuringNextPersist(let node): "crash \(node) during its next ring sequence persist"
        }
    }
}

/// What an overlapping network episode cuts (every direction listed is cut; others stay).
public enum NetworkEpisode: Sendable, Equatable, CustomStringConvertible {
    /// Only nodes in the same group reach each other (two or more groups, symmetric).
    case split([[NodeID]])
    /// Nothing reaches the node; its own packets still reach the others (one-way isolation).
    case deafen(NodeID)
    /// The node's packets reach no one; it still hears the others (one-way isolation).
    case mute(NodeID)
    /// The listed links, each in one direction.
    case links([NetworkLink])

    public var description: String {
        switch self {
        case .split(let groups):
            "split " + groups.map { "{" + $0.map(\.description).joined(separator: ",") + "}" }.joined(separator: " ")
        case .deafen(let node): "nothing reaches \(node)"
        case .mute(let node): "\(node) reaches no one"
        case .links(let links): "cut " + links.map(\.description).joined(separator: " ")
        }
    }

    /// The directed links the episode cuts among `nodes`.
    public func cutLinks(among nodes: [NodeID]) -> [NetworkLink] {
        switch self {
        case .split(let groups):
            var groupOf: [NodeID: Int] = [:]
            for (index, group) in groups.enumerated() { for node in group { groupOf[node] = index } }
            return nodes.flatMap { from in
                nodes.compactMap { to in
                    from != to && (groupOf[from] == nil || groupOf[from] != groupOf[to]) ? NetworkLink(from: from, to: to) : nil
                }
            }
        case .deafen(let node):
            return nodes.filter { $0 != node }.map { NetworkLink(from: $0, to: node) }
        case .mute(let node):
            return nodes.filter { $0 != node }.map { NetworkLink(from: node, to: $0) }
        case .links(let links):
            return links
        }
    }
}

/// One direction between two nodes.
public struct NetworkLink: Sendable, Hashable, CustomStringConvertible {
    public var from: NodeID
    public var to: NodeID

    public init(from: NodeID, to: NodeID) {
        self.from = from
        self.to = to
    }

    public var description: String { "\(from)->\(to)" }
}

/// A fault and when to apply it.
public struct ScheduledFault: Sendable, Equatable {
    public var time: MonotonicInstant
    public var action: FaultAction

    public init(time: MonotonicInstant, action: FaultAction) {
        self.time = time
        self.action = action
    }
}

/// The faults of one fault phase, in time order.
///
/// Partition episodes (with `partitions`) come one at a time, each followed by a network heal:
/// isolate one node, split the nodes into random groups (two, or up to `maxGroups`), cut one or
/// more links in one direction only, or flap one link down and up about every `consensus`.
///
/// Overlapping episodes (with `overlapping`, a stream of their own) each have their own start
/// and end and overlap one another, the one-at-a-time episodes and their heals: a split into
/// two to four groups, a node nothing reaches, a node whose packets reach no one, or a few
/// links cut one way. A link works only while no episode and no partition cuts it.
///
/// Process faults (with `crashes`) crash a node and restart it after a random delay (never more
/// than `n − 1` nodes down at once) or pause it for one to three token timeouts. With
/// `persistCrashes` as well, some crashes are instead armed for the node's next ring sequence
/// persist, with the restart planned as for a crash.
///
/// The crash during a persist ("the disk one step behind"). `Effect` rule 1 makes the runtime
/// write the ring sequence to stable storage before anything later in the same batch is sent,
/// so a restarted node can only have lost its last write if it died while the write was in
/// progress: before the write completed and therefore before any later effect of that input.
/// The simulator models exactly that: the effects of the batch before the
/// `persistRingSequence` are executed, the node crashes at the persist, the stored value stays
/// the previous one, and the rest of the batch (the commit token it would have forwarded, any
/// timers) never happens. A crash after the write completed keeps the new value (a plain
/// crash). Losing a write whose sends had already left would break the rule the runtime keeps
/// and is not modelled.
///
/// The kinds are drawn from separate random streams, so turning one off leaves the others'
/// schedules as they were.
public struct FaultPlan: Sendable, Equatable {
    public var faults: [ScheduledFault]

    public init(faults: [ScheduledFault]) {
        self.faults = faults
    }

    public static let none = FaultPlan(faults: [])

    /// Draws a plan for `nodeCount` nodes over `faultPhase` from `seed`.
    public static func random(
        seed: UInt64, nodeCount: Int, settings: TotemSettings, faultPhase: Duration,
        partitions: Bool, crashes: Bool, maxGroups: Int = 2, overlapping: Bool = false,
        persistCrashes: Bool = false
    ) -> FaultPlan {
        let end = faultPhase.totalNanoseconds
        var planned: [ScheduledFault] = []
        if partitions && nodeCount >= 2 {
            var random = SeededGenerator(seed: seed, stream: RandomStream.partitions.rawValue)
            planned += partitionEpisodes(
                nodeCount: nodeCount, settings: settings, end: end, maxGroups: maxGroups, random: &random)
        }
        if overlapping && nodeCount >= 2 {
            var random = SeededGenerator(seed: seed, stream: RandomStream.overlappingEpisodes.rawValue)
            planned += overlappingEpisodes(nodeCount: nodeCount, settings: settings, end: end, random: &random)
        }
        if crashes {
            var random = SeededGenerator(seed: seed, stream: RandomStream.crashes.rawValue)
            planned += processFaults(
                nodeCount: nodeCount, settings: settings, end: end, persistCrashes: persistCrashes, random: &random)
        }
        // A stable sort by time keeps partition actions before process actions at equal times.
        let ordered = planned.enumerated().sorted { lhs, rhs in
            (lhs.element.time, lhs.offset) < (rhs.element.time, rhs.offset)
        }
        return FaultPlan(faults: ordered.map(\.element).filter { $0.time.nanoseconds < end })
    }

    private static func nodeID(_ index: Int) -> NodeID { NodeID(UInt32(index + 1)) }

    private static func partitionEpisodes(
        nodeCount: Int, settings: TotemSettings, end: Int64, maxGroups: Int, random: inout SeededGenerator
    ) -> [ScheduledFault] {
        let consensus = settings.consensus
        var faults: [ScheduledFault] = []
        var time = random.duration(in: .milliseconds(100) ... consensus * 3).totalNanoseconds
        while time < end {
            let length = random.duration(in: consensus / 2 ... consensus * 8).totalNanoseconds
            let episodeEnd = time + length
            let at = MonotonicInstant(nanoseconds: time)
            let nodes = (0..<nodeCount).map(nodeID)
            switch random.index(below: 10) {
            case 0..<3:
                let isolated = nodes[random.index(below: nodeCount)]
                faults.append(ScheduledFault(time: at, action: .partition([[isolated], nodes.filter { $0 != isolated }])))
            case 3..<6:
                let most = min(maxGroups, nodeCount)
                if most >= 3 {
                    // Draws only when more than two groups are allowed, so that two-group plans
                    // stay what they were.
                    let count = 2 + random.index(below: most - 1)
                    faults.append(ScheduledFault(time: at, action: .partition(randomGroups(nodes, count: count, random: &random))))
                } else {
                    let shuffled = random.shuffled(nodes)
                    let split = 1 + random.index(below: nodeCount - 1)
                    let groups = [Array(shuffled[..<split]).sorted(), Array(shuffled[split...]).sorted()]
                    faults.append(ScheduledFault(time: at, action: .partition(groups)))
                }
            case 6..<8:
                let cuts = 1 + random.index(below: max(1, nodeCount / 2))
                for _ in 0..<cuts {
                    let (from, to) = randomPair(nodes, random: &random)
                    faults.append(ScheduledFault(time: at, action: .cut(from: from, to: to)))
                }
            default:
                let (a, b) = randomPair(nodes, random: &random)
                let bothWays = random.chance(0.5)
                var toggle = time
                var down = true
                while toggle < episodeEnd {
                    let when = MonotonicInstant(nanoseconds: toggle)
                    if down {
                        faults.append(ScheduledFault(time: when, action: .cut(from: a, to: b)))
                        if bothWays { faults.append(ScheduledFault(time: when, action: .cut(from: b, to: a))) }
                    } else {
                        faults.append(ScheduledFault(time: when, action: .restore(from: a, to: b)))
                        if bothWays { faults.append(ScheduledFault(time: when, action: .restore(from: b, to: a))) }
                    }
                    down.toggle()
                    toggle += random.duration(in: consensus / 2 ... consensus * 3 / 2).totalNanoseconds
                }
            }
            faults.append(ScheduledFault(time: MonotonicInstant(nanoseconds: episodeEnd), action: .healNetwork))
            time = episodeEnd + random.duration(in: .milliseconds(100) ... consensus * 3).totalNanoseconds
        }
        return faults
    }

    /// Splits `nodes` into `count` non-empty random groups, each sorted.
    private static func randomGroups(_ nodes: [NodeID], count: Int, random: inout SeededGenerator) -> [[NodeID]] {
        let shuffled = random.shuffled(nodes)
        let bounds = random.shuffled(Array(1..<nodes.count)).prefix(count - 1).sorted()
        var groups: [[NodeID]] = []
        var start = 0
        for bound in bounds + [nodes.count] {
            groups.append(Array(shuffled[start..<bound]).sorted())
            start = bound
        }
        return groups
    }

    /// Episodes with their own start and end, a new one starting every 0.1 s to two consensus
    /// timeouts, each lasting half a consensus timeout to six: they overlap.
    private static func overlappingEpisodes(
        nodeCount: Int, settings: TotemSettings, end: Int64, random: inout SeededGenerator
    ) -> [ScheduledFault] {
        let consensus = settings.consensus
        let nodes = (0..<nodeCount).map(nodeID)
        var faults: [ScheduledFault] = []
        var id = 0
        var time = random.duration(in: .milliseconds(100) ... consensus * 2).totalNanoseconds
        while time < end {
            id += 1
            let length = random.duration(in: consensus / 2 ... consensus * 6).totalNanoseconds
            let episode: NetworkEpisode
            switch random.index(below: 8) {
            case 0..<3:
                let count = 2 + random.index(below: min(4, nodeCount) - 1)
                episode = .split(randomGroups(nodes, count: count, random: &random))
            case 3..<5:
                episode = .deafen(nodes[random.index(below: nodeCount)])
            case 5..<7:
                episode = .mute(nodes[random.index(below: nodeCount)])
            default:
                let count = 1 + random.index(below: nodeCount)
                episode = .links((0..<count).map { _ in
                    let (from, to) = randomPair(nodes, random: &random)
                    return NetworkLink(from: from, to: to)
                })
            }
            faults.append(ScheduledFault(time: MonotonicInstant(nanoseconds: time), action: .beginEpisode(id, episode)))
            faults.append(ScheduledFault(time: MonotonicInstant(nanoseconds: time + length), action: .endEpisode(id)))
            time += random.duration(in: .milliseconds(100) ... consensus * 2).totalNanoseconds
        }
        return faults
    }

    private static func randomPair(_ nodes: [NodeID], random: inout SeededGenerator) -> (NodeID, NodeID) {
        let first = random.index(below: nodes.count)
        let second = (first + 1 + random.index(below: nodes.count - 1)) % nodes.count
        return (nodes[first], nodes[second])
    }

    private static func processFaults(
        nodeCount: Int, settings: TotemSettings, end: Int64, persistCrashes: Bool, random: inout SeededGenerator
    ) -> [ScheduledFault] {
        let token = settings.effectiveToken
        var faults: [ScheduledFault] = []
        // Until when each node is crashed or paused (by this plan).
        var busyUntil = Array(repeating: Int64.min, count: nodeCount)
        var crashedUntil = Array(repeating: Int64.min, count: nodeCount)
        var time = random.duration(in: .milliseconds(200) ... .seconds(2)).totalNanoseconds
        while time < end {
            let idle = (0..<nodeCount).filter { busyUntil[$0] <= time }
            if !idle.isEmpty {
                let index = idle[random.index(below: idle.count)]
                let node = nodeID(index)
                let crashedNow = crashedUntil.filter { $0 > time }.count
                if random.chance(0.25) {
                    let length = random.duration(in: token ... token * 3)
                    faults.append(ScheduledFault(time: MonotonicInstant(nanoseconds: time), action: .pause(node, length)))
                    busyUntil[index] = time + length.totalNanoseconds
                } else if crashedNow < nodeCount - 1 {
                    let downtime = random.duration(in: .milliseconds(50) ... .seconds(4)).totalNanoseconds
                    // Draws only with `persistCrashes`, so that plans without it stay the same.
                    let duringPersist = persistCrashes && random.chance(0.5)
                    faults.append(ScheduledFault(
                        time: MonotonicInstant(nanoseconds: time),
                        action: duringPersist ? .crashDuringNextPersist(node) : .crash(node)))
                    faults.append(ScheduledFault(time: MonotonicInstant(nanoseconds: time + downtime), action: .restart(node)))
                    busyUntil[index] = time + downtime
                    crashedUntil[index] = time + downtime
                }
            }
            time += random.duration(in: .milliseconds(100) ... .seconds(2)).totalNanoseconds
        }
        return faults
    }
}
