// The checker against traces of the real core: a clean run passes, and small corruptions of it
// (a swapped pair, a duplicate, a lost delivery, a wrong ring, altered content) are caught.

import Testing
import Totem
@testable import TotemSimulation

@Suite("PropertyChecker on real traces")
struct RealTraceMutationTests {
    static let events: [TraceEvent] = {
        var options = SimulationOptions(seed: 21, nodes: 3)
        options.durationMilliseconds = 1_000
        options.rate = 40
        return RandomizedRun(options: options).run().trace.events
    }()

    /// Positions of the deliveries of `node`.
    static func deliveries(of node: UInt32) -> [Int] {
        events.indices.filter { index in
            if case .deliver(let at, _) = events[index].kind { return at == NodeID(node) }
            return false
        }
    }

    static func record(at index: Int) -> DeliveryRecord {
        guard case .deliver(_, let record) = events[index].kind else { preconditionFailure("not a delivery") }
        return record
    }

    static func properties(_ events: [TraceEvent]) -> Set<Violation.Property> {
        Set(PropertyChecker(events: events).verify().map(\.property))
    }

    @Test("the unaltered trace is clean")
    func clean() {
        #expect(Self.deliveries(of: 2).count > 50)
        #expect(Self.properties(Self.events) == [])
    }

    @Test("two deliveries swapped at one node break the total order")
    func swapped() {
        var events = Self.events
        let positions = Self.deliveries(of: 2)
        // Two consecutive deliveries of different senders in the same ring.
        let pair = zip(positions, positions.dropFirst()).first { first, second in
            let a = Self.record(at: first)
            let b = Self.record(at: second)
            return a.sender != b.sender && a.ringID == b.ringID && second == first + 1
        }
        guard let (first, second) = pair else {
            Issue.record("no suitable pair")
            return
        }
        let kind = events[first].kind
        events[first].kind = events[second].kind
        events[second].kind = kind
        #expect(Self.properties(events).contains(.totalOrder))
    }

    @Test("a repeated delivery breaks at-most-once")
    func duplicated() {
        var events = Self.events
        let position = Self.deliveries(of: 1)[10]
        events.insert(TraceEvent(time: events[position].time, kind: events[position].kind), at: position + 1)
        #expect(Self.properties(events).contains(.atMostOnce))
    }

    @Test("a lost delivery in the final ring breaks liveness")
    func lost() {
        var events = Self.events
        events.remove(at: Self.deliveries(of: 3).last!)
        #expect(Self.properties(events).contains(.liveness))
    }

    @Test("a delivery reported from the wrong ring breaks E7 and E1")
    func wrongRing() {
        var events = Self.events
        let position = Self.deliveries(of: 2).last!
        var record = Self.record(at: position)
        record.ringID.sequence += 1_000
        events[position].kind = .deliver(node: NodeID(2), record)
        let found = Self.properties(events)
        #expect(found.contains(.originatingConfiguration) && found.contains(.integrity))
    }

    @Test("altered content breaks integrity")
    func altered() {
        var events = Self.events
        let position = Self.deliveries(of: 1)[5]
        var record = Self.record(at: position)
        record.size += 1
        events[position].kind = .deliver(node: NodeID(1), record)
        #expect(Self.properties(events) == [.integrity])
    }
}
