// The property checker on synthetic histories: a clean history passes, and each history with one
// planted violation is reported as exactly that property (spec §1.7).

import Testing
import Totem
@testable import TotemSimulation

/// Builds a trace by hand, in time order (one millisecond per event).
struct HistoryBuilder {
    private(set) var events: [TraceEvent] = []
    private var clock: Int64 = 0

    private mutating func add(_ kind: TraceEvent.Kind) {
        clock += 1
        events.append(TraceEvent(time: .milliseconds(clock), kind: kind))
    }

    static func id(_ text: String) -> MessageID {
        let parts = text.split(separator: ".").map { UInt32($0)! }
        return MessageID(node: NodeID(parts[0]), incarnation: parts[1], index: parts[2])
    }

    static func ring(_ representative: UInt32, _ sequence: UInt64) -> RingID {
        RingID(representative: NodeID(representative), sequence: sequence)
    }

    static func payload(_ id: MessageID) -> [UInt8] {
        MessageEnvelope.makeGenerated(id, bodyBytes: Int(id.index) * 7)
    }

    mutating func start(_ node: UInt32, incarnation: UInt32 = 1) {
        add(.start(node: NodeID(node), incarnation: incarnation))
    }

    mutating func crash(_ node: UInt32) { add(.crash(node: NodeID(node))) }
    mutating func heal() { add(.heal) }
    mutating func end() { add(.end) }

    mutating func send(_ text: String, delivery: DeliveryMode = .agreed) {
        let payload = Self.payload(Self.id(text))
        add(.send(id: Self.id(text), size: payload.count, digest: MessageEnvelope.digest(payload), delivery: delivery))
    }

    mutating func deliver(_ node: UInt32, _ text: String, ring: RingID, delivery: DeliveryMode = .agreed, corrupt: Bool = false) {
        let id = Self.id(text)
        var payload = Self.payload(id)
        if corrupt { payload[payload.count - 1] ^= 0xFF }
        add(.deliver(node: NodeID(node), DeliveryRecord(
            id: id, sender: id.node, ringID: ring, delivery: delivery,
            size: payload.count, digest: MessageEnvelope.digest(payload))))
    }

    /// A transitional configuration of `node` for the new ring `ring`.
    mutating func transitional(_ node: UInt32, _ ring: RingID, _ members: [UInt32], left: [UInt32]) {
        add(.configuration(node: NodeID(node), ConfigurationChange(
            kind: .transitional, ringID: ring, members: members.map { NodeID($0) },
            left: left.map { NodeID($0) }, joined: [])))
    }

    mutating func regular(_ node: UInt32, _ ring: RingID, _ members: [UInt32], joined: [UInt32]) {
        add(.configuration(node: NodeID(node), ConfigurationChange(
            kind: .regular, ringID: ring, members: members.map { NodeID($0) },
            left: [], joined: joined.map { NodeID($0) })))
    }

    var properties: Set<Violation.Property> { Set(PropertyChecker(events: events).verify().map(\.property)) }

    func properties(includingLiveness: Bool) -> Set<Violation.Property> {
        Set(PropertyChecker(events: events).verify(includingLiveness: includingLiveness).map(\.property))
    }
}

/// Variations of one clean scenario: nodes 1, 2, 3 form ring 1.4 and deliver 1.1.1, 2.1.1,
/// 1.1.2; node 3 crashes; 1 and 2 move to ring 1.8 (delivering 3.1.1 in the transitional
/// configuration); after the heal node 3 restarts and all three form ring 1.12, where 1.1.3 is
/// delivered. Each flag plants one violation.
struct Scenario {
    var swapFirstTwoAtNode2 = false             // E9
    var node2DeliversTwice = false              // E2
    var everyoneDeliversInvented = false        // E1
    var node1MovesAloneWithEmptyTransitional = false // E3
    var node1RegularWithoutTransitional = false // E4
    var node1RingSequenceGoesBack = false       // E4
    var node2RegularDisagrees = false           // E5
    var node1LeftListWrong = false              // E6
    var lastMessageClaimsEarlierRing = false    // E7
    var node2DeliversLateInTransitional = false // E8
    var everyoneReversesSender1 = false         // E10
    var nobodyDeliversLastMessage = false       // E12
    var node3StaysAlone = false                 // E15

