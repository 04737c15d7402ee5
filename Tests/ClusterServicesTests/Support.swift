// Builders for the host's tests: hosts on the seed's channels, configuration changes, a ring
// that hands submits back in order, and readers of the effects.

import DeviceState
import EventService
import Membership
import Totem
@testable import ClusterServices

enum Fixture {
    static let deviceChannel = ChannelName("device_state")!
    static let mwiChannel = ChannelName("mwi")!
    static let callChannel = ChannelName("calls")!
    static let callType = EventType("call")!
    static let channels = [
        ChannelConfiguration(name: deviceChannel, publishes: [.deviceState], subscribes: [.deviceState]),
        ChannelConfiguration(name: mwiChannel, publishes: [.mwi], subscribes: [.mwi]),
        ChannelConfiguration(name: callChannel, publishes: [callType], subscribes: [callType]),
    ]
    static let names: [NodeID: String] = [NodeID(1): "server1", NodeID(2): "server2", NodeID(3): "server3"]

    static func entity(_ node: UInt32) -> EntityID { EntityID(rawValue: 0x0200_0000_0000 | UInt64(node))! }

    static func device(_ text: String) throws -> DeviceName { try DeviceName(parsing: text) }

    static func mailbox(_ text: String) throws -> MailboxName { try MailboxName(parsing: text) }

    /// A host for `node` with the seed's channels, a call channel and one hint on `Custom:mystate`.
    static func host(_ node: UInt32 = 1, channels: [ChannelConfiguration] = channels,
                     limits: DeviceStateLimits = DeviceStateLimits()) throws -> ServiceHost {
        let nodes = (1...3).map { ConfiguredNode(id: NodeID($0), name: "server\($0)", addresses: []) }
        let membership = try MembershipService(localNode: nodes[Int(node) - 1], entityID: entity(node), configuredNodes: nodes)
        let hint = try Hint(parsingKey: "1234@devstate_test", devices: "Custom:mystate")
        let deviceState = try DeviceStateService(configuration: DeviceStateConfiguration(
            localNode: NodeID(node), entityID: entity(node), incarnation: 1, channels: channels, hints: [hint], limits: limits))
        return ServiceHost(membership: membership, deviceState: deviceState, nodeNames: names,
                           entityIDOrigin: "from [options] entity_id")
    }

    /// A regular configuration of `members` (all of them joined, when `joined` is nil).
    static func regular(_ members: [UInt32], joined: [UInt32]? = nil, sequence: UInt64 = 4) -> ConfigurationChange {
        ConfigurationChange(kind: .regular, ringID: RingID(representative: NodeID(members.min() ?? 1), sequence: sequence),
                            members: members.map(NodeID.init), left: [], joined: (joined ?? members).map(NodeID.init))
    }

    /// A transitional configuration keeping `members`; `left` went, `graceful` of them announced it.
    static func transitional(_ members: [UInt32], left: [UInt32], graceful: [UInt32] = [], sequence: UInt64 = 8) -> ConfigurationChange {
        ConfigurationChange(kind: .transitional, ringID: RingID(representative: NodeID(members.min() ?? 1), sequence: sequence),
                            members: members.map(NodeID.init), left: left.map(NodeID.init), joined: [],
                            leftGracefully: graceful.map(NodeID.init))
    }

    static func at(_ milliseconds: Int64) -> MonotonicInstant { .milliseconds(milliseconds) }
}

/// One host in a ring of its own: whatever it submits is delivered back to it, in order.
struct LoopbackRing {
    var host: ServiceHost
    var now = Fixture.at(1_000)

    init(_ host: ServiceHost) throws {
        self.host = host
        var effects: [ServiceHost.Effect] = []
        self.host.configurationChanged(Fixture.regular([1]), now: now, into: &effects)
        deliver(effects.submits)
    }

    /// Delivers `messages` (and what they make the host submit) from node 1; returns every effect.
    @discardableResult
    mutating func deliver(_ messages: [[UInt8]], ringQueuedBytes: Int = 0) -> [ServiceHost.Effect] {
        var pending = messages
        var all: [ServiceHost.Effect] = []
        while !pending.isEmpty {
            var effects: [ServiceHost.Effect] = []
            host.delivered(pending.removeFirst(), from: NodeID(1), now: now, ringQueuedBytes: ringQueuedBytes, into: &effects)
            pending += effects.submits
            all += effects
        }
        return all
    }
}

extension Array where Element == ServiceHost.Effect {
    var submits: [[UInt8]] { compactMap { if case .submit(let bytes, _) = $0 { bytes } else { nil } } }
    var queuedSubmits: [[UInt8]] { compactMap { if case .submit(let bytes, true) = $0 { bytes } else { nil } } }
    var pushes: [(ServiceHost.Notification, [ClientID])] {
        compactMap { if case .push(let notification, let clients) = $0 { (notification, clients) } else { nil } }
    }
    var logLines: [(ServiceHost.LogLevel, String)] {
        compactMap { if case .log(let level, let line) = $0 { (level, line.description) } else { nil } }
    }
    var persisted: [LocalStateChange] { compactMap { if case .persist(let change) = $0 { change } else { nil } } }
    var deliveredEvents: [(DeliveredEvent, SubscriptionID, ClientID, Bool)] {
        compactMap { if case .deliverEvent(let event, let id, let client, let replayed) = $0 { (event, id, client, replayed) } else { nil } }
    }
    var pingAnswers: [(PingID, Result<PingResult, ServiceHostError>)] {
        compactMap { if case .answerPing(let id, let result) = $0 { (id, result) } else { nil } }
    }

    /// The last deadline `timer` was armed for (`nil`: not armed, or disarmed after).
    func deadline(of timer: ServiceHost.Timer) -> MonotonicInstant? {
        var deadline: MonotonicInstant?
        for effect in self {
            switch effect {
            case .armTimer(timer, let at): deadline = at
            case .disarmTimer(timer): deadline = nil
            default: break
            }
        }
        return deadline
    }
}
