// Join re-publication of retained events and de-duplication, on one node and on three nodes
// sharing one ordered delivery stream.

import Testing
import Membership
import Totem
@testable import EventService

@Suite("EventChannelService: join re-publication")
struct RepublicationTests {
    /// Node 1 holding one retained event published at t=0 with 60 s retention.
    static func holder() throws -> (EventChannelService, EventID) {
        var service = try Fixtures.service(1)
        _ = Fixtures.apply(Fixtures.change(from: [], to: [1, 2], sequence: 4), to: &service, now: Fixtures.at(0))
        let published = try service.publish(on: Fixtures.mwi, type: .mwi, attributes: ["mailbox": "1234@default"], payload: [9],
                                            retention: .seconds(60))
        _ = try service.delivered(payload: Fixtures.submits(published.effects)[0], from: NodeID(1), now: Fixtures.at(0))
        return (service, published.id)
    }

    @Test("the lowest member of the transitional configuration re-publishes with original id, position and remaining retention")
    func lowestRepublishes() throws {
        var (service, id) = try Self.holder()
        let submitted = Fixtures.submits(Fixtures.apply(Fixtures.change(from: [1, 2], to: [1, 2, 3], sequence: 8), to: &service,
                                                        now: Fixtures.at(20_000)))
        #expect(submitted.count == 1)
        let message = try EventMessage(decoding: submitted[0])
        #expect(message.id == id)
        #expect(message.kind == .republished(originalPosition: RingPosition(ringSequence: 4, index: 0)))
        #expect(message.retentionMilliseconds == 40_000)
        #expect(message.attributes == ["mailbox": "1234@default"])
        #expect(message.payload == [9])
        #expect(service.statistics.republished == 1)
    }

