// RECOVERY (spec §4.8-§4.10): old-ring messages are re-broadcast in the new ring until every
// member holds them; then the new ring is installed with a transitional and a regular configuration.

extension SingleRingProtocol {
    // MARK: Entering RECOVERY (spec §4.8)

    mutating func enterRecovery(_ received: CommitToken, from commit: RingState.Commit, now: MonotonicInstant) {
        var commitToken = received
        let origin = settings.ringSequenceOrigin
        recoveryQueue.reset(head: origin.next)

        // The second rotation.
        commitToken.tokenSequence &+= 1
        commitToken.sender = nodeID
        sendToken(.commitToken(commitToken))
        lastTokenSequence = 0 &- 1

        func entry(of member: NodeID) -> CommitTokenEntry? {
            guard let index = commitToken.members.firstIndex(of: member) else { return nil }
            return commitToken.entries[index]
        }
        let transitionalMembers = commit.newMembers.filter { member in
            members.contains(member) && entry(of: member)?.oldRingID == oldRingID
        }
        var transitionalHighDelivered = highDelivered
        for member in transitionalMembers {
            if let delivered = entry(of: member)?.highDelivered, transitionalHighDelivered < delivered {
                transitionalHighDelivered = delivered
            }
        }
        var retransmitQueue: [DataMessage] = []
        let needRecovery = transitionalMembers.contains { entry(of: $0)?.receivedFlag == false }
        if needRecovery {
            var lowestAru = commit.oldRing.highSeqReceived
            for member in transitionalMembers {
                if let memberAru = entry(of: member)?.aru, memberAru < lowestAru { lowestAru = memberAru }
            }
            retransmitQueue = oldMessagesForRecovery(after: lowestAru, through: commit.oldRing.highSeqReceived)
        }

        aru = origin
        highSeqReceived = origin
        lastReleased = origin
        lastTokenAru = origin
        aruUnchangedCount = 0
        sequenceUnchangedCount = 0
        ringState = .recovery(RingState.Recovery(
            sets: commit.sets, newMembers: commit.newMembers, oldRing: commit.oldRing, receivedFlag: commit.receivedFlag,
            transitionalMembers: transitionalMembers, deliverMembers: transitionalMembers,
            transitionalHighDelivered: transitionalHighDelivered, retransmitQueue: retransmitQueue,
            installSequence: origin))
        output.append(.stateChanged(to: .recovery, reason: .commitTokenCompleted))
        arm(.tokenLoss, after: settings.effectiveToken, now: now)
        arm(.tokenRetransmit, after: settings.tokenRetransmit, now: now)
    }

    /// Wraps every old-ring message above `lowestAru` up to `highest` that we hold, for
    /// re-broadcast (§4.8). The scan covers only the regular queue's window, so a member far
    /// behind (pitfall P7) cannot make it unbounded.
    func oldMessagesForRecovery(after lowestAru: SequenceNumber, through highest: SequenceNumber) -> [DataMessage] {
        var messages: [DataMessage] = []
        var sequence = lowestAru.next
        if sequence < regularQueue.head { sequence = regularQueue.head }
        while sequence <= highest && regularQueue.inRange(sequence) {
            if let old = regularQueue.message(at: sequence) {
                messages.append(DataMessage(
                    sender: nodeID, ringID: ringID, sequence: .zero, originator: nodeID,
                    delivery: .agreed, content: .encapsulated(old)))
            }
            sequence = sequence.next
        }
        return messages
    }

    /// The representative's first ORF token of a new ring (spec §4.9).
    mutating func originateInitialToken(now: MonotonicInstant) {
        let hasRetransmissions = recovery.hasRetransmissions
        // The aru just below the ring's first sequence is serially below every member's aru,
        // so only the representative (named as setter) replaces it when the token returns.
        let origin = settings.ringSequenceOrigin
        let token = Token(
            sender: nodeID, ringID: ringID, tokenSequence: 0, sequence: origin,
            aru: origin.advanced(by: UInt32.max), aruSetter: nodeID, flowControlCount: 0, backlog: 0,
            retransmitFlag: hasRetransmissions, retransmitRequests: [])
        recovery.setRetransmitFlag = hasRetransmissions
        recovery.originatedOrfToken = true
        sendToken(.token(token))
        arm(.tokenLoss, after: settings.effectiveToken, now: now)
        arm(.tokenRetransmit, after: settings.tokenRetransmit, now: now)
    }

    // MARK: Token in RECOVERY (spec §4.9)

    mutating func recoveryTokenLogic(_ token: inout Token, now: MonotonicInstant) {
        if recovery.noteTokenVisit(&token, aru: aru) {
            enterOperational(now: now)
        }
    }

    // MARK: Installing the new ring (spec §4.10)

