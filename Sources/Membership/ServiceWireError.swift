// Why a cluster-service message (membership, event, device state) or a persisted state file was
// rejected. Owns the reasons and their log text; counting and logging drops is the daemon's job.

/// The reason bytes from the ring (or from the state file) were rejected by a service decoder.
///
/// Every case is an *operating error* (STYLE §4): a malformed, truncated, oversized or hostile
/// message that the daemon drops, counts and logs. None of them is ever a crash. Cases carry the
/// facts that led to the rejection, not prose; `field` names the offending field for the log.
public enum ServiceWireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The message has no bytes at all (not even the service byte).
    case empty
    /// The first byte names no service this build knows.
    case unknownService(UInt8)
    /// The message is for another service than the decoder's (a routing bug in the caller).
    case wrongService(expected: ServiceID, actual: UInt8)
    /// The format's version byte is not one this build reads. `format` names the format.
    case unsupportedVersion(UInt8, format: String)
    /// The format's kind byte names no known message kind. `format` names the format.
    case unknownKind(UInt8, format: String)
    /// Fewer bytes remained than the next field needs.
    case truncated(needed: Int, available: Int)
    /// The whole input is longer than its format allows, checked before any parsing.
    case oversized(size: Int, limit: Int)
    /// Bytes were left over after the last field.
    case trailingBytes(Int)
    /// A length field is outside its allowed range. `field` names it.
    case lengthOutOfRange(field: String, length: Int, minimum: Int, maximum: Int)
    /// A count field is above its limit. `field` names the counted list.
    case countOutOfRange(field: String, count: Int, limit: Int)
    /// A text field is not valid UTF-8.
    case invalidUTF8(field: String)
    /// A text field is valid UTF-8 but breaks the field's syntax (for example a space in a name).
    case invalidText(field: String)
    /// A name field contains a control, format or separator character (`InvisibleCharacter`).
    case invisibleCharacter(field: String, InvisibleCharacter)
    /// A node id field holds the reserved value 0.
    case zeroNodeID(field: String)
    /// A numeric field holds a value outside its domain (an unknown state code, a zero counter).
    case invalidValue(field: String, value: UInt64)
    /// A list that must be strictly ascending (and so free of duplicates) is not.
    case notAscending(field: String)
    /// A list holds the same key twice (for example two attribute keys that are equal as
    /// Swift strings though their bytes differ).
    case duplicate(field: String)
    /// A message claims another originator than the ring says sent it.
    case senderMismatch(claimed: UInt32, sender: UInt32)
    /// A message sent as this node that this node did not send: another server is configured
    /// with this node's id.
    case conflictingLocalNode(node: UInt32, entityID: String)

    /// One line for logs, e.g. `truncated: needed 4 bytes, 2 available`.
    public var description: String {
        switch self {
        case .empty:
            "empty message"
        case .unknownService(let service):
            "unknown service \(service)"
        case .wrongService(let expected, let actual):
            "message for service \(actual), expected \(expected.rawValue) (\(expected))"
        case .unsupportedVersion(let version, let format):
            "\(format): unsupported version \(version)"
        case .unknownKind(let kind, let format):
            "\(format): unknown kind \(kind)"
        case .truncated(let needed, let available):
            "truncated: needed \(needed) bytes, \(available) available"
        case .oversized(let size, let limit):
            "oversized: \(size) bytes, limit \(limit)"
        case .trailingBytes(let count):
            "\(count) trailing bytes"
        case .lengthOutOfRange(let field, let length, let minimum, let maximum):
            "\(field): length \(length) outside \(minimum)...\(maximum)"
        case .countOutOfRange(let field, let count, let limit):
            "\(field): count \(count) above limit \(limit)"
        case .invalidUTF8(let field):
            "\(field): not valid UTF-8"
        case .invalidText(let field):
            "\(field): invalid text"
        case .invisibleCharacter(let field, let character):
            "\(field): contains \(character)"
        case .zeroNodeID(let field):
            "\(field): node id 0 is reserved"
        case .invalidValue(let field, let value):
            "\(field): invalid value \(value)"
        case .notAscending(let field):
            "\(field): not strictly ascending"
        case .duplicate(let field):
            "\(field): duplicate key"
        case .senderMismatch(let claimed, let sender):
            "claims node \(claimed) but was sent by node \(sender)"
        case .conflictingLocalNode(let node, let entityID):
            "announces node \(node), this node's id, with entity id \(entityID), not ours: another server is configured with nodeid \(node)"
        }
    }
}
