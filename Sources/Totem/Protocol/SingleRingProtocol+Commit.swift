// COMMIT (spec §4.6, §4.7): the representative creates the commit token; it makes two rotations,
// the first collecting every member's old-ring state, the second starting RECOVERY.

extension SingleRingProtocol {
    /// The representative's step from GATHER with consensus to COMMIT (spec §4.6).
    /// - Parameter gathering: the GATHER data that reached consensus (in OPERATIONAL: the ring's).
    mutating func createCommitTokenAndCommit(from gathering: RingState.Gather, now: MonotonicInstant) {
        let ringMembers = gathering.sets.processors.subtracting(gathering.sets.failed).elements
        precondition(ringMembers.first == nodeID, "only the lowest id \(ringMembers) creates the commit token")
        let commitToken = CommitToken(
            sender: nodeID,
            ringID: RingID(representative: nodeID, sequence: maxRingSequenceSeen &+ 4),
            tokenSequence: 0, memberIndex: 0, members: ringMembers,
            entries: Array(repeating: .empty, count: ringMembers.count))
        enterCommit(commitToken, from: gathering, because: .commitTokenCreated, now: now)
    }

    // MARK: Commit token receipt

    mutating func handle(_ commitToken: CommitToken, now: MonotonicInstant) {
        let memberCount = commitToken.members.count
        switch ringState {
        case .operational:
            return
        case .gather(let gathering):
            // Spec §4.7, plus ours: the entry to fill must be ours, so a misrouted or replayed
            // token cannot make us fill someone else's entry.
            // Ours, also: the ring must be formed by its lowest member (a hostile token naming
            // another representative would otherwise break the ring-id invariant).
            guard NodeSet(commitToken.members) == gathering.sets.processors.subtracting(gathering.sets.failed),
                  commitToken.ringID.representative == commitToken.members.first,
                  commitToken.ringID.sequence > ringID.sequence,
                  commitToken.memberIndex < memberCount,
                  commitToken.members[commitToken.memberIndex] == nodeID,
                  commitToken.entries.count == memberCount
            else { return }
            enterCommit(commitToken, from: gathering, because: .commitTokenReceived, now: now)
        case .commit(let commit):
            // The first rotation is complete: every entry is filled.
            guard commitToken.ringID == ringID, commitToken.memberIndex == memberCount,
                  commitToken.members == commit.newMembers, commitToken.entries.count == memberCount
            else { return }
            enterRecovery(commitToken, from: commit, now: now)
        case .recovery(let recovery):
            // The second rotation came back to the representative: send the first ORF token,
            // exactly once per ring (pitfall P6). Ours: the ring id must be ours.
            guard isRepresentative, !recovery.originatedOrfToken, commitToken.ringID == ringID,
                  commitToken.memberIndex == memberCount
            else { return }
            originateInitialToken(now: now)
        }
    }

    // MARK: Entering COMMIT (spec §4.7)

    mutating func enterCommit(
        _ received: CommitToken, from gathering: RingState.Gather, because reason: TransitionReason, now: MonotonicInstant
    ) {
        var commitToken = received
        let oldRing = gathering.oldRing ?? saveOldRingState()
        let newMembers = commitToken.members
        let index = commitToken.memberIndex
        precondition(commitToken.members[index] == nodeID, "commit token entry \(index) is not ours")

        var receivedFlag = oldRing.aru == oldRing.highSeqReceived
        commitToken.entries[index] = CommitTokenEntry(
            oldRingID: oldRingID, aru: oldRing.aru, highDelivered: highDelivered, receivedFlag: receivedFlag)
        // Among the entries filled so far from our old ring, whoever has an aru below the
        // highest did not receive everything.
        var highestAru = oldRing.aru
        for entryIndex in 0...index where commitToken.entries[entryIndex].oldRingID == oldRingID {
            if highestAru < commitToken.entries[entryIndex].aru { highestAru = commitToken.entries[entryIndex].aru }
        }
        for entryIndex in 0...index where commitToken.entries[entryIndex].oldRingID == oldRingID {
            if commitToken.entries[entryIndex].aru < highestAru {
                commitToken.entries[entryIndex].receivedFlag = false
                if entryIndex == index { receivedFlag = false }
            }
        }
        commitToken.memberIndex += 1

        cancel(.join)
        cancel(.consensus)
        // The ring sequence reaches stable storage before the commit token leaves (Effect rule 1).
        ringID = commitToken.ringID
        maxRingSequenceSeen = max(maxRingSequenceSeen, ringID.sequence)
        output.append(.persistRingSequence(ringID.sequence))
        ringState = .commit(RingState.Commit(
            sets: gathering.sets, newMembers: newMembers, oldRing: oldRing, receivedFlag: receivedFlag))
        output.append(.stateChanged(to: .commit, reason: reason))

        successor = successor(in: newMembers)
        commitToken.tokenSequence &+= 1
        commitToken.sender = nodeID
        sendToken(.commitToken(commitToken))
        arm(.tokenRetransmit, after: settings.tokenRetransmit, now: now)
        arm(.tokenLoss, after: settings.effectiveToken, now: now)
        lastVisitTransmitCount = 0
        previousBacklog = 0
        currentBacklog = 0
    }

    /// Remembers the old ring's aru and high seq, once per OPERATIONAL period: on the first
    /// COMMIT after it (P5, ef05817c). Later COMMITs, after a failed one, carry this copy on.
    mutating func saveOldRingState() -> OldRingState {
        oldRingID = ringID
        return OldRingState(aru: aru, highSeqReceived: highSeqReceived)
    }

    /// A failed recovery falls back to the old ring's counters; `ringID` is kept (§4.11, 6aa47fde).
    mutating func restoreOldRingState(_ oldRing: OldRingState) {
        aru = oldRing.aru
        highSeqReceived = oldRing.highSeqReceived
    }
}
