// The event service on one node: permissions, filters, ordering, ids, retention, expiry.

import Testing
import Membership
import Totem
@testable import EventService

@Suite("EventChannelService: channels and permissions")
struct ChannelPermissionTests {
    @Test("publishing a type the channel does not publish is an error naming the allowed types")
    func publishPermission() throws {
        var service = try Fixtures.service(1)
        #expect(throws: PublishError.typeNotPublished(.mwi, channel: Fixtures.devices, allowed: [.deviceState])) {
            try service.publish(on: Fixtures.devices, type: .mwi)
        }
        let unknown = ChannelName("nowhere")!
        #expect(throws: PublishError.unknownChannel(unknown)) { try service.publish(on: unknown, type: .mwi) }
        #expect(service.statistics.published == 0)
        #expect(PublishError.typeNotPublished(.mwi, channel: Fixtures.devices, allowed: [.deviceState]).description
            == "channel device_state does not publish mwi (publishes: device_state)")
    }

    @Test("a subscribe-only channel refuses publications; a publish-only channel refuses subscriptions")
    func oneWayChannels() throws {
        let phone = [ChannelConfiguration(name: Fixtures.mwi, publishes: [], subscribes: [.mwi])]
        var subscriber = try Fixtures.service(1, channels: phone)
        #expect(throws: PublishError.typeNotPublished(.mwi, channel: Fixtures.mwi, allowed: [])) {
            try subscriber.publish(on: Fixtures.mwi, type: .mwi)
        }
        let voicemail = [ChannelConfiguration(name: Fixtures.mwi, publishes: [.mwi], subscribes: [])]
        var publisher = try Fixtures.service(2, channels: voicemail)
        #expect(throws: SubscribeError.typeNotSubscribed(.mwi, channel: Fixtures.mwi, allowed: [])) {
            try publisher.subscribe(Subscription(channel: Fixtures.mwi, types: [.mwi]), now: .zero)
        }
        #expect(throws: SubscribeError.unknownChannel(Fixtures.devices)) {
            try publisher.subscribe(Subscription(channel: Fixtures.devices), now: .zero)
        }
    }

    @Test("deliveries of a type the channel does not subscribe are ignored and counted")
    func ignoresUnsubscribedTypes() throws {
        let voicemail = [ChannelConfiguration(name: Fixtures.mwi, publishes: [.mwi], subscribes: [])]
        var publisher = try Fixtures.service(2, channels: voicemail)
        let phone = [ChannelConfiguration(name: Fixtures.mwi, publishes: [], subscribes: [.deviceState])]
        var receiver = try Fixtures.service(1, channels: phone)
        let (subscription, _) = try receiver.subscribe(Subscription(channel: Fixtures.mwi), now: .zero)
        let bytes = Fixtures.submits(try publisher.publish(on: Fixtures.mwi, type: .mwi).effects)[0]
        let effects = try receiver.delivered(payload: bytes, from: NodeID(2), now: .zero)
        #expect(Fixtures.deliveries(effects).isEmpty)
        #expect(receiver.channelSummaries[0].ignored == 1)
        #expect(receiver.channelSummaries[0].delivered == 0)
        #expect(receiver.subscription(subscription) != nil)
    }

    @Test("duplicate channel names are refused; repeated types are kept once")
    func configuration() throws {
        let twice = [ChannelConfiguration(name: Fixtures.mwi, publishes: [.mwi], subscribes: []),
                     ChannelConfiguration(name: Fixtures.mwi, publishes: [], subscribes: [.mwi])]
        #expect(throws: ChannelConfigurationError.duplicateChannel(Fixtures.mwi)) { try Fixtures.service(1, channels: twice) }
        #expect(ChannelConfiguration(name: Fixtures.mwi, publishes: [.mwi, .mwi, .deviceState], subscribes: []).publishes == [.mwi, .deviceState])
    }

    @Test("names: channel names are printable ASCII without spaces; types parse case-insensitively")
    func names() {
        #expect(ChannelName("device_state") != nil)
        #expect(ChannelName("") == nil)
        #expect(ChannelName("has space") == nil)
        #expect(ChannelName(String(repeating: "a", count: 65)) == nil)
        #expect(EventType(parsing: "DEVICE_STATE") == .deviceState)
        #expect(EventType(parsing: "Mwi") == .mwi)
        #expect(EventType("MWI") == nil)
        #expect(EventType("9lives") == nil)
        #expect(EventType("") == nil)
    }

    @Test("channel summaries give what `channels` prints, in configuration order")
    func summaries() throws {
        var service = try Fixtures.service(1)
        _ = try service.subscribe(Subscription(channel: Fixtures.mwi), now: .zero)
        let bytes = Fixtures.submits(try service.publish(on: Fixtures.mwi, type: .mwi, retention: .seconds(5)).effects)[0]
        _ = try service.delivered(payload: bytes, from: NodeID(1), now: .zero)
        #expect(service.channelSummaries == [
            ChannelSummary(name: Fixtures.devices, publishes: [.deviceState], subscribes: [.deviceState], subscribers: 0, published: 0,
                           delivered: 0, ignored: 0, retained: 0),
            ChannelSummary(name: Fixtures.mwi, publishes: [.mwi], subscribes: [.mwi], subscribers: 1, published: 1,
                           delivered: 1, ignored: 0, retained: 1, retainedBytes: EventLimits.retainedEventOverheadBytes),
        ])
    }
}

