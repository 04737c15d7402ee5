// The host's commands, one by one: their typed answers, their refusals and the effects they ask
// for, on a one-node ring that hands submits back.

import DeviceState
import EventService
import Membership
import Testing
import Totem
@testable import ClusterServices

@Suite("ServiceHost commands")
struct CommandTests {
    let client = ClientID(rawValue: 7)

    @Test func devstateSetAnswersTheAggregateAndPersistsAndPublishes() throws {
        var ring = try LoopbackRing(try Fixture.host())
        var effects: [ServiceHost.Effect] = []
        let device = try Fixture.device("Custom:mystate")
        let snapshot = try ring.host.setDeviceState(.inUse, of: device, client: client, now: ring.now, ringQueuedBytes: 0, into: &effects)
        #expect(snapshot.device == device)
        #expect(snapshot.state == .inUse)
        #expect(snapshot.servers.map(\.entity) == [Fixture.entity(1)])
        #expect(effects.persisted == [.device(device, .inUse)])
        let submits = effects.submits
        #expect(submits.count == 1)
        #expect(submits.first?.first == ServiceID.event.rawValue)
        // Nobody watches: no notification is built, but the change is logged at debug.
        #expect(effects.pushes.isEmpty)
        #expect(effects.logLines.contains { $0.0 == .debug && $0.1 == "device Custom:mystate: UNKNOWN -> INUSE" })
        ring.deliver(submits)
        #expect(ring.host.deviceSnapshot(device).state == .inUse)
    }

    @Test func devstateSetRefusesAtTheDeviceCapAndWithoutAPublishingChannel() throws {
        var host = try Fixture.host(limits: DeviceStateLimits(maxDevices: 1))
        var effects: [ServiceHost.Effect] = []
        _ = try host.setDeviceState(.inUse, of: try Fixture.device("SIP/1"), client: nil, now: .zero, ringQueuedBytes: 0, into: &effects)
        effects.removeAll()
        #expect(throws: ServiceHostError.deviceState(.tooManyDevices(limit: 1))) {
            try host.setDeviceState(.busy, of: try Fixture.device("SIP/2"), client: nil, now: .zero, ringQueuedBytes: 0, into: &effects)
        }
        #expect(effects.isEmpty, "a refusal asks for nothing: \(effects)")

