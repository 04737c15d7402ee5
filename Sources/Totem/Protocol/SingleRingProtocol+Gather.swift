// GATHER (spec §4.3-§4.5): exchanging JOINs until every live processor agrees on the
// proc and fail sets, and the consensus timeout that gives up on silent processors.

extension SingleRingProtocol {
    /// Enters (or restarts) GATHER (spec §4.3).
    mutating func enterGather(because reason: TransitionReason, now: MonotonicInstant) {
        tokenDiscard = true
        originatedOrfToken = false
        processorSet.insert(nodeID)
        consensusSet = NodeSet()
        consensusSet.insert(nodeID)
        state = .gather
        statistics.gatherEntries += 1
        output.append(.stateChanged(to: .gather, reason: reason))
        sendJoin()
        arm(.join, after: settings.join, now: now)
        arm(.consensus, after: settings.consensus, now: now)
        cancel(.tokenRetransmit)
        cancel(.tokenLoss)
        cancel(.mergeDetect)
        mergeDetectArmed = false
        // Ours (spec §4.3): corosync leaves the hold timer running; a stale held token must
        // never be resent once we reach RECOVERY of another ring.
        cancel(.tokenHold)
        tokenHeld = false
        holdsUnsentToken = false
        livenessCheck = nil
        cancel(.livenessCheck)
    }

    mutating func sendJoin() {
        let join = JoinMessage(
            sender: nodeID, ringSequence: ringID.sequence,
            processors: processorSet.elements, failed: failedSet.elements)
        output.append(.multicast(.join(join)))
    }

    /// Every processor believed alive and not failed has sent a JOIN matching our sets.
    /// May be vacuously true when we failed to receive and put ourselves in the fail set (P10).
    var consensusAgreed: Bool {
        processorSet.subtracting(failedSet).isSubset(of: consensusSet)
    }

    // MARK: JOIN receipt (spec §4.4)

    mutating func handle(_ join: JoinMessage, now: MonotonicInstant) {
        // A JOIN seen right after a long pause is stale; it will be resent if still meant (§3.10).
        if now - lastPauseCheck > settings.pauseThreshold { return }
        maxRingSequenceSeen = max(maxRingSequenceSeen, join.ringSequence)
        switch state {
        case .operational:
            if join.failed.contains(nodeID) { return }
            if members.contains(join.sender) && join.ringSequence < ringID.sequence { return }
            processJoin(join, now: now)
        case .gather:
            processJoin(join, now: now)
        case .commit, .recovery:
            // A member of the ring being formed gave up on it: so do we. Ours: we enter GATHER
            // first and then process the JOIN there, so that a JOIN that happens to complete
            // consensus creates a commit token from GATHER, not from the abandoned COMMIT.
            // Ours, also: in COMMIT, a new member whose JOIN names a live processor outside the
            // ring being formed has a processor set that can never match our commit token, so it
            // will not accept it; its JOIN carries its old ring's sequence (below the new ring's)
            // and the spec's rule ignores it. Both sides then waited for a token timeout (seen:
            // cold starts of three daemons forming after 3.7 s, five after 5 s). An older JOIN of
            // that member names a subset of the new ring and still does not abort the commit.
            let namesOthers = state == .commit
                && !NodeSet(join.processors).subtracting(NodeSet(join.failed)).isSubset(of: NodeSet(newMembers))
            guard newMembers.contains(join.sender), join.ringSequence >= ringID.sequence || namesOthers else { return }
            if state == .recovery { restoreOldRingState() }
            enterGather(because: join.isLeave ? .leaveReceived : .joinReceived, now: now)
            processJoin(join, now: now)
        }
    }

    mutating func processJoin(_ join: JoinMessage, now: MonotonicInstant) {
        let sender = join.sender
        if join.isLeave { leaveSet.insert(sender) }
        let joinProcessors = NodeSet(join.processors)
        let joinFailed = NodeSet(join.failed)
        let reason: TransitionReason = join.isLeave ? .leaveReceived : .joinReceived

        if joinProcessors == processorSet && joinFailed == failedSet {
            if !join.isLeave { consensusSet.insert(sender) }
            if consensusAgreed && failedToReceive {
                // Self-evicted: form a ring of one (spec §4.4).
                failedToReceive = false
                processorSet = NodeSet([nodeID])
                failedSet = NodeSet()
                createCommitTokenAndCommit(now: now)
                return
            }
            if consensusAgreed && processorSet.subtracting(failedSet).lowest == nodeID {
                createCommitTokenAndCommit(now: now)
                return
            }
        } else if joinProcessors.isSubset(of: processorSet) && joinFailed.isSubset(of: failedSet) {
            // The sender knows less than we do; it catches up from our JOINs.
        } else if failedSet.contains(sender) {
            // We already consider the sender failed.
        } else {
            let before = (processorSet, failedSet)
            processorSet.formUnion(joinProcessors)
            if joinFailed.contains(nodeID) {
                // The sender thinks we are dead: treat it as dead (a symmetric split).
                failedSet.insert(sender)
            } else if members.contains(sender) {
                // Only members of our old ring are trusted with fail lists.
                if !failedSet.contains(sender) {
                    failedSet.formUnion(joinFailed)
                } else {
                    failedSet.formUnion(joinFailed.subtracting(NodeSet(members)))
                }
            }
            // Ours: restart GATHER (and so answer with a JOIN) only if our view changed. The
            // spec and corosync restart it unconditionally; two gatherers that do not trust
            // each other's fail lists then answer each JOIN with a JOIN, a storm at network
            // speed (duplicated datagrams multiply it) until the consensus timeout. Our view
            // unchanged, our consensus set is still valid and the join timer resends our JOIN.
            if before != (processorSet, failedSet) {
                enterGather(because: reason, now: now)
                return
            }
        }
        if state == .operational {
            enterGather(because: reason, now: now)
        }
    }

    // MARK: Timers (spec §4.3, §4.5)

    mutating func handleJoinExpiry(now: MonotonicInstant) {
        guard state == .gather else { return }
        sendJoin()
        arm(.join, after: settings.join, now: now)
    }

    mutating func handleConsensusExpiry(now: MonotonicInstant) {
        guard state == .gather else { return }
        if consensusTimeoutLogic(now: now) {
            enterGather(because: .consensusTimeout, now: now)
        }
    }

    /// Consensus timeout (spec §4.5). Returns true when processors were declared failed and
    /// GATHER must restart; false when consensus exists and we keep waiting for the commit token.
    @discardableResult
    mutating func consensusTimeoutLogic(now: MonotonicInstant) -> Bool {
        if consensusAgreed {
            consensusSet = NodeSet()
            consensusSet.insert(nodeID)
            arm(.tokenLoss, after: settings.effectiveToken, now: now)
            return false
        }
        for processor in processorSet where !consensusSet.contains(processor) {
            failedSet.insert(processor)
        }
        return true
    }
}
