// The simulated LAN: per-packet delay, loss, duplication, reordering, and a directional
// reachability matrix for partitions. It decides *when* copies arrive; the Simulator delivers them.

import Totem

/// The random behaviour of the network for packets between two different nodes.
public struct NetworkConditions: Sendable, Equatable {
    /// Probability that one copy of a packet to one destination is lost.
    public var loss: Double
    /// Probability that a packet to one destination arrives twice.
    public var duplicate: Double
    /// Probability that a packet is held back by `reorderDelay`, so later packets overtake it.
    public var reorder: Double
    /// One-way delay of a packet that is not reordered (uniform in this range). Packets between
    /// two nodes otherwise stay in order (a LAN reorders rarely).
    public var delay: ClosedRange<Duration>
    /// The extra delay of a reordered packet (uniform in this range).
    public var reorderDelay: ClosedRange<Duration>
    /// Probability that a packet is late: held back by `lateDelay`, far past the token timeout,
    /// so that it arrives into a later ring (old ring ids, sequence numbers, JOINs and commit
    /// tokens), possibly at a later incarnation of its destination.
    public var late: Double
    /// The extra delay of a late packet (uniform in this range).
    public var lateDelay: ClosedRange<Duration>
    /// Probability that a multicast datagram (message, JOIN, merge detect, hold cancel) to
    /// another node, once arrived, waits unread in that node's multicast socket for
    /// `multicastReadLagDelay`. The runtime's udp mode reads multicasts and tokens from two
    /// sockets, so a token may be read before multicasts its sender sent ahead of it (spec P1);
    /// reading a token first drains the multicast socket (see MulticastSocket.swift).
    public var multicastReadLag: Double
    /// How long a lagging multicast waits unread (uniform in this range).
    public var multicastReadLagDelay: ClosedRange<Duration>

    public init(
        loss: Double = 0, duplicate: Double = 0, reorder: Double = 0,
        delay: ClosedRange<Duration> = .microseconds(50) ... .microseconds(300),
        reorderDelay: ClosedRange<Duration> = .milliseconds(1) ... .milliseconds(5),
        late: Double = 0, lateDelay: ClosedRange<Duration> = .milliseconds(500) ... .seconds(5),
        multicastReadLag: Double = 0,
        multicastReadLagDelay: ClosedRange<Duration> = .microseconds(200) ... .milliseconds(3)
    ) {
        self.late = late
        self.lateDelay = lateDelay
        self.multicastReadLag = multicastReadLag
        self.multicastReadLagDelay = multicastReadLagDelay
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.delay = delay
        self.reorderDelay = reorderDelay
    }

    /// A LAN without faults: only the base delay.
    public static let perfect = NetworkConditions()
}

/// What a packet filter decides for one copy of a packet (scripted scenarios, spec §8).
public enum PacketVerdict: Sendable, Equatable {
    /// Hand it to the network as usual (which may still lose it).
    case pass
    /// Drop it.
    case drop
    /// Deliver it this much later than the network would.
    case delay(Duration)
}

/// One copy of a packet on its way from one node to another, as shown to a packet filter.
public struct PacketInFlight: Sendable {
    public var from: NodeID
    public var to: NodeID
    public var packet: Packet
    public var sentAt: MonotonicInstant
}

/// The network between `nodeCount` nodes: reachability, conditions and per-link ordering.
///
/// A node's packets to itself (its own multicasts, a unicast token in a ring of one) use the
/// local loop: never lost, cut, duplicated or reordered (corosync's local loop is a socketpair).
struct SimulatedNetwork {
    let nodeCount: Int
    var conditions: NetworkConditions
    /// `reachable[from * nodeCount + to]`: packets from `from` can reach `to`.
    private var reachable: [Bool]
    /// The arrival time of the last in-order packet on each link, to keep links FIFO.
    private var lastArrival: [Int64]
    /// `cutBy[from * nodeCount + to]`: how many overlapping episodes cut the link now.
    private var cutBy: [Int32]
    private var random: SeededGenerator
    /// How many copies were made late so far.
    private(set) var latePackets = 0

    /// Delay of the local loop.
    static let localLoopDelay: Int64 = 5_000

    init(nodeCount: Int, conditions: NetworkConditions, random: SeededGenerator) {
        self.nodeCount = nodeCount
        self.conditions = conditions
        self.reachable = Array(repeating: true, count: nodeCount * nodeCount)
        self.lastArrival = Array(repeating: 0, count: nodeCount * nodeCount)
        self.cutBy = Array(repeating: 0, count: nodeCount * nodeCount)
        self.random = random
    }

