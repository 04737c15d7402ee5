// The Totem single-ring protocol for one node: stored state and the public entry points.
// Pure and deterministic: no I/O, clock, randomness or threads (see Totem.swift). The handlers
// live in one extension file per concern (+Operational, +Gather, +Commit, +Recovery).

/// The Totem single-ring ordering and membership protocol for one node.
///
/// Drive it with `start`, then `receive` (a decoded packet), `timerExpired`, `submit` and `leave`,
/// each with the current time; execute the returned effects in order (see `Effect`).
public struct SingleRingProtocol: Sendable {
    public let nodeID: NodeID
    public let settings: TotemSettings

    // MARK: Life cycle
    var started = false
    /// Set by `leave`: every later input is ignored.
    public internal(set) var hasLeft = false

    // MARK: Membership (spec §4.2)
    /// The membership phase and the data that only means something in it (RingState.swift).
    var ringState = RingState.gather(RingState.Gather(sets: MembershipSets(), consensus: NodeSet()))
    /// The ring this node is in or forming (`myRingId`). Not restored when a recovery fails.
    public internal(set) var ringID: RingID
    /// The last ring this node was operational in (`myOldRingId`); its messages fill `regularQueue`.
    var oldRingID: RingID
    var maxRingSequenceSeen: UInt64
    /// Members of the last installed regular configuration (`myMemb`).
    public internal(set) var members: [NodeID] = []
    /// Where tokens go: the next member in ascending id order, fixed when the commit token passes.
    var successor: NodeID?

    // MARK: Ordering (spec §3.1)
    var regularQueue = SortQueue()
    /// The new ring's messages during RECOVERY; it becomes the regular queue when the ring is
    /// installed, and the old regular queue's storage is reset for the next recovery. Kept here,
    /// not in `RingState.Recovery`, so that its 16,384 slots are allocated once.
    var recoveryQueue = SortQueue()
    var packer: FramePacker
    var reassembler: FragmentReassembler
    /// Scratch for `deliverFrame`: the messages one frame completes. Empty between calls.
    var reassembled: [[UInt8]] = []
    /// All received up to: we hold every message 1...aru of the current ring (`myAru`).
    var aru = SequenceNumber.zero
    var highSeqReceived = SequenceNumber.zero
    var highDelivered = SequenceNumber.zero
    /// The token aru of the previous accepted token (`myLastAru`).
    var lastTokenAru = SequenceNumber.zero
    var lastReleased = SequenceNumber.zero
    /// Safe messages up to here are known to be held by every member (§1.5, §3.9).
    var safeDeliveryBound = SequenceNumber.zero

    // MARK: The token (spec §3.3-§3.10), in OPERATIONAL and RECOVERY; COMMIT resends its token too
    /// Token sequence of the last accepted token (`myTokenSeq`).
    var lastTokenSequence: UInt32 = 0 &- 1
    var aruUnchangedCount = 0
    var sequenceUnchangedCount = 0
    /// `token.seq` of the last token seen, accepted or not (`myLastSeq`).
    var lastSeenTokenSeq = SequenceNumber.zero
    /// Messages this node broadcast on its last visit (`myTrc`).
    var lastVisitTransmitCount: UInt32 = 0
    /// This node's queue length reported on its last visit (`myPbl`) and now (`myCbl`).
    var previousBacklog: UInt32 = 0
    var currentBacklog: UInt32 = 0
    /// True while this node believes the representative holds the token (`myTokenHeld`).
    var tokenHeld = false
    var lastSentToken: Packet?
    /// True while `lastSentToken` is a token this representative holds and has not sent: it
    /// may still take messages submitted here (ours, see `submit`).
    var holdsUnsentToken = false
    var mergeDetectArmed = false
    /// Probes sent by this node; with the ring sequence, makes each probe's nonce new.
    var livenessProbeCount: UInt64 = 0
    var lastPauseCheck = MonotonicInstant.zero

    /// Counters for status output and benchmarks.
    public internal(set) var statistics = Statistics()

    /// Effects of the input being handled; returned and cleared by every entry point.
    var output: [Effect] = []

