// The decoded form of every Totem datagram. The core sees only these values, never bytes.

/// One Totem datagram, decoded (spec §2.2). Tokens (ORF and commit) are unicast to the
/// successor; every other packet is multicast.
public enum Packet: Sendable, Equatable {
    case token(Token)
    case multicast(DataMessage)
    case mergeDetect(MergeDetect)
    case join(JoinMessage)
    case commitToken(CommitToken)
    case tokenHoldCancel(TokenHoldCancel)
    /// Ours: "are you alive?", unicast to a member an ICMP report says is gone.
    case livenessProbe(LivenessProbe)
    /// Ours: the answer, unicast back with the probe's nonce.
    case livenessReply(LivenessProbe)

    /// The node that built this datagram (header `sender`).
    public var sender: NodeID {
        switch self {
        case .token(let token): token.sender
        case .multicast(let message): message.sender
        case .mergeDetect(let merge): merge.sender
        case .join(let join): join.sender
        case .commitToken(let commit): commit.sender
        case .tokenHoldCancel(let cancel): cancel.sender
        case .livenessProbe(let probe), .livenessReply(let probe): probe.sender
        }
    }
}

/// Wire type codes (spec §2.2, the same numbers as corosync's).
public enum PacketType: UInt8, Sendable {
    case token = 0
    case multicast = 1
    case mergeDetect = 2
    case join = 3
    case commitToken = 4
    case tokenHoldCancel = 5
    /// Ours (corosync has no such packet; an older node drops it as an unknown type).
    case livenessProbe = 6
    case livenessReply = 7
}

/// Protocol-wide size limits that the decoder enforces and the core respects.
public enum WireLimits {
    /// Most members of one ring. A commit token of 32 members is 20 + 25·32 = 820 bytes of body,
    /// well inside one 1500-byte frame (spec §2.2 allows at most 56).
    public static let maxNodes = 32
    /// Most retransmission requests carried by one token (spec §1.4).
    public static let maxRetransmitRequests = 30
    /// Size of the fixed header in front of every body.
    public static let headerBytes = 16
    /// Largest datagram accepted or produced (a UDP payload over IPv4).
    public static let maxDatagramBytes = 65_507
}

/// A retransmission request carried in the token: "someone is missing `sequence` of `ringID`".
public struct RetransmitRequest: Sendable, Equatable {
    /// The ring the missing message belongs to; requests of other rings are left alone.
    public var ringID: RingID
    /// The missing message's sequence number.
    public var sequence: SequenceNumber

    /// Creates a request for `sequence` of `ringID`.
    public init(ringID: RingID, sequence: SequenceNumber) {
        self.ringID = ringID
        self.sequence = sequence
    }
}

/// The ORF token (Ordering, Reliability, Flow control; spec §1.4, §3.3).
public struct Token: Sendable, Equatable {
    /// The node that forwarded this copy of the token.
    public var sender: NodeID
    /// The ring this token circulates in.
    public var ringID: RingID
    /// Incremented at every hop; a receiver accepts a token only if it is newer than the last.
    public var tokenSequence: UInt32
    /// The highest sequence number assigned in this ring (the global message counter).
    public var sequence: SequenceNumber
    /// Ring-wide "all received up to": lowered by any node that lacks messages.
    public var aru: SequenceNumber
    /// The node that last lowered `aru`, or `nil` when everyone has everything.
    public var aruSetter: NodeID?
    /// Flow control count: messages broadcast (new and retransmitted) during the last rotation.
    public var flowControlCount: UInt32
    /// Sum over nodes of their send-queue lengths.
    public var backlog: UInt32
    /// Set while some member still has old-ring messages to re-broadcast in RECOVERY.
    public var retransmitFlag: Bool
    /// At most `WireLimits.maxRetransmitRequests` entries.
    public var retransmitRequests: [RetransmitRequest]

    /// Creates a token with every field given.
    public init(
        sender: NodeID, ringID: RingID, tokenSequence: UInt32, sequence: SequenceNumber,
        aru: SequenceNumber, aruSetter: NodeID?, flowControlCount: UInt32, backlog: UInt32,
        retransmitFlag: Bool, retransmitRequests: [RetransmitRequest]
    ) {
        self.sender = sender
        self.ringID = ringID
        self.tokenSequence = tokenSequence
        self.sequence = sequence
        self.aru = aru
        self.aruSetter = aruSetter
        self.flowControlCount = flowControlCount
        self.backlog = backlog
        self.retransmitFlag = retransmitFlag
        self.retransmitRequests = retransmitRequests
    }
}

/// A regular multicast message (MCAST, spec §2.2): one SRP frame with a sequence number.
public struct DataMessage: Sendable, Equatable {
    /// The node that multicast this datagram (equal to `originator` unless encapsulated).
    public var sender: NodeID
    /// The ring the message was sequenced in.
    public var ringID: RingID
    /// Its place in the ring's total order.
    public var sequence: SequenceNumber
    /// The node that originated the message in `ringID`.
    public var originator: NodeID
    /// Agreed or safe delivery.
    public var delivery: DeliveryMode
    /// Either an application frame, or a whole old-ring message wrapped during RECOVERY (§4.8).
    public var content: DataContent