@Suite("EventChannelService: filters and delivery")
struct FilterTests {
    static func publishAndDeliver(_ attributes: [String: String], to service: inout EventChannelService) throws -> [(DeliveredEvent, [SubscriptionID])] {
        let bytes = Fixtures.submits(try service.publish(on: Fixtures.devices, type: .deviceState, attributes: attributes).effects)[0]
        return Fixtures.deliveries(try service.delivered(payload: bytes, from: NodeID(1), now: .zero))
    }

    @Test("exact filters need identical values; prefix filters need a leading match")
    func exactAndPrefix() throws {
        var service = try Fixtures.service(1)
        let exact = try service.subscribe(Subscription(channel: Fixtures.devices, filters: [
            SubscriptionFilter(attribute: "device", match: .exact("Custom:mystate"))]), now: .zero).id
        let prefix = try service.subscribe(Subscription(channel: Fixtures.devices, filters: [
            SubscriptionFilter(attribute: "device", match: .prefix("Custom:"))]), now: .zero).id
        let everything = try service.subscribe(Subscription(channel: Fixtures.devices), now: .zero).id

        #expect(try Self.publishAndDeliver(["device": "Custom:mystate"], to: &service).map(\.1) == [[exact, prefix, everything]])
        #expect(try Self.publishAndDeliver(["device": "Custom:mystate2"], to: &service).map(\.1) == [[prefix, everything]])
        #expect(try Self.publishAndDeliver(["device": "SIP/1000"], to: &service).map(\.1) == [[everything]])
        #expect(try Self.publishAndDeliver(["device": "custom:mystate"], to: &service).map(\.1) == [[everything]])
        // An event without the attribute matches no filter on it.
        #expect(try Self.publishAndDeliver([:], to: &service).map(\.1) == [[everything]])
    }

    @Test("after a filtered or typed subscription closes, the others take every event again; before, only theirs")
    func subscriptionsComeAndGo() throws {
        var service = try Fixtures.service(1)
        let everything = try service.subscribe(Subscription(channel: Fixtures.devices), now: .zero).id
        #expect(try Self.publishAndDeliver(["device": "SIP/1"], to: &service).map(\.1) == [[everything]])
        let sip = try service.subscribe(Subscription(channel: Fixtures.devices, filters: [
            SubscriptionFilter(attribute: "device", match: .prefix("SIP/"))]), now: .zero).id
        let typed = try service.subscribe(Subscription(channel: Fixtures.devices, types: [.deviceState]), now: .zero).id
        #expect(try Self.publishAndDeliver(["device": "SIP/1"], to: &service).map(\.1) == [[everything, sip, typed]])
        #expect(try Self.publishAndDeliver(["device": "PJSIP/1"], to: &service).map(\.1) == [[everything, typed]])
        let closed = service.unsubscribe(sip)
        #expect(closed)
        #expect(try Self.publishAndDeliver(["device": "PJSIP/1"], to: &service).map(\.1) == [[everything, typed]])
        let later = try service.subscribe(Subscription(channel: Fixtures.devices, filters: [
            SubscriptionFilter(attribute: "device", match: .exact("IAX/1"))]), now: .zero).id
        #expect(try Self.publishAndDeliver(["device": "PJSIP/1"], to: &service).map(\.1) == [[everything, typed]])
        #expect(try Self.publishAndDeliver(["device": "IAX/1"], to: &service).map(\.1) == [[everything, typed, later]])
        let closedBoth = service.unsubscribe(later) && service.unsubscribe(everything)
        #expect(closedBoth)
        #expect(try Self.publishAndDeliver(["device": "SIP/2"], to: &service).map(\.1) == [[typed]])
    }