    func build() -> HistoryBuilder {
        let ring4 = HistoryBuilder.ring(1, 4)
        let ring8 = HistoryBuilder.ring(1, 8)
        let ring12 = HistoryBuilder.ring(1, 12)
        var history = HistoryBuilder()
        for node: UInt32 in 1...3 { history.start(node) }
        for node: UInt32 in 1...3 {
            history.transitional(node, ring4, [], left: [])
            history.regular(node, ring4, [1, 2, 3], joined: [1, 2, 3])
        }
        history.send("1.1.1")
        history.send("2.1.1")
        history.send("1.1.2")
        history.send("3.1.1")
        for node: UInt32 in 1...3 {
            var order = ["1.1.1", "2.1.1", "1.1.2"]
            if node == 2 && swapFirstTwoAtNode2 { order.swapAt(0, 1) }
            if node == 2 && node2DeliversLateInTransitional { order.removeLast() }
            if everyoneReversesSender1 { order = ["1.1.2", "2.1.1", "1.1.1"] }
            for message in order { history.deliver(node, message, ring: ring4) }
            if node == 2 && node2DeliversTwice { history.deliver(node, "1.1.1", ring: ring4) }
            if everyoneDeliversInvented { history.deliver(node, "4.1.1", ring: ring4) }
        }
        // Node 3 crashes; 1 and 2 move together from 1.4 to 1.8.
        history.crash(3)
        for node: UInt32 in 1...2 {
            if !(node == 1 && node1RegularWithoutTransitional) {
                history.transitional(node, ring8, [1, 2], left: node == 1 && node1LeftListWrong ? [] : [3])
            }
            if node == 2 && node2DeliversLateInTransitional { history.deliver(node, "1.1.2", ring: ring4) }
            history.deliver(node, "3.1.1", ring: ring4)
            if node == 2 && node2RegularDisagrees {
                history.regular(node, ring8, [1, 2, 3], joined: [3])
            } else {
                history.regular(node, ring8, [1, 2], joined: [])
            }
        }
        if node1RingSequenceGoesBack {
            history.transitional(1, HistoryBuilder.ring(1, 6), [1], left: [2])
            history.regular(1, HistoryBuilder.ring(1, 6), [1], joined: [])
        }
        // Heal: node 3 restarts and all three form 1.12.
        history.heal()
        history.start(3, incarnation: 2)
        if node3StaysAlone {
            history.transitional(3, HistoryBuilder.ring(3, 9), [], left: [])
            history.regular(3, HistoryBuilder.ring(3, 9), [3], joined: [3])
        } else {
            history.transitional(3, ring12, [], left: [])
        }
        for node: UInt32 in 1...2 {
            var previous: [UInt32] = [1, 2]
            if node == 2 && node2RegularDisagrees { previous = [1, 2, 3] }
            if node == 1 && node1RingSequenceGoesBack { previous = [1] }
            // Only nodes that came from the same ring (1.8) move together.
            var together = previous.filter { $0 != 3 }
            if node1RingSequenceGoesBack && node == 2 { together = [2] }
            history.transitional(node, ring12, together, left: previous.filter { !together.contains($0) })
            history.regular(node, ring12, [1, 2, 3], joined: [1, 2, 3].filter { !together.contains($0) })
        }
        if !node3StaysAlone { history.regular(3, ring12, [1, 2, 3], joined: [1, 2, 3]) }
        history.send("1.1.3")
        for node: UInt32 in 1...3 where !(node == 3 && node3StaysAlone) && !nobodyDeliversLastMessage {
            history.deliver(node, "1.1.3", ring: lastMessageClaimsEarlierRing ? ring8 : ring12)
        }
        if node1MovesAloneWithEmptyTransitional {
            let ring16 = HistoryBuilder.ring(1, 16)
            history.transitional(1, ring16, [], left: [1, 2, 3])
            history.regular(1, ring16, [1], joined: [1])
        }
        history.end()
        return history
    }
}

