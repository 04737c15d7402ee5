// The CLM-like membership service: Totem configuration changes in, a node directory, numbered
// views, quorum and a change stream out. Pure: no I/O, clock, randomness or threads.

import Totem

/// Cluster membership (AIS CLM-like) for one node, as a pure state machine.
///
/// Inputs: `configurationChanged(_:)` for every Totem configuration change (TRANSITIONAL then
/// REGULAR), and `delivered(payload:from:)` for every ring message whose envelope names
/// `ServiceID.membership`, in ring order. Outputs: `MembershipEffect`s, to execute in order:
/// `submit` the bytes to the ring, `notify` local watchers of a change.
///
/// What it keeps:
/// - a **node directory** (`nodes`): id, name, addresses, entity id, membership and the view
///   since which a node is a member. Names and addresses come from the configured node list when
///   there is one; entity ids, and names of unlisted nodes, from the `NodeAnnouncement` each
///   node submits after every REGULAR configuration;
/// - **numbered views**: 1, 2, ... counted locally per REGULAR configuration (`view`);
/// - **quorum** (`quorum`): a strict majority of the configured node list, or always quorate
///   without a list.
///
/// Messages delivered between a TRANSITIONAL and the next REGULAR configuration (extended
/// virtual synchrony) are still applied: an announcement is a fact about its sender whatever the
/// configuration.
public struct MembershipService: Sendable {
    /// This node.
    public let localNode: NodeID
    /// This node's entity id.
    public let entityID: EntityID
    private let announcement: NodeAnnouncement
    private var directory: NodeDirectory
    private let configuredIDs: [NodeID]
    /// The last installed REGULAR view; `nil` before the first one.
    public private(set) var view: View?
    /// The members of the current configuration (TRANSITIONAL or REGULAR), ascending.
    public private(set) var currentMembers: [NodeID] = []
    /// Announcements received (valid ones).
    public private(set) var announcementsReceived = 0

    /// Creates the service for `localNode`.
    ///
    /// - Parameters:
    ///   - localNode: This node: id, and the name and addresses it announces.
    ///   - entityID: This node's entity id.
    ///   - configuredNodes: The configured node list, or empty when there is none.
    /// - Throws: `MembershipConfigurationError` for a duplicate id, an invalid name, or too many
    ///   addresses.
    public init(localNode: ConfiguredNode, entityID: EntityID, configuredNodes: [ConfiguredNode]) throws(MembershipConfigurationError) {
        var seen = Set<NodeID>()
        for node in configuredNodes + [localNode] {
            guard NodeName.isValid(node.name) else { throw .invalidName(node.name, node: node.id) }
            guard node.addresses.count <= NodeAnnouncement.maxAddresses else {
                throw .tooManyAddresses(node: node.id, count: node.addresses.count, limit: NodeAnnouncement.maxAddresses)
            }
        }
        for node in configuredNodes {
            guard seen.insert(node.id).inserted else { throw .duplicateNode(node.id) }
        }
        // The node announces its configured name and addresses when the list names it.
        let announced = configuredNodes.first { $0.id == localNode.id } ?? localNode
        self.localNode = localNode.id
        self.entityID = entityID
        announcement = NodeAnnouncement(node: localNode.id, entityID: entityID, name: announced.name,
                                        addresses: announced.addresses)
        directory = NodeDirectory(configured: configuredNodes)
        directory.insertLocal(localNode, entityID: entityID)
        configuredIDs = directory.configuredIDs
        checkInvariants()
    }

    /// Every known node, ascending by id.
    public var nodes: [NodeRecord] { directory.all }

    /// The record of `node`, if known.
    public func node(_ node: NodeID) -> NodeRecord? { directory[node] }

    /// Current members that announced one entity id, one group per shared id (ascending by the
    /// groups' first node). Their device states overwrite each other's (one cache slot per
    /// entity, as in Asterisk): every server needs its own. Daemons on one host that derive the
    /// id from the same MAC address end up here.
    public var entityConflicts: [EntityConflict] {
        var byEntity: [EntityID: [NodeID]] = [:]
        for record in directory.all where record.isMember {
            if let entity = record.entityID { byEntity[entity, default: []].append(record.id) }
        }
        return byEntity.filter { $0.value.count > 1 }
            .map { EntityConflict(entityID: $0.key, nodes: $0.value.sorted()) }
            .sorted { $0.nodes[0] < $1.nodes[0] }
    }

    /// The quorum state of the current configuration.
    public var quorum: Quorum {
        let present = configuredIDs.filter { currentMembers.contains($0) }.count
        return Quorum(configuredCount: configuredIDs.count, presentCount: present)
    }

