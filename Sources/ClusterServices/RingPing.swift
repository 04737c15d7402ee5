// The ring `ping`: its message on the wire (tag `ServiceID.ping`) and the pings waiting for
// replies. What a delivery or a timeout does with them is ServiceHost+Ping.swift's.

import Membership
import Totem

/// A ping request or reply on the ring.
///
/// Layout (big-endian), 14 bytes:
///
/// ```
/// offset 0   u8    ServiceID.ping (3)
/// offset 1   u8    kind: 1 request, 2 reply
/// offset 2   u64   ping id (chosen by the origin)
/// offset 10  u32   origin: the node that asked
/// ```
///
/// Every member answers a request from its origin with a reply carrying the same id and
/// origin; the origin times each member's reply from its request.
public struct RingPing: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case request = 1
        case reply = 2
    }

    /// Why a ping message was not decoded.
    public enum DecodingError: Error, Sendable, Equatable {
        /// Not 14 bytes with the ping tag and a known kind.
        case malformed
        /// The origin is not a valid node id (zero).
        case invalidOrigin(UInt32)
    }

    /// The whole message's length, tag included.
    public static let encodedCount = 14

    public var kind: Kind
    public var id: PingID
    public var origin: NodeID

    public init(kind: Kind, id: PingID, origin: NodeID) {
        self.kind = kind
        self.id = id
        self.origin = origin
    }

    /// Decodes a whole ring message, its tag included.
    public init(decoding message: [UInt8]) throws(DecodingError) {
        guard message.count == Self.encodedCount, message[0] == ServiceID.ping.rawValue,
              let kind = Kind(rawValue: message[1]) else { throw .malformed }
        let id = message[2...9].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let originRaw = message[10...13].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard let origin = NodeID(rawValue: originRaw) else { throw .invalidOrigin(originRaw) }
        self.init(kind: kind, id: PingID(rawValue: id), origin: origin)
    }

    /// The message to submit, tag first.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = [ServiceID.ping.rawValue, kind.rawValue]
        bytes.reserveCapacity(Self.encodedCount)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: id.rawValue >> UInt64(shift))) }
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: origin.rawValue >> UInt32(shift))) }
        assert(bytes.count == Self.encodedCount, "ping of \(bytes.count) bytes")
        return bytes
    }
}

/// This node's pings waiting for replies.
struct PendingPings: Sendable {
    struct Entry: Sendable {
        var sentAt: MonotonicInstant
        var deadline: MonotonicInstant
        /// The members that should answer (the ring's members; fewer when some leave).
        var expected: Set<NodeID>
        var results: [NodeID: Duration] = [:]

        var isComplete: Bool { expected.allSatisfy { results[$0] != nil } }
    }

    private var entries: [PingID: Entry] = [:]
    private var nextID: UInt64 = 1

    var count: Int { entries.count }
    /// Pending pings, ascending.
    var ids: [PingID] { entries.keys.sorted() }
    /// When the first pending ping times out.
    var earliestDeadline: MonotonicInstant? { entries.values.map(\.deadline).min() }

    /// Starts a ping that waits for `expected` until `now + timeout`.
    mutating func start(expecting expected: Set<NodeID>, now: MonotonicInstant, timeout: Duration) -> PingID {
        let id = PingID(rawValue: nextID)
        nextID += 1
        entries[id] = Entry(sentAt: now, deadline: now + timeout, expected: expected)
        return id
    }

    /// Records `node`'s reply to ping `id` (the first one only); returns whether the ping is
    /// complete now.
    mutating func record(_ id: PingID, from node: NodeID, now: MonotonicInstant) -> Bool {
        guard var entry = entries[id], entry.results[node] == nil else { return false }
        entry.results[node] = now - entry.sentAt
        entries[id] = entry
        return entry.isComplete
    }

    /// Waits only for `members` from now on; returns the pings that are complete then, ascending.
    mutating func restrictExpected(to members: [NodeID]) -> [PingID] {
        var complete: [PingID] = []
        for id in ids {
            guard var entry = entries[id] else { continue }
            entry.expected.formIntersection(members)
            entries[id] = entry
            if entry.isComplete { complete.append(id) }
        }
        return complete
    }

    /// The pings whose deadline is at or before `now`, ascending.
    func expired(at now: MonotonicInstant) -> [PingID] {
        ids.filter { entries[$0].map { $0.deadline <= now } ?? false }
    }

    /// Ends ping `id`: every node expected or heard from, with its round trip if it answered.
    mutating func finish(_ id: PingID, timeout: Duration) -> PingResult? {
        guard let entry = entries.removeValue(forKey: id) else { return nil }
        let nodes = entry.expected.union(entry.results.keys).sorted()
        return PingResult(timeout: timeout, nodes: nodes.map { PingResult.Node(node: $0, roundTrip: entry.results[$0]) })
    }

    /// Ends every ping; returns their ids, ascending.
    mutating func removeAll() -> [PingID] {
        let all = ids
        entries.removeAll()
        return all
    }
}
