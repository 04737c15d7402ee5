// Why the wire codec rejected a datagram. Owns the reasons and their log text, not the counting
// or logging of drops (the runtime does that).

/// The reason a received datagram was rejected by `WireCodec.decode` (spec §2.3).
///
/// Every case is an *operating error*: a malformed, foreign or hostile datagram that the runtime
/// drops, counts and logs. None of them is ever a crash. Each case carries the facts that led to
/// the rejection (the offending value, the expected and actual sizes) rather than a message.
public enum WireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Fewer bytes remained than the next field needs.
    case truncated(needed: Int, available: Int)
    /// The first two bytes are not `WireCodec.magic`: not a Totem datagram of ours.
    case badMagic(UInt16)
    /// The header's version is not `WireCodec.version`.
    case unsupportedVersion(UInt8)
    /// The header's type is not one of `PacketType`.
    case unknownType(UInt8)
    /// The header's cluster id differs from ours: another cluster shares the group or port.
    case foreignCluster(UInt32)
    /// The header's link number differs from the link this codec serves.
    case wrongLink(UInt8)
    /// The header sets a flag that is undefined or not allowed for its type (raw type code).
    case invalidFlags(UInt8, type: UInt8)
    /// The header's reserved field is not zero (it is kept zero so later versions can use it).
    case reservedNotZero(UInt16)
    /// A count exceeds its protocol limit. `field` names the counted list.
    case countOutOfRange(field: String, count: Int, limit: Int)
    /// A commit token lists no members (it needs at least one).
    case noMembers
    /// The datagram's length differs from the length its counts imply.
    case lengthMismatch(expected: Int, actual: Int)
    /// A node id field that must name a node holds the reserved value 0. `field` names it.
    case zeroNodeID(field: String)
    /// A JOIN lists the same node twice in one list.
    case duplicateNodeID(UInt32)
    /// A commit token's member list is not strictly ascending at `previous`, `next`.
    case membersNotAscending(previous: UInt32, next: UInt32)
    /// A commit token's member index is greater than its member count.
    case memberIndexOutOfRange(Int, count: Int)
    /// A non-encapsulated MCAST whose originator is not the node that sent it.
    case originatorMismatch(originator: UInt32, sender: UInt32)
    /// A JOIN whose sender is missing from its own processor list.
    case joinSenderNotInProcessors(UInt32)
    /// A LEAVE whose sender is not in its failed list, or is still in its processor list.
    case leaveSenderInvalid(UInt32)
    /// An encapsulated MCAST whose inner message is itself encapsulated.
    case nestedEncapsulation
    /// An encapsulated MCAST whose inner datagram is not an MCAST (raw type code).
    case innerNotMulticast(type: UInt8)
    /// An encapsulated MCAST whose inner datagram failed validation for the wrapped reason.
    indirect case invalidInnerMessage(WireError)
    /// A delivery field that is neither agreed (0) nor safe (1).
    case invalidDeliveryMode(UInt8)
    /// A flag byte that is neither 0 nor 1. `field` names it.
    case invalidBoolean(UInt8, field: String)
    /// The datagram is longer than `WireLimits.maxDatagramBytes`.
    case oversized(Int)

    /// One line for logs, e.g. `truncated: needed 4 bytes, 2 available`.
    public var description: String {
        switch self {
        case .truncated(let needed, let available):
            "truncated: needed \(needed) bytes, \(available) available"
        case .badMagic(let magic):
            "bad magic 0x\(String(magic, radix: 16))"
        case .unsupportedVersion(let version):
            version < WireCodec.version
                ? "wire version \(version), older than this node's \(WireCodec.version): every node must run a release that speaks version \(WireCodec.version) (docs/wire-format.md)"
                : "wire version \(version), newer than this node's \(WireCodec.version): upgrade this node (docs/wire-format.md)"
        case .unknownType(let type):
            "unknown packet type \(type)"
        case .foreignCluster(let clusterID):
            "foreign cluster id 0x\(String(clusterID, radix: 16))"
        case .wrongLink(let link):
            "wrong link \(link)"
        case .invalidFlags(let flags, let type):
            "flags 0x\(String(flags, radix: 16)) not allowed on packet type \(type)"
        case .reservedNotZero(let value):
            "reserved header field is 0x\(String(value, radix: 16)), not 0"
        case .countOutOfRange(let field, let count, let limit):
            "\(field) count \(count) exceeds limit \(limit)"
        case .noMembers:
            "commit token without members"
        case .lengthMismatch(let expected, let actual):
            "length \(actual) bytes, expected \(expected)"
        case .zeroNodeID(let field):
            "node id 0 in \(field)"
        case .duplicateNodeID(let node):
            "node \(node) listed twice"
        case .membersNotAscending(let previous, let next):
            "members not strictly ascending: \(next) follows \(previous)"
        case .memberIndexOutOfRange(let index, let count):
            "member index \(index) beyond member count \(count)"
        case .originatorMismatch(let originator, let sender):
            "originator \(originator) differs from sender \(sender)"
        case .joinSenderNotInProcessors(let sender):
            "join sender \(sender) not in its processor list"
        case .leaveSenderInvalid(let sender):
            "leave sender \(sender) not in its failed list or still in its processor list"
        case .nestedEncapsulation:
            "encapsulated message inside an encapsulated message"
        case .innerNotMulticast(let type):
            "encapsulated datagram has packet type \(type), not multicast"
        case .invalidInnerMessage(let reason):
            "invalid encapsulated message: \(reason)"
        case .invalidDeliveryMode(let mode):
            "invalid delivery mode \(mode)"
        case .invalidBoolean(let value, let field):
            "\(field) is \(value), not 0 or 1"
        case .oversized(let length):
            "datagram of \(length) bytes exceeds \(WireLimits.maxDatagramBytes)"
        }
    }
}
