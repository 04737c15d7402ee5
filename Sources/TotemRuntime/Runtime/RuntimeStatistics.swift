// A snapshot of one node's counters: transport, authentication, decoding and the core's own.
// Values only; the RingNode keeps the live counters.

import Totem


/// Counters of one running node, for status output, logs and benchmarks.
public struct RuntimeStatistics: Sendable, Equatable {
    /// Datagrams and bytes sent and received, truncation, kernel drops, send errors, unlisted
    /// sources and unknown destinations.
    public var transport = TransportStatistics()
    /// Datagrams that failed authentication (forged, corrupted, another key or cluster).
    public var authenticationFailures = 0
    /// Authentic datagrams ReplayGuard refused, by `ReplayGuard.Refusal` raw value
    /// (`unproved_epoch`, `duplicate`, `stale`, `misaddressed`).
    public var replayRefusals: [String: Int] = [:]
    /// Liveness probes sent to make a sender prove its epoch.
    public var freshnessChallenges = 0
    /// Epochs senders proved by answering (one per peer start, seen from here).
    public var epochsProved = 0
    /// Own datagrams the network looped back (udp multicast loop), dropped: the in-memory loop
    /// already delivered them.
    public var ownDatagramsDropped = 0
    /// Authenticated datagrams the wire codec rejected, by kind (`foreignCluster`, `truncated`, ...).
    public var decodeErrors: [String: Int] = [:]
    /// Packets decoded from the network and handed to the core.
    public var packetsReceived = 0
    /// This node's own packets handed back to it without the network (self-delivery).
    public var packetsLoopedBack = 0
    /// Ring sequence writes that failed.
    public var persistFailures = 0
    /// Tokens sent to the successor once more because no token had left this node for a probe
    /// interval (with unreachable reports on: a crashed successor's host then answers).
    public var successorProbes = 0
    /// The core's counters (frames, deliveries, retransmissions, rings installed, ...).
    public var core = Statistics()
    /// Times this node left OPERATIONAL to form a new ring, by the reason it gave
    /// (`TransitionReason`): the causes of ring re-formations, seen from here.
    public var reformations: [TransitionReason: Int] = [:]
    /// Bytes of the application messages this node queued (`submit`) and had delivered.
    public var messageBytesSubmitted = 0
    public var messageBytesDelivered = 0
    /// Time between successive tokens accepted here in one operational ring.
    public var tokenRotation = TokenRotationStatistics()
    public var state = MembershipState.gather
    public var ringID: RingID?
    public var members: [NodeID] = []

    public init() {}

    public var datagramsReceived: Int { transport.sockets.datagramsReceived }
    public var datagramsSent: Int { transport.sockets.datagramsSent }
    public var bytesReceived: Int { transport.sockets.bytesReceived }
    public var bytesSent: Int { transport.sockets.bytesSent }
    public var kernelReceiveDrops: Int { transport.sockets.kernelReceiveDrops }
    public var tokenRetransmissions: Int { core.tokenRetransmissions }
    /// Every replay refusal, whatever its reason.
    public var replayRefusalCount: Int { replayRefusals.values.reduce(0, +) }
    /// Every decode error, whatever its kind.
    public var decodeErrorCount: Int { decodeErrors.values.reduce(0, +) }
}

extension WireError {
    /// The case name, as the key of `RuntimeStatistics.decodeErrors`.
    var statisticsKey: String {
        switch self {
        case .truncated: "truncated"
        case .badMagic: "badMagic"
        case .unsupportedVersion: "unsupportedVersion"
        case .unknownType: "unknownType"
        case .foreignCluster: "foreignCluster"
        case .wrongLink: "wrongLink"
        case .invalidFlags: "invalidFlags"
        case .reservedNotZero: "reservedNotZero"
        case .countOutOfRange: "countOutOfRange"
        case .noMembers: "noMembers"
        case .lengthMismatch: "lengthMismatch"
        case .zeroNodeID: "zeroNodeID"
        case .duplicateNodeID: "duplicateNodeID"
        case .membersNotAscending: "membersNotAscending"
        case .memberIndexOutOfRange: "memberIndexOutOfRange"
        case .originatorMismatch: "originatorMismatch"
        case .joinSenderNotInProcessors: "joinSenderNotInProcessors"
        case .leaveSenderInvalid: "leaveSenderInvalid"
        case .nestedEncapsulation: "nestedEncapsulation"
        case .innerNotMulticast: "innerNotMulticast"
        case .invalidInnerMessage: "invalidInnerMessage"
        case .invalidDeliveryMode: "invalidDeliveryMode"
        case .invalidBoolean: "invalidBoolean"
        case .oversized: "oversized"
        }
    }
}