    mutating func enterOperational(now: MonotonicInstant) {
        let recovered = recovery
        var oldRingHigh = recovered.oldRing.highSeqReceived

        // 1. Unwrap recovered messages into the old ring's queue.
        let origin = settings.ringSequenceOrigin
        var sequence = origin.next
        while sequence <= aru {
            if let wrapper = recoveryQueue.message(at: sequence), case .encapsulated(let inner) = wrapper.content,
               inner.ringID == oldRingID, regularQueue.inRange(inner.sequence), !regularQueue.contains(inner.sequence) {
                regularQueue.add(inner, at: inner.sequence)
                if oldRingHigh < inner.sequence { oldRingHigh = inner.sequence }
            }
            sequence = sequence.next
        }

        // 2. Finish the old regular configuration: deliver up to the first gap. Ours: a safe
        //    message is delivered here only if some transitional member already delivered it in
        //    the old configuration (so it was safe there). Every transitional member computes
        //    this from the same commit token, so they agree on what was delivered where (E8);
        //    the spec's rule, each node's own token aru, differs between nodes.
        var contiguous = highDelivered
        while contiguous < oldRingHigh && regularQueue.contains(contiguous.next) {
            contiguous = contiguous.next
        }
        while highDelivered < contiguous {
            let next = highDelivered.next
            guard let message = regularQueue.message(at: next) else { break }
            if message.delivery == .safe && recovered.transitionalHighDelivered < next { break }
            highDelivered = next
            deliverFrame(of: message)
        }
        let transitional = NodeSet(recovered.transitionalMembers)
        let left = members.filter { !transitional.contains($0) }
        let joined = recovered.newMembers.filter { !transitional.contains($0) }
        output.append(.configurationChanged(ConfigurationChange(
            kind: .transitional, ringID: ringID, members: recovered.transitionalMembers, left: left, joined: [],
            leftGracefully: left.filter { recovered.sets.leaving.contains($0) })))

        // 3. The rest of the old ring. Up to the first gap everything is delivered (every
        //    transitional member holds it); after the gap only messages from transitional
        //    members, since a message after a gap may depend on the missing one (§4.10).
        let deliverFrom = NodeSet(recovered.deliverMembers)
        while highDelivered < oldRingHigh {
            highDelivered = highDelivered.next
            if let message = regularQueue.message(at: highDelivered),
               highDelivered <= contiguous || deliverFrom.contains(message.originator) {
                deliverFrame(of: message)
            }
        }

        // Ours (§5.3): messages straddling the change are discarded by every receiver and sent
        // again whole by their sender, so members of one regular configuration deliver the same.
        reassembler.discardIncomplete()
        packer.restartPartialMessage()
        members = recovered.newMembers
        output.append(.configurationChanged(ConfigurationChange(
            kind: .regular, ringID: ringID, members: members, left: [], joined: joined)))

        // 4. The recovery queue becomes the regular queue; recovery traffic counts as delivered.
        swap(&regularQueue, &recoveryQueue)
        recoveryQueue.reset(head: origin.next)
        lastTokenAru = origin
        var delivered = highSeqReceived
        while delivered > origin && !regularQueue.contains(delivered) { delivered = delivered.advanced(by: UInt32.max) }
        highDelivered = delivered
        if delivered > origin { regularQueue.release(through: delivered) }
        lastReleased = delivered
        safeDeliveryBound = delivered
        ringState = .operational(RingState.Operational())
        oldRingID = ringID
        statistics.ringsInstalled += 1
        output.append(.stateChanged(to: .operational, reason: .recoveryCompleted))
        lastPauseCheck = now
        arm(.pauseCheck, after: settings.pauseCheck, now: now)
    }
}

extension RingState.Recovery {
    /// One accepted token visit in RECOVERY (spec §4.9): sets or clears the token's
    /// retransmit flag and counts the rotations that carried no retransmission.
    /// - Returns: whether the new ring is to be installed now.
    mutating func noteTokenVisit(_ token: inout Token, aru: SequenceNumber) -> Bool {
        if hasRetransmissions {
            if !token.retransmitFlag {
                token.retransmitFlag = true
                setRetransmitFlag = true
            }
        } else if token.retransmitFlag && setRetransmitFlag {
            token.retransmitFlag = false
            setRetransmitFlag = false
        }
        retransmitFlagCount = token.retransmitFlag ? 0 : retransmitFlagCount + 1
        if retransmitFlagCount == 2 { installSequence = token.sequence }
        if retransmitFlagCount >= 2 && !receivedFlag && installSequence <= aru {
            receivedFlag = true
            deliverMembers = transitionalMembers
        }
        if retransmitFlagCount >= 3 && installSequence <= token.aru {
            rotationCounter += 1
        } else {
            rotationCounter = 0
        }
        guard rotationCounter == 2 else { return false }
        rotationCounter = 0
        retransmitFlagCount = 0
        return true
    }
}
