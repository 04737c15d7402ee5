// The unread side of the runtime's multicast sockets, so that the simulator meets spec pitfall
// P1 and the rule that answers it. It holds arrived multicasts that a node has not read yet; it
// decides nothing about when they arrive (SimulatedNetwork) or who reads them (Simulator).
//
// In udp mode a node reads multicasts (messages, JOINs) from the group socket and tokens from
// its unicast socket, so a token can be read while multicasts its sender sent ahead of it still
// wait in the group socket. RingNode therefore holds a token back and drains the group socket
// first (`receiveFlush`, spec §6.2); the simulator does the same: when a node reads a token or
// commit token, every multicast already waiting unread for it is read first, in arrival order
// (`Simulator.drainsMulticastsBeforeTokens`). Without the rule the node handles the token with
// gaps it does not really have, and asks for retransmissions of messages it already holds.

import Totem

/// Per node, the multicast copies that have arrived and wait unread.
struct MulticastSockets {
    struct Waiting {
        var id: UInt64
        /// When the copy arrived in the socket (nanoseconds).
        var arrival: Int64
        /// The incarnation of the destination it arrived at.
        var incarnation: UInt32
        var packet: Packet
    }

    /// `waiting[index]`: the copies waiting at node `index`, in the order they were held.
    private var waiting: [[Waiting]] = []
    private var lastID: UInt64 = 0
    /// How many copies a token's drain read so far.
    private(set) var drainedCount = 0

    /// Holds `packet`, arriving at node `index` at `arrival`, until it is read.
    /// - Returns: the id under which `take(_:at:)` reads it.
    mutating func hold(_ packet: Packet, at index: Int, incarnation: UInt32, arrival: Int64) -> UInt64 {
        while waiting.count <= index { waiting.append([]) }
        lastID += 1
        waiting[index].append(Waiting(id: lastID, arrival: arrival, incarnation: incarnation, packet: packet))
        return lastID
    }

    /// Whether any copy waits at node `index` (a token's drain is then worth a look).
    func hasWaiting(at index: Int) -> Bool {
        index < waiting.count && !waiting[index].isEmpty
    }

    /// The copy `id`, read when its wait is over; `nil` if a token's drain read it already.
    mutating func take(_ id: UInt64, at index: Int) -> Packet? {
        guard index < waiting.count, let position = waiting[index].firstIndex(where: { $0.id == id }) else { return nil }
        return waiting[index].remove(at: position).packet
    }

    /// Every copy that arrived at node `index` by `now`, in arrival order, as a token's drain
    /// reads them. Copies that arrived at an earlier incarnation are dropped with it.
    mutating func drain(at index: Int, incarnation: UInt32, now: Int64) -> [Packet] {
        guard hasWaiting(at: index) else { return [] }
        waiting[index].removeAll { $0.incarnation != incarnation }
        let arrived = waiting[index].filter { $0.arrival <= now }
            .sorted { ($0.arrival, $0.id) < ($1.arrival, $1.id) }
        guard !arrived.isEmpty else { return [] }
        waiting[index].removeAll { $0.arrival <= now }
        drainedCount += arrived.count
        return arrived.map(\.packet)
    }
}

extension Simulator {
    /// How many multicast copies nodes read before a token, draining their socket, so far.
    public var multicastsReadBeforeTokens: Int { multicastSockets.drainedCount }
}

extension Packet {
    /// Whether the runtime sends this packet to the multicast group (udp mode's group socket);
    /// tokens, commit tokens and liveness probes go to one node's unicast socket.
    var travelsOnMulticastSocket: Bool {
        switch self {
        case .multicast, .join, .mergeDetect, .tokenHoldCancel: true
        case .token, .commitToken, .livenessProbe, .livenessReply: false
        }
    }

    /// Whether the runtime holds this packet back until the multicast socket is drained.
    var waitsForMulticastSocket: Bool {
        switch self {
        case .token, .commitToken: true
        case .multicast, .join, .mergeDetect, .tokenHoldCancel, .livenessProbe, .livenessReply: false
        }
    }
}
