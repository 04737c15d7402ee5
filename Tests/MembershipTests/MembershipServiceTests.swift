// The membership service: views, the change stream, the directory, announcements and quorum.

import Testing
import Totem
@testable import Membership

/// Builders for configuration changes as Totem delivers them.
enum Configurations {
    static func ring(_ sequence: UInt64, _ members: [UInt32]) -> RingID {
        RingID(representative: NodeID(members.min() ?? 1), sequence: sequence)
    }

    /// A TRANSITIONAL then REGULAR pair moving from `old` to `new`.
    static func change(from old: [UInt32], to new: [UInt32], sequence: UInt64) -> (ConfigurationChange, ConfigurationChange) {
        let transitional = old.filter(new.contains).sorted()
        let ringID = ring(sequence, new)
        return (ConfigurationChange(kind: .transitional, ringID: ringID, members: transitional.map(NodeID.init),
                                    left: old.filter { !new.contains($0) }.sorted().map(NodeID.init), joined: []),
                ConfigurationChange(kind: .regular, ringID: ringID, members: new.sorted().map(NodeID.init), left: [],
                                    joined: new.filter { !transitional.contains($0) }.sorted().map(NodeID.init)))
    }
}

@Suite("MembershipService")
struct MembershipServiceTests {
    static let entity1 = EntityID(parsing: "00:00:00:00:00:01")!
    static let entity2 = EntityID(parsing: "00:00:00:00:00:02")!
    static let configured = [
        ConfiguredNode(id: NodeID(1), name: "alpha", addresses: [NodeAddress(bytes: [10, 0, 0, 1])!]),
        ConfiguredNode(id: NodeID(2), name: "beta", addresses: [NodeAddress(bytes: [10, 0, 0, 2])!]),
        ConfiguredNode(id: NodeID(3), name: "gamma", addresses: [NodeAddress(bytes: [10, 0, 0, 3])!]),
    ]

    static func makeService(configured: [ConfiguredNode] = configured) throws -> MembershipService {
        try MembershipService(localNode: ConfiguredNode(id: NodeID(1), name: "alpha", addresses: []), entityID: entity1,
                              configuredNodes: configured)
    }

    static func apply(_ pair: (ConfigurationChange, ConfigurationChange), to service: inout MembershipService) -> [MembershipEffect] {
        service.configurationChanged(pair.0) + service.configurationChanged(pair.1)
    }

    static func changes(_ effects: [MembershipEffect]) -> [MembershipChange] {
        effects.compactMap { if case .notify(let change) = $0 { change } else { nil } }
    }

    static func submits(_ effects: [MembershipEffect]) -> [[UInt8]] {
        effects.compactMap { if case .submit(let bytes) = $0 { bytes } else { nil } }
    }

    @Test("views are numbered 1, 2, ... per REGULAR configuration; TRANSITIONAL does not count")
    func viewNumbers() throws {
        var service = try Self.makeService()
        #expect(service.view == nil)
        _ = Self.apply(Configurations.change(from: [], to: [1], sequence: 4), to: &service)
        #expect(service.view?.number == 1)
        _ = Self.apply(Configurations.change(from: [1], to: [1, 2], sequence: 8), to: &service)
        #expect(service.view?.number == 2)
        #expect(service.view?.members == [NodeID(1), NodeID(2)])
        #expect(service.view?.ringID == RingID(representative: NodeID(1), sequence: 8))
        _ = service.configurationChanged(Configurations.change(from: [1, 2], to: [1], sequence: 12).0)
        #expect(service.view?.number == 2)
    }