    @Test("other members, and configurations without joined members, re-publish nothing")
    func onlyLowestAndOnlyOnJoin() throws {
        var (service, _) = try Self.holder()
        // Node 2 leaves: nobody joined.
        #expect(Fixtures.submits(Fixtures.apply(Fixtures.change(from: [1, 2], to: [1], sequence: 8), to: &service,
                                                now: Fixtures.at(1))).isEmpty)
        // A node with a lower id in the transitional configuration is the re-publisher.
        var higher = try Fixtures.service(5)
        _ = Fixtures.apply(Fixtures.change(from: [], to: [4, 5], sequence: 4), to: &higher, now: .zero)
        let bytes = Fixtures.submits(try higher.publish(on: Fixtures.mwi, type: .mwi, retention: .seconds(60)).effects)[0]
        _ = try higher.delivered(payload: bytes, from: NodeID(5), now: .zero)
        #expect(Fixtures.submits(Fixtures.apply(Fixtures.change(from: [4, 5], to: [4, 5, 6], sequence: 8), to: &higher,
                                                now: .zero)).isEmpty)
    }

    /// Node `member` of side {`publisher`, `member`} (ring 4), holding one retained event that
    /// node `publisher` published at t=0 with 60 s retention.
    static func side(publisher node: UInt32, member: UInt32) throws -> (EventChannelService, EventID) {
        var publisher = try Fixtures.service(node)
        var service = try Fixtures.service(member)
        _ = Fixtures.apply(Fixtures.change(from: [], to: [node, member], sequence: 4), to: &publisher, now: Fixtures.at(0))
        _ = Fixtures.apply(Fixtures.change(from: [], to: [node, member], sequence: 4), to: &service, now: Fixtures.at(0))
        let published = try publisher.publish(on: Fixtures.mwi, type: .mwi, payload: [7], retention: .seconds(60))
        _ = try service.delivered(payload: Fixtures.submits(published.effects)[0], from: NodeID(node), now: Fixtures.at(0))
        return (service, published.id)
    }

    @Test("the member that was to re-publish for a join leaves first: the next member of its side re-publishes")
    func republisherLeavesFirst() throws {
        // Found by the service simulation (seeds 95, 230, ...): node 1, the lowest of its side,
        // left at the merge before its re-publication was delivered, and the newcomer never got
        // the retained events that node 2 still held.
        var (member, id) = try Self.side(publisher: 1, member: 2)
        // Node 3 joins: node 1 is to re-publish, node 2 is not.
        #expect(Fixtures.submits(Fixtures.apply(Fixtures.change(from: [1, 2], to: [1, 2, 3], sequence: 8), to: &member,
                                                now: Fixtures.at(10))).isEmpty)
        // Node 1 leaves before its re-publication was delivered: node 2 re-publishes.
        let submitted = Fixtures.submits(Fixtures.apply(Fixtures.change(from: [1, 2, 3], to: [2, 3], sequence: 12), to: &member,
                                                        now: Fixtures.at(20)))
        try #require(submitted.count == 1)
        let message = try EventMessage(decoding: submitted[0])
        #expect(message.id == id)
        #expect(message.kind == .republished(originalPosition: RingPosition(ringSequence: 4, index: 0)))
        // Another member leaving later is no reason to re-publish again.
        _ = Fixtures.apply(Fixtures.change(from: [2, 3], to: [2, 3, 4], sequence: 16), to: &member, now: Fixtures.at(30))
        #expect(Fixtures.submits(Fixtures.apply(Fixtures.change(from: [2, 3, 4], to: [2, 3], sequence: 20), to: &member,
                                                now: Fixtures.at(40))).isEmpty)
    }

    @Test("the re-publisher leaves and the next configuration is a join: the side's next member re-publishes too")
    func republisherLeavesIntoAnotherJoin() throws {
        // Found by the service simulation (seed 20969, 9 nodes at most): side {3, 4} merged with
        // {1, 2}; node 3 left at once; the next ring was a join again (node 1 came back through a
        // ring of its own) whose lowest transitional member, node 2, lacked the side's events.
        var (member, id) = try Self.side(publisher: 3, member: 4)
        #expect(Fixtures.submits(Fixtures.apply(Fixtures.change(from: [3, 4], to: [1, 2, 3, 4], sequence: 8), to: &member,
                                                now: Fixtures.at(10))).isEmpty)
        let next = Fixtures.change(from: [1, 2, 3, 4], to: [1, 2, 4], through: [2, 4], sequence: 12)
        let submitted = Fixtures.submits(Fixtures.apply(next, to: &member, now: Fixtures.at(20)))
        try #require(submitted.count == 1)
        #expect(try EventMessage(decoding: submitted[0]).id == id)
    }

    @Test("a re-publication is delivered once to a node that lacks the event, and dropped where it is known")
    func deduplication() throws {
        var (holder, id) = try Self.holder()
        let republished = Fixtures.submits(Fixtures.apply(Fixtures.change(from: [1, 2], to: [1, 2, 3], sequence: 8), to: &holder,
                                                          now: Fixtures.at(20_000)))[0]
        // The holder itself already has it.
        #expect(try holder.delivered(payload: republished, from: NodeID(1), now: Fixtures.at(20_001)).isEmpty)
        #expect(holder.statistics.duplicatesDropped == 1)

        var newcomer = try Fixtures.service(3)
        let subscription = try newcomer.subscribe(Subscription(channel: Fixtures.mwi), now: .zero).id
        _ = Fixtures.apply(Fixtures.change(from: [], to: [1, 2, 3], sequence: 8), to: &newcomer, now: Fixtures.at(20_000))
        let first = Fixtures.deliveries(try newcomer.delivered(payload: republished, from: NodeID(1), now: Fixtures.at(20_001)))
        #expect(first.count == 1)
        #expect(first.first?.0.id == id)
        #expect(first.first?.0.isRepublished == true)
        #expect(first.first?.0.position == RingPosition(ringSequence: 4, index: 0))
        #expect(first.first?.1 == [subscription])
        // A second copy (another partition's re-publisher) is a duplicate.
        #expect(Fixtures.deliveries(try newcomer.delivered(payload: republished, from: NodeID(2), now: Fixtures.at(20_002))).isEmpty)
        // Retention on the newcomer counts from its receipt, for the remaining 40 s.
        newcomer.expireRetained(now: Fixtures.at(60_000))
        #expect(newcomer.retainedEvents.map(\.id) == [id])
        newcomer.expireRetained(now: Fixtures.at(60_001))
        #expect(newcomer.retainedEvents.isEmpty)
    }

    @Test("a re-publication arriving after the local copy expired is still recognised (tombstone)")
    func lateRepublicationAfterExpiry() throws {
        var holder = try Fixtures.service(1)
        var other = try Fixtures.service(2)
        for change in Fixtures.change(from: [], to: [1, 2], sequence: 4) {
            _ = holder.configurationChanged(change, now: .zero)
            _ = other.configurationChanged(change, now: .zero)
        }
        let bytes = Fixtures.submits(try holder.publish(on: Fixtures.mwi, type: .mwi, retention: .seconds(60)).effects)[0]
        // Node 2 receives it at t=0 and lets it expire at t=60 s; node 1 received it 1 ms later.
        _ = try other.delivered(payload: bytes, from: NodeID(1), now: Fixtures.at(0))
        _ = try holder.delivered(payload: bytes, from: NodeID(1), now: Fixtures.at(1))
        other.expireRetained(now: Fixtures.at(60_000))
        #expect(other.retainedEvents.isEmpty)
        // Node 1 still holds it and re-publishes it with 1 ms left when node 3 joins.
        let late = Fixtures.submits(Fixtures.apply(Fixtures.change(from: [1, 2], to: [1, 2, 3], sequence: 8), to: &holder,
                                                   now: Fixtures.at(60_000)))
        #expect(late.count == 1)
        #expect(try EventMessage(decoding: late[0]).retentionMilliseconds == 1)
        #expect(try other.delivered(payload: late[0], from: NodeID(1), now: Fixtures.at(60_001)).isEmpty)
        #expect(other.statistics.duplicatesDropped == 1)
    }

    @Test("expired events are not re-published")
    func expiredNotRepublished() throws {
        var (holder, _) = try Self.holder()
        #expect(Fixtures.submits(Fixtures.apply(Fixtures.change(from: [1, 2], to: [1, 2, 3], sequence: 8), to: &holder,
                                                now: Fixtures.at(60_000))).isEmpty)
    }
}

