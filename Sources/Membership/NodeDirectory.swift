// The node directory: every node configured or ever seen, by id. Owns the merge of configured
// and announced facts; deciding who is a member is the membership service's job.

import Totem

/// Every node this process knows: configured ones, and others once they were members or
/// announced themselves. Records are never removed (a node that left shows `isMember == false`,
/// like AIS's `Member: No`).
struct NodeDirectory: Sendable, Equatable {
    private var records: [NodeID: NodeRecord] = [:]

    /// Starts with the configured node list (names and addresses are authoritative).
    init(configured: [ConfiguredNode]) {
        for node in configured {
            records[node.id] = NodeRecord(id: node.id, name: node.name, addresses: node.addresses, entityID: nil,
                                          isConfigured: true, isMember: false, memberSinceView: nil)
        }
    }

    /// All records, ascending by node id.
    var all: [NodeRecord] { records.keys.sorted().compactMap { records[$0] } }

    /// The record of `node`, if known.
    subscript(node: NodeID) -> NodeRecord? { records[node] }

    /// Ids of configured nodes, ascending.
    var configuredIDs: [NodeID] { records.values.filter(\.isConfigured).map(\.id).sorted() }

    /// Marks `node` a member since `view`, creating its record if needed.
    mutating func markMember(_ node: NodeID, since view: UInt64) {
        var record = records[node] ?? Self.unknown(node)
        record.isMember = true
        record.memberSinceView = view
        records[node] = record
    }

    /// Marks `node` not a member.
    mutating func markNotMember(_ node: NodeID) {
        guard var record = records[node] else { return }
        record.isMember = false
        record.memberSinceView = nil
        records[node] = record
    }

    /// Applies what `node` announced. Configured names and addresses win over announced ones.
    ///
    /// - Returns: The updated record if anything visible changed, else `nil`.
    mutating func learn(_ announcement: NodeAnnouncement) -> NodeRecord? {
        let old = records[announcement.node] ?? Self.unknown(announcement.node)
        var new = old
        new.entityID = announcement.entityID
        if !new.isConfigured {
            new.name = announcement.name
            new.addresses = announcement.addresses
        }
        records[announcement.node] = new
        return new == old ? nil : new
    }

    /// Records what we know of ourselves without an announcement: our entity id, and our name
    /// and addresses when the node list does not name us.
    mutating func insertLocal(_ local: ConfiguredNode, entityID: EntityID) {
        var record = records[local.id] ?? Self.unknown(local.id)
        record.entityID = entityID
        if !record.isConfigured {
            record.name = local.name
            record.addresses = local.addresses
        }
        records[local.id] = record
    }

    private static func unknown(_ node: NodeID) -> NodeRecord {
        NodeRecord(id: node, name: NodeName.defaultName(for: node), addresses: [], entityID: nil, isConfigured: false,
                   isMember: false, memberSinceView: nil)
    }
}
