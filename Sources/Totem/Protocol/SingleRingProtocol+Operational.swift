// OPERATIONAL ordering (spec §3): the ORF token, multicast receipt, flow control,
// retransmission requests, delivery and garbage collection. RECOVERY reuses it on its own queues.

extension SingleRingProtocol {
    // MARK: Token receipt (spec §3.3)

    mutating func handle(_ received: Token, now: MonotonicInstant) {
        if tokenDiscard { return }
        // Ours: a token of another ring is dropped before it can touch the idle bookkeeping
        // below (corosync updates merge-detect and hold state for foreign tokens too).
        guard received.ringID == ringID else { return }
        var token = received

        // Idle bookkeeping, also for duplicates (spec §3.3).
        if token.sequence == lastSeenTokenSeq {
            if !mergeDetectArmed {
                mergeDetectArmed = true
                arm(.mergeDetect, after: settings.merge, now: now)
            }
            sequenceUnchangedCount += 1
        } else {
            if mergeDetectArmed {
                mergeDetectArmed = false
                cancel(.mergeDetect)
            }
            cancel(.tokenHold)
            sequenceUnchangedCount = 0
        }
        lastSeenTokenSeq = token.sequence

        let unchangedLimit = settings.sequenceUnchangedConstant
        tokenHeld = isRepresentative ? sequenceUnchangedCount > unchangedLimit : sequenceUnchangedCount >= unchangedLimit
        var forward = !(isRepresentative && tokenHeld)

        // A retransmitted copy of a token we already processed.
        guard lastTokenSequence.serialLessThan(token.tokenSequence) else { return }
        statistics.tokensAccepted += 1

        if state == .operational { freeMessages(tokenAru: token.aru) }
        let previousTokenAru = lastTokenAru
        lastTokenAru = token.aru
        if state == .operational {
            safeDeliveryBound = SequenceNumber.serialMin(token.aru, previousTokenAru)
        }

        var allowed = flowControlAllowance(token)
        let retransmitted = serveAndRequestRetransmissions(&token, allowed: &allowed)
        if settings.cancelHoldOnRetransmit && tokenHeld && (!token.retransmitRequests.isEmpty || retransmitted > 0) {
            tokenHeld = false
            forward = true
        }
        limitToWindow(token, allowed: &allowed)
        let originated = originate(&token, allowed: allowed, now: now)

        // Each node's contribution is replaced, not accumulated, every rotation (spec §3.4, P18).
        let transmitted = UInt32(retransmitted + originated)
        token.flowControlCount = token.flowControlCount &+ transmitted &- lastVisitTransmitCount
        token.backlog = token.backlog &+ currentBacklog &- previousBacklog
        lastVisitTransmitCount = transmitted
        previousBacklog = currentBacklog

        updateTokenAru(&token)
        if token.aru == previousTokenAru && token.aruSetter != nil {
            aruUnchangedCount += 1
        } else {
            aruUnchangedCount = 0
        }
        if aruUnchangedCount > settings.failToReceiveConstant && token.aruSetter == nodeID {
            // FAILED TO RECEIVE (spec §3.7): we keep pinning the aru; evict ourselves.
            statistics.failedToReceive += 1
            aruUnchangedCount = 0
            var sets = membershipSets
            sets.failed.insert(nodeID)
            enterGather(with: sets, because: .failedToReceive, now: now)
            gather.failedToReceive = true
            return
        }

        lastTokenSequence = token.tokenSequence
        token.tokenSequence &+= 1
        token.sender = nodeID
        if state == .recovery {
            recoveryTokenLogic(&token, now: now)
        }
        sendToken(.token(token), forward: forward)
        if state == .operational {
            deliverInOrder(upTo: highSeqReceived)
        }
        arm(.tokenLoss, after: settings.effectiveToken, now: now)
        arm(.tokenRetransmit, after: settings.tokenRetransmit, now: now)
        if isRepresentative && tokenHeld && !forward {
            arm(.tokenHold, after: settings.hold, now: now)
        }
    }

    // MARK: Flow control (spec §3.4)

