// Every timer and constant of the protocol in one place, with the spec's defaults (§4.15).

/// The protocol's timers and constants (spec §4.15). Derived values (`tokenRetransmit`, `hold`,
/// `consensus`, the pause timer) are computed from the adjusted token timeout unless set.
public struct TotemSettings: Sendable, Equatable {
    /// Token loss timeout as configured, before the per-node coefficient.
    public var token: Duration = .milliseconds(3000)
    /// Added to `token` per node beyond two when the node list has three or more nodes.
    public var tokenCoefficient: Duration = .milliseconds(650)
    /// Number of nodes in the configured node list (0 when unknown): used with the coefficient.
    public var configuredNodeCount = 0
    /// Token retransmissions expected before the loss timer fires; derives `tokenRetransmit`.
    public var tokenRetransmitsBeforeLoss = 4
    /// Explicit token retransmit period; `nil` derives `token / (retransmits + 0.2)`.
    public var tokenRetransmitOverride: Duration? = nil
    /// Explicit hold period; `nil` derives `tokenRetransmit · 0.8 − 10 ms`.
    public var holdOverride: Duration? = nil
    /// JOIN resend period while gathering.
    public var join: Duration = .milliseconds(50)
    /// Explicit consensus timeout; `nil` derives `1.2 · token`.
    public var consensusOverride: Duration? = nil
    /// MERGE_DETECT period of an idle ring's representative.
    public var merge: Duration = .milliseconds(200)
    /// Accepted tokens with our aru pinned before we conclude we cannot receive.
    public var failToReceiveConstant = 2500
    /// Idle token visits before the representative holds the token.
    public var sequenceUnchangedConstant = 30
    /// Most messages all nodes together may broadcast in one rotation.
    public var windowSize = 50
    /// Most messages one node may broadcast in one token visit.
    public var maxMessages = 17
    /// Token visits a gap must persist before it is requested (absorbs reordering, pitfall P1).
    public var missCountConstant = 5
    /// Forward a held token at once when retransmissions are pending (corosync default: off).
    public var cancelHoldOnRetransmit = false
    /// Largest SRP frame payload (the packing layer's frame, including its 8-byte header).
    public var frameCapacityBytes = 1_300
    /// Largest application message.
    public var maxMessageBytes = 1 << 20
    /// Most application bytes queued and not yet sequenced before `submit` answers "try again".
    public var maxPendingBytes = 8 << 20
    /// Ours: after an ICMP report that nothing listens at the successor, a liveness probe is sent
    /// every `livenessProbeInterval`, `livenessProbeAttempts` times; no authenticated reply by
    /// then, and the successor is failed. 3 x 40 ms: a crashed daemon is still gone from the
    /// ring well under a second after it crashed; a live one has 120 ms to answer.
    public var livenessProbeInterval: Duration = .milliseconds(40)
    public var livenessProbeAttempts = 3

    /// The sequence number every new ring counts from (spec §1.3: 0). Internal: only tests
    /// move it, to run whole rings across the 2^32 wrap (spec §8 T32).
    var ringSequenceOrigin = SequenceNumber.zero

    public init() {}

    /// Small, proportionally scaled timers for simulation (spec §4.15: token 300, retransmit 71,
    /// hold 47, join 10, consensus 360, merge 40).
    public static var simulation: TotemSettings {
        var settings = TotemSettings()
        settings.token = .milliseconds(300)
        settings.tokenCoefficient = .zero
        settings.join = .milliseconds(10)
        settings.merge = .milliseconds(40)
        return settings
    }

    /// The token timeout after the coefficient: `token + (n − 2) · coefficient` for n ≥ 3.
    public var effectiveToken: Duration {
        guard configuredNodeCount >= 3 else { return token }
        return token + tokenCoefficient * (configuredNodeCount - 2)
    }

    public var tokenRetransmit: Duration {
        if let tokenRetransmitOverride { return tokenRetransmitOverride }
        let nanoseconds = Double(effectiveToken.totalNanoseconds) / (Double(tokenRetransmitsBeforeLoss) + 0.2)
        return .nanoseconds(Int64(nanoseconds))
    }

    public var hold: Duration {
        if let holdOverride { return holdOverride }
        let derived = Double(tokenRetransmit.totalNanoseconds) * 0.8 - 10_000_000
        return .nanoseconds(max(Int64(derived), 14_000_000))
    }

    public var consensus: Duration {
        if let consensusOverride { return consensusOverride }
        return .nanoseconds(effectiveToken.totalNanoseconds * 6 / 5)
    }

    /// Period of the pause detector (token / 5).
    public var pauseCheck: Duration { .nanoseconds(effectiveToken.totalNanoseconds / 5) }

    /// A JOIN arriving more than this after the last pause check means we were descheduled.
    public var pauseThreshold: Duration { .nanoseconds(effectiveToken.totalNanoseconds / 2) }

    /// The problems with these settings, empty when they are usable (spec §4.5, P17).
    public func validate() -> [String] {
        var problems: [String] = []
        if token < .milliseconds(30) { problems.append("token must be at least 30 ms") }
        if join < .milliseconds(1) { problems.append("join must be at least 1 ms") }
        if consensus < join { problems.append("consensus (\(consensus)) must not be shorter than join (\(join))") }
        if tokenRetransmit >= effectiveToken { problems.append("token_retransmit must be shorter than token") }
        if hold >= tokenRetransmit { problems.append("hold must be shorter than token_retransmit") }
        if windowSize < 1 || maxMessages < 1 { problems.append("window_size and max_messages must be at least 1") }
        if maxMessages > windowSize { problems.append("max_messages must not exceed window_size") }
        if frameCapacityBytes < 64 || frameCapacityBytes > 65_535 {
            problems.append("frame capacity must be 64 to 65535 bytes")
        }
        if missCountConstant < 0 || sequenceUnchangedConstant < 1 || failToReceiveConstant < 1 {
            problems.append("miss_count_const, seqno_unchanged_const and fail_recv_const must be positive")
        }
        return problems
    }
}
