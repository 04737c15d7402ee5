// What the core asks its runtime to do, and what it reports. The runtime executes effects in order.

/// An instruction or report from the core to its runtime, executed in the order returned.
///
/// How to execute a batch (the contract every runtime, the daemon's and the simulator's, follows):
/// 1. `persistRingSequence` must reach stable storage before any later `unicast` of the same batch
///    is sent: the commit token must not leave before the ring sequence it announces is saved.
/// 2. `multicast` goes to every node, this one included (self-delivery is mandatory);
///    `unicast` to the named node, which may be this node (a ring of one).
/// 3. `armTimer` replaces any pending deadline of that timer; `cancelTimer` removes it.
/// 4. `deliver` and `configurationChanged` go to the layer above, in order.
public enum Effect: Sendable, Equatable {
    case multicast(Packet)
    case unicast(Packet, to: NodeID)
    case deliver(DeliveredMessage)
    case configurationChanged(ConfigurationChange)
    case armTimer(RingTimer, deadline: MonotonicInstant)
    case cancelTimer(RingTimer)
    case persistRingSequence(UInt64)
    /// A membership state transition with its reason, for logs and traces.
    case stateChanged(to: MembershipState, reason: TransitionReason)
}

/// The four states of the membership protocol (spec §4.1).
public enum MembershipState: String, Sendable, Equatable {
    case operational
    case gather
    case commit
    case recovery
}

/// Why the core changed state, for logs and traces (corosync's `TOTEMSRP_GSFROM_*`).
public enum TransitionReason: String, Sendable, Hashable, CaseIterable {
    case startup = "start-up"
    case tokenLost = "token lost"
    case successorUnreachable = "successor unreachable"
    case foreignMessage = "message from another ring"
    case mergeDetected = "merge detect from another ring"
    case joinReceived = "join received"
    case leaveReceived = "leave received"
    case consensusTimeout = "consensus timeout"
    case failedToReceive = "failed to receive"
    case commitTokenCreated = "commit token created"
    case commitTokenReceived = "commit token received"
    case commitTokenCompleted = "commit token completed its first rotation"
    case recoveryCompleted = "recovery completed"
    case leaving = "leaving"
}

/// Why `submit` refused a message.
public enum SubmitError: Error, Sendable, Equatable {
    /// The message is larger than `TotemSettings.maxMessageBytes`.
    case messageTooLarge(size: Int, limit: Int)
    /// The send queue is full; try again after some deliveries.
    case tryAgain(pendingBytes: Int, limit: Int)
    /// This node has left the ring.
    case notRunning
}