    @Test("all filters of a subscription must match")
    func allMustMatch() throws {
        var service = try Fixtures.service(1)
        let both = try service.subscribe(Subscription(channel: Fixtures.devices, filters: [
            SubscriptionFilter(attribute: "device", match: .prefix("SIP/")),
            SubscriptionFilter(attribute: "site", match: .exact("paris"))]), now: .zero).id
        #expect(try Self.publishAndDeliver(["device": "SIP/1", "site": "paris"], to: &service).map(\.1) == [[both]])
        #expect(try Self.publishAndDeliver(["device": "SIP/1", "site": "lyon"], to: &service).isEmpty)
        #expect(try Self.publishAndDeliver(["device": "PJSIP/1", "site": "paris"], to: &service).isEmpty)
        #expect(try Self.publishAndDeliver(["device": "SIP/1"], to: &service).isEmpty)
    }

    @Test("the empty prefix matches any present value; filters compare bytes")
    func filterEdges() {
        let present = SubscriptionFilter(attribute: "a", match: .prefix(""))
        #expect(present.matches(["a": ""]))
        #expect(!present.matches(["b": "x"]))
        // U+00E9 and e + U+0301 are equal Swift strings but different bytes.
        #expect(!SubscriptionFilter(attribute: "a", match: .exact("\u{E9}")).matches(["a": "e\u{301}"]))
        #expect(SubscriptionFilter(attribute: "a", match: .exact("\u{E9}")).description == "a=\u{E9}")
        #expect(SubscriptionFilter(attribute: "a", match: .prefix("x")).description == "a=x*")
    }

    @Test("a filter on an empty attribute key is refused")
    func emptyFilterKey() throws {
        var service = try Fixtures.service(1)
        #expect(throws: SubscribeError.emptyFilterAttribute) {
            try service.subscribe(Subscription(channel: Fixtures.devices, filters: [SubscriptionFilter(attribute: "", match: .exact("x"))]),
                                  now: .zero)
        }
    }

    @Test("events reach subscribers in ring order, after unsubscribe no more")
    func ringOrderAndUnsubscribe() throws {
        var service = try Fixtures.service(1)
        var other = try Fixtures.service(2)
        let id = try service.subscribe(Subscription(channel: Fixtures.devices), now: .zero).id
        _ = Fixtures.apply(Fixtures.change(from: [], to: [1, 2], sequence: 4), to: &service, now: .zero)
        let first = Fixtures.submits(try other.publish(on: Fixtures.devices, type: .deviceState, payload: [1]).effects)[0]
        let second = Fixtures.submits(try service.publish(on: Fixtures.devices, type: .deviceState, payload: [2]).effects)[0]
        let a = Fixtures.deliveries(try service.delivered(payload: first, from: NodeID(2), now: .zero))
        let b = Fixtures.deliveries(try service.delivered(payload: second, from: NodeID(1), now: .zero))
        #expect(a.map(\.0.payload) == [[1]])
        #expect(b.map(\.0.payload) == [[2]])
        #expect(a[0].0.position == RingPosition(ringSequence: 4, index: 0))
        #expect(b[0].0.position == RingPosition(ringSequence: 4, index: 1))
        let removed = service.unsubscribe(id)
        let removedAgain = service.unsubscribe(id)
        #expect(removed)
        #expect(!removedAgain)
        let third = Fixtures.submits(try other.publish(on: Fixtures.devices, type: .deviceState).effects)[0]
        #expect(Fixtures.deliveries(try service.delivered(payload: third, from: NodeID(2), now: .zero)).isEmpty)
    }

    @Test("subscription types narrow the channel's subscribed types")
    func typeFilter() throws {
        let mixed = [ChannelConfiguration(name: Fixtures.devices, publishes: [.deviceState, .mwi], subscribes: [.deviceState, .mwi])]
        var service = try Fixtures.service(1, channels: mixed)
        let onlyMWI = try service.subscribe(Subscription(channel: Fixtures.devices, types: [.mwi]), now: .zero).id
        let all = try service.subscribe(Subscription(channel: Fixtures.devices), now: .zero).id
        let state = Fixtures.submits(try service.publish(on: Fixtures.devices, type: .deviceState).effects)[0]
        let mwi = Fixtures.submits(try service.publish(on: Fixtures.devices, type: .mwi).effects)[0]
        #expect(Fixtures.deliveries(try service.delivered(payload: state, from: NodeID(1), now: .zero)).map(\.1) == [[all]])
        #expect(Fixtures.deliveries(try service.delivered(payload: mwi, from: NodeID(1), now: .zero)).map(\.1) == [[onlyMWI, all]])
    }
}