/// Three event services fed the same ordered stream, the way Totem feeds them.
struct EventRing {
    var nodes: [UInt32: EventChannelService] = [:]
    var members: [UInt32] = []
    var pending: [(sender: UInt32, bytes: [UInt8])] = []
    var sequence: UInt64 = 0
    var received: [UInt32: [DeliveredEvent]] = [:]
    var subscriptions: [UInt32: SubscriptionID] = [:]
    var now = MonotonicInstant.zero

    mutating func add(_ node: UInt32) throws {
        var service = try Fixtures.service(node)
        let (id, replay) = try service.subscribe(Subscription(channel: Fixtures.mwi), now: now)
        subscriptions[node] = id
        nodes[node] = service
        for event in Fixtures.replayAll(replay, of: service, now: now) { received[node, default: []].append(event) }
    }

    mutating func record(_ node: UInt32, _ effects: [EventServiceEffect]) {
        for effect in effects {
            switch effect {
            case .submit(let bytes): pending.append((node, bytes))
            case .deliver(let event, let ids) where ids.contains(subscriptions[node]!): received[node, default: []].append(event)
            default: break
            }
        }
    }

    mutating func publish(from node: UInt32, payload: [UInt8], retention: Duration?) throws {
        let effects = try nodes[node]!.publish(on: Fixtures.mwi, type: .mwi, payload: payload, retention: retention).effects
        record(node, effects)
    }

