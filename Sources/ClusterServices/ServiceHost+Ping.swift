// The ring `ping`: a request goes round the ring, every member replies through it, and the
// answer gives each member's round trip, or none for those silent past `pingTimeout`.

import Membership
import Totem

extension ServiceHost {
    /// `ping`: submits a request that every member of the ring answers.
    ///
    /// - Parameters:
    ///   - isRunning: Whether the ring node runs.
    ///   - ringMembers: The members of the installed ring (of the one being formed before the first).
    /// - Returns: The id the answer (`answerPing`) will carry, once every member replied, or
    ///   at the timeout, or when those still expected left the ring.
    /// - Throws: `.notInRing` when the node does not run or has no ring.
    public mutating func ping(isRunning: Bool, ringMembers: [NodeID], now: MonotonicInstant,
                              into effects: inout [Effect]) throws(ServiceHostError) -> PingID {
        defer { checkInvariants() }
        guard isRunning, !ringMembers.isEmpty else { throw .notInRing }
        let id = pings.start(expecting: Set(ringMembers), now: now, timeout: Self.pingTimeout)
        armPingTimer(into: &effects)
        submit(RingPing(kind: .request, id: id, origin: localNode).encoded(), now: now, into: &effects)
        return id
    }

    /// A delivered ping message: a request is answered when it comes from its origin (this
    /// node records its own request as its own reply); a reply to one of ours is timed.
    mutating func deliveredPing(_ message: [UInt8], from sender: NodeID, now: MonotonicInstant, into effects: inout [Effect]) {
        let ping: RingPing
        do {
            ping = try RingPing(decoding: message)
        } catch {
            if case .malformed = error { Self.log(.debug, "ignored a malformed ping from \(name(of: sender))", into: &effects) }
            return
        }
        switch ping.kind {
        case .request where ping.origin == localNode:
            recordPingReply(ping.id, from: localNode, now: now, into: &effects)
        case .request where sender == ping.origin:
            submit(RingPing(kind: .reply, id: ping.id, origin: ping.origin).encoded(), now: now, into: &effects)
        case .reply where ping.origin == localNode:
            recordPingReply(ping.id, from: sender, now: now, into: &effects)
        case .request, .reply:
            break
        }
    }

    private mutating func recordPingReply(_ id: PingID, from node: NodeID, now: MonotonicInstant, into effects: inout [Effect]) {
        guard pings.record(id, from: node, now: now) else { return }
        finishPings([id], into: &effects)
    }

    /// Answers the pings `ids` with what they have, and re-arms the timer for the others.
    mutating func finishPings(_ ids: [PingID], into effects: inout [Effect]) {
        guard !ids.isEmpty else { return }
        for id in ids {
            guard let result = pings.finish(id, timeout: Self.pingTimeout) else { continue }
            effects.append(.answerPing(id, .success(result)))
        }
        armPingTimer(into: &effects)
    }

    mutating func pingTimerFired(now: MonotonicInstant, into effects: inout [Effect]) {
        let expired = pings.expired(at: now)
        // A timer that fired early finishes nothing: it is armed again.
        guard !expired.isEmpty else { return armPingTimer(into: &effects) }
        finishPings(expired, into: &effects)
    }

    /// Arms the ping timer for the earliest deadline, or disarms it when no ping waits.
    private func armPingTimer(into effects: inout [Effect]) {
        if let deadline = pings.earliestDeadline {
            effects.append(.armTimer(.ping, at: deadline))
        } else {
            effects.append(.disarmTimer(.ping))
        }
    }
}
