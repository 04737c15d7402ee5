// Refuses authentic datagrams that were recorded and sent again: per sender, the boot epoch it
// proved it is in now and a window of the counters seen. Pure: the caller passes the time, sends
// the challenges it returns and hands it their answers. Does not authenticate (PacketAuthenticator
// does, and reads the stamp this type checks) or decode.

/// The freshness check every authenticated datagram passes before it is decoded (docs/wire-format.md).
///
/// Authentication proves who built a datagram, not when: a datagram recorded on the network stays
/// authentic forever. Each datagram is stamped (`PacketAuthenticator.Stamp`) with the sender's
/// boot epoch (random, new at every start), a counter that increases by one per datagram, and the
/// node it was sealed for. A receiver accepts a datagram only when:
///
/// 1. it is for this node or for every node (`destination` 0 or ours), so a unicast recorded on
///    its way to one node is no use at another;
/// 2. its epoch is the one the sender *proved* it is in now: an unknown epoch (the first datagram
///    of a sender, or of a sender that restarted, or one replayed from an earlier life) is held
///    back, and the sender is challenged: sent a liveness probe with a nonce never used before,
///    which only the live sender can answer (the answer is authenticated, and it echoes the
///    nonce). Its answer's stamp becomes the sender's epoch and counter; a dead sender never
///    answers, so its recorded datagrams are never accepted;
/// 3. its counter was not seen before: above the highest seen, or at most `windowSize` below it,
///    not yet seen, and arriving within `lateArrivalLimit` of the datagram that raised the
///    highest (a network reorders within milliseconds; a datagram that turns up later is
///    treated as lost, which the protocol recovers from anyway).
///
/// Datagrams the sender sent before it answered a challenge are refused (rule 3 starts from the
/// answer), so what triggered the challenge is dropped rather than held: the protocol sends again
/// (a JOIN every `join` timeout, a token on retransmission), and its next datagram is accepted.
/// Challenges are sent at most once per `challengeInterval` per sender, so a flood of replays
/// costs one small datagram to the sender every interval, and no state grows with it: one entry
/// per sender (at most `maximumSenders`).
public struct ReplayGuard: Sendable {
    /// How far below the highest counter seen a datagram may still arrive (reordering).
    public static let windowSize = 128
    /// How long after the datagram that raised the highest counter one below it may arrive.
    public static let lateArrivalLimit = Duration.seconds(1)
    /// How often a sender with an unproved epoch is challenged at most.
    public static let challengeInterval = Duration.milliseconds(100)
    /// Senders tracked at most (authentic senders only; a cluster has at most 32 nodes).
    public static let maximumSenders = 4 * WireLimits.maxNodes

    /// Why a datagram was refused.
    public enum Refusal: String, Sendable, CaseIterable {
        /// Sealed for another node.
        case misaddressed
        /// Its sender has not proved the epoch it carries (yet): a replay from an earlier life,
        /// or the first datagrams of a sender that just started, which it sends again.
        case unprovedEpoch = "unproved_epoch"
        /// Its counter was seen before.
        case duplicate
        /// Its counter is too far below the highest seen, or it came too late.
        case stale
    }

    /// What to do with a datagram.
    public enum Verdict: Sendable, Equatable {
        /// Fresh: decode it.
        case accept
        /// Drop it; with `challenge`, also send the sender a liveness probe with that nonce.
        case refuse(Refusal, challenge: UInt64?)
    }

    /// What is known of one sender.
    struct Sender {
        /// The epoch the sender proved, if it did.
        var epoch: UInt32?
        var highest: UInt64 = 0
        /// Bit `i` set: counter `highest - i` was seen.
        var seen: UInt128 = 0
        var highestAt = MonotonicInstant.zero
        /// The open challenge and when it was sent.
        var challenge: (nonce: UInt64, sentAt: MonotonicInstant)?

