// Shared builders for the event service tests.

import Membership
import Totem
@testable import EventService

enum Fixtures {
    static let entity1 = EntityID(parsing: "00:00:00:00:00:01")!
    static let entity2 = EntityID(parsing: "00:00:00:00:00:02")!
    static let devices = ChannelName("device_state")!
    static let mwi = ChannelName("mwi")!

    /// The seed's ais.conf: `device_state` publishes and subscribes device_state; `mwi` both mwi.
    static let bothWays = [
        ChannelConfiguration(name: devices, publishes: [.deviceState], subscribes: [.deviceState]),
        ChannelConfiguration(name: mwi, publishes: [.mwi], subscribes: [.mwi]),
    ]

    static func service(_ node: UInt32, incarnation: UInt64 = 1, channels: [ChannelConfiguration] = bothWays,
                        retainedBytes: Int = EventLimits.defaultRetainedBytes) throws -> EventChannelService {
        try EventChannelService(localNode: NodeID(node), entityID: EntityID(rawValue: UInt64(node))!, incarnation: incarnation,
                                channels: channels, retainedBytes: retainedBytes)
    }

    /// Every event `replay` yields, stretch by stretch of `stretchBytes` (at most 100,000 stretches).
    static func replayAll(_ replay: RetainedReplay, of service: EventChannelService, now: MonotonicInstant,
                          stretchBytes: Int = 64 << 10) -> [DeliveredEvent] {
        var replay = replay
        var events: [DeliveredEvent] = []
        for _ in 0..<100_000 where !replay.isFinished {
            events += service.continueReplay(&replay, now: now, maximumBytes: stretchBytes)
        }
        return events
    }

    static func submits(_ effects: [EventServiceEffect]) -> [[UInt8]] {
        effects.compactMap { if case .submit(let bytes) = $0 { bytes } else { nil } }
    }

    static func deliveries(_ effects: [EventServiceEffect]) -> [(DeliveredEvent, [SubscriptionID])] {
        effects.compactMap { if case .deliver(let event, let ids) = $0 { (event, ids) } else { nil } }
    }

    static func at(_ milliseconds: Int64) -> MonotonicInstant { .milliseconds(milliseconds) }

    /// TRANSITIONAL then REGULAR from `old` to `new`, through the members of both (or the given
    /// ones: a member that went through a ring of its own in between comes back as joined).
    static func change(from old: [UInt32], to new: [UInt32], through members: [UInt32]? = nil, sequence: UInt64) -> [ConfigurationChange] {
        let transitional = (members ?? old.filter(new.contains)).sorted()
        let ringID = RingID(representative: NodeID(new.min() ?? 1), sequence: sequence)
        return [ConfigurationChange(kind: .transitional, ringID: ringID, members: transitional.map(NodeID.init),
                                    left: old.filter { !transitional.contains($0) }.sorted().map(NodeID.init), joined: []),
                ConfigurationChange(kind: .regular, ringID: ringID, members: new.sorted().map(NodeID.init), left: [],
                                    joined: new.filter { !transitional.contains($0) }.sorted().map(NodeID.init))]
    }

    /// Applies a configuration change pair and returns all effects.
    static func apply(_ changes: [ConfigurationChange], to service: inout EventChannelService, now: MonotonicInstant) -> [EventServiceEffect] {
        changes.flatMap { service.configurationChanged($0, now: now) }
    }
}
