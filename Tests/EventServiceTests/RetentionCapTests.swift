// The retention store's caps (events and bytes: the oldest by ring position goes first, and the
// drops are counted) and the paced replay cursor (stretches bounded in bytes, ring order, only
// what was stored before the subscription, nothing that expired or was dropped meanwhile).

import Membership
import Testing
import Totem
@testable import EventService

@Suite("EventChannelService: retention caps and paced replay")
struct RetentionCapTests {
    /// Publishes on `mwi` from `service` itself and delivers it back at `now`: one retained event.
    private static func retain(_ service: inout EventChannelService, index: Int, payloadBytes: Int,
                               retention: Duration = .seconds(600), now: MonotonicInstant = .zero) throws {
        let payload = Array(repeating: UInt8(truncatingIfNeeded: index), count: payloadBytes)
        let published = try service.publish(on: Fixtures.mwi, type: .mwi, attributes: ["n": "\(index)"], payload: payload,
                                            retention: retention)
        _ = try service.delivered(payload: Fixtures.submits(published.effects)[0], from: service.localNode, now: now)
    }

    private static func indexes(_ events: [DeliveredEvent]) -> [Int] { events.compactMap { $0.attributes["n"].flatMap { Int($0) } } }

    @Test("an event is counted for its payload, its attributes and the fixed overheads")
    func accounting() throws {
        var service = try Fixtures.service(1)
        try Self.retain(&service, index: 7, payloadBytes: 60_000)
        let expected = EventLimits.retainedEventOverheadBytes + 60_000 + EventLimits.retainedAttributeOverheadBytes + 1 + 1
        #expect(service.retentionSummary.bytes == expected)
        #expect(service.channelSummaries.first { $0.name == Fixtures.mwi }?.retainedBytes == expected)
        #expect(service.channelSummaries.first { $0.name == Fixtures.devices }?.retainedBytes == 0)
        service.expireRetained(now: Fixtures.at(601_000))
        #expect(service.retentionSummary.bytes == 0 && service.retentionSummary.events == 0)
    }

    @Test("at the byte cap the oldest retained events are dropped first, counted, and the cap holds")
    func byteCapDropsOldest() throws {
        let cap = 1 << 20
        var service = try Fixtures.service(1, retainedBytes: cap)
        let perEvent = EventLimits.retainedEventOverheadBytes + 60_000 + EventLimits.retainedAttributeOverheadBytes + 1 + 2
        for index in 10..<60 {  // 50 events of 60 KB: about 3 MB, three times the cap
            try Self.retain(&service, index: index, payloadBytes: 60_000)
            #expect(service.retentionSummary.bytes <= cap)
        }
        let kept = cap / perEvent
        let summary = service.retentionSummary
        #expect(summary.events == kept)
        #expect(summary.bytes == kept * perEvent)
        #expect(summary.maximumBytes == cap)
        #expect(summary.droppedAtByteCap == 50 - kept)
        #expect(summary.droppedAtEventCap == 0)
        #expect(Self.indexes(service.retainedEvents) == Array((60 - kept)..<60))
        #expect(service.retainedEvents.allSatisfy { $0.payloadBytes.count == 60_000 })
    }

    @Test("at the event cap the oldest is dropped, as before, and counted apart")
    func eventCapDropsOldest() throws {
        var service = try Fixtures.service(1)
        for index in 0...EventLimits.retainedEvents {
            try Self.retain(&service, index: index, payloadBytes: 0)
        }
        let summary = service.retentionSummary
        #expect(summary.events == EventLimits.retainedEvents)
        #expect(summary.droppedAtEventCap == 1)
        #expect(summary.droppedAtByteCap == 0)
        #expect(Self.indexes(service.retainedEvents).first == 1)
    }

    @Test("an event dropped at a cap is remembered until its own expiry; the remembered ids are bounded")
    func tombstonesOfDroppedEvents() throws {
        var store = RetentionStore(capacityBytes: 64 << 20)
        func event(_ counter: UInt64) -> DeliveredEvent {
            DeliveredEvent(id: EventID(publisher: NodeID(1), incarnation: 1, counter: counter), publisherEntity: Fixtures.entity1,
                           channel: Fixtures.mwi, type: .mwi, attributes: [:], payload: [], retention: .seconds(1),
                           position: RingPosition(ringSequence: 1, index: counter), isRepublished: false, sender: NodeID(1))
        }
        // Expiring at 1 s; dropped when newer events with a retention of a day arrive.
        store.insert(event(1), expiresAt: Fixtures.at(1_000))
        for counter in 2...UInt64(EventLimits.retainedEvents + 1) { store.insert(event(counter), expiresAt: Fixtures.at(86_400_000)) }
        #expect(store.droppedAtEventCap == 1)
        #expect(store.isKnown(EventID(publisher: NodeID(1), incarnation: 1, counter: 1)))
        store.expire(now: Fixtures.at(1_000) + EventLimits.tombstoneGrace)
        #expect(!store.isKnown(EventID(publisher: NodeID(1), incarnation: 1, counter: 1)))
        // 50,000 more drops: at most `EventLimits.tombstones` ids are remembered, the latest kept.
        for counter in UInt64(EventLimits.retainedEvents + 2)...UInt64(EventLimits.retainedEvents + 50_001) {
            store.insert(event(counter), expiresAt: Fixtures.at(86_400_000))
        }
        #expect(store.tombstoneCount <= EventLimits.tombstones)
        #expect(store.isKnown(EventID(publisher: NodeID(1), incarnation: 1, counter: 50_001)))
        #expect(store.count == EventLimits.retainedEvents)
    }

