// The per-server view for adapters whose PBX aggregates itself (Asterisk): `clearLocalState`,
// `serverStateChanged` and `serverLeft`. An adapter that applies only these effects must hold
// exactly the other servers' slots the service holds.

import Testing
import ServiceTestSupport
import EventService
import Membership
import Totem
@testable import DeviceState

/// What an adapter such as res_devcluster keeps: other servers' states per device, built only
/// from the effects (as Asterisk's per-EID cache is built from the pushed events).
struct AdapterMirror: Equatable, CustomStringConvertible {
    var entries: [DeviceName: [EntityID: DeviceStateValue]] = [:]

    mutating func apply(_ effects: [DeviceStateEffect]) {
        for effect in effects {
            switch effect {
            case .serverStateChanged(let change):
                entries[change.device, default: [:]][change.entity] = change.state
                if entries[change.device]?.isEmpty == true { entries[change.device] = nil }
            case .serverLeft(let entity, _):
                for device in entries.keys {
                    entries[device]?[entity] = nil
                    if entries[device]?.isEmpty == true { entries[device] = nil }
                }
            default:
                break
            }
        }
    }

    /// The other servers' slots the service holds.
    static func expected(_ service: DeviceStateService) -> AdapterMirror {
        var mirror = AdapterMirror()
        for snapshot in service.devices {
            for server in snapshot.servers where server.entity != service.entityID {
                mirror.entries[snapshot.device, default: [:]][server.entity] = server.state
            }
        }
        return mirror
    }

    var description: String {
        entries.keys.sorted().map { device in
            "\(device)=[" + entries[device]!.keys.sorted().map { "\($0.rawValue & 0xFF):\(entries[device]![$0]!)" }.joined(separator: ",") + "]"
        }.joined(separator: " ")
    }
}

@Suite("The per-server view for adapters")
struct ServerViewTests {
    static let mystate = Builders.device("Custom:mystate")

    static func serverChanges(_ effects: [DeviceStateEffect]) -> [ServerStateChange] {
        effects.compactMap { if case .serverStateChanged(let change) = $0 { change } else { nil } }
    }

    static func departures(_ effects: [DeviceStateEffect]) -> [EntityID] {
        effects.compactMap { if case .serverLeft(let entity, _) = $0 { entity } else { nil } }
    }

    @Test("clearing a local state removes this server's slot everywhere and persists the table without it")
    func clear() throws {
        var cluster = SimulatedCluster()
        for node: UInt32 in [1, 2] { try cluster.start(node) }
        try cluster.configure([1, 2])
        cluster.set(1, "Custom:mystate", .inUse)
        cluster.set(2, "Custom:mystate", .ringing)
        try cluster.deliverAll()
        #expect(cluster.services[2]!.device(Self.mystate).state == .ringInUse)

        cluster.effects[2] = []
        let effects = cluster.services[1]!.clearLocalState(of: Self.mystate)
        cluster.record(1, effects)
        #expect(try Builders.payloads(effects) == [.deviceStateCleared(Self.mystate)])
        #expect(Builders.persisted(effects) == [.device(Self.mystate, nil)])
        #expect(cluster.services[1]!.localState.devices.isEmpty)
        #expect(Builders.deviceChanges(effects).map(\.new) == [.ringing])
        try cluster.deliverAll()
        let view = cluster.convergedView()
        #expect(view.devices.map(\.state) == [.ringing])
        #expect(view.devices.first?.servers.map(\.entity) == [Builders.entity(2)])
        let told = Self.serverChanges(cluster.effects[2]!)
        #expect(told == [ServerStateChange(device: Self.mystate, entity: Builders.entity(1), node: NodeID(1), state: nil)])
        #expect(cluster.services[2]!.statistics.remoteStatesCleared == 1)

        // Clearing what this server does not report changes nothing and sends nothing.
        #expect(cluster.services[1]!.clearLocalState(of: Self.mystate).isEmpty)
        // The cleared state stays cleared after a restart of node 1.
        cluster.crash(1)
        try cluster.configure([2])
        try cluster.start(1)
        try cluster.configure([1, 2])
        #expect(cluster.convergedView().devices.first?.servers.map(\.entity) == [Builders.entity(2)])
    }