    /// Creates a node that has not started yet.
    /// - Parameter persistedRingSequence: the last ring sequence this node persisted, or `nil`
    ///   if there is none; the node starts one above it (spec §1.2, corosync 3675dace).
    public init(nodeID: NodeID, settings: TotemSettings, persistedRingSequence: UInt64?) {
        self.nodeID = nodeID
        self.settings = settings
        let sequence = (persistedRingSequence ?? 0) &+ 1
        ringID = RingID(representative: nodeID, sequence: sequence)
        oldRingID = RingID(representative: nodeID, sequence: 0)
        maxRingSequenceSeen = sequence
        packer = FramePacker(frameCapacityBytes: settings.frameCapacityBytes)
        reassembler = FragmentReassembler(maxMessageBytes: settings.maxMessageBytes)
    }

    /// Starts the protocol: enters GATHER (spec §4.14). Input before `start` is ignored.
    public mutating func start(now: MonotonicInstant) -> [Effect] {
        guard !started, !hasLeft else { return [] }
        started = true
        lastPauseCheck = now
        arm(.pauseCheck, after: settings.pauseCheck, now: now)
        enterGather(with: membershipSets, because: .startup, now: now)
        return finishInput()
    }

    /// A decoded packet arrived. The runtime hands over multicast datagrams that were already
    /// queued before a token first (spec §3.3 `receiveFlush`, pitfall P1).
    public mutating func receive(_ packet: Packet, now: MonotonicInstant) -> [Effect] {
        var effects: [Effect] = []
        receive(packet, now: now, into: &effects)
        return effects
    }

    /// `receive(_:now:)` appending the effects to `effects`, so that a runtime handing over
    /// packet after packet reuses one array instead of allocating one per packet.
    public mutating func receive(_ packet: Packet, now: MonotonicInstant, into effects: inout [Effect]) {
        guard started, !hasLeft else { return }
        switch packet {
        case .token(let token): handle(token, now: now)
        case .multicast(let message): handle(message, now: now)
        case .join(let join): handle(join, now: now)
        case .commitToken(let commitToken): handle(commitToken, now: now)
        case .mergeDetect(let mergeDetect): handle(mergeDetect, now: now)
        case .tokenHoldCancel(let cancel): handle(cancel, now: now)
        case .livenessProbe(let probe): handle(probe)
        case .livenessReply(let reply): handleLivenessReply(reply, now: now)
        }
        finishInput(into: &effects)
    }

    /// The network reported that nothing listens at `node`'s address: an ICMP "port
    /// unreachable" for a datagram sent to it, so its daemon is gone while its host is up, or
    /// someone forged the report.
    ///
    /// Ours, not in the spec or in corosync, which notice a crashed member only when the token
    /// timeout and then the consensus timeout have run out (token + consensus: 8 s with
    /// corosync's defaults and three nodes). When `node` is this node's successor in
    /// OPERATIONAL, the token sent to it may be lost for good. ICMP is not authenticated, so the
    /// report alone changes nothing: `node` is sent a liveness probe (with the cluster key, like
    /// every datagram) every `livenessProbeInterval`, `livenessProbeAttempts` times. A live node
    /// answers it and the report is counted as refuted; no answer by the last interval, and the
    /// node enters GATHER at once with `node` already failed, so the other members agree within
    /// one JOIN round. Every other report is ignored; the timeouts still cover every failure this
    /// does not (a host that is down sends no ICMP).
    public mutating func peerUnreachable(_ node: NodeID, now: MonotonicInstant) -> [Effect] {
        guard started, !hasLeft, state == .operational, node != nodeID, node == successor, lastSentToken != nil else { return [] }
        statistics.unreachableReports += 1
        // One question at a time; further reports while it is open add nothing.
        guard livenessCheck == nil else { return [] }
        livenessProbeCount &+= 1
        let nonce = ringID.sequence &<< 32 | (livenessProbeCount & 0xFFFF_FFFF)
        operational.livenessCheck = LivenessCheck(node: node, nonce: nonce, probesSent: 0)
        sendLivenessProbe(now: now)
        return finishInput()
    }

