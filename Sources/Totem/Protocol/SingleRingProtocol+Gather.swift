// GATHER (spec §4.3-§4.5): exchanging JOINs until every live processor agrees on the
// proc and fail sets, and the consensus timeout that gives up on silent processors.

extension SingleRingProtocol {
    /// Enters (or restarts) GATHER with `sets` (spec §4.3). A failed-to-receive eviction and the
    /// saved old-ring counters carry over from the state we leave.
    mutating func enterGather(with sets: MembershipSets, because reason: TransitionReason, now: MonotonicInstant) {
        var gathering = RingState.Gather(sets: sets, consensus: NodeSet([nodeID]))
        gathering.sets.processors.insert(nodeID)
        switch ringState {
        case .operational: break
        case .gather(let current):
            gathering.failedToReceive = current.failedToReceive
            gathering.oldRing = current.oldRing
        case .commit(let commit): gathering.oldRing = commit.oldRing
        case .recovery(let recovery): gathering.oldRing = recovery.oldRing
        }
        ringState = .gather(gathering)
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
        cancel(.livenessCheck)
    }

    mutating func sendJoin() {
        let sets = gather.sets
        let join = JoinMessage(
            sender: nodeID, ringSequence: ringID.sequence,
            processors: sets.processors.elements, failed: sets.failed.elements)
        output.append(.multicast(.join(join)))
    }

    // MARK: JOIN receipt (spec §4.4)

    mutating func handle(_ join: JoinMessage, now: MonotonicInstant) {
        // A JOIN seen right after a long pause is stale; it will be resent if still meant (§3.10).
        if now - lastPauseCheck > settings.pauseThreshold { return }
        maxRingSequenceSeen = max(maxRingSequenceSeen, join.ringSequence)
        let reason: TransitionReason = join.isLeave ? .leaveReceived : .joinReceived
        switch ringState {
        case .operational:
            if join.failed.contains(nodeID) { return }
            if members.contains(join.sender) && join.ringSequence < ringID.sequence { return }
            processJoin(join, now: now)
        case .gather:
            processJoin(join, now: now)
        case .commit(let commit):
            // A member of the ring being formed gave up on it: so do we. Ours: we enter GATHER
            // first and then process the JOIN there, so that a JOIN that happens to complete
            // consensus creates a commit token from GATHER, not from the abandoned COMMIT.
            // Ours, also: a new member whose JOIN names a live processor outside the ring being
            // formed has a processor set that can never match our commit token, so it will not
            // accept it; its JOIN carries its old ring's sequence (below the new ring's) and the
            // spec's rule ignores it. Both sides then waited for a token timeout (seen: cold
            // starts of three daemons forming after 3.7 s, five after 5 s). An older JOIN of
            // that member names a subset of the new ring and still does not abort the commit.
            let namesOthers = !NodeSet(join.processors).subtracting(NodeSet(join.failed))
                .isSubset(of: NodeSet(commit.newMembers))
            guard commit.newMembers.contains(join.sender), join.ringSequence >= ringID.sequence || namesOthers else { return }
            enterGather(with: commit.sets, because: reason, now: now)
            processJoin(join, now: now)
        case .recovery(let recovery):
            // As in COMMIT, after falling back to the old ring's counters (§4.11).
            guard recovery.newMembers.contains(join.sender), join.ringSequence >= ringID.sequence else { return }
            restoreOldRingState(recovery.oldRing)
            enterGather(with: recovery.sets, because: reason, now: now)
            processJoin(join, now: now)
        }
    }

