// Three (and more) services driven by the same ordered stream converge to identical state,
// including a node that joins late, a node that leaves, and a restarted node.

import Testing
import ServiceTestSupport
import EventService
import Membership
import Totem
@testable import DeviceState

@Suite("Several nodes on one ordered stream")
struct MultiNodeTests {
    static let mystate = Builders.device("Custom:mystate")

    @Test("the seed's walkthrough: set on server 1, check on server 2, hint on every server")
    func seedWalkthrough() throws {
        var cluster = SimulatedCluster()
        for node: UInt32 in [1, 2] { try cluster.start(node) }
        try cluster.configure([1, 2])
        cluster.set(1, "Custom:mystate", .inUse)
        try cluster.deliverAll()
        let view = cluster.convergedView()
        #expect(cluster.services[2]!.device(Self.mystate).state.name == "INUSE")
        #expect(view.hints.map(\.description) == ["                   1234@devstate_test       : Custom:mystate        State:InUse           Watchers  0"])
        cluster.set(1, "Custom:mystate", .notInUse)
        try cluster.deliverAll()
        #expect(cluster.convergedView().hints.map(\.state) == [.idle])
    }

    @Test("three nodes converge; a late joiner catches up; a leaver's states stop counting")
    func joinAndLeave() throws {
        var cluster = SimulatedCluster()
        for node: UInt32 in [1, 2] { try cluster.start(node) }
        try cluster.configure([1, 2])
        cluster.set(1, "Custom:mystate", .inUse)
        cluster.set(2, "Custom:mystate", .notInUse)
        cluster.set(2, "SIP/2000", .ringing)
        try cluster.setMailbox(1, "1234@default", new: 2, old: 5)
        try cluster.deliverAll()
        var view = cluster.convergedView()
        #expect(view.devices.map(\.state) == [.inUse, .ringing])
        #expect(view.devices.first?.servers.map(\.state) == [.inUse, .notInUse])

        // Node 3 starts late, with a state of its own, and catches up without any new change.
        try cluster.start(3)
        cluster.set(3, "Custom:mystate", .onHold)
        try cluster.configure([1, 2, 3])
        view = cluster.convergedView()
        #expect(view.devices.map(\.device.rawValue) == ["Custom:mystate", "SIP/2000"])
        #expect(view.devices.first?.servers.map(\.entity) == [Builders.entity(1), Builders.entity(2), Builders.entity(3)])
        #expect(view.devices.first?.state == .inUse)
        #expect(view.mailboxes.map(\.counts) == [MailboxCounts(newMessages: 2, oldMessages: 5)])
        #expect(view.hints.map(\.state) == [.inUse])
        // Membership learned every entity id from the announcements.
        for node: UInt32 in [1, 2, 3] {
            #expect(cluster.memberships[node]!.nodes.map(\.entityID) == [1, 2, 3].map { Optional(Builders.entity($0)) })
        }

        // Node 1 leaves: its INUSE stops counting everywhere at once; MWI it published stays.
        cluster.crash(1)
        try cluster.configure([2, 3])
        view = cluster.convergedView()
        #expect(view.devices.first?.state == .onHold)
        #expect(view.devices.first?.servers.map(\.entity) == [Builders.entity(2), Builders.entity(3)])
        #expect(view.hints.map(\.state) == [.onHold])
        #expect(view.mailboxes.map(\.counts) == [MailboxCounts(newMessages: 2, oldMessages: 5)])
        #expect(Builders.extensionChanges(cluster.effects[2]!).map(\.new).suffix(1) == [.onHold])

        // Node 1 restarts from its state file: its states come back, and so does the aggregate.
        try cluster.start(1)
        #expect(cluster.services[1]!.localState.devices == [Self.mystate: .inUse])
        try cluster.configure([1, 2, 3])
        view = cluster.convergedView()
        #expect(view.devices.first?.state == .inUse)
        #expect(view.mailboxes.map(\.counts) == [MailboxCounts(newMessages: 2, oldMessages: 5)])
    }

    @Test("the join re-publication is what makes a newcomer converge")
    func newcomerNeedsRepublication() throws {
        var cluster = SimulatedCluster()
        for node: UInt32 in [1, 2] { try cluster.start(node) }
        try cluster.configure([1, 2])
        cluster.set(1, "SIP/1", .busy)
        try cluster.deliverAll()
        try cluster.start(3)
        // Only the configuration change happens: no node sets anything afterwards.
        let before = cluster.pending.count
        try cluster.configure([1, 2, 3])
        #expect(before == 0)
        #expect(cluster.services[3]!.device(Builders.device("SIP/1")).state == .busy)
    }

    /// Seeded random operations (sets, MWI, joins, leaves, restarts) with an oracle: at every quiet
    /// point all members agree, and each device's state is the aggregate of the members' local
    /// states.
    @Test("randomized: members always agree, and aggregates equal the members' local states", arguments: 0..<12 as Range<UInt64>)
    func randomized(seed: UInt64) throws {
        var generator = SeededGenerator(seed: seed)
        var cluster = SimulatedCluster()
        cluster.hints = [Builders.hint("1@ctx", "SIP/a&SIP/b"), Builders.hint("2@ctx", "Custom:c")]
        let devices = ["SIP/a", "SIP/b", "Custom:c"]
        let nodes: [UInt32] = [1, 2, 3, 4]
        for node in nodes.prefix(2) { try cluster.start(node) }
        try cluster.configure([1, 2])
        for _ in 0..<60 {
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<6:
                let node = cluster.members.randomElement(using: &generator)!
                let state = DeviceStateValue.allCases.randomElement(using: &generator)!
                cluster.set(node, devices.randomElement(using: &generator)!, state)
            case 6..<8:
                let node = cluster.members.randomElement(using: &generator)!
                try cluster.setMailbox(node, "\(Int.random(in: 1...3, using: &generator))@default",
                                       new: UInt32.random(in: 0...5, using: &generator), old: UInt32.random(in: 0...5, using: &generator))
            case 8:
                let absent = nodes.filter { !cluster.members.contains($0) }
                if let node = absent.randomElement(using: &generator) {
                    try cluster.start(node)
                    try cluster.configure(cluster.members + [node])
                }
            default:
                if cluster.members.count > 1 {
                    let node = cluster.members.randomElement(using: &generator)!
                    cluster.crash(node)
                    try cluster.configure(cluster.members.filter { $0 != node })
                }
            }
            if Bool.random(using: &generator) { try cluster.deliverAll() }
        }
        try cluster.deliverAll()
        let view = cluster.convergedView()
        for text in devices {
            let device = Builders.device(text)
            let local = cluster.members.compactMap { cluster.services[$0]!.localState.devices[device] }
            #expect(cluster.services[cluster.members[0]]!.device(device).state == DeviceStateAggregate.of(local), "seed \(seed) \(text)")
        }
        for row in view.hints {
            let hint = cluster.hints.first { $0.key == row.key }!
            #expect(row.state == ExtensionState.of(hint.devices.map { cluster.services[cluster.members[0]]!.device($0).state }))
        }
    }
}