    /// Sends the open check's probe again, or, after the last one, fails the silent successor.
    mutating func handleLivenessCheckExpiry(now: MonotonicInstant) {
        guard let check = livenessCheck else { return }
        guard check.node == successor else {
            operational.livenessCheck = nil
            return
        }
        if check.probesSent < settings.livenessProbeAttempts {
            sendLivenessProbe(now: now)
            return
        }
        operational.livenessCheck = nil
        statistics.successorsUnreachable += 1
        var sets = membershipSets
        sets.failed.insert(check.node)
        enterGather(with: sets, because: .successorUnreachable, now: now)
    }

    mutating func sendLivenessProbe(now: MonotonicInstant) {
        guard var check = livenessCheck else { return }
        check.probesSent += 1
        operational.livenessCheck = check
        output.append(.unicast(.livenessProbe(LivenessProbe(sender: nodeID, nonce: check.nonce)), to: check.node))
        arm(.livenessCheck, after: settings.livenessProbeInterval, now: now)
    }

    /// A member asks whether we are alive: we are. Answered in every state (the asker may be
    /// in OPERATIONAL while we already gather); the transport has checked the key.
    mutating func handle(_ probe: LivenessProbe) {
        guard probe.sender != nodeID else { return }
        output.append(.unicast(.livenessReply(LivenessProbe(sender: nodeID, nonce: probe.nonce)), to: probe.sender))
    }

    /// The answer to our probe: the report was wrong (forged, or about a node that restarted at
    /// once); nothing changes. Answers to other or older probes are ignored.
    mutating func handleLivenessReply(_ reply: LivenessProbe, now: MonotonicInstant) {
        guard let check = livenessCheck, reply.sender == check.node, reply.nonce == check.nonce else { return }
        operational.livenessCheck = nil
        cancel(.livenessCheck)
        statistics.unreachableRefuted += 1
    }

    /// A timer armed by an earlier `armTimer` effect expired.
    public mutating func timerExpired(_ timer: RingTimer, now: MonotonicInstant) -> [Effect] {
        guard started, !hasLeft else { return [] }
        switch timer {
        case .tokenLoss: handleTokenLossExpiry(now: now)
        case .tokenRetransmit: handleTokenRetransmitExpiry(now: now)
        case .tokenHold: handleTokenHoldExpiry(now: now)
        case .join: handleJoinExpiry(now: now)
        case .consensus: handleConsensusExpiry(now: now)
        case .mergeDetect: handleMergeDetectExpiry(now: now)
        case .pauseCheck:
            lastPauseCheck = now
            arm(.pauseCheck, after: settings.pauseCheck, now: now)
        case .livenessCheck: handleLivenessCheckExpiry(now: now)
        }
        return finishInput()
    }

    /// Queues an application message for totally ordered delivery to every member.
    ///
    /// The message is framed (packed with others, or fragmented) when this node next holds the
    /// token in a regular configuration; it stays queued across configuration changes.
    /// - Throws: `SubmitError` when the message is too large, the queue is full, or the node left.
    public mutating func submit(
        _ payload: [UInt8], delivery: DeliveryMode = .agreed, now: MonotonicInstant
    ) throws(SubmitError) -> [Effect] {
        guard !hasLeft else { throw .notRunning }
        guard payload.count <= settings.maxMessageBytes else {
            throw .messageTooLarge(size: payload.count, limit: settings.maxMessageBytes)
        }
        guard packer.pendingBytes + payload.count <= settings.maxPendingBytes else {
            throw .tryAgain(pendingBytes: packer.pendingBytes, limit: settings.maxPendingBytes)
        }
        packer.enqueue(payload, delivery: delivery)
        statistics.messagesSubmitted += 1
        // Ours: the representative holding the token it has not sent yet visits it again with
        // the new message, as if the token had only now arrived; corosync (and the spec)
        // multicast a hold cancel and resend the held token empty, so the message waited a
        // whole rotation.
        if holdsUnsentToken && tokenHeld && isRepresentative && state == .operational && started {
            revisitHeldToken(now: now)
            return finishInput()
        }
        // Spec §3.2, §3.10: wake a held token so the message goes out promptly.
        if tokenHeld && state == .operational && started {
            tokenHeld = false
            output.append(.multicast(.tokenHoldCancel(TokenHoldCancel(sender: nodeID, ringID: ringID))))
        }
        return finishInput()
    }