    /// How many messages this node may broadcast on this visit.
    mutating func flowControlAllowance(_ token: Token) -> Int {
        let windowSize = settings.windowSize
        var allowed = min(settings.maxMessages, max(0, windowSize - Int(token.flowControlCount)))
        let queued = if case .recovery(let recovery) = ringState { recovery.pendingRetransmissions } else { packer.estimatedFrameCount }
        currentBacklog = UInt32(clamping: queued)
        // Backlog as it will be after our update; computed signed so a corrupt field cannot
        // wrap into a huge share (pitfall P18).
        let denominator = Int64(token.backlog) + Int64(currentBacklog) - Int64(previousBacklog)
        if denominator > 0 {
            let share = Int64(windowSize) * Int64(previousBacklog) / denominator
            if share > 0 && Int64(allowed) > share { allowed = Int(share) }
        }
        return allowed
    }

    /// Never let `token.seq` run a whole sort-queue window ahead of what was released (§3.4).
    func limitToWindow(_ token: Token, allowed: inout Int) {
        let room = SortQueue.capacity - allowed - settings.windowSize
        guard room > 0 else {
            allowed = 0
            return
        }
        let limit = lastReleased.advanced(by: UInt32(room))
        if limit < token.sequence { allowed = 0 }
    }

    // MARK: Retransmission (spec §3.5)

    /// Serves requests we can answer, then asks for what we miss. Returns the number served.
    mutating func serveAndRequestRetransmissions(_ token: inout Token, allowed: inout Int) -> Int {
        let inRecovery = state == .recovery
        var served = 0
        var index = 0
        while served < allowed && index < token.retransmitRequests.count {
            let request = token.retransmitRequests[index]
            let stored = inRecovery ? recoveryQueue.message(at: request.sequence) : regularQueue.message(at: request.sequence)
            if request.ringID == ringID, let stored {
                output.append(.multicast(.multicast(stored)))
                token.retransmitRequests.remove(at: index)
                served += 1
            } else {
                index += 1
            }
        }
        allowed -= served
        statistics.retransmissionsServed += served

        var sequence = aru.next
        while sequence <= token.sequence && token.retransmitRequests.count < WireLimits.maxRetransmitRequests {
            let queueInRange = inRecovery ? recoveryQueue.inRange(sequence) : regularQueue.inRange(sequence)
            if !queueInRange { break }
            let held = inRecovery ? recoveryQueue.contains(sequence) : regularQueue.contains(sequence)
            if !held {
                let misses = inRecovery ? recoveryQueue.incrementMissCount(sequence) : regularQueue.incrementMissCount(sequence)
                if misses >= settings.missCountConstant {
                    let request = RetransmitRequest(ringID: ringID, sequence: sequence)
                    if !token.retransmitRequests.contains(request) {
                        token.retransmitRequests.append(request)
                        statistics.retransmitRequestsMade += 1
                    }
                }
            }
            sequence = sequence.next
        }
        return served
    }

    // MARK: Originating (spec §3.6)

    /// Sequences and multicasts up to `allowed` new messages. Returns how many.
    mutating func originate(_ token: inout Token, allowed: Int, now: MonotonicInstant) -> Int {
        let inRecovery = state == .recovery
        if inRecovery { arm(.tokenRetransmit, after: settings.tokenRetransmit, now: now) }
        guard state == .operational || inRecovery else { return 0 }
        var count = 0
        while count < allowed {
            var message: DataMessage
            if inRecovery {
                guard let old = recovery.takeRetransmission() else { break }
                message = old
            } else {
                guard let frame = packer.nextFrame() else { break }
                message = DataMessage(
                    sender: nodeID, ringID: ringID, sequence: .zero, originator: nodeID,
                    delivery: frame.delivery, content: .frame(frame.bytes))
            }
            token.sequence = token.sequence.next
            message.sequence = token.sequence
            message.ringID = ringID
            if inRecovery {
                recoveryQueue.add(message, at: token.sequence)
            } else {
                regularQueue.add(message, at: token.sequence)
            }
            output.append(.multicast(.multicast(message)))
            highSeqReceived = token.sequence
            count += 1
        }
        if inRecovery { recovery.compactRetransmitQueue() }
        statistics.framesOriginated += count
        updateAru()
        return count
    }

