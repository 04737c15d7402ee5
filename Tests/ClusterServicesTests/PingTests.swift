// The ring ping: its wire codec, and a ping's life on one and two nodes: complete when every
// member answered, at the timeout, when members leave, and when the daemon stops.

import Membership
import Testing
import Totem
@testable import ClusterServices

@Suite("ServiceHost ping")
struct PingTests {
    @Test func aPingMessageRoundTripsWithItsTagFirst() throws {
        let ping = RingPing(kind: .reply, id: PingID(rawValue: 0x0102_0304_0506_0708), origin: NodeID(0x0A0B_0C0D))
        let bytes = ping.encoded()
        #expect(bytes == [3, 2, 1, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B, 0x0C, 0x0D])
        #expect(try RingPing(decoding: bytes) == ping)
        #expect(ServiceID.ping.rawValue == 3, "the wire's ping tag")
    }

    @Test(arguments: [
        [UInt8](),
        [3, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],           // one byte short
        [3, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0],     // one byte long
        [3, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1],        // kind 0
        [3, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1],        // kind 9
        [2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1],        // another service's tag
    ])
    func rejectsMalformedPings(bytes: [UInt8]) {
        #expect(throws: RingPing.DecodingError.malformed) { try RingPing(decoding: bytes) }
    }

    @Test func rejectsAPingFromNodeZero() {
        #expect(throws: RingPing.DecodingError.invalidOrigin(0)) { try RingPing(decoding: [3, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]) }
    }

