// Invariants of the core, checked after every input (STYLE.md §7). A failure here is a bug in
// the protocol code, never bad input: input is validated before it reaches the handlers. What
// the types already rule out (a fail set in OPERATIONAL, a commit without the old ring's
// counters) is no longer checked here: RingState has no place for it.

extension SingleRingProtocol {
    func checkInvariants() {
        guard started, !hasLeft else { return }
        precondition(ringID.sequence <= maxRingSequenceSeen,
                     "ring seq \(ringID.sequence) above max seen \(maxRingSequenceSeen)")
        switch ringState {
        case .operational:
            precondition(members.contains(nodeID), "operational outside own ring \(members)")
            precondition(ringID == oldRingID, "operational in \(ringID) but old ring \(oldRingID)")
            precondition(!(highSeqReceived < aru), "aru \(aru) ahead of high seq \(highSeqReceived)")
            precondition(!(aru < highDelivered), "delivered \(highDelivered) beyond aru \(aru)")
            precondition(!(highDelivered < lastReleased), "released \(lastReleased) beyond delivered \(highDelivered)")
            precondition(successor != nil, "operational without a token target")
        case .gather(let gathering):
            precondition(gathering.sets.processors.contains(nodeID), "gathering without self in \(gathering.sets.processors)")
            precondition(gathering.consensus.contains(nodeID), "consensus \(gathering.consensus) without self")
            precondition(gathering.consensus.isSubset(of: gathering.sets.processors),
                         "consensus \(gathering.consensus) outside proc \(gathering.sets.processors)")
            precondition(!gathering.failedToReceive || gathering.sets.failed.contains(nodeID),
                         "failed to receive but not in the fail set \(gathering.sets.failed)")
        case .commit(let commit):
            checkForming(commit.newMembers)
        case .recovery(let recovery):
            checkForming(recovery.newMembers)
            precondition(!(highSeqReceived < aru), "aru \(aru) ahead of high seq \(highSeqReceived)")
            precondition(recovery.transitionalMembers.allSatisfy { members.contains($0) && recovery.newMembers.contains($0) },
                         "transitional \(recovery.transitionalMembers) not within old \(members) and new \(recovery.newMembers)")
        }
    }

    /// COMMIT and RECOVERY: the ring being formed holds this node and is represented by its lowest member.
    private func checkForming(_ newMembers: [NodeID]) {
        precondition(newMembers.contains(nodeID), "forming \(newMembers) without self")
        precondition(zip(newMembers, newMembers.dropFirst()).allSatisfy { $0 < $1 }, "members \(newMembers) not ascending")
        precondition(ringID.representative == newMembers.first, "ring \(ringID) not formed by lowest of \(newMembers)")
    }
}