@Suite("EventChannelService: ids and confirmations")
struct EventIDTests {
    @Test("ids carry node, incarnation and a counter from 1; own events are confirmed")
    func idsAndConfirmation() throws {
        var service = try Fixtures.service(3, incarnation: 77)
        let first = try service.publish(on: Fixtures.devices, type: .deviceState)
        let second = try service.publish(on: Fixtures.mwi, type: .mwi)
        #expect(first.id == EventID(publisher: NodeID(3), incarnation: 77, counter: 1))
        #expect(second.id == EventID(publisher: NodeID(3), incarnation: 77, counter: 2))
        #expect(first.id.description == "3.77.1")
        // The confirmation comes whatever the subscriptions (nobody subscribed here).
        let effects = try service.delivered(payload: Fixtures.submits(second.effects)[0], from: NodeID(3), now: .zero)
        guard case .confirmed(let event) = effects.first else {
            Issue.record("expected a confirmation, got \(effects)")
            return
        }
        #expect(event.id == second.id)
        #expect(event.publisherEntity == EntityID(rawValue: 3))
    }

    @Test("a restarted publisher (new incarnation) never collides with its previous life's retained events")
    func restartedPublisher() throws {
        var old = try Fixtures.service(2, incarnation: 1)
        var receiver = try Fixtures.service(1)
        let subscription = try receiver.subscribe(Subscription(channel: Fixtures.mwi), now: .zero).id
        let before = Fixtures.submits(try old.publish(on: Fixtures.mwi, type: .mwi, payload: [1], retention: .seconds(60)).effects)[0]
        _ = try receiver.delivered(payload: before, from: NodeID(2), now: .zero)
        var restarted = try Fixtures.service(2, incarnation: 2)
        let after = try restarted.publish(on: Fixtures.mwi, type: .mwi, payload: [2], retention: .seconds(60))
        #expect(after.id.counter == 1)
        let delivered = Fixtures.deliveries(try receiver.delivered(payload: Fixtures.submits(after.effects)[0], from: NodeID(2), now: .zero))
        #expect(delivered.map(\.0.payload) == [[2]])
        #expect(delivered.map(\.1) == [[subscription]])
        #expect(receiver.retainedEvents.map(\.id) == [EventID(publisher: NodeID(2), incarnation: 1, counter: 1), after.id])
    }

    @Test("an original publication whose publisher is not its sender is rejected")
    func rejectsSpoofedPublisher() throws {
        var publisher = try Fixtures.service(2)
        var receiver = try Fixtures.service(1)
        let bytes = Fixtures.submits(try publisher.publish(on: Fixtures.mwi, type: .mwi).effects)[0]
        #expect(throws: ServiceWireError.senderMismatch(claimed: 2, sender: 3)) { try receiver.delivered(payload: bytes, from: NodeID(3), now: .zero) }
        #expect(throws: ServiceWireError.wrongService(expected: .event, actual: 1)) { try receiver.delivered(payload: [1, 1], from: NodeID(3), now: .zero) }
    }

    @Test("publish validates attributes, payload and retention")
    func publishValidation() throws {
        var service = try Fixtures.service(1)
        let many = Dictionary(uniqueKeysWithValues: (0...EventLimits.attributes).map { ("k\($0)", "v") })
        #expect(throws: PublishError.tooManyAttributes(count: 33, limit: 32)) { try service.publish(on: Fixtures.mwi, type: .mwi, attributes: many) }
        #expect(throws: PublishError.invalidAttributeKey("")) { try service.publish(on: Fixtures.mwi, type: .mwi, attributes: ["": "x"]) }
        let long = String(repeating: "v", count: 1025)
        #expect(throws: PublishError.attributeValueTooLong(key: "k", bytes: 1025, limit: 1024)) {
            try service.publish(on: Fixtures.mwi, type: .mwi, attributes: ["k": long])
        }
        #expect(throws: PublishError.payloadTooLarge(bytes: 65_537, limit: 65_536)) {
            try service.publish(on: Fixtures.mwi, type: .mwi, payload: Array(repeating: 0, count: 65_537))
        }
        #expect(throws: PublishError.retentionOutOfRange(.seconds(-1))) { try service.publish(on: Fixtures.mwi, type: .mwi, retention: .seconds(-1)) }
        #expect(throws: PublishError.retentionOutOfRange(.seconds(5_000_000))) {
            try service.publish(on: Fixtures.mwi, type: .mwi, retention: .seconds(5_000_000))
        }
        #expect(service.statistics.published == 0)
        // Sub-millisecond retention rounds up to a whole millisecond.
        let bytes = Fixtures.submits(try service.publish(on: Fixtures.mwi, type: .mwi, retention: .microseconds(1)).effects)[0]
        #expect(try EventMessage(decoding: bytes).retentionMilliseconds == 1)
    }
}