        var silent = try Fixture.host(channels: [ChannelConfiguration(name: Fixture.mwiChannel, publishes: [.mwi], subscribes: [.mwi])])
        #expect(throws: ServiceHostError.deviceState(.deviceStateNotPublished)) {
            try silent.setDeviceState(.busy, of: try Fixture.device("SIP/2"), client: nil, now: .zero, ringQueuedBytes: 0, into: &effects)
        }
        #expect(ServiceHostError.deviceState(.deviceStateNotPublished).description.hasPrefix("no event channel publishes device_state"))
    }

    @Test func devstateClearSaysWhetherThisServerReportedTheDevice() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        let device = try Fixture.device("SIP/100")
        let nothing = host.clearDeviceState(of: device, client: nil, now: .zero, ringQueuedBytes: 0, into: &effects)
        #expect(!nothing.cleared)
        #expect(effects.isEmpty)
        _ = try host.setDeviceState(.ringing, of: device, client: nil, now: .zero, ringQueuedBytes: 0, into: &effects)
        effects.removeAll()
        let cleared = host.clearDeviceState(of: device, client: nil, now: .zero, ringQueuedBytes: 0, into: &effects)
        #expect(cleared.cleared)
        #expect(cleared.snapshot.state == .invalid && cleared.snapshot.servers.isEmpty)
        #expect(effects.persisted == [.device(device, nil)])
        #expect(effects.submits.count == 1)
    }

    @Test func devstateListAndSnapshotListDevicesAscending() throws {
        var ring = try LoopbackRing(try Fixture.host())
        var effects: [ServiceHost.Effect] = []
        for (name, state) in [("SIP/200", DeviceStateValue.busy), ("SIP/100", .inUse)] {
            _ = try ring.host.setDeviceState(state, of: try Fixture.device(name), client: nil, now: ring.now, ringQueuedBytes: 0, into: &effects)
        }
        ring.deliver(effects.submits)
        #expect(ring.host.devices.map(\.device.rawValue) == ["SIP/100", "SIP/200"])
        let snapshot = ring.host.snapshot()
        #expect(snapshot.entityID == Fixture.entity(1))
        #expect(snapshot.localDevices.map(\.device.rawValue) == ["SIP/100", "SIP/200"])
        #expect(snapshot.localDevices.map(\.state) == [.inUse, .busy])
        #expect(snapshot.hints.map(\.key.description) == ["1234@devstate_test"])
        #expect(snapshot.devices == ring.host.devices)
    }

    @Test func mwiSetPublishesAndTheRecordFollowsTheDelivery() throws {
        var ring = try LoopbackRing(try Fixture.host())
        var effects: [ServiceHost.Effect] = []
        let mailbox = try Fixture.mailbox("1234@default")
        #expect(ring.host.mailbox(mailbox) == nil, "unknown before")
        try ring.host.setMailbox(mailbox, counts: MailboxCounts(newMessages: 2, oldMessages: 5), client: client, now: ring.now,
                                 ringQueuedBytes: 0, into: &effects)
        #expect(effects.persisted.count == 1)
        #expect(ring.host.mailbox(mailbox) == nil, "the cluster-wide record changes when the ring delivers it")
        ring.deliver(effects.submits)
        let record = try #require(ring.host.mailbox(mailbox))
        #expect(record.counts == MailboxCounts(newMessages: 2, oldMessages: 5))
        #expect(record.originNode == NodeID(1))
        #expect(ring.host.mailboxes.map(\.mailbox) == [mailbox])
        #expect(ring.host.snapshot().localMailboxes.map(\.counts.newMessages) == [2])
    }

    @Test func mwiSetRefusesWithoutAPublishingChannel() throws {
        var host = try Fixture.host(channels: [Fixture.channels[0]])
        var effects: [ServiceHost.Effect] = []
        #expect(throws: ServiceHostError.deviceState(.mwiNotPublished)) {
            try host.setMailbox(try Fixture.mailbox("1"), counts: MailboxCounts(newMessages: 1, oldMessages: 0), client: nil,
                                now: .zero, ringQueuedBytes: 0, into: &effects)
        }
        #expect(effects.isEmpty)
    }

    @Test func aWatcherOfExtensionsCountsOnEveryHint() throws {
        var host = try Fixture.host()
        #expect(host.hintRows.map(\.watchers) == [0])
        _ = host.watch([.device], client: client, includeSnapshot: false)
        #expect(host.hintRows.map(\.watchers) == [0], "device watchers do not watch hints")
        _ = host.watch([.extension, .device], client: client, includeSnapshot: false)
        let other = ClientID(rawValue: 8)
        let answer = host.watch(WatchTopic.defaults, client: other, includeSnapshot: true)
        #expect(host.hintRows.map(\.watchers) == [2])
        #expect(answer.topics == [.membership, .device, .extension, .mwi], "in WatchTopic order")
        #expect(answer.snapshot?.hints.map(\.watchers) == [2])
        // Watching the same again changes nothing; dropping the topic, unsubscribing and closing do.
        _ = host.watch([.extension], client: client, includeSnapshot: false)
        #expect(host.hintRows.map(\.watchers) == [2])
        _ = host.watch([.mwi], client: client, includeSnapshot: false)
        #expect(host.hintRows.map(\.watchers) == [1])
        let unsubscribed = [host.unsubscribe(client: client), host.unsubscribe(client: client), host.unsubscribe(client: nil)]
        #expect(unsubscribed == [true, false, false], "the second time, nothing is left to unsubscribe")
        var effects: [ServiceHost.Effect] = []
        host.clientClosed(other, into: &effects)
        #expect(host.hintRows.map(\.watchers) == [0])
        #expect(host.watcherCount == 0)
    }

    @Test func watchingNoTopicIsUnsubscribing() throws {
        var host = try Fixture.host()
        _ = host.watch([.extension], client: client, includeSnapshot: false)
        #expect(host.hintRows.map(\.watchers) == [1])
        let answer = host.watch([], client: client, includeSnapshot: false)
        #expect(answer.topics.isEmpty && answer.snapshot == nil)
        #expect(host.hintRows.map(\.watchers) == [0])
        #expect(host.watcherCount == 0 && !host.keepsState(of: client))
    }

    @Test func eventPublishAndSubscribeDeliverToTheOwningClient() throws {
        var ring = try LoopbackRing(try Fixture.host())
        var effects: [ServiceHost.Effect] = []
        let opened = try ring.host.subscribeEvents(Subscription(channel: Fixture.callChannel), client: client, now: ring.now)
        #expect(opened.channel == Fixture.callChannel)
        #expect(opened.replayed == 0 && opened.replay == nil)
        #expect(ring.host.keepsState(of: client))
        let id = try ring.host.publishEvent(on: Fixture.callChannel, type: Fixture.callType, attributes: ["line": "1"],
                                            payload: Array("ring".utf8), retention: nil, client: nil, now: ring.now,
                                            ringQueuedBytes: 0, into: &effects)
        let delivered = ring.deliver(effects.submits).deliveredEvents
        #expect(delivered.count == 1)
        #expect(delivered.first?.0.id == id)
        #expect(delivered.first?.0.payload == Array("ring".utf8))
        #expect(delivered.first?.1 == opened.subscription)
        #expect(delivered.first?.2 == client)
        #expect(delivered.first?.3 == false)

        let closed = [ring.host.unsubscribeEvents(opened.subscription, client: ClientID(rawValue: 99)),
                      ring.host.unsubscribeEvents(opened.subscription, client: client),
                      ring.host.unsubscribeEvents(opened.subscription, client: client)]
        #expect(closed == [false, true, false], "only its owner closes it, once")
        effects.removeAll()
        _ = try ring.host.publishEvent(on: Fixture.callChannel, type: Fixture.callType, attributes: [:], payload: [], retention: nil,
                                       client: nil, now: ring.now, ringQueuedBytes: 0, into: &effects)
        #expect(ring.deliver(effects.submits).deliveredEvents.isEmpty)
    }

    @Test func eventCommandsRefuseWhatTheChannelsDoNotAllow() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        let unknown = ChannelName("nowhere")!
        #expect(throws: ServiceHostError.publish(.refused(.unknownChannel(unknown)))) {
            try host.publishEvent(on: unknown, type: Fixture.callType, attributes: [:], payload: [], retention: nil, client: nil,
                                  now: .zero, ringQueuedBytes: 0, into: &effects)
        }
        #expect(throws: ServiceHostError.publish(.reservedType(.mwi))) {
            try host.publishEvent(on: Fixture.mwiChannel, type: .mwi, attributes: [:], payload: [], retention: nil, client: nil,
                                  now: .zero, ringQueuedBytes: 0, into: &effects)
        }
        #expect(throws: ServiceHostError.subscribe(.unknownChannel(unknown))) {
            try host.subscribeEvents(Subscription(channel: unknown), client: client, now: .zero)
        }
        #expect(effects.isEmpty)
    }

    @Test func aClientHoldsAtMostSixtyFourSubscriptions() throws {
        var host = try Fixture.host()
        for _ in 0..<ServiceHost.subscriptionsPerClient {
            _ = try host.subscribeEvents(Subscription(channel: Fixture.callChannel), client: client, now: .zero)
        }
        #expect(throws: ServiceHostError.tooManySubscriptions(limit: 64)) {
            try host.subscribeEvents(Subscription(channel: Fixture.callChannel), client: client, now: .zero)
        }
        #expect(ServiceHostError.tooManySubscriptions(limit: 64).description == "this connection has 64 event subscriptions already")
        // Another client is not counted against it.
        _ = try host.subscribeEvents(Subscription(channel: Fixture.callChannel), client: ClientID(rawValue: 8), now: .zero)
    }

    @Test func anAdapterForAnotherEntityIsRefusedAndLoggedOnce() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        let foreign = AdapterRegistration(name: "asterisk", entityID: Fixture.entity(9), systemName: "pbx1", version: "20.1")
        for _ in 0..<2 {
            #expect(throws: ServiceHostError.self) { try host.registerAdapter(foreign, client: client, into: &effects) }
        }
        let errors = effects.logLines.filter { $0.0 == .error }.map(\.1)
        #expect(errors.count == 1, "\(errors)")
        #expect(errors.first?.hasPrefix("adapter refused: asterisk publishes for entity id 02:00:00:00:00:09, but this server's "
            + "entity id is 02:00:00:00:00:01 (from [options] entity_id)") == true)
        #expect(host.registeredAdapters.isEmpty)
        #expect(!host.keepsState(of: client))
        do {
            try host.registerAdapter(foreign, client: client, into: &effects)
        } catch {
            guard case .entityMismatch(let mismatch) = error else { throw error }
            #expect(mismatch.claimed == Fixture.entity(9) && mismatch.own == Fixture.entity(1))
        }
    }

    @Test func anAdapterRegistersUntilItsClientCloses() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        try host.registerAdapter(AdapterRegistration(name: "asterisk", entityID: Fixture.entity(1), systemName: "pbx1", version: "20.1"),
                                 client: client, into: &effects)
        #expect(effects.logLines.map(\.1) == ["adapter asterisk (pbx1, version 20.1) registered for entity id 02:00:00:00:00:01"])
        #expect(host.registeredAdapters.map(\.name) == ["asterisk"])
        #expect(host.keepsState(of: client))
        effects.removeAll()
        host.clientClosed(client, into: &effects)
        #expect(effects.logLines.map(\.1) == ["adapter asterisk disconnected"])
        #expect(host.registeredAdapters.isEmpty)
        #expect(!host.keepsState(of: client))
    }

    @Test func aClosingClientLosesItsSubscriptionsWatchAndHold() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        _ = try host.subscribeEvents(Subscription(channel: Fixture.callChannel), client: client, now: .zero)
        _ = host.watch([.device], client: client, includeSnapshot: false)
        _ = try host.setDeviceState(.busy, of: try Fixture.device("SIP/1"), client: client, now: .zero,
                                    ringQueuedBytes: ServiceHost.holdAboveBytes + 1, into: &effects)
        #expect(host.held == [client])
        let subscribers = { (host: ServiceHost) in
            host.deviceState.channelSummaries.first { $0.name == Fixture.callChannel }?.subscribers
        }
        #expect(subscribers(host) == 1)
        host.clientClosed(client, into: &effects)
        #expect(subscribers(host) == 0)
        #expect(host.held.isEmpty && host.watcherCount == 0 && !host.keepsState(of: client))
    }
}
