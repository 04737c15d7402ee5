// Throughput of DeviceStateService: local publishes, and local publishes plus the ring
// deliveries of the resulting events to the publisher itself and to one other node.
// Run: swift run -c release DeviceStateBenchmark [publishes]

import DeviceState
import EventService
import Membership
import Totem

let count = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 300_000
let channels = [ChannelConfiguration(name: ChannelName("device_state")!, publishes: [.deviceState], subscribes: [.deviceState]),
                ChannelConfiguration(name: ChannelName("mwi")!, publishes: [.mwi], subscribes: [.mwi])]
let devices = try (0..<1_000).map { try DeviceName(parsing: "SIP/\(1000 + $0)") }
let hints = try (0..<100).map { try Hint(parsingKey: "\(1000 + $0)@office", devices: "SIP/\(1000 + $0)&SIP/\(1500 + $0)") }
let states = DeviceStateValue.allCases

func makeNode(_ id: UInt32) throws -> DeviceStateService {
    var service = try DeviceStateService(configuration: DeviceStateConfiguration(
        localNode: NodeID(id), entityID: EntityID(rawValue: UInt64(id))!, incarnation: 1, channels: channels, hints: hints))
    let ring = RingID(representative: NodeID(1), sequence: 4)
    _ = service.configurationChanged(ConfigurationChange(kind: .transitional, ringID: ring, members: [], left: [], joined: []), now: .zero)
    _ = service.configurationChanged(ConfigurationChange(kind: .regular, ringID: ring, members: [NodeID(1), NodeID(2)], left: [],
                                                         joined: [NodeID(1), NodeID(2)]), now: .zero)
    return service
}

func measure(_ label: String, _ body: () throws -> Int) rethrows {
    let clock = ContinuousClock()
    let start = clock.now
    let operations = try body()
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print("\(label): \(operations) in \(Int(seconds * 1000)) ms = \(Int(Double(operations) / seconds)) /s")
}

var sink = 0

// 1. Local publishes only (state change, persist effect, aggregate, hints, event encoding).
var publisher = try makeNode(1)
try measure("local publishes") {
    for index in 0..<count {
        // Each round over the devices sets a different state, so every call is a real change.
        let effects = try publisher.setLocalState(states[(index / devices.count) % states.count], of: devices[index % devices.count])
        sink &+= effects.count
    }
    return count
}

// 2. Local publishes plus their deliveries at the publisher (own state, ignored) and at node 2
//    (applied to the per-entity cache, aggregate recomputed, hints re-evaluated).
var nodeA = try makeNode(1)
var nodeB = try makeNode(2)
try measure("local publishes + deliveries at 2 nodes") {
    for index in 0..<count {
        // Rounds differ by 1001 ≡ 2 (mod 9): every call changes the device's state.
        let state = states[(index / devices.count + index) % states.count]
        for effect in try nodeA.setLocalState(state, of: devices[index % devices.count]) {
            guard case .submit(let bytes) = effect else { continue }
            sink &+= try nodeA.delivered(payload: bytes, from: NodeID(1), now: .zero).count
            sink &+= try nodeB.delivered(payload: bytes, from: NodeID(1), now: .zero).count
        }
    }
    return count
}
precondition(nodeA.statistics.localChanges == count && nodeB.statistics.remoteStatesApplied == count, "not every publish was a change")
print("devices at node 2: \(nodeB.devices.count), checksum \(sink)")