    /// Applies a Totem configuration change.
    ///
    /// TRANSITIONAL: nodes of the old configuration that did not come along leave at once.
    /// REGULAR: the view number advances, new members join, the view is installed, and this node
    /// submits its announcement.
    ///
    /// - Returns: `notify` effects in the order described on `MembershipChange`, then (REGULAR
    ///   only) the `submit` of our announcement.
    public mutating func configurationChanged(_ change: ConfigurationChange) -> [MembershipEffect] {
        defer { checkInvariants() }
        let quorumBefore = quorum.isQuorate
        let previousNumber = view?.number ?? 0
        var effects: [MembershipEffect] = []
        // Whoever is no longer in the configuration left, TRANSITIONAL or (defensively) REGULAR.
        for node in currentMembers where !change.members.contains(node) {
            directory.markNotMember(node)
            effects.append(.notify(.left(node, view: previousNumber)))
        }
        switch change.kind {
        case .transitional:
            currentMembers = change.members
        case .regular:
            let number = previousNumber + 1
            for node in change.members where directory[node]?.isMember != true {
                directory.markMember(node, since: number)
                effects.append(.notify(.joined(node, view: number)))
            }
            currentMembers = change.members
            let installed = View(number: number, ringID: change.ringID, members: change.members)
            view = installed
            effects.append(.notify(.viewInstalled(installed)))
        }
        if quorum.isQuorate != quorumBefore { effects.append(.notify(.quorumChanged(quorum))) }
        if change.kind == .regular { effects.append(.submit(announcement.encoded())) }
        return effects
    }

    /// Applies a ring message addressed to the membership service.
    ///
    /// - Parameters:
    ///   - payload: The whole ring payload, envelope byte included.
    ///   - sender: The node the ring says sent it.
    /// - Returns: `notify(.nodeIdentified)` when the announcement taught something new.
    /// - Throws: `ServiceWireError` for a malformed message, `senderMismatch` when the
    ///   announcement names another node than its sender, or `conflictingLocalNode` when it
    ///   gives this node's id another entity id. Nothing changes on a throw.
    public mutating func delivered(payload: [UInt8], from sender: NodeID) throws(ServiceWireError) -> [MembershipEffect] {
        defer { checkInvariants() }
        let announcement = try NodeAnnouncement(decoding: payload)
        guard announcement.node == sender else {
            throw .senderMismatch(claimed: announcement.node.rawValue, sender: sender.rawValue)
        }
        // Our own record is ours: an announcement of our id with another entity comes from a
        // server that shares our node id (a configuration error there), never from us.
        guard announcement.node != localNode || announcement.entityID == entityID else {
            throw .conflictingLocalNode(node: localNode.rawValue, entityID: announcement.entityID.description)
        }
        announcementsReceived += 1
        guard let record = directory.learn(announcement) else { return [] }
        return [.notify(.nodeIdentified(record))]
    }

    /// Checked after every input. A failure is a bug in this file, not bad input.
    private func checkInvariants() {
        precondition(currentMembers == currentMembers.sorted(), "members not ascending: \(currentMembers)")
        for member in currentMembers {
            precondition(directory[member]?.isMember == true, "member \(member) not marked in the directory")
        }
        precondition(directory[localNode]?.entityID == entityID, "own entity id lost")
        if let view {
            precondition(view.number >= 1, "view number \(view.number)")
        }
    }
}

/// What the membership service asks the daemon to do, in order.
public enum MembershipEffect: Sendable, Equatable {
    /// Submit these bytes to the ring (they already carry the service envelope).
    case submit([UInt8])
    /// Tell local watchers (in-process clients, `watch` sessions) about a change.
    case notify(MembershipChange)
}

/// Why `MembershipService.init` refused its configuration.
/// Members sharing one entity id (see `MembershipService.entityConflicts`).
public struct EntityConflict: Sendable, Equatable {
    /// The shared id.
    public var entityID: EntityID
    /// The members announcing it, ascending (two or more).
    public var nodes: [NodeID]

    public init(entityID: EntityID, nodes: [NodeID]) {
        self.entityID = entityID
        self.nodes = nodes
    }
}

public enum MembershipConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The node list names the same id twice.
    case duplicateNode(NodeID)
    /// A node name breaks `NodeName` rules.
    case invalidName(String, node: NodeID)
    /// A node has more addresses than an announcement carries.
    case tooManyAddresses(node: NodeID, count: Int, limit: Int)

    public var description: String {
        switch self {
        case .duplicateNode(let node): "node \(node) is listed twice"
        case .invalidName(let name, let node): "node \(node): invalid name \"\(name)\" (1-64 printable ASCII characters, no spaces)"
        case .tooManyAddresses(let node, let count, let limit): "node \(node): \(count) addresses, at most \(limit)"
        }
    }
}
