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
        }
    }
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
/// isolate one node, split the nodes into two random groups, cut one or more links in one
/// direction only, or flap one link down and up about every `consensus`. Process faults (with
/// `crashes`) crash a node and restart it after a random delay (never more than `n − 1` nodes
/// down at once) or pause it for one to three token timeouts. The two kinds overlap freely and
/// are drawn from separate random streams.
public struct FaultPlan: Sendable, Equatable {
    public var faults: [ScheduledFault]

    public init(faults: [ScheduledFault]) {
        self.faults = faults
    }

    public static let none = FaultPlan(faults: [])

    /// Draws a plan for `nodeCount` nodes over `faultPhase` from `seed`.
    public static func random(
        seed: UInt64, nodeCount: Int, settings: TotemSettings, faultPhase: Duration,
        partitions: Bool, crashes: Bool
    ) -> FaultPlan {
        let end = faultPhase.totalNanoseconds
        var planned: [ScheduledFault] = []
        if partitions && nodeCount >= 2 {
            var random = SeededGenerator(seed: seed, stream: RandomStream.partitions.rawValue)
            planned += partitionEpisodes(nodeCount: nodeCount, settings: settings, end: end, random: &random)
        }
        if crashes {
            var random = SeededGenerator(seed: seed, stream: RandomStream.crashes.rawValue)
            planned += processFaults(nodeCount: nodeCount, settings: settings, end: end, random: &random)
        }
        // A stable sort by time keeps partition actions before process actions at equal times.
        let ordered = planned.enumerated().sorted { lhs, rhs in
            (lhs.element.time, lhs.offset) < (rhs.element.time, rhs.offset)
        }
        return FaultPlan(faults: ordered.map(\.element).filter { $0.time.nanoseconds < end })
    }

    private static func nodeID(_ index: Int) -> NodeID { NodeID(UInt32(index + 1)) }

    private static func partitionEpisodes(
        nodeCount: Int, settings: TotemSettings, end: Int64, random: inout SeededGenerator
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
                let shuffled = random.shuffled(nodes)
                let split = 1 + random.index(below: nodeCount - 1)
                let groups = [Array(shuffled[..<split]).sorted(), Array(shuffled[split...]).sorted()]
                faults.append(ScheduledFault(time: at, action: .partition(groups)))
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

    private static func randomPair(_ nodes: [NodeID], random: inout SeededGenerator) -> (NodeID, NodeID) {
        let first = random.index(below: nodes.count)
        let second = (first + 1 + random.index(below: nodes.count - 1)) % nodes.count
        return (nodes[first], nodes[second])
    }

    private static func processFaults(
        nodeCount: Int, settings: TotemSettings, end: Int64, random: inout SeededGenerator
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
                    faults.append(ScheduledFault(time: MonotonicInstant(nanoseconds: time), action: .crash(node)))
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
