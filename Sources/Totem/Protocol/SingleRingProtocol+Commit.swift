// COMMIT (spec §4.6, §4.7): the representative creates the commit token; it makes two rotations,
// the first collecting every member's old-ring state, the second starting RECOVERY.

extension SingleRingProtocol {
    /// The representative's step from GATHER with consensus to COMMIT (spec §4.6).
    mutating func createCommitTokenAndCommit(now: MonotonicInstant) {
        let ringMembers = processorSet.subtracting(failedSet).elements
        precondition(ringMembers.first == nodeID, "only the lowest id \(ringMembers) creates the commit token")
        let commitToken = CommitToken(
            sender: nodeID,
            ringID: RingID(representative: nodeID, sequence: maxRingSequenceSeen &+ 4),
            tokenSequence: 0, memberIndex: 0, members: ringMembers,
            entries: Array(repeating: .empty, count: ringMembers.count))
        enterCommit(commitToken, because: .commitTokenCreated, now: now)
    }

    // MARK: Commit token receipt

    mutating func handle(_ commitToken: CommitToken, now: MonotonicInstant) {
        let memberCount = commitToken.members.count
        switch state {
        case .operational:
            return
        case .gather:
            // Spec §4.7, plus ours: the entry to fill must be ours, so a misrouted or replayed
            // token cannot make us fill someone else's entry.
            // Ours, also: the ring must be formed by its lowest member (a hostile token naming
            // another representative would otherwise break the ring-id invariant).
            guard NodeSet(commitToken.members) == processorSet.subtracting(failedSet),
                  commitToken.ringID.representative == commitToken.members.first,
                  commitToken.ringID.sequence > ringID.sequence,
                  commitToken.memberIndex < memberCount,
                  commitToken.members[commitToken.memberIndex] == nodeID,
                  commitToken.entries.count == memberCount
            else { return }
            enterCommit(commitToken, because: .commitTokenReceived, now: now)
        case .commit:
            // The first rotation is complete: every entry is filled.
            guard commitToken.ringID == ringID, commitToken.memberIndex == memberCount,
                  commitToken.members == newMembers, commitToken.entries.count == memberCount
            else { return }
            enterRecovery(commitToken, now: now)
        case .recovery:
            // The second rotation came back to the representative: send the first ORF token,
            // exactly once per ring (pitfall P6). Ours: the ring id must be ours.
            guard isRepresentative, !originatedOrfToken, commitToken.ringID == ringID,
                  commitToken.memberIndex == memberCount
            else { return }
            originateInitialToken(now: now)
        }
    }

    // MARK: Entering COMMIT (spec §4.7)

    mutating func enterCommit(_ received: CommitToken, because reason: TransitionReason, now: MonotonicInstant) {
        var commitToken = received
        saveOldRingState()
        newMembers = commitToken.members
        let index = commitToken.memberIndex
        precondition(commitToken.members[index] == nodeID, "commit token entry \(index) is not ours")

        receivedFlag = oldRingState.aru == oldRingState.highSeqReceived
        commitToken.entries[index] = CommitTokenEntry(
            oldRingID: oldRingID, aru: oldRingState.aru, highDelivered: highDelivered, receivedFlag: receivedFlag)
        // Among the entries filled so far from our old ring, whoever has an aru below the
        // highest did not receive everything.
        var highestAru = oldRingState.aru
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
        state = .commit
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

    /// Remembers the old ring's aru and high seq, once per OPERATIONAL period (P5, ef05817c).
    mutating func saveOldRingState() {
        guard !oldRingState.saved else { return }
        oldRingState.saved = true
        oldRingID = ringID
        oldRingState.aru = aru
        oldRingState.highSeqReceived = highSeqReceived
    }

    /// A failed recovery falls back to the old ring's counters; `ringID` is kept (§4.11, 6aa47fde).
    mutating func restoreOldRingState() {
        aru = oldRingState.aru
        highSeqReceived = oldRingState.highSeqReceived
    }
}