    @Test("a replay comes in stretches bounded in bytes, in ring order, whatever its total")
    func replayInStretches() throws {
        var service = try Fixtures.service(1, retainedBytes: 64 << 20)
        for index in 0..<300 { try Self.retain(&service, index: index, payloadBytes: 60_000) }
        var (_, replay) = try service.subscribe(Subscription(channel: Fixtures.mwi), now: .zero)
        #expect(replay.matchingAtStart == 300)
        var received: [DeliveredEvent] = []
        var stretches = 0
        for _ in 0..<1_000 where !replay.isFinished {
            let stretch = service.continueReplay(&replay, now: .zero, maximumBytes: 200_000)
            #expect(stretch.count <= 3, "a stretch of \(stretch.count) events for 200,000 bytes")
            received += stretch
            stretches += 1
        }
        #expect(replay.isFinished)
        #expect(Self.indexes(received) == Array(0..<300))
        #expect(stretches >= 100)
        // A stretch smaller than one event still makes progress.
        var small = try service.subscribe(Subscription(channel: Fixtures.mwi), now: .zero).replay
        #expect(service.continueReplay(&small, now: .zero, maximumBytes: 1).count == 1)
    }

    @Test("a replay skips what expired or was dropped meanwhile, and what was stored after it began")
    func replaySnapshot() throws {
        var service = try Fixtures.service(1, retainedBytes: 1 << 20)
        for index in 0..<10 { try Self.retain(&service, index: index, payloadBytes: 60_000, retention: .seconds(index < 5 ? 1 : 600)) }
        var (_, replay) = try service.subscribe(Subscription(channel: Fixtures.mwi), now: .zero)
        #expect(replay.matchingAtStart == 10)
        let first = service.continueReplay(&replay, now: .zero, maximumBytes: 1)
        #expect(Self.indexes(first) == [0])
        // Events 1-4 expire; 15 new ones push 5, 6 and 7 out at the byte cap (17 fit).
        for index in 100..<115 { try Self.retain(&service, index: index, payloadBytes: 60_000, now: Fixtures.at(2_000)) }
        let rest = Fixtures.replayAll(replay, of: service, now: Fixtures.at(2_000))
        let kept = Self.indexes(service.retainedEvents)
        #expect(Self.indexes(rest) == [8, 9], "replayed \(Self.indexes(rest)) of \(kept)")
        #expect(kept == [8, 9] + Array(100..<115))
        #expect(service.retentionSummary.droppedAtByteCap == 3)
        // Closing the subscription finishes its replay.
        var again = try service.subscribe(Subscription(channel: Fixtures.mwi), now: Fixtures.at(2_000)).replay
        _ = service.unsubscribe(again.subscription)
        #expect(service.continueReplay(&again, now: Fixtures.at(2_000), maximumBytes: 1 << 20).isEmpty)
        #expect(again.isFinished)
    }

    @Test("a replay looks at a bounded number of retained events per call, matching or not")
    func replayScanIsBounded() throws {
        var service = try Fixtures.service(1)
        for index in 0..<3_000 { try Self.retain(&service, index: index, payloadBytes: 0) }
        let filter = SubscriptionFilter(attribute: "n", match: .exact("2999"))
        var replay = try service.subscribe(Subscription(channel: Fixtures.mwi, filters: [filter]), now: .zero).replay
        #expect(replay.matchingAtStart == 1)
        var calls = 0
        var received: [DeliveredEvent] = []
        for _ in 0..<100 where !replay.isFinished {
            received += service.continueReplay(&replay, now: .zero, maximumBytes: 1 << 20)
            calls += 1
        }
        #expect(Self.indexes(received) == [2_999])
        #expect(calls == (3_000 + EventChannelService.replayScanLimit - 1) / EventChannelService.replayScanLimit)
    }
}