        /// Records `counter` of the proved epoch, or says why it is refused (rule 3).
        mutating func record(_ counter: UInt64, now: MonotonicInstant) -> Refusal? {
            let distance = Int64(bitPattern: counter &- highest)
            if distance > 0 {
                seen = distance >= ReplayGuard.windowSize ? 1 : seen << UInt128(distance) | 1
                highest = counter
                highestAt = now
                return nil
            }
            guard distance > -Int64(ReplayGuard.windowSize), now - highestAt <= ReplayGuard.lateArrivalLimit else {
                return .stale
            }
            let bit = UInt128(1) << UInt128(-distance)
            guard seen & bit == 0 else { return .duplicate }
            seen |= bit
            return nil
        }
    }

    private let node: UInt32
    private var senders: [UInt32: Sender] = [:]
    private var nextNonce: UInt64

    /// Counters for status output.
    public private(set) var refused: [Refusal: UInt64] = [:]
    public private(set) var challengesSent: UInt64 = 0
    public private(set) var epochsProved: UInt64 = 0

    /// A guard for node `node`; `nonceSeed` is a random value (from /dev/urandom) its challenge
    /// nonces start from, so that they differ from those of its earlier lives.
    public init(node: NodeID, nonceSeed: UInt64) {
        self.node = node.rawValue
        nextNonce = nonceSeed
    }

    /// Checks an authentic datagram's stamp (its sealer is the sender checked). Liveness
    /// replies go to `answer` first.
    public mutating func check(_ stamp: PacketAuthenticator.Stamp, now: MonotonicInstant) -> Verdict {
        let sender = stamp.sealer
        guard isAddressedHere(stamp) else { return refuse(.misaddressed) }
        guard var entry = senders[sender] ?? admitSender() else { return refuse(.unprovedEpoch) }
        defer { senders[sender] = entry }
        guard entry.epoch == stamp.epoch else {
            let challenge: UInt64?
            if let open = entry.challenge, now - open.sentAt < Self.challengeInterval {
                challenge = nil
            } else {
                challenge = nextNonce
                nextNonce &+= 1
                entry.challenge = (challenge!, now)
                challengesSent &+= 1
            }
            return refuse(.unprovedEpoch, challenge: challenge)
        }
        if let refusal = entry.record(stamp.counter, now: now) { return refuse(refusal) }
        return .accept
    }

    /// Whether a datagram was sealed for this node or for every node. Liveness probes are
    /// answered after this check alone: a challenge must be answerable by a node that has not
    /// proved its own epoch to us yet, and answering a replayed probe costs one datagram to a
    /// configured node, which ignores it.
    public func isAddressedHere(_ stamp: PacketAuthenticator.Stamp) -> Bool {
        stamp.destination == 0 || stamp.destination == node
    }

    /// A liveness reply carrying `nonce`: if it answers our open challenge to its sealer, the
    /// epoch and counter of its stamp are the sealer's now, and every earlier datagram of it is
    /// refused. Returns whether it was such an answer (then it is consumed: not for the protocol).
    public mutating func answer(nonce: UInt64, stamp: PacketAuthenticator.Stamp, now: MonotonicInstant) -> Bool {
        let sender = stamp.sealer
        guard stamp.destination == node, var entry = senders[sender], let open = entry.challenge,
              open.nonce == nonce else { return false }
        entry.challenge = nil
        if entry.epoch == stamp.epoch {
            // The challenge was for a datagram of another epoch (a replay from an earlier life):
            // the sender is still in the epoch it proved; its window stays as it is.
            _ = entry.record(stamp.counter, now: now)
        } else {
            entry.epoch = stamp.epoch
            entry.highest = stamp.counter
            entry.seen = ~0  // everything the sender sent before its answer counts as seen
            entry.highestAt = now
            epochsProved &+= 1
        }
        senders[sender] = entry
        return true
    }

    /// The epoch `sender` proved, if it did (for status and tests).
    public func provedEpoch(of sender: UInt32) -> UInt32? { senders[sender]?.epoch }

    /// Room for a sender not seen before, or nil when the table is full (the datagram is
    /// refused; a cluster never has that many).
    private func admitSender() -> Sender? {
        senders.count < Self.maximumSenders ? Sender() : nil
    }

    private mutating func refuse(_ refusal: Refusal, challenge: UInt64? = nil) -> Verdict {
        refused[refusal, default: 0] &+= 1
        return .refuse(refusal, challenge: challenge)
    }
}
