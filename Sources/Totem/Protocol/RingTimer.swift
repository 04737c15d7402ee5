// The protocol's timers. The core only names them; the runtime keeps the deadlines.

/// A timer of the Totem protocol (spec §3.10, §4.3, §4.5). At most one instance of each is armed
/// at a time: arming an armed timer moves its deadline.
public enum RingTimer: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// No valid token for `token` ms: the ring is considered lost.
    case tokenLoss
    /// Resend the last token sent if it has not come back in `tokenRetransmit` ms.
    case tokenRetransmit
    /// The representative of an idle ring holds the token this long before forwarding it.
    case tokenHold
    /// Resend our JOIN every `join` ms while gathering.
    case join
    /// Give up on processors that have not agreed within `consensus` ms.
    case consensus
    /// The representative of an idle ring multicasts MERGE_DETECT every `merge` ms.
    case mergeDetect
    /// Records "now" every `token / 5` ms so a long process pause can be recognised.
    case pauseCheck
    /// Ours: the next liveness probe to an unreachable-reported successor, or the verdict.
    case livenessCheck

    public var description: String {
        switch self {
        case .tokenLoss: "token-loss"
        case .tokenRetransmit: "token-retransmit"
        case .tokenHold: "token-hold"
        case .join: "join"
        case .consensus: "consensus"
        case .mergeDetect: "merge-detect"
        case .pauseCheck: "pause-check"
        case .livenessCheck: "liveness-check"
        }
    }
}