    /// Leaves the ring gracefully: multicasts a LEAVE and stops (spec §4.13). The others reform
    /// without waiting for a token timeout. Every later input is ignored.
    public mutating func leave(now: MonotonicInstant) -> [Effect] {
        guard started, !hasLeft else { return [] }
        let sets = membershipSets
        var processors = sets.processors
        processors.remove(nodeID)
        var failed = sets.failed
        failed.insert(nodeID)
        let leave = JoinMessage(
            sender: nodeID, ringSequence: ringID.sequence,
            processors: processors.elements, failed: failed.elements, isLeave: true)
        output.append(.multicast(.join(leave)))
        for timer in RingTimer.allCases { output.append(.cancelTimer(timer)) }
        hasLeft = true
        output.append(.stateChanged(to: state, reason: .leaving))
        return finishInput()
    }

    /// Number of application messages queued and not yet framed.
    public var pendingMessageCount: Int { packer.pendingMessageCount }
    /// Bytes of application messages queued and not yet sent (bounded by `maxPendingBytes`).
    public var pendingBytes: Int { packer.pendingBytes }

    /// Checks the invariants and hands the accumulated effects to the caller.
    mutating func finishInput() -> [Effect] {
        var effects: [Effect] = []
        finishInput(into: &effects)
        return effects
    }

    /// `finishInput()` appending to `effects`. An empty `effects` trades buffers with `output`
    /// instead of copying, so both keep their capacity and neither allocates.
    mutating func finishInput(into effects: inout [Effect]) {
        checkInvariants()
        if effects.isEmpty {
            swap(&effects, &output)
        } else {
            effects.append(contentsOf: output)
            output.removeAll(keepingCapacity: true)
        }
    }
}

/// Counters kept by the core, for status output, logs and benchmarks.
public struct Statistics: Sendable, Equatable {
    public var messagesSubmitted = 0
    public var framesOriginated = 0
    public var framesDelivered = 0
    public var messagesDelivered = 0
    public var tokensAccepted = 0
    public var retransmissionsServed = 0
    public var retransmitRequestsMade = 0
    public var tokenRetransmissions = 0
    public var gatherEntries = 0
    public var ringsInstalled = 0
    public var malformedFrames = 0
    public var failedToReceive = 0
    /// ICMP reports about the successor in OPERATIONAL (each is checked with a liveness probe).
    public var unreachableReports = 0
    /// Reports the successor refuted by answering a liveness probe (forged, or stale).
    public var unreachableRefuted = 0
    /// Times the successor was reported unreachable, did not answer the probes, and the ring
    /// re-formed without it.
    public var successorsUnreachable = 0

    public init() {}
}

// MARK: - Small helpers shared by the handlers

extension SingleRingProtocol {
    mutating func arm(_ timer: RingTimer, after duration: Duration, now: MonotonicInstant) {
        output.append(.armTimer(timer, deadline: now + duration))
    }

    mutating func cancel(_ timer: RingTimer) {
        output.append(.cancelTimer(timer))
    }

    var isRepresentative: Bool { ringID.representative == nodeID }

    /// Sends a token (ORF or commit) to the successor and keeps it for retransmission.
    mutating func sendToken(_ token: Packet, forward: Bool = true) {
        lastSentToken = token
        holdsUnsentToken = !forward
        guard forward, let successor else { return }
        output.append(.unicast(token, to: successor))
    }

    /// Resends the last token (token retransmit, hold cancel at the representative).
    mutating func resendLastToken() {
        guard let lastSentToken, let successor else { return }
        holdsUnsentToken = false
        statistics.tokenRetransmissions += 1
        output.append(.unicast(lastSentToken, to: successor))
    }

    /// The member after this node in ascending order, wrapping: the token target (spec §1.4).
    func successor(in ring: [NodeID]) -> NodeID {
        guard let index = ring.firstIndex(of: nodeID) else {
            preconditionFailure("node \(nodeID) not in ring \(ring)")
        }
        return ring[(index + 1) % ring.count]
    }
}