@Suite("EventChannelService: retention")
struct RetentionTests {
    @Test("retained events are replayed, in ring order, to subscribers that open the channel later")
    func replayToLateSubscriber() throws {
        var service = try Fixtures.service(1)
        for (index, retention) in [Duration.seconds(10), nil, .seconds(20)].enumerated() {
            let bytes = Fixtures.submits(try service.publish(on: Fixtures.mwi, type: .mwi, attributes: ["n": "\(index)"],
                                                             retention: retention).effects)[0]
            _ = try service.delivered(payload: bytes, from: NodeID(1), now: Fixtures.at(0))
        }
        let (id, replay) = try service.subscribe(Subscription(channel: Fixtures.mwi), now: Fixtures.at(5_000))
        #expect(replay.subscription == id)
        #expect(replay.matchingAtStart == 2)
        let replayed = Fixtures.replayAll(replay, of: service, now: Fixtures.at(5_000)).map { $0.attributes["n"] }
        #expect(replayed == ["0", "2"])
        let filtered = try service.subscribe(Subscription(channel: Fixtures.mwi, filters: [SubscriptionFilter(attribute: "n", match: .exact("2"))]),
                                             now: Fixtures.at(5_000)).replay
        #expect(filtered.matchingAtStart == 1)
        #expect(Fixtures.replayAll(filtered, of: service, now: Fixtures.at(5_000)).map { $0.attributes["n"] } == ["2"])
        let none = try service.subscribe(Subscription(channel: Fixtures.devices), now: Fixtures.at(5_000)).replay
        #expect(none.isFinished && none.matchingAtStart == 0)
    }

    @Test("retention counts from receipt; expired events are dropped and not replayed")
    func expiry() throws {
        var publisher = try Fixtures.service(2)
        var service = try Fixtures.service(1)
        let bytes = Fixtures.submits(try publisher.publish(on: Fixtures.mwi, type: .mwi, retention: .seconds(10)).effects)[0]
        _ = try service.delivered(payload: bytes, from: NodeID(2), now: Fixtures.at(1_000))
        #expect(service.nextExpiry == Fixtures.at(11_000))
        service.expireRetained(now: Fixtures.at(10_999))
        #expect(service.retainedEvents.count == 1)
        service.expireRetained(now: Fixtures.at(11_000))
        #expect(service.retainedEvents.isEmpty)
        let replay = try service.subscribe(Subscription(channel: Fixtures.mwi), now: Fixtures.at(11_000)).replay
        #expect(replay.matchingAtStart == 0 && Fixtures.replayAll(replay, of: service, now: Fixtures.at(11_000)).isEmpty)
        // The tombstone keeps the timer armed for the grace period, then nothing remains.
        #expect(service.nextExpiry == Fixtures.at(11_000) + EventLimits.tombstoneGrace)
        service.expireRetained(now: Fixtures.at(11_000) + EventLimits.tombstoneGrace)
        #expect(service.nextExpiry == nil)
    }

    @Test("a later input past the expiry also drops the event")
    func implicitExpiry() throws {
        var service = try Fixtures.service(1)
        let bytes = Fixtures.submits(try service.publish(on: Fixtures.mwi, type: .mwi, retention: .milliseconds(5)).effects)[0]
        _ = try service.delivered(payload: bytes, from: NodeID(1), now: Fixtures.at(0))
        let other = Fixtures.submits(try service.publish(on: Fixtures.mwi, type: .mwi).effects)[0]
        _ = try service.delivered(payload: other, from: NodeID(1), now: Fixtures.at(6))
        #expect(service.retainedEvents.isEmpty)
    }

    @Test("the store keeps retained events whatever the local subscriptions")
    func retainsUnsubscribed() throws {
        let voicemail = [ChannelConfiguration(name: Fixtures.mwi, publishes: [.mwi], subscribes: [])]
        var service = try Fixtures.service(1, channels: voicemail)
        let bytes = Fixtures.submits(try service.publish(on: Fixtures.mwi, type: .mwi, retention: .seconds(1)).effects)[0]
        _ = try service.delivered(payload: bytes, from: NodeID(1), now: .zero)
        #expect(service.retainedEvents.count == 1)
        #expect(service.channelSummaries[0].retained == 1)
    }
}