    @Test("a server's change is told once per change of its slot; our own entity never")
    func toldPerSlotChange() throws {
        var cluster = SimulatedCluster()
        for node: UInt32 in [1, 2] { try cluster.start(node) }
        try cluster.configure([1, 2])
        cluster.effects[2] = []
        cluster.set(1, "SIP/alice", .inUse)
        cluster.set(2, "SIP/alice", .busy)
        try cluster.deliverAll()
        // The aggregate on node 2 moved to BUSY by its own change, not by node 1's: the slot change
        // is told all the same.
        let onTwo = Self.serverChanges(cluster.effects[2]!)
        #expect(onTwo == [ServerStateChange(device: Builders.device("SIP/alice"), entity: Builders.entity(1), node: NodeID(1), state: .inUse)])
        #expect(Self.serverChanges(cluster.effects[1]!).map(\.entity) == [Builders.entity(2)])
        // A re-publication of an unchanged slot (node 3 joins) is not told again.
        cluster.effects[2] = []
        try cluster.start(3)
        try cluster.configure([1, 2, 3])
        #expect(Self.serverChanges(cluster.effects[2]!).isEmpty)
        #expect(Self.serverChanges(cluster.effects[3]!).map(\.entity).sorted() == [Builders.entity(1), Builders.entity(2)])
    }

    @Test("a departed server is told once, after its slots stopped counting; one without states is not told")
    func departure() throws {
        var cluster = SimulatedCluster()
        for node: UInt32 in [1, 2, 3] { try cluster.start(node) }
        try cluster.configure([1, 2, 3])
        cluster.set(1, "Custom:mystate", .inUse)
        try cluster.deliverAll()
        cluster.effects[2] = []
        cluster.crash(1)
        cluster.crash(3)
        try cluster.configure([2])
        let effects = cluster.effects[2]!
        #expect(Self.departures(effects) == [Builders.entity(1)])
        let leftAt = try #require(effects.firstIndex { if case .serverLeft = $0 { true } else { false } })
        let changedAt = try #require(effects.firstIndex { if case .deviceStateChanged = $0 { true } else { false } })
        #expect(changedAt < leftAt)
        #expect(cluster.services[2]!.device(Self.mystate).state == .unknown)
        // A second configuration without it tells nothing more.
        cluster.effects[2] = []
        try cluster.configure([2])
        #expect(Self.departures(cluster.effects[2]!).isEmpty)
    }

    /// Random sets, clears, crashes and joins: at every quiet point each member's mirror, built
    /// from the effects alone since the member started, equals the other servers' slots it holds.
    @Test("randomized: an adapter mirror built from the effects equals the service's per-server view", arguments: 0..<16 as Range<UInt64>)
    func randomizedMirror(seed: UInt64) throws {
        print("ServerViewTests.randomizedMirror seed \(seed)")
        var generator = SeededGenerator(seed: seed)
        var cluster = SimulatedCluster()
        let devices = ["SIP/a", "SIP/b", "Custom:c"]
        let nodes: [UInt32] = [1, 2, 3, 4]
        var mirrors: [UInt32: AdapterMirror] = [:]
        func check(_ cluster: inout SimulatedCluster, _ step: Int) {
            for member in cluster.members {
                var mirror = mirrors[member] ?? AdapterMirror()
                mirror.apply(cluster.effects[member] ?? [])
                cluster.effects[member] = []
                mirrors[member] = mirror
                let expected = AdapterMirror.expected(cluster.services[member]!)
                #expect(mirror == expected, "seed \(seed) step \(step) node \(member): mirror \(mirror), service \(expected)")
            }
        }
        for node in nodes.prefix(2) { try cluster.start(node) }
        try cluster.configure([1, 2])
        for step in 0..<80 {
            switch Int.random(in: 0..<12, using: &generator) {
            case 0..<6:
                let node = cluster.members.randomElement(using: &generator)!
                cluster.set(node, devices.randomElement(using: &generator)!, DeviceStateValue.allCases.randomElement(using: &generator)!)
            case 6..<8:
                let node = cluster.members.randomElement(using: &generator)!
                cluster.record(node, cluster.services[node]!.clearLocalState(of: Builders.device(devices.randomElement(using: &generator)!)))
            case 8..<10:
                let absent = nodes.filter { !cluster.members.contains($0) }
                if let node = absent.randomElement(using: &generator) {
                    try cluster.start(node)
                    mirrors[node] = AdapterMirror()
                    try cluster.configure(cluster.members + [node])
                }
            default:
                if cluster.members.count > 1 {
                    let node = cluster.members.randomElement(using: &generator)!
                    cluster.crash(node)
                    mirrors[node] = nil
                    try cluster.configure(cluster.members.filter { $0 != node })
                }
            }
            if Bool.random(using: &generator) {
                try cluster.deliverAll()
                check(&cluster, step)
            }
        }
        try cluster.deliverAll()
        check(&cluster, 80)
    }
}