    /// Advances `aru` over every message held contiguously (spec §3.6; never capped, e48ddf99).
    mutating func updateAru() {
        let inRecovery = state == .recovery
        while aru < highSeqReceived {
            let next = aru.next
            let held = inRecovery ? recoveryQueue.contains(next) : regularQueue.contains(next)
            guard held else { break }
            aru = next
        }
    }

    /// Lowers the ring-wide aru to ours, or raises it if we were the one who lowered it (§3.7).
    func updateTokenAru(_ token: inout Token) {
        if aru < token.aru || token.aruSetter == nodeID || token.aruSetter == nil {
            token.aru = aru
            token.aruSetter = token.aru == token.sequence ? nil : nodeID
        }
    }

    // MARK: Garbage collection (spec §3.8)

    /// Frees messages every member holds (aru on two consecutive rotations) that we delivered.
    mutating func freeMessages(tokenAru: SequenceNumber) {
        let releaseTo = SequenceNumber.serialMin(SequenceNumber.serialMin(tokenAru, lastTokenAru), highDelivered)
        if releaseTo <= lastReleased { return }
        regularQueue.release(through: releaseTo)
        lastReleased = releaseTo
    }

    // MARK: Multicast receipt (spec §3.11)

    mutating func handle(_ message: DataMessage, now: MonotonicInstant) {
        guard message.ringID == ringID else {
            noteForeignRing(sender: message.sender, ring: message.ringID, reason: .foreignMessage, now: now)
            return
        }
        if message.isEncapsulated {
            // Recovery traffic belongs to the recovery queue, and only while recovering.
            guard state == .recovery else { return }
            if recoveryQueue.inRange(message.sequence) && !recoveryQueue.contains(message.sequence) {
                recoveryQueue.add(message, at: message.sequence)
                if highSeqReceived < message.sequence { highSeqReceived = message.sequence }
            }
            updateAru()
            return
        }
        // Ours: a regular message is stored only in the queue of the ring it belongs to. After a
        // failed recovery `ringID` names the failed new ring while `regularQueue` still holds the
        // old ring's messages; a new-ring message must not land in an old ring's gap (§3.11 says
        // corosync writes it there).
        guard state == .operational || state == .gather, ringID == oldRingID else { return }
        if regularQueue.inRange(message.sequence) && !regularQueue.contains(message.sequence) {
            regularQueue.add(message, at: message.sequence)
            if highSeqReceived < message.sequence { highSeqReceived = message.sequence }
        }
        updateAru()
        if state == .operational {
            deliverInOrder(upTo: highSeqReceived)
        }
    }

    /// A message or merge detect from another ring: merge with its sender (spec §4.12).
    /// - Parameter ring: the ring the packet belongs to.
    mutating func noteForeignRing(sender: NodeID, ring: RingID, reason: TransitionReason, now: MonotonicInstant) {
        switch state {
        case .operational:
            // Ours: a packet of an older ring from a member of our ring is stale (delayed, or
            // replayed by an attacker holding a valid authentication code): the sender has
            // installed our ring since, so there is nothing to merge. Like the spec's rule for
            // stale JOINs (§4.4), it must not pull the ring into GATHER.
            if members.contains(sender) && ring.sequence < ringID.sequence { return }
            var sets = membershipSets
            sets.processors.insert(sender)
            enterGather(with: sets, because: reason, now: now)
        case .gather:
            var sets = gather.sets
            if !sets.processors.contains(sender) {
                sets.processors.insert(sender)
                enterGather(with: sets, because: reason, now: now)
            }
        case .commit, .recovery:
            break
        }
    }

    mutating func handle(_ mergeDetect: MergeDetect, now: MonotonicInstant) {
        guard mergeDetect.ringID != ringID else { return }
        noteForeignRing(sender: mergeDetect.sender, ring: mergeDetect.ringID, reason: .mergeDetected, now: now)
    }

    // MARK: Delivery (spec §3.9)