    @Test("change stream: joined then viewInstalled on REGULAR, left at once on TRANSITIONAL")
    func changeStream() throws {
        var service = try Self.makeService()
        let first = Self.changes(Self.apply(Configurations.change(from: [], to: [1, 2, 3], sequence: 4), to: &service))
        let view1 = View(number: 1, ringID: Configurations.ring(4, [1, 2, 3]), members: [NodeID(1), NodeID(2), NodeID(3)])
        #expect(first == [.joined(NodeID(1), view: 1), .joined(NodeID(2), view: 1), .joined(NodeID(3), view: 1), .viewInstalled(view1),
                          .quorumChanged(Quorum(configuredCount: 3, presentCount: 3))])

        let pair = Configurations.change(from: [1, 2, 3], to: [1, 2], sequence: 8)
        let transitional = Self.changes(service.configurationChanged(pair.0))
        #expect(transitional == [.left(NodeID(3), view: 1)])
        #expect(service.node(NodeID(3))?.isMember == false)
        #expect(service.currentMembers == [NodeID(1), NodeID(2)])
        let regular = Self.changes(service.configurationChanged(pair.1))
        #expect(regular == [.viewInstalled(View(number: 2, ringID: Configurations.ring(8, [1, 2]), members: [NodeID(1), NodeID(2)]))])
    }

    @Test("memberSinceView records the view a node joined in, and is cleared when it leaves")
    func memberSince() throws {
        var service = try Self.makeService()
        _ = Self.apply(Configurations.change(from: [], to: [1], sequence: 4), to: &service)
        _ = Self.apply(Configurations.change(from: [1], to: [1, 2], sequence: 8), to: &service)
        #expect(service.node(NodeID(1))?.memberSinceView == 1)
        #expect(service.node(NodeID(2))?.memberSinceView == 2)
        _ = Self.apply(Configurations.change(from: [1, 2], to: [1], sequence: 12), to: &service)
        #expect(service.node(NodeID(2))?.memberSinceView == nil)
        #expect(service.node(NodeID(2))?.isMember == false)
        #expect(service.nodes.map(\.id) == [NodeID(1), NodeID(2), NodeID(3)])
    }

    @Test("every REGULAR configuration submits our announcement; TRANSITIONAL does not")
    func announcesOnRegular() throws {
        var service = try Self.makeService()
        let pair = Configurations.change(from: [], to: [1, 2], sequence: 4)
        #expect(Self.submits(service.configurationChanged(pair.0)).isEmpty)
        let submitted = Self.submits(service.configurationChanged(pair.1))
        #expect(submitted.count == 1)
        let announcement = try NodeAnnouncement(decoding: submitted[0])
        #expect(announcement == NodeAnnouncement(node: NodeID(1), entityID: Self.entity1, name: "alpha",
                                                 addresses: [NodeAddress(bytes: [10, 0, 0, 1])!]))
        let again = Self.submits(Self.apply(Configurations.change(from: [1, 2], to: [1, 2, 3], sequence: 8), to: &service))
        #expect(again == submitted)
    }

    @Test("announcements teach entity ids; a repeated announcement changes nothing")
    func learnsEntityIDs() throws {
        var service = try Self.makeService()
        _ = Self.apply(Configurations.change(from: [], to: [1, 2], sequence: 4), to: &service)
        #expect(service.node(NodeID(2))?.entityID == nil)
        let bytes = NodeAnnouncement(node: NodeID(2), entityID: Self.entity2, name: "renamed", addresses: []).encoded()
        let effects = try service.delivered(payload: bytes, from: NodeID(2))
        let record = try #require(service.node(NodeID(2)))
        #expect(record.entityID == Self.entity2)
        // The configured list is the authority for names and addresses.
        #expect(record.name == "beta")
        #expect(record.addresses == [NodeAddress(bytes: [10, 0, 0, 2])!])
        #expect(Self.changes(effects) == [.nodeIdentified(record)])
        #expect(try service.delivered(payload: bytes, from: NodeID(2)).isEmpty)
        #expect(service.announcementsReceived == 2)
    }

    @Test("members announcing our entity id (or one another's) are reported as conflicts; leavers are not")
    func reportsEntityConflicts() throws {
        var service = try Self.makeService()
        _ = Self.apply(Configurations.change(from: [], to: [1, 2, 3], sequence: 4), to: &service)
        #expect(service.entityConflicts.isEmpty)
        _ = try service.delivered(payload: NodeAnnouncement(node: NodeID(2), entityID: Self.entity2, name: "beta", addresses: []).encoded(),
                                  from: NodeID(2))
        #expect(service.entityConflicts.isEmpty)
        // gamma derived the same id as alpha (one host, one MAC address).
        _ = try service.delivered(payload: NodeAnnouncement(node: NodeID(3), entityID: Self.entity1, name: "gamma", addresses: []).encoded(),
                                  from: NodeID(3))
        #expect(service.entityConflicts == [EntityConflict(entityID: Self.entity1, nodes: [NodeID(1), NodeID(3)])])
        _ = Self.apply(Configurations.change(from: [1, 2, 3], to: [1, 2], sequence: 8), to: &service)
        #expect(service.entityConflicts.isEmpty)
    }

    @Test("without a node list, names and addresses come from announcements")
    func namesWithoutList() throws {
        var service = try Self.makeService(configured: [])
        _ = Self.apply(Configurations.change(from: [], to: [1, 9], sequence: 4), to: &service)
        #expect(service.node(NodeID(9))?.name == "node9")
        let address = NodeAddress(bytes: [192, 168, 1, 9])!
        _ = try service.delivered(payload: NodeAnnouncement(node: NodeID(9), entityID: Self.entity2, name: "nine",
                                                            addresses: [address]).encoded(), from: NodeID(9))
        #expect(service.node(NodeID(9))?.name == "nine")
        #expect(service.node(NodeID(9))?.addresses == [address])
        #expect(service.node(NodeID(1))?.name == "alpha")
        #expect(service.node(NodeID(1))?.entityID == Self.entity1)
    }

    @Test("rejects an announcement whose node is not its sender, and changes nothing")
    func rejectsSpoofedAnnouncement() throws {
        var service = try Self.makeService()
        let bytes = NodeAnnouncement(node: NodeID(2), entityID: Self.entity2, name: "beta", addresses: []).encoded()
        #expect(throws: ServiceWireError.senderMismatch(claimed: 2, sender: 3)) { try service.delivered(payload: bytes, from: NodeID(3)) }
        #expect(service.node(NodeID(2))?.entityID == nil)
        #expect(throws: ServiceWireError.self) { try service.delivered(payload: [1, 1], from: NodeID(2)) }
    }

    @Test("an announcement of this node's id with another entity (a server sharing our nodeid) is refused, not trusted (found by ServiceFuzzer)")
    func rejectsAnotherServerWithOurNodeID() throws {
        var service = try Self.makeService()
        let impostor = NodeAnnouncement(node: NodeID(1), entityID: Self.entity2, name: "alpha", addresses: []).encoded()
        #expect(throws: ServiceWireError.conflictingLocalNode(node: 1, entityID: Self.entity2.description)) {
            try service.delivered(payload: impostor, from: NodeID(1))
        }
        #expect(service.node(NodeID(1))?.entityID == Self.entity1)
        // Our own announcement, delivered back to us, is still fine.
        let own = NodeAnnouncement(node: NodeID(1), entityID: Self.entity1, name: "alpha", addresses: []).encoded()
        #expect(throws: Never.self) { _ = try service.delivered(payload: own, from: NodeID(1)) }
        #expect(ServiceWireError.conflictingLocalNode(node: 1, entityID: "x").description.contains("another server is configured with nodeid 1"))
    }

    @Test("quorum: strict majority of the configured nodes, flips reported")
    func quorumWithList() throws {
        var service = try Self.makeService()
        #expect(!service.quorum.isQuorate)
        let first = Self.changes(Self.apply(Configurations.change(from: [], to: [1, 2], sequence: 4), to: &service))
        #expect(service.quorum == Quorum(configuredCount: 3, presentCount: 2))
        #expect(service.quorum.isQuorate)
        #expect(first.last == .quorumChanged(Quorum(configuredCount: 3, presentCount: 2)))
        let leave = Configurations.change(from: [1, 2], to: [1], sequence: 8)
        let lost = Self.changes(service.configurationChanged(leave.0))
        #expect(lost == [.left(NodeID(2), view: 1), .quorumChanged(Quorum(configuredCount: 3, presentCount: 1))])
        #expect(!service.quorum.isQuorate)
        #expect(service.quorum.description == "not quorate (1 of 3 configured nodes)")
        // An unlisted member does not count towards a majority of the list.
        _ = Self.apply(Configurations.change(from: [1], to: [1, 42], sequence: 12), to: &service)
        #expect(!service.quorum.isQuorate)
    }

    @Test("quorum: exactly half of an even list is not a majority")
    func quorumHalf() throws {
        let four = Self.configured + [ConfiguredNode(id: NodeID(4), name: "delta", addresses: [])]
        var service = try Self.makeService(configured: four)
        _ = Self.apply(Configurations.change(from: [], to: [1, 2], sequence: 4), to: &service)
        #expect(!service.quorum.isQuorate)
        _ = Self.apply(Configurations.change(from: [1, 2], to: [1, 2, 3], sequence: 8), to: &service)
        #expect(service.quorum.isQuorate)
    }

    @Test("without a node list the partition is always quorate, and says so")
    func quorumWithoutList() throws {
        var service = try Self.makeService(configured: [])
        #expect(service.quorum.isQuorate)
        #expect(!service.quorum.isConfigured)
        #expect(service.quorum.description == "quorate (no configured node list: always quorate)")
        let effects = Self.changes(Self.apply(Configurations.change(from: [], to: [1], sequence: 4), to: &service))
        #expect(!effects.contains { if case .quorumChanged = $0 { true } else { false } })
    }

    @Test("refuses duplicate node ids, invalid names and too many addresses")
    func configurationErrors() {
        let local = ConfiguredNode(id: NodeID(1), name: "alpha", addresses: [])
        #expect(throws: MembershipConfigurationError.duplicateNode(NodeID(2))) {
            try MembershipService(localNode: local, entityID: Self.entity1, configuredNodes: [Self.configured[1], Self.configured[1]])
        }
        #expect(throws: MembershipConfigurationError.invalidName("has space", node: NodeID(1))) {
            try MembershipService(localNode: ConfiguredNode(id: NodeID(1), name: "has space", addresses: []), entityID: Self.entity1,
                                  configuredNodes: [])
        }
        let many = Array(repeating: NodeAddress(bytes: [1, 1, 1, 1])!, count: 9)
        #expect(throws: MembershipConfigurationError.tooManyAddresses(node: NodeID(1), count: 9, limit: 8)) {
            try MembershipService(localNode: ConfiguredNode(id: NodeID(1), name: "a", addresses: many), entityID: Self.entity1,
                                  configuredNodes: [])
        }
    }

    @Test("a node that leaves and comes back rejoins in the new view")
    func rejoin() throws {
        var service = try Self.makeService()
        _ = Self.apply(Configurations.change(from: [], to: [1, 2], sequence: 4), to: &service)
        _ = Self.apply(Configurations.change(from: [1, 2], to: [1], sequence: 8), to: &service)
        let back = Self.changes(Self.apply(Configurations.change(from: [1], to: [1, 2], sequence: 12), to: &service))
        #expect(back.contains(.joined(NodeID(2), view: 3)))
        #expect(service.node(NodeID(2))?.memberSinceView == 3)
    }
}