    /// Spec §4.4, in OPERATIONAL or GATHER. In OPERATIONAL our sets are the ring's members, none
    /// failed, with no consensus yet; whatever the JOIN says, GATHER starts.
    mutating func processJoin(_ join: JoinMessage, now: MonotonicInstant) {
        let reason: TransitionReason = join.isLeave ? .leaveReceived : .joinReceived
        switch ringState {
        case .operational:
            var gathering = RingState.Gather(sets: membershipSets, consensus: NodeSet())
            switch gathering.take(join, nodeID: nodeID, members: members) {
            case .consensusReached: createCommitTokenAndCommit(from: gathering, now: now)
            case .kept, .changed: enterGather(with: gathering.sets, because: reason, now: now)
            }
        case .gather:
            switch gather.take(join, nodeID: nodeID, members: members) {
            case .consensusReached: createCommitTokenAndCommit(from: gather, now: now)
            case .changed: enterGather(with: gather.sets, because: reason, now: now)
            case .kept: break
            }
        case .commit, .recovery:
            preconditionFailure("JOIN processed in \(state)")
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
            enterGather(with: gather.sets, because: .consensusTimeout, now: now)
        }
    }

    /// Consensus timeout (spec §4.5). Returns true when processors were declared failed and
    /// GATHER must restart; false when consensus exists and we keep waiting for the commit token.
    @discardableResult
    mutating func consensusTimeoutLogic(now: MonotonicInstant) -> Bool {
        if gather.consensusAgreed {
            gather.consensus = NodeSet([nodeID])
            arm(.tokenLoss, after: settings.effectiveToken, now: now)
            return false
        }
        gather.failSilentProcessors()
        return true
    }
}

extension RingState.Gather {
    /// What a JOIN did to GATHER's data.
    enum JoinOutcome {
        /// Our sets are as they were (the consensus or leave set may have grown).
        case kept
        /// Our sets grew: GATHER restarts, announcing them.
        case changed
        /// Every live processor agrees and we are the representative (or evicted ourselves and
        /// now form a ring of one): create the commit token.
        case consensusReached
    }

    /// Takes `join` into the sets and the consensus (spec §4.4).
    /// - Parameter members: the last installed ring's members; only they are trusted with fail lists.
    mutating func take(_ join: JoinMessage, nodeID: NodeID, members: [NodeID]) -> JoinOutcome {
        let sender = join.sender
        if join.isLeave { sets.leaving.insert(sender) }
        let joinProcessors = NodeSet(join.processors)
        let joinFailed = NodeSet(join.failed)

        if joinProcessors == sets.processors && joinFailed == sets.failed {
            if !join.isLeave { consensus.insert(sender) }
            if consensusAgreed && failedToReceive {
                // Self-evicted: form a ring of one (spec §4.4).
                failedToReceive = false
                sets.processors = NodeSet([nodeID])
                sets.failed = NodeSet()
                return .consensusReached
            }
            if consensusAgreed && sets.processors.subtracting(sets.failed).lowest == nodeID { return .consensusReached }
            return .kept
        }
        if joinProcessors.isSubset(of: sets.processors) && joinFailed.isSubset(of: sets.failed) {
            return .kept  // The sender knows less than we do; it catches up from our JOINs.
        }
        if sets.failed.contains(sender) {
            return .kept  // We already consider the sender failed.
        }
        let before = (sets.processors, sets.failed)
        sets.processors.formUnion(joinProcessors)
        if joinFailed.contains(nodeID) {
            // The sender thinks we are dead: treat it as dead (a symmetric split).
            sets.failed.insert(sender)
        } else if members.contains(sender) {
            // Only members of our old ring are trusted with fail lists.
            if !sets.failed.contains(sender) {
                sets.failed.formUnion(joinFailed)
            } else {
                sets.failed.formUnion(joinFailed.subtracting(NodeSet(members)))
            }
        }
        // Ours: restart GATHER (and so answer with a JOIN) only if our view changed. The spec and
        // corosync restart it unconditionally; two gatherers that do not trust each other's fail
        // lists then answer each JOIN with a JOIN, a storm at network speed (duplicated datagrams
        // multiply it) until the consensus timeout. Our view unchanged, our consensus set is
        // still valid and the join timer resends our JOIN.
        return before != (sets.processors, sets.failed) ? .changed : .kept
    }
}