@Suite("PropertyChecker")
struct PropertyCheckerTests {
    @Test("a clean history has no violations")
    func cleanHistory() {
        let violations = PropertyChecker(events: Scenario().build().events).verify()
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test("E1: a delivered message that was never sent")
    func inventedMessage() {
        #expect(Scenario(everyoneDeliversInvented: true).build().properties(includingLiveness: false) == [.integrity])
    }

    @Test("E1: a delivered message whose content differs from what was sent")
    func corruptedMessage() {
        let history = Scenario().build()
        // Replace node 2's delivery of 2.1.1 by a corrupted copy.
        let position = history.events.firstIndex { event in
            if case .deliver(let node, let record) = event.kind { return node == NodeID(2) && record.id == HistoryBuilder.id("2.1.1") }
            return false
        }!
        guard case .deliver(let node, var record) = history.events[position].kind else { return }
        record.digest ^= 1
        var events = history.events
        events[position].kind = .deliver(node: node, record)
        #expect(Set(PropertyChecker(events: events).verify().map(\.property)) == [.integrity])
    }

    @Test("E2: a message delivered twice")
    func duplicateDelivery() {
        #expect(Scenario(node2DeliversTwice: true).build().properties(includingLiveness: false) == [.atMostOnce])
    }

    @Test("E3: a node installs a transitional configuration without itself")
    func selfInclusion() {
        // Node 1 moves alone from 1.12 to 1.16 with an empty transitional configuration (which
        // is only right before an incarnation's first ring); `left` lists all, so E6 holds.
        let properties = Scenario(node1MovesAloneWithEmptyTransitional: true).build().properties(includingLiveness: false)
        #expect(properties == [.selfInclusion])
    }

    @Test("E3: a node installs a regular configuration without itself")
    func selfInclusionRegular() {
        let ring = HistoryBuilder.ring(2, 4)
        var history = HistoryBuilder()
        history.start(1)
        history.transitional(1, ring, [], left: [])
        history.regular(1, ring, [2], joined: [2])
        #expect(history.properties(includingLiveness: false) == [.selfInclusion])
    }

    @Test("E4: a regular configuration without a transitional one before it")
    func alternation() {
        #expect(Scenario(node1RegularWithoutTransitional: true).build().properties(includingLiveness: false) == [.alternation])
    }

    @Test("E4: a node's regular ring sequence goes back")
    func ringSequenceMonotonic() {
        #expect(Scenario(node1RingSequenceGoesBack: true).build().properties(includingLiveness: false) == [.alternation])
    }

    @Test("E5: two nodes install the same ring id with different members")
    func configurationAgreement() {
        #expect(Scenario(node2RegularDisagrees: true).build().properties(includingLiveness: false) == [.configurationAgreement])
    }

    @Test("E5: transitional members of nodes moving together disagree")
    func transitionalAgreement() {
        let ring4 = HistoryBuilder.ring(1, 4)
        let ring8 = HistoryBuilder.ring(1, 8)
        var history = HistoryBuilder()
        for node: UInt32 in 1...3 {
            history.start(node)
            history.transitional(node, ring4, [], left: [])
            history.regular(node, ring4, [1, 2, 3], joined: [1, 2, 3])
        }
        // Nodes 1, 2 and 3 all move from 1.4 to 1.8, but node 3 is told only {2, 3} came along.
        history.transitional(1, ring8, [1, 2, 3], left: [])
        history.regular(1, ring8, [1, 2, 3], joined: [])
        history.transitional(2, ring8, [1, 2, 3], left: [])
        history.regular(2, ring8, [1, 2, 3], joined: [])
        history.transitional(3, ring8, [2, 3], left: [1])
        history.regular(3, ring8, [1, 2, 3], joined: [1])
        #expect(history.properties(includingLiveness: false) == [.configurationAgreement])
    }

    @Test("E6: the left list of a transitional configuration is wrong")
    func subsetRules() {
        #expect(Scenario(node1LeftListWrong: true).build().properties(includingLiveness: false) == [.subset])
    }

    @Test("E7: a message delivered in a later ring than the one it was originated in")
    func originatingConfiguration() {
        #expect(Scenario(lastMessageClaimsEarlierRing: true).build().properties(includingLiveness: false) == [.originatingConfiguration])
    }

    @Test("E7: a message said to be originated in a ring its sender never installed")
    func originatorNeverInstalledRing() {
        let ring4 = HistoryBuilder.ring(1, 4)
        var history = HistoryBuilder()
        history.start(1)
        history.start(2)
        history.transitional(1, ring4, [], left: [])
        history.regular(1, ring4, [1], joined: [1])
        history.transitional(2, HistoryBuilder.ring(2, 4), [], left: [])
        history.regular(2, HistoryBuilder.ring(2, 4), [2], joined: [2])
        history.send("2.1.1")
        history.deliver(1, "2.1.1", ring: ring4)
        #expect(history.properties(includingLiveness: false) == [.originatingConfiguration])
    }

    @Test("E8: nodes moving together delivered different sets in the old ring")
    func virtualSynchrony() {
        #expect(Scenario(node2DeliversLateInTransitional: true).build().properties(includingLiveness: false) == [.virtualSynchrony])
    }

    @Test("E9: two nodes deliver two messages in opposite orders")
    func totalOrder() {
        #expect(Scenario(swapFirstTwoAtNode2: true).build().properties(includingLiveness: false) == [.totalOrder])
    }

    @Test("E10: a sender's messages delivered out of submission order")
    func senderOrder() {
        #expect(Scenario(everyoneReversesSender1: true).build().properties(includingLiveness: false) == [.senderOrder])
    }

    @Test("E10: a hole in one sender's messages of one ring")
    func senderHole() {
        let ring4 = HistoryBuilder.ring(1, 4)
        var history = HistoryBuilder()
        history.start(1)
        history.transitional(1, ring4, [], left: [])
        history.regular(1, ring4, [1], joined: [1])
        for message in ["1.1.1", "1.1.2", "1.1.3"] { history.send(message) }
        history.deliver(1, "1.1.1", ring: ring4)
        history.deliver(1, "1.1.3", ring: ring4)
        #expect(history.properties(includingLiveness: false) == [.senderOrder])
    }

    @Test("E12: a live node never delivers one of its own messages")
    func selfDelivery() {
        #expect(Scenario(nobodyDeliversLastMessage: true).build().properties == [.selfDelivery])
    }

    @Test("E12 is not required without a heal")
    func selfDeliveryNeedsHeal() {
        let events = Scenario(nobodyDeliversLastMessage: true).build().events.filter { $0.kind != .heal }
        #expect(Set(PropertyChecker(events: events).verify().map(\.property)) == [])
    }

    @Test("E14: a safe message delivered in a ring that another member left without it")
    func safeDelivery() {
        let ring4 = HistoryBuilder.ring(1, 4)
        var history = HistoryBuilder()
        for node: UInt32 in 1...2 {
            history.start(node)
            history.transitional(node, ring4, [], left: [])
            history.regular(node, ring4, [1, 2], joined: [1, 2])
        }
        history.send("1.1.1", delivery: .safe)
        history.deliver(1, "1.1.1", ring: ring4, delivery: .safe)
        history.transitional(1, HistoryBuilder.ring(1, 8), [1], left: [2])
        history.regular(1, HistoryBuilder.ring(1, 8), [1], joined: [])
        history.transitional(2, HistoryBuilder.ring(2, 8), [2], left: [1])
        history.regular(2, HistoryBuilder.ring(2, 8), [2], joined: [])
        #expect(history.properties(includingLiveness: false) == [.safeDelivery])
    }

    @Test("E15: after the heal one node stays in a ring of its own")
    func liveness() {
        #expect(Scenario(node3StaysAlone: true).build().properties == [.liveness])
    }

    @Test("E15: members of the final ring delivered different messages in it")
    func finalRingDeliveries() {
        var events = Scenario().build().events
        // Drop node 3's delivery of 1.1.3.
        events.removeAll { event in
            if case .deliver(let node, let record) = event.kind { return node == NodeID(3) && record.id == HistoryBuilder.id("1.1.3") }
            return false
        }
        #expect(Set(PropertyChecker(events: events).verify().map(\.property)) == [.liveness])
    }

    @Test("violations name the node, the ring and the message")
    func readableText() {
        let violations = PropertyChecker(events: Scenario(lastMessageClaimsEarlierRing: true).build().events)
            .verify(includingLiveness: false)
        #expect(violations.count == 3)
        let text = violations.first?.description ?? ""
        #expect(text.hasPrefix("E7 originating configuration at "))
        #expect(text.hasSuffix(": node 1 (incarnation 1) delivered 1.1.3 in regular 1.12, but it was originated in 1.8"))
    }
}