    /// Delivers every pending message to every member, in submission order.
    mutating func deliverAll() throws {
        while !pending.isEmpty {
            let (sender, bytes) = pending.removeFirst()
            for member in members {
                let effects = try nodes[member]!.delivered(payload: bytes, from: NodeID(sender), now: now)
                record(member, effects)
            }
        }
    }

    /// Installs a new membership: TRANSITIONAL then REGULAR at every node of `new`.
    mutating func configure(_ new: [UInt32]) throws {
        try deliverAll()
        sequence += 4
        for node in new {
            let old = members.contains(node) ? members : []
            for change in Fixtures.change(from: old, to: new, sequence: sequence) {
                record(node, nodes[node]!.configurationChanged(change, now: now))
            }
        }
        members = new.sorted()
        try deliverAll()
    }
}

@Suite("EventChannelService: three nodes on one ordered stream")
struct ThreeNodeEventTests {
    @Test("a late joiner receives every still-retained event exactly once; non-retained ones are not replayed")
    func lateJoiner() throws {
        var ring = EventRing()
        try ring.add(1)
        try ring.add(2)
        try ring.configure([1, 2])
        try ring.publish(from: 2, payload: [1], retention: .seconds(60))
        try ring.publish(from: 1, payload: [2], retention: nil)
        try ring.publish(from: 1, payload: [3], retention: .seconds(5))
        try ring.deliverAll()
        ring.now = .milliseconds(10_000)
        try ring.add(3)
        try ring.configure([1, 2, 3])
        #expect(ring.received[3]?.map(\.payload) == [[1]])
        #expect(ring.received[1]?.map(\.payload) == [[1], [2], [3]])
        #expect(ring.received[2]?.map(\.payload) == [[1], [2], [3]])
        // Everyone holds the same retained set afterwards.
        #expect(ring.nodes[3]!.retainedEvents.map(\.id) == ring.nodes[1]!.retainedEvents.map(\.id))
        #expect(ring.nodes[3]!.retainedEvents.map(\.id) == ring.nodes[2]!.retainedEvents.map(\.id))
        // Node 3 leaving and a fourth configuration change re-publish nothing new to 1 and 2.
        try ring.configure([1, 2])
        #expect(ring.received[1]?.count == 3)
    }

    @Test("after a merge both sides end up with the union of retained events, once each")
    func merge() throws {
        var ring = EventRing()
        for node: UInt32 in [1, 2, 3, 4] { try ring.add(node) }
        // Two partitions, {1,2} and {3,4}, each with its own retained event.
        var left = ring
        left.nodes = ring.nodes.filter { [1, 2].contains($0.key) }
        try left.configure([1, 2])
        try left.publish(from: 2, payload: [12], retention: .seconds(60))
        try left.deliverAll()
        var right = ring
        right.nodes = ring.nodes.filter { [3, 4].contains($0.key) }
        right.sequence = 100
        try right.configure([3, 4])
        try right.publish(from: 4, payload: [34], retention: .seconds(60))
        try right.deliverAll()
        // Merge: one ring of four; each node's transitional configuration is its old partition.
        var merged = EventRing()
        merged.nodes = left.nodes.merging(right.nodes) { a, _ in a }
        merged.subscriptions = ring.subscriptions
        merged.received = left.received.merging(right.received) { a, _ in a }
        merged.sequence = 200
        for node: UInt32 in [1, 2, 3, 4] {
            let old: [UInt32] = node <= 2 ? [1, 2] : [3, 4]
            for change in Fixtures.change(from: old, to: [1, 2, 3, 4], sequence: 204) {
                merged.record(node, merged.nodes[node]!.configurationChanged(change, now: .zero))
            }
        }
        merged.members = [1, 2, 3, 4]
        #expect(merged.pending.map(\.sender) == [1, 3])
        try merged.deliverAll()
        for node: UInt32 in [1, 2, 3, 4] {
            #expect(Set(merged.received[node]?.map(\.payload) ?? []) == [[12], [34]])
            #expect(merged.received[node]?.count == 2)
        }
    }
}