    @Test func aPingOutsideARingIsRefused() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        #expect(throws: ServiceHostError.notInRing) { try host.ping(isRunning: false, ringMembers: [NodeID(1)], now: .zero, into: &effects) }
        #expect(throws: ServiceHostError.notInRing) { try host.ping(isRunning: true, ringMembers: [], now: .zero, into: &effects) }
        #expect(effects.isEmpty && host.pendingPingCount == 0)
    }

    @Test func aPingOfOneNodeEndsWithItsOwnRequest() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        let id = try host.ping(isRunning: true, ringMembers: [NodeID(1)], now: Fixture.at(100), into: &effects)
        #expect(effects.deadline(of: .ping) == Fixture.at(100) + ServiceHost.pingTimeout)
        let request = try #require(effects.submits.first)
        #expect(try RingPing(decoding: request) == RingPing(kind: .request, id: id, origin: NodeID(1)))
        effects.removeAll()
        host.delivered(request, from: NodeID(1), now: Fixture.at(103), ringQueuedBytes: 0, into: &effects)
        let answer = try #require(effects.pingAnswers.first)
        #expect(answer.0 == id)
        #expect(try answer.1.get() == PingResult(timeout: .seconds(2), nodes: [.init(node: NodeID(1), roundTrip: .milliseconds(3))]))
        #expect(effects.submits.isEmpty, "no node answers its own request")
        #expect(effects.deadline(of: .ping) == nil, "nothing left to wait for")
    }

    @Test func aPingOfTwoNodesTimesEachReply() throws {
        var one = try Fixture.host(1)
        var two = try Fixture.host(2)
        var effects: [ServiceHost.Effect] = []
        let members = [NodeID(1), NodeID(2)]
        let id = try one.ping(isRunning: true, ringMembers: members, now: Fixture.at(0), into: &effects)
        let request = try #require(effects.submits.first)
        // Node 2 answers a request from its origin; node 1 hears its own request first.
        effects.removeAll()
        two.delivered(request, from: NodeID(1), now: Fixture.at(1), ringQueuedBytes: 0, into: &effects)
        let reply = try #require(effects.submits.first)
        #expect(try RingPing(decoding: reply) == RingPing(kind: .reply, id: id, origin: NodeID(1)))
        effects.removeAll()
        one.delivered(request, from: NodeID(1), now: Fixture.at(1), ringQueuedBytes: 0, into: &effects)
        #expect(effects.pingAnswers.isEmpty, "node 2 has not answered yet")
        // A request relayed by another node than its origin is not answered.
        effects.removeAll()
        two.delivered(request, from: NodeID(3), now: Fixture.at(1), ringQueuedBytes: 0, into: &effects)
        #expect(effects.submits.isEmpty)
        one.delivered(reply, from: NodeID(2), now: Fixture.at(5), ringQueuedBytes: 0, into: &effects)
        let result = try #require(effects.pingAnswers.first?.1).get()
        #expect(result.nodes == [.init(node: NodeID(1), roundTrip: .milliseconds(1)), .init(node: NodeID(2), roundTrip: .milliseconds(5))])
        // A late duplicate changes nothing.
        effects.removeAll()
        one.delivered(reply, from: NodeID(2), now: Fixture.at(6), ringQueuedBytes: 0, into: &effects)
        #expect(effects.isEmpty)
    }

    @Test func aPingTimesOutWithTheSilentMembersUnanswered() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        let id = try host.ping(isRunning: true, ringMembers: [NodeID(1), NodeID(2), NodeID(3)], now: Fixture.at(0), into: &effects)
        host.delivered(try #require(effects.submits.first), from: NodeID(1), now: Fixture.at(2), ringQueuedBytes: 0, into: &effects)
        effects.removeAll()
        // Early: nothing ends, the timer is armed again.
        host.timerFired(.ping, now: Fixture.at(1_999), ringQueuedBytes: 0, into: &effects)
        #expect(effects.pingAnswers.isEmpty)
        #expect(effects.deadline(of: .ping) == Fixture.at(2_000))
        host.timerFired(.ping, now: Fixture.at(2_000), ringQueuedBytes: 0, into: &effects)
        let answer = try #require(effects.pingAnswers.first)
        #expect(answer.0 == id)
        #expect(try answer.1.get().nodes.map(\.roundTrip) == [.milliseconds(2), nil, nil])
        #expect(host.pendingPingCount == 0)
    }

    @Test func aPingStopsWaitingForMembersThatLeft() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        host.configurationChanged(Fixture.regular([1, 2]), now: .zero, into: &effects)
        effects.removeAll()
        _ = try host.ping(isRunning: true, ringMembers: [NodeID(1), NodeID(2)], now: Fixture.at(0), into: &effects)
        host.delivered(try #require(effects.submits.first), from: NodeID(1), now: Fixture.at(1), ringQueuedBytes: 0, into: &effects)
        effects.removeAll()
        host.configurationChanged(Fixture.transitional([1], left: [2]), now: Fixture.at(50), into: &effects)
        #expect(effects.pingAnswers.isEmpty, "only a regular configuration ends it")
        host.configurationChanged(Fixture.regular([1], joined: [], sequence: 8), now: Fixture.at(60), into: &effects)
        let result = try #require(effects.pingAnswers.first?.1).get()
        #expect(result.nodes == [.init(node: NodeID(1), roundTrip: .milliseconds(1))])
    }

    @Test func stoppingAnswersPendingPings() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        let id = try host.ping(isRunning: true, ringMembers: [NodeID(1)], now: .zero, into: &effects)
        effects.removeAll()
        host.stop(into: &effects)
        #expect(effects.pingAnswers.first?.0 == id)
        #expect(throws: ServiceHostError.stopping) { try effects.pingAnswers.first?.1.get() }
        #expect(ServiceHostError.stopping.description == "the daemon is stopping")
    }

    @Test func aMalformedPingIsLoggedWithItsSendersName() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        host.delivered([3, 1, 2], from: NodeID(2), now: .zero, ringQueuedBytes: 0, into: &effects)
        #expect(effects.logLines.map(\.1) == ["ignored a malformed ping from server2"])
        effects.removeAll()
        host.delivered([3, 1, 2], from: NodeID(9), now: .zero, ringQueuedBytes: 0, into: &effects)
        #expect(effects.logLines.map(\.1) == ["ignored a malformed ping from node9"])
    }
}
