// The membership phases of the single-ring protocol (spec §4.2) as one enum whose cases carry
// the data that only means something in that phase (STYLE.md §3). Data that lives across the
// phases (ring ids, aru, the sort queues, the token's bookkeeping, statistics) stays in
// SingleRingProtocol; the public `MembershipState` is derived from the case.

/// Where a node is in the membership protocol, with that phase's data.
enum RingState: Sendable {
    /// Ordering messages in an installed ring (spec §3).
    case operational(Operational)
    /// Exchanging JOINs until the live processors agree on who they are (spec §4.3-§4.5).
    case gather(Gather)
    /// The commit token's first rotation, collecting every member's old-ring state (§4.6, §4.7).
    case commit(Commit)
    /// Old-ring messages re-broadcast in the new ring until every member holds them (§4.8-§4.10).
    case recovery(Recovery)

    /// The state as logs, status and metrics name it.
    var membershipState: MembershipState {
        switch self {
        case .operational: .operational
        case .gather: .gather
        case .commit: .commit
        case .recovery: .recovery
        }
    }

    /// What the `_modify` accessors of `SingleRingProtocol` leave in place while they lend a
    /// case's data out: the data is moved out of the enum (swapped, not copied), so its arrays
    /// stay uniquely referenced and change in place, without a retain. Never observable: the
    /// lender has exclusive access to the protocol until it puts the data back.
    static var vacated: RingState { .operational(Operational()) }

    /// OPERATIONAL. The ring's own data (members, successor, token bookkeeping) is shared with
    /// COMMIT and RECOVERY and lives in the protocol.
    struct Operational: Sendable {
        /// The successor an ICMP report named, while it is asked whether it is alive (ours).
        var livenessCheck: LivenessCheck?
    }

    /// GATHER.
    struct Gather: Sendable {
        var sets: MembershipSets
        /// Processors whose JOIN matched our sets (`my_consensus_set`); holds this node.
        var consensus: NodeSet
        /// This node kept the ring's aru pinned and put itself in the fail set (spec §3.7): it
        /// forms a ring of one once the others agree (§4.4).
        var failedToReceive = false
        /// The last operational ring's counters, once a COMMIT since then saved them (P5).
        var oldRing: OldRingState?

        /// Every processor believed alive and not failed has sent a JOIN matching our sets. May
        /// be vacuously true when we failed to receive and put ourselves in the fail set (P10).
        var consensusAgreed: Bool {
            sets.processors.subtracting(sets.failed).isSubset(of: consensus)
        }

        /// The consensus timeout's verdict (spec §4.5): whoever has not agreed has failed.
        mutating func failSilentProcessors() {
            for processor in sets.processors where !consensus.contains(processor) {
                sets.failed.insert(processor)
            }
        }
    }

    /// COMMIT.
    struct Commit: Sendable {
        /// The sets GATHER agreed on, kept for a return to GATHER.
        var sets: MembershipSets
        /// Members of the ring being formed, from the commit token (`myNewMemb`).
        var newMembers: [NodeID]
        var oldRing: OldRingState
        /// This node holds every old-ring message up to the highest aru of the members filled
        /// in before it (`my_received_flg`, spec §4.7).
        var receivedFlag: Bool
    }

    /// RECOVERY.
    struct Recovery: Sendable {
        var sets: MembershipSets
        var newMembers: [NodeID]
        var oldRing: OldRingState
        var receivedFlag: Bool
        /// Members of both the old and the new ring: the transitional configuration (§4.10).
        var transitionalMembers: [NodeID]
        /// Old-ring messages after the first gap are delivered only from these originators (§4.10).
        var deliverMembers: [NodeID]
        /// The highest old-ring sequence any transitional member delivered, from the commit token:
        /// safe messages up to here were safe in the old configuration (§4.10, ours).
        var transitionalHighDelivered: SequenceNumber
        /// Old-ring messages, already encapsulated, to re-broadcast (§4.8), from `retransmitHead` on.
        var retransmitQueue: [DataMessage]
        var retransmitHead = 0
        /// The token sequence after which the ring may be installed (`my_install_seq`, §4.9).
        var installSequence: SequenceNumber
        /// Token visits in a row without the retransmit flag (`my_rotation_counter` is below).
        var retransmitFlagCount = 0
        /// Rotations in a row that every member passed with everything up to `installSequence`.
        var rotationCounter = 0
        /// This node set the token's retransmit flag and is the one to clear it.
        var setRetransmitFlag = false
        /// The representative sends the first ORF token of a ring exactly once (pitfall P6).
        var originatedOrfToken = false

        var hasRetransmissions: Bool { retransmitHead < retransmitQueue.count }
        var pendingRetransmissions: Int { retransmitQueue.count - retransmitHead }