    func isReachable(from: Int, to: Int) -> Bool {
        from == to || (reachable[from * nodeCount + to] && cutBy[from * nodeCount + to] == 0)
    }

    /// One more (`by: 1`) or one fewer (`by: -1`) overlapping episode cuts the link.
    mutating func adjustEpisodeCut(by delta: Int32, from: Int, to: Int) {
        guard from != to else { return }
        cutBy[from * nodeCount + to] = max(0, cutBy[from * nodeCount + to] + delta)
    }

    /// Ends every overlapping episode's cuts.
    mutating func clearEpisodeCuts() {
        for index in cutBy.indices { cutBy[index] = 0 }
    }

    /// Sets whether packets from `from` reach `to` (one direction).
    mutating func setReachable(_ value: Bool, from: Int, to: Int) {
        guard from != to else { return }
        reachable[from * nodeCount + to] = value
    }

    /// Nodes in different groups cannot reach each other; nodes in no group are isolated.
    mutating func partition(groupOf: [Int?]) {
        precondition(groupOf.count == nodeCount, "group map has \(groupOf.count) entries for \(nodeCount) nodes")
        for from in 0..<nodeCount {
            for to in 0..<nodeCount where from != to {
                let connected = groupOf[from] != nil && groupOf[from] == groupOf[to]
                reachable[from * nodeCount + to] = connected
            }
        }
    }

    /// Restores every link.
    mutating func healPartitions() {
        for index in reachable.indices { reachable[index] = true }
    }

    var isFullyConnected: Bool { !reachable.contains(false) && !cutBy.contains { $0 > 0 } }

    /// Computes the arrival times of the copies of one packet from `from` to `to`, sent at
    /// `now` (nanoseconds), with `extraDelay` added by a filter. Returns 0, 1 or 2 arrival times
    /// through `arrivals`; `late` says which of them are late packets.
    mutating func route(
        from: Int, to: Int, now: Int64, extraDelay: Int64, arrivals: inout (Int64?, Int64?), late: inout (Bool, Bool)
    ) {
        arrivals = (nil, nil)
        late = (false, false)
        let link = from * nodeCount + to
        if from == to {
            let arrival = max(now + Self.localLoopDelay + extraDelay, lastArrival[link])
            lastArrival[link] = arrival
            arrivals.0 = arrival
            return
        }
        guard reachable[link], cutBy[link] == 0 else { return }
        if random.chance(conditions.loss) { return }
        arrivals.0 = arrivalTime(link: link, now: now, extraDelay: extraDelay, late: &late.0)
        if random.chance(conditions.duplicate) {
            arrivals.1 = arrivalTime(link: link, now: now, extraDelay: extraDelay, late: &late.1)
        }
    }

    /// How long one arrived multicast copy waits unread in its destination's multicast socket
    /// (nanoseconds), `nil` when it is read on arrival. Draws nothing while the probability is 0.
    mutating func multicastReadLagNanoseconds() -> Int64? {
        guard random.chance(conditions.multicastReadLag) else { return nil }
        return random.integer(
            in: conditions.multicastReadLagDelay.lowerBound.totalNanoseconds
                ... conditions.multicastReadLagDelay.upperBound.totalNanoseconds)
    }

    /// `route` for callers that do not ask which copies are late.
    mutating func route(from: Int, to: Int, now: Int64, extraDelay: Int64, arrivals: inout (Int64?, Int64?)) {
        var late = (false, false)
        route(from: from, to: to, now: now, extraDelay: extraDelay, arrivals: &arrivals, late: &late)
    }

    private mutating func arrivalTime(link: Int, now: Int64, extraDelay: Int64, late: inout Bool) -> Int64 {
        let delay = random.integer(
            in: conditions.delay.lowerBound.totalNanoseconds...conditions.delay.upperBound.totalNanoseconds)
        // `chance` draws nothing at probability 0: runs without late packets stay as they were.
        if random.chance(conditions.late) {
            let hold = random.integer(
                in: conditions.lateDelay.lowerBound.totalNanoseconds ... conditions.lateDelay.upperBound.totalNanoseconds)
            late = true
            latePackets += 1
            return now + delay + hold + extraDelay
        }
        if random.chance(conditions.reorder) {
            let hold = random.integer(
                in: conditions.reorderDelay.lowerBound.totalNanoseconds
                    ... conditions.reorderDelay.upperBound.totalNanoseconds)
            // A reordered packet does not move the link's FIFO mark: later packets overtake it.
            return now + delay + hold + extraDelay
        }
        let arrival = max(now + delay + extraDelay, lastArrival[link])
        lastArrival[link] = arrival
        return arrival
    }
}