    public init(
        sender: NodeID, ringID: RingID, sequence: SequenceNumber, originator: NodeID,
        delivery: DeliveryMode, content: DataContent
    ) {
        self.sender = sender
        self.ringID = ringID
        self.sequence = sequence
        self.originator = originator
        self.delivery = delivery
        self.content = content
    }

    /// True when this message carries an old-ring message re-broadcast during RECOVERY.
    public var isEncapsulated: Bool {
        if case .encapsulated = content { return true }
        return false
    }
}

/// What a `DataMessage` carries. Only the rare encapsulated case is boxed: with the whole enum
/// `indirect`, every frame received cost an allocation of its own.
public enum DataContent: Sendable, Equatable {
    /// A packing-layer frame (spec §5.1), opaque to the ordering protocol.
    case frame([UInt8])
    /// A complete old-ring MCAST re-broadcast in the new ring during RECOVERY (flag ENCAPSULATED).
    /// On the wire it is the inner datagram (header and body, no authentication trailer); the
    /// inner message is itself never encapsulated.
    indirect case encapsulated(DataMessage)
}

/// A JOIN (or, with `isLeave`, a LEAVE) message of the membership protocol (spec §4.4, §4.13).
public struct JoinMessage: Sendable, Equatable {
    public var sender: NodeID
    /// The sender's current ring sequence number (`myRingId.seq`).
    public var ringSequence: UInt64
    /// The nodes the sender believes alive (its proc set). Order is not significant.
    public var processors: [NodeID]
    /// The nodes the sender believes failed (its fail set). Order is not significant.
    public var failed: [NodeID]
    /// A graceful LEAVE: the sender is in `failed` and not in `processors`.
    public var isLeave: Bool

    public init(sender: NodeID, ringSequence: UInt64, processors: [NodeID], failed: [NodeID], isLeave: Bool = false) {
        self.sender = sender
        self.ringSequence = ringSequence
        self.processors = processors
        self.failed = failed
        self.isLeave = isLeave
    }
}

/// One member's entry in the commit token (spec §4.7).
public struct CommitTokenEntry: Sendable, Equatable {
    /// The ring the member was last operational in.
    public var oldRingID: RingID
    /// The member's aru in that old ring.
    public var aru: SequenceNumber
    /// The highest old-ring sequence number the member delivered.
    public var highDelivered: SequenceNumber
    /// False if the member is known to lack some old-ring message.
    public var receivedFlag: Bool

    public init(oldRingID: RingID, aru: SequenceNumber, highDelivered: SequenceNumber, receivedFlag: Bool) {
        self.oldRingID = oldRingID
        self.aru = aru
        self.highDelivered = highDelivered
        self.receivedFlag = receivedFlag
    }

    /// An entry not yet filled in by its member.
    public static let empty = CommitTokenEntry(
        oldRingID: RingID(representative: NodeID(UInt32.max), sequence: 0),
        aru: .zero, highDelivered: .zero, receivedFlag: false)
}

/// The commit token that circulates twice to form a new ring (spec §4.6, §4.7).
public struct CommitToken: Sendable, Equatable {
    public var sender: NodeID
    /// The id of the ring being formed.
    public var ringID: RingID
    public var tokenSequence: UInt32
    /// Index in `members` of the next member to fill its entry; equals `members.count` once
    /// the first rotation completed.
    public var memberIndex: Int
    /// The new ring's members, strictly ascending.
    public var members: [NodeID]
    /// `entries[i]` belongs to `members[i]`.
    public var entries: [CommitTokenEntry]

    public init(sender: NodeID, ringID: RingID, tokenSequence: UInt32, memberIndex: Int, members: [NodeID], entries: [CommitTokenEntry]) {
        self.sender = sender
        self.ringID = ringID
        self.tokenSequence = tokenSequence
        self.memberIndex = memberIndex
        self.members = members
        self.entries = entries
    }
}

/// Multicast by the representative of an idle ring so that idle partitions find each other (§4.12).
public struct MergeDetect: Sendable, Equatable {
    public var sender: NodeID
    public var ringID: RingID

    public init(sender: NodeID, ringID: RingID) {
        self.sender = sender
        self.ringID = ringID
    }
}

/// Multicast by a node with something to send while the representative holds the token (§3.10).
/// A liveness probe or its reply (ours). A report that nothing listens at a member's address is
/// an unauthenticated ICMP message anyone can forge; before the ring drops the member, the
/// member is asked, with the cluster key, whether it is alive. Only a live member holding the key
/// can answer, and the nonce ties the answer to this question (an old answer replayed does not
/// match).
public struct LivenessProbe: Sendable, Equatable {
    public var sender: NodeID
    /// Chosen by the prober, never reused by it: echoed in the reply.
    public var nonce: UInt64

    public init(sender: NodeID, nonce: UInt64) {
        self.sender = sender
        self.nonce = nonce
    }
}

public struct TokenHoldCancel: Sendable, Equatable {
    public var sender: NodeID
    public var ringID: RingID

    public init(sender: NodeID, ringID: RingID) {
        self.sender = sender
        self.ringID = ringID
    }
}
