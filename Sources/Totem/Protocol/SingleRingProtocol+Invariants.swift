// Invariants of the core, checked after every input (STYLE.md §7). A failure here is a bug in
// the protocol code, never bad input: input is validated before it reaches the handlers.

extension SingleRingProtocol {
    func checkInvariants() {
        guard started, !hasLeft else { return }
        precondition(ringID.sequence <= maxRingSequenceSeen,
                     "ring seq \(ringID.sequence) above max seen \(maxRingSequenceSeen)")
        precondition(tokenDiscard == (state == .gather || state == .commit),
                     "tokenDiscard \(tokenDiscard) in \(state)")
        switch state {
        case .operational:
            precondition(members.contains(nodeID), "operational outside own ring \(members)")
            precondition(members == newMembers, "installed \(members) but formed \(newMembers)")
            precondition(processorSet.elements == members, "proc set \(processorSet) differs from ring \(members)")
            precondition(failedSet.isEmpty, "fail set \(failedSet) while operational")
            precondition(ringID == oldRingID, "operational in \(ringID) but old ring \(oldRingID)")
            precondition(!(highSeqReceived < aru), "aru \(aru) ahead of high seq \(highSeqReceived)")
            precondition(!(aru < highDelivered), "delivered \(highDelivered) beyond aru \(aru)")
            precondition(!(highDelivered < lastReleased), "released \(lastReleased) beyond delivered \(highDelivered)")
            precondition(successor != nil, "operational without a token target")
        case .gather:
            precondition(processorSet.contains(nodeID), "gathering without self in \(processorSet)")
            precondition(consensusSet.isSubset(of: processorSet), "consensus \(consensusSet) outside proc \(processorSet)")
        case .commit, .recovery:
            precondition(newMembers.contains(nodeID), "forming \(newMembers) without self")
            precondition(zip(newMembers, newMembers.dropFirst()).allSatisfy { $0 < $1 }, "members \(newMembers) not ascending")
            precondition(ringID.representative == newMembers.first, "ring \(ringID) not formed by lowest of \(newMembers)")
            precondition(oldRingState.saved, "forming a ring without the old ring's state saved")
            if state == .recovery {
                precondition(!(highSeqReceived < aru), "aru \(aru) ahead of high seq \(highSeqReceived)")
                precondition(transitionalMembers.allSatisfy { members.contains($0) && newMembers.contains($0) },
                             "transitional \(transitionalMembers) not within old \(members) and new \(newMembers)")
            }
        }
    }
}
