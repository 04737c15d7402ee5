// Ring inputs of the host: what watchers are pushed (by topic, only when someone wants it),
// membership changes with graceful leaves, retention expiry, replays, and routing by tag.

import DeviceState
import EventService
import Membership
import Testing
import Totem
@testable import ClusterServices

@Suite("ServiceHost ring inputs")
struct RingInputTests {
    let deviceWatcher = ClientID(rawValue: 1)
    let serverWatcher = ClientID(rawValue: 2)
    let everything = ClientID(rawValue: 3)

    /// A device state set on node 2, as node 1 delivers it.
    private func remoteState(_ state: DeviceStateValue, of device: String) throws -> [UInt8] {
        var two = try Fixture.host(2)
        var effects: [ServiceHost.Effect] = []
        _ = try two.setDeviceState(state, of: try Fixture.device(device), client: nil, now: .zero, ringQueuedBytes: 0, into: &effects)
        return try #require(effects.submits.first)
    }

    @Test func watchersAreToldOnlyOfTheirTopics() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        host.configurationChanged(Fixture.regular([1, 2]), now: .zero, into: &effects)
        _ = host.watch([.device], client: deviceWatcher, includeSnapshot: false)
        _ = host.watch([.servers], client: serverWatcher, includeSnapshot: false)
        _ = host.watch(Set(WatchTopic.allCases), client: everything, includeSnapshot: false)
        effects.removeAll()
        host.delivered(try remoteState(.inUse, of: "Custom:mystate"), from: NodeID(2), now: .zero, ringQueuedBytes: 0, into: &effects)
        let pushes = effects.pushes
        let device = DeviceStateChange(device: try Fixture.device("Custom:mystate"), old: .unknown, new: .inUse)
        #expect(pushes.contains { $0.0 == .device(device) && $0.1 == [deviceWatcher, everything] })
        #expect(pushes.contains { $0.0.topic == .servers && $0.1 == [serverWatcher, everything] })
        let hint = pushes.first { $0.0.topic == .extension }
        #expect(hint?.1 == [everything])
        if case .extensionState(let change, let devices)? = hint?.0 {
            #expect(devices == "Custom:mystate" && change.new == .inUse)
        } else {
            Issue.record("no extension notification: \(pushes)")
        }
        #expect(!pushes.contains { $0.0.topic == .mwi || $0.0.topic == .membership })
    }

    @Test func nothingIsPushedWhenNobodyWatches() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        host.configurationChanged(Fixture.regular([1, 2]), now: .zero, into: &effects)
        _ = host.watch([.mwi], client: deviceWatcher, includeSnapshot: false)
        effects.removeAll()
        host.delivered(try remoteState(.busy, of: "SIP/7"), from: NodeID(2), now: .zero, ringQueuedBytes: 0, into: &effects)
        #expect(effects.pushes.isEmpty, "\(effects.pushes)")
        #expect(host.deviceSnapshot(try Fixture.device("SIP/7")).state == .busy, "the state still counts")
    }

    @Test func membershipWatchersHearWhetherALeaveWasGraceful() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        host.configurationChanged(Fixture.regular([1, 2, 3]), now: .zero, into: &effects)
        _ = host.watch([.membership], client: everything, includeSnapshot: false)
        effects.removeAll()
        host.configurationChanged(Fixture.transitional([1], left: [2, 3], graceful: [2]), now: .zero, into: &effects)
        let left = effects.pushes.compactMap { push -> (NodeID, Bool)? in
            if case .membership(.left(let node, _), let graceful) = push.0 { (node, graceful) } else { nil }
        }
        #expect(left.map(\.0) == [NodeID(2), NodeID(3)])
        #expect(left.map(\.1) == [true, false])
        #expect(effects.logLines.contains { $0.0 == .warning && $0.1.hasPrefix("quorum lost: ") }, "\(effects.logLines)")
    }

    @Test func aServerLeavingIsLoggedByName() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        host.configurationChanged(Fixture.regular([1, 2]), now: .zero, into: &effects)
        host.delivered(try remoteState(.inUse, of: "SIP/2"), from: NodeID(2), now: .zero, ringQueuedBytes: 0, into: &effects)
        _ = host.watch([.servers], client: serverWatcher, includeSnapshot: false)
        effects.removeAll()
        host.configurationChanged(Fixture.transitional([1], left: [2]), now: .zero, into: &effects)
        #expect(effects.logLines.contains {
            $0 == (.info, "server2 (entity 02:00:00:00:00:02) left the ring: its device states no longer count here")
        })
        #expect(effects.pushes.contains { $0.0 == .serverLeft(entity: Fixture.entity(2), node: NodeID(2)) && $0.1 == [serverWatcher] })
    }

    @Test func retainedEventsArmTheExpiryTimerAndExpireWhenItFires() throws {
        var ring = try LoopbackRing(try Fixture.host())
        var effects: [ServiceHost.Effect] = []
        _ = try ring.host.publishEvent(on: Fixture.callChannel, type: Fixture.callType, attributes: [:], payload: [1],
                                       retention: .seconds(1), client: nil, now: ring.now, ringQueuedBytes: 0, into: &effects)
        let delivered = ring.deliver(effects.submits)
        let deadline = try #require(delivered.deadline(of: .expiry))
        #expect(deadline == ring.now + .seconds(1))
        #expect(ring.host.deviceState.events.retentionSummary.events == 1)
        effects.removeAll()
        ring.host.timerFired(.expiry, now: deadline, ringQueuedBytes: 0, into: &effects)
        #expect(ring.host.deviceState.events.retentionSummary.events == 0)
        // Armed again for what the store still holds (the event's tombstone), or disarmed.
        #expect(effects.deadline(of: .expiry) == ring.host.deviceState.nextEventExpiry)
        #expect(effects.deadline(of: .expiry).map { $0 > deadline } ?? true)
    }

    @Test func aNewSubscriptionReplaysRetainedEventsThroughItsCursor() throws {
        var ring = try LoopbackRing(try Fixture.host())
        var effects: [ServiceHost.Effect] = []
        for payload: UInt8 in 1...2 {
            _ = try ring.host.publishEvent(on: Fixture.callChannel, type: Fixture.callType, attributes: [:], payload: [payload],
                                           retention: .seconds(60), client: nil, now: ring.now, ringQueuedBytes: 0, into: &effects)
        }
        ring.deliver(effects.submits)
        let client = ClientID(rawValue: 5)
        let opened = try ring.host.subscribeEvents(Subscription(channel: Fixture.callChannel), client: client, now: ring.now)
        #expect(opened.replayed == 2)
        var replay = try #require(opened.replay)
        effects.removeAll()
        ring.host.continueReplay(&replay, now: ring.now, into: &effects)
        #expect(replay.isFinished)
        let events = effects.deliveredEvents
        #expect(events.map(\.0.payload) == [[1], [2]])
        #expect(events.allSatisfy { $0.1 == opened.subscription && $0.2 == client && $0.3 })
    }

    @Test func messagesAreRoutedByTheirFirstByte() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        host.delivered([9, 1, 2], from: NodeID(3), now: .zero, ringQueuedBytes: 0, into: &effects)
        #expect(effects.logLines.map(\.0) == [.debug])
        #expect(effects.logLines.first?.1.hasPrefix("ignored a ring message from server3 with tag 9") == true)
        effects.removeAll()
        host.delivered([ServiceID.membership.rawValue, 0xFF], from: NodeID(2), now: .zero, ringQueuedBytes: 0, into: &effects)
        #expect(effects.logLines.first?.0 == .warning)
        #expect(effects.logLines.first?.1.hasPrefix("ignored a membership message from server2: ") == true)
        effects.removeAll()
        host.delivered([ServiceID.event.rawValue, 0xFF], from: NodeID(2), now: .zero, ringQueuedBytes: 0, into: &effects)
        #expect(effects.logLines.first?.1.hasPrefix("ignored an event message from server2: ") == true)
    }

    @Test func theFirstRegularConfigurationAnnouncesThisNode() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        host.configurationChanged(Fixture.regular([1]), now: .zero, into: &effects)
        let submits = effects.submits
        #expect(submits.first?.first == ServiceID.membership.rawValue, "the announcement")
        #expect(host.membership.view?.number == 1)
    }
}
