// The membership service's only message: a node says who it is after every REGULAR
// configuration. Owns the model and its binary format.

import Totem

/// What a node announces about itself after every REGULAR configuration, so that every member
/// learns every other member's entity id and name even without a configured node list.
///
/// Binary format (big-endian; the whole ring payload, envelope byte included):
///
/// ```
/// offset  size  field
///   0      1    service id = 1 (ServiceID.membership)
///   1      1    format version = 1
///   2      1    kind = 1 (announcement)
///   3      4    node id (non-zero; must equal the Totem sender)
///   7      6    entity id
///  13      1    name length N, 1...64
///  14      N    name: printable ASCII without spaces (NodeName rules)
///  14+N    1    address count A, 0...8
///  ...          A times: 1 byte length L (4 or 16), then L address bytes
/// ```
/// Nothing may follow the last address. Decoding rejects every violation with a
/// `ServiceWireError`; it never traps.
public struct NodeAnnouncement: Sendable, Equatable {
    /// The format version this build writes and reads.
    public static let version: UInt8 = 1
    /// The kind byte of an announcement.
    static let kind: UInt8 = 1
    /// The most addresses one node announces.
    public static let maxAddresses = 8

    /// The announcing node.
    public var node: NodeID
    /// Its entity id.
    public var entityID: EntityID
    /// Its name.
    public var name: String
    /// Its addresses.
    public var addresses: [NodeAddress]

    /// Creates an announcement. The name must follow `NodeName` rules and there may be at most
    /// `maxAddresses` addresses (checked by `MembershipService.init`; a violation here is a bug).
    public init(node: NodeID, entityID: EntityID, name: String, addresses: [NodeAddress]) {
        precondition(NodeName.isValid(name), "invalid node name \(name)")
        precondition(addresses.count <= Self.maxAddresses, "\(addresses.count) addresses, limit \(Self.maxAddresses)")
        self.node = node
        self.entityID = entityID
        self.name = name
        self.addresses = addresses
    }

    /// The ring payload, envelope byte included.
    public func encoded() -> [UInt8] {
        var writer = ServiceWireWriter(capacity: 32 + name.utf8.count + 17 * addresses.count)
        writer.write(ServiceID.membership.rawValue)
        writer.write(Self.version)
        writer.write(Self.kind)
        writer.write(node.rawValue)
        writer.write(entityID)
        writer.writeString(name, lengthAs: UInt8.self)
        writer.writeLength(addresses.count, as: UInt8.self)
        for address in addresses {
            writer.writeLength(address.bytes.count, as: UInt8.self)
            writer.write(contentsOf: address.bytes)
        }
        return writer.bytes
    }

    /// Decodes a ring payload, envelope byte included.
    ///
    /// - Throws: `ServiceWireError` for a wrong service, version or kind, a zero node id, a bad
    ///   name, a bad address length, too many addresses, missing or trailing bytes.
    public init(decoding payload: [UInt8]) throws(ServiceWireError) {
        var reader = try ServiceEnvelope.open(payload, expecting: .membership)
        let version = try reader.readUInt8()
        guard version == Self.version else { throw .unsupportedVersion(version, format: "membership") }
        let kind = try reader.readUInt8()
        guard kind == Self.kind else { throw .unknownKind(kind, format: "membership") }
        guard let node = NodeID(rawValue: try reader.readUInt32()) else { throw .zeroNodeID(field: "node") }
        guard let entityID = EntityID(rawValue: try reader.readUInt48()) else {
            preconditionFailure("six bytes always make an entity id")
        }
        let name = try reader.readString(lengthAs: UInt8.self, field: "name", minimum: 1, limit: NodeName.maxBytes)
        guard NodeName.isValid(name) else { throw .invalidText(field: "name") }
        let count = try reader.readCount(as: UInt8.self, field: "addresses", limit: Self.maxAddresses)
        var addresses: [NodeAddress] = []
        for _ in 0..<count {
            let length = try reader.readLength(as: UInt8.self, field: "address", minimum: 4, limit: 16)
            guard let address = NodeAddress(bytes: try reader.readBytes(count: length)) else {
                throw .lengthOutOfRange(field: "address", length: length, minimum: 4, maximum: 16)
            }
            addresses.append(address)
        }
        try reader.requireEnd()
        self.init(node: node, entityID: entityID, name: name, addresses: addresses)
    }
}