    /// Delivers regular-queue messages in order up to `end`, stopping at the first gap, and at a
    /// safe message not yet known to be held by every member.
    mutating func deliverInOrder(upTo end: SequenceNumber) {
        while highDelivered < end {
            let next = highDelivered.next
            guard let message = regularQueue.message(at: next) else { return }
            if message.delivery == .safe && safeDeliveryBound < next { return }
            highDelivered = next
            deliverFrame(of: message)
        }
    }

    /// Hands one SRP frame to the reassembler and delivers the messages it completes.
    mutating func deliverFrame(of message: DataMessage) {
        guard case .frame(let bytes) = message.content else { return }
        statistics.framesDelivered += 1
        // One array reused for every frame's completed messages; empty on entry (this is its
        // only writer), emptied again on the way out.
        defer { reassembled.removeAll(keepingCapacity: true) }
        do {
            try reassembler.receive(bytes, from: message.originator, into: &reassembled)
        } catch {
            // Every member delivers the same frames, so every member drops this one alike.
            statistics.malformedFrames += 1
            return
        }
        for payload in reassembled {
            statistics.messagesDelivered += 1
            output.append(.deliver(DeliveredMessage(
                sender: message.originator, payload: payload, ringID: message.ringID, delivery: message.delivery)))
        }
    }

    // MARK: Timers around the token (spec §3.10)

    mutating func handleTokenLossExpiry(now: MonotonicInstant) {
        switch ringState {
        case .operational, .commit:
            enterGather(with: membershipSets, because: .tokenLost, now: now)
        case .gather:
            consensusTimeoutLogic(now: now)
            enterGather(with: gather.sets, because: .tokenLost, now: now)
        case .recovery(let recovery):
            restoreOldRingState(recovery.oldRing)
            enterGather(with: recovery.sets, because: .tokenLost, now: now)
        }
    }

    mutating func handleTokenRetransmitExpiry(now: MonotonicInstant) {
        guard state != .gather else { return }
        resendLastToken()
        arm(.tokenRetransmit, after: settings.tokenRetransmit, now: now)
    }

    mutating func handleTokenHoldExpiry(now: MonotonicInstant) {
        guard state == .operational || state == .recovery else { return }
        guard let lastSentToken, let successor else { return }
        holdsUnsentToken = false
        output.append(.unicast(lastSentToken, to: successor))
    }

    /// Ours: a message submitted at the representative while it holds an unsent token. The held
    /// token is visited again (flow control, origination, aru) and sent on at once, carrying the
    /// message, instead of going round empty first. Nobody has seen this token: its token
    /// sequence is new, so the successor accepts it as the next visit.
    mutating func revisitHeldToken(now: MonotonicInstant) {
        guard case .token(var token) = lastSentToken else { return }
        tokenHeld = false
        sequenceUnchangedCount = 0
        cancel(.tokenHold)
        var allowed = flowControlAllowance(token)
        limitToWindow(token, allowed: &allowed)
        let originated = UInt32(originate(&token, allowed: allowed, now: now))
        token.flowControlCount = token.flowControlCount &+ originated
        lastVisitTransmitCount = lastVisitTransmitCount &+ originated
        updateTokenAru(&token)
        sendToken(.token(token))
        deliverInOrder(upTo: highSeqReceived)
        arm(.tokenLoss, after: settings.effectiveToken, now: now)
        arm(.tokenRetransmit, after: settings.tokenRetransmit, now: now)
    }

    mutating func handleMergeDetectExpiry(now: MonotonicInstant) {
        mergeDetectArmed = false
        guard state == .operational, isRepresentative else { return }
        output.append(.multicast(.mergeDetect(MergeDetect(sender: nodeID, ringID: ringID))))
    }

    mutating func handle(_ cancel: TokenHoldCancel, now: MonotonicInstant) {
        guard cancel.ringID == ringID else { return }
        sequenceUnchangedCount = 0
        if isRepresentative && state != .gather {
            resendLastToken()
            arm(.tokenRetransmit, after: settings.tokenRetransmit, now: now)
        }
    }
}

extension UInt32 {
    /// Serial "less than" for token sequence numbers (spec §1.3).
    func serialLessThan(_ other: UInt32) -> Bool { Int32(bitPattern: self &- other) < 0 }
}