        /// The next old-ring message to re-broadcast, if any.
        mutating func takeRetransmission() -> DataMessage? {
            guard hasRetransmissions else { return nil }
            defer { retransmitHead += 1 }
            return retransmitQueue[retransmitHead]
        }

        /// Frees the queue's storage once everything in it was sent.
        mutating func compactRetransmitQueue() {
            guard !hasRetransmissions && retransmitHead > 0 else { return }
            retransmitQueue.removeAll(keepingCapacity: true)
            retransmitHead = 0
        }
    }
}

/// The processors a node believes in while it forms a ring (spec §4.2). In OPERATIONAL they are
/// the ring's members, none failed.
struct MembershipSets: Sendable, Equatable {
    /// Processors believed alive or not yet given up on (`my_proc_set`).
    var processors = NodeSet()
    /// Processors given up on (`my_fail_set`).
    var failed = NodeSet()
    /// Processors that announced a graceful leave since the last ring was installed (for "left"
    /// versus "failed" in the transitional configuration).
    var leaving = NodeSet()
}

/// What a node remembers of its last operational ring while it forms a new one (spec §4.7, P5).
struct OldRingState: Sendable {
    var aru: SequenceNumber
    var highSeqReceived: SequenceNumber
}

/// An open question to the successor after an ICMP report (see `peerUnreachable`).
package struct LivenessCheck: Sendable {
    package var node: NodeID
    package var nonce: UInt64
    package var probesSent: Int
}

// MARK: - The phase data, read and changed in place

extension SingleRingProtocol {
    /// The membership state: logs, status and metrics show its raw value.
    public var state: MembershipState { ringState.membershipState }

    /// ORF tokens are dropped unread in GATHER and COMMIT (spec §4.3, `token_discard`).
    var tokenDiscard: Bool {
        switch ringState {
        case .gather, .commit: true
        case .operational, .recovery: false
        }
    }

    /// The proc, fail and leave sets in any state (in OPERATIONAL: the members, none failed).
    var membershipSets: MembershipSets {
        switch ringState {
        case .operational: MembershipSets(processors: NodeSet(members))
        case .gather(let gather): gather.sets
        case .commit(let commit): commit.sets
        case .recovery(let recovery): recovery.sets
        }
    }

    /// The open liveness check, `nil` outside OPERATIONAL.
    package var livenessCheck: LivenessCheck? {
        guard case .operational(let operational) = ringState else { return nil }
        return operational.livenessCheck
    }

    /// The data of the case `Phase` belongs to, read or changed in place; a precondition failure
    /// in another case. Changing it moves the data out of `ringState` (swapped for
    /// `RingState.vacated`, not copied) and back, so its arrays stay uniquely referenced.
    subscript<Phase: RingPhase>(phase _: Phase.Type) -> Phase {
        get {
            guard let data = Phase.data(of: ringState) else { preconditionFailure("no \(Phase.self) data in \(state)") }
            return data
        }
        _modify {
            var taken = RingState.vacated
            swap(&taken, &ringState)
            guard var data = Phase.data(of: consume taken) else { preconditionFailure("no \(Phase.self) data") }
            defer { ringState = Phase.state(with: data) }
            yield &data
        }
    }

    /// OPERATIONAL's data.
    var operational: RingState.Operational {
        get { self[phase: RingState.Operational.self] }
        _modify { yield &self[phase: RingState.Operational.self] }
    }

    /// GATHER's data.
    var gather: RingState.Gather {
        get { self[phase: RingState.Gather.self] }
        _modify { yield &self[phase: RingState.Gather.self] }
    }

    /// RECOVERY's data.
    var recovery: RingState.Recovery {
        get { self[phase: RingState.Recovery.self] }
        _modify { yield &self[phase: RingState.Recovery.self] }
    }
}

/// The data one `RingState` case carries.
protocol RingPhase: Sendable {
    /// The data if `state` is this phase's case.
    static func data(of state: consuming RingState) -> Self?
    /// This phase's case with `data`.
    static func state(with data: consuming Self) -> RingState
}

extension RingState.Operational: RingPhase {
    static func data(of state: consuming RingState) -> Self? {
        if case .operational(let data) = state { data } else { nil }
    }
    static func state(with data: consuming Self) -> RingState { .operational(data) }
}

extension RingState.Gather: RingPhase {
    static func data(of state: consuming RingState) -> Self? {
        if case .gather(let data) = state { data } else { nil }
    }
    static func state(with data: consuming Self) -> RingState { .gather(data) }
}

extension RingState.Recovery: RingPhase {
    static func data(of state: consuming RingState) -> Self? {
        if case .recovery(let data) = state { data } else { nil }
    }
    static func state(with data: consuming Self) -> RingState { .recovery(data) }
}
