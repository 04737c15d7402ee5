// The simulator's building blocks without the core: random streams, the agenda, the network,
// payload envelopes, trace rendering and the command line.

import Testing
import Totem
@testable import TotemSimulation

@Suite("Simulation support")
struct SimulationSupportTests {
    @Test("a seeded generator repeats itself, and streams differ")
    func generatorDeterminism() {
        var first = SeededGenerator(seed: 42)
        var second = SeededGenerator(seed: 42)
        var other = SeededGenerator(seed: 42, stream: 1)
        let a = (0..<100).map { _ in first.next() }
        let b = (0..<100).map { _ in second.next() }
        let c = (0..<100).map { _ in other.next() }
        #expect(a == b)
        #expect(a != c)
        #expect(Set(a).count == 100)
    }

    @Test("bounded draws stay in range and cover it")
    func generatorRanges() {
        var random = SeededGenerator(seed: 3)
        var seen = Set<Int>()
        for _ in 0..<10_000 {
            let value = random.index(below: 7)
            #expect((0..<7).contains(value))
            seen.insert(value)
            let integer = random.integer(in: -5...5)
            #expect((-5...5).contains(integer))
            let unit = random.nextUnit()
            #expect(unit >= 0 && unit < 1)
        }
        #expect(seen.count == 7)
        var hits = 0
        for _ in 0..<10_000 where random.chance(0.25) { hits += 1 }
        #expect((2_200...2_800).contains(hits))
        let never = random.chance(0)
        let always = random.chance(1)
        #expect(!never && always)
    }

    @Test("the agenda orders events by time, then by insertion")
    func eventQueueOrder() {
        var queue = EventQueue()
        let times: [Int64] = [50, 10, 30, 10, 20, 50, 0]
        for (position, time) in times.enumerated() {
            queue.schedule(.resume(index: position, pause: 0), at: time)
        }
        var order: [Int] = []
        while let (_, event) = queue.removeFirst() {
            if case .resume(let index, _) = event { order.append(index) }
        }
        #expect(order == [6, 1, 3, 4, 2, 0, 5])
    }

    @Test("links are FIFO without reordering, the local loop never loses, cuts are one-way")
    func networkBehaviour() {
        var network = SimulatedNetwork(
            nodeCount: 3, conditions: NetworkConditions(loss: 0.5),
            random: SeededGenerator(seed: 1))
        var arrivals: (Int64?, Int64?) = (nil, nil)
        var last: Int64 = 0
        var delivered = 0
        for send in 0..<1_000 {
            network.route(from: 0, to: 1, now: Int64(send) * 1_000, extraDelay: 0, arrivals: &arrivals)
            if let time = arrivals.0 {
                #expect(time >= last)
                last = time
                delivered += 1
            }
            network.route(from: 2, to: 2, now: Int64(send) * 1_000, extraDelay: 0, arrivals: &arrivals)
            #expect(arrivals.0 != nil)
        }
        #expect((400...600).contains(delivered))
        network.conditions = .perfect
        network.setReachable(false, from: 0, to: 1)
        network.route(from: 0, to: 1, now: 0, extraDelay: 0, arrivals: &arrivals)
        #expect(arrivals.0 == nil)
        network.route(from: 1, to: 0, now: 0, extraDelay: 0, arrivals: &arrivals)
        #expect(arrivals.0 != nil)
        network.partition(groupOf: [0, 0, nil])
        #expect(network.isReachable(from: 0, to: 1) && network.isReachable(from: 1, to: 0))
        #expect(!network.isReachable(from: 0, to: 2) && !network.isReachable(from: 2, to: 1))
        network.healPartitions()
        #expect(network.isFullyConnected)
    }

    @Test("an envelope carries the message id and survives a round trip")
    func envelope() {
        let id = MessageID(node: NodeID(3), incarnation: 2, index: 77)
        let payload = MessageEnvelope.makeGenerated(id, bodyBytes: 1_000)
        #expect(payload.count == 1_012)
        #expect(MessageEnvelope.id(of: payload) == id)
        #expect(MessageEnvelope.makeGenerated(id, bodyBytes: 1_000) == payload)
        #expect(MessageEnvelope.makeGenerated(MessageID(node: NodeID(3), incarnation: 2, index: 78), bodyBytes: 1_000) != payload)
        let scripted = MessageEnvelope.make(id, body: [1, 2, 3])
        #expect(Array(MessageEnvelope.body(of: scripted)) == [1, 2, 3])
        #expect(MessageEnvelope.id(of: [0, 0, 0]) == nil)
        #expect(MessageEnvelope.id(of: Array(repeating: 0, count: 12)) == nil)
    }

    @Test("trace lines have the documented shape")
    func traceRendering() {
        let ring = RingID(representative: NodeID(1), sequence: 8)
        let id = MessageID(node: NodeID(2), incarnation: 1, index: 5)
        let trace = Trace(events: [
            TraceEvent(time: .zero, kind: .start(node: NodeID(1), incarnation: 1)),
            TraceEvent(time: .milliseconds(3), kind: .send(id: id, size: 40, digest: 0, delivery: .agreed)),
            TraceEvent(time: .milliseconds(4), kind: .configuration(node: NodeID(1), ConfigurationChange(
                kind: .transitional, ringID: ring, members: [NodeID(1)], left: [NodeID(3)], joined: []))),
            TraceEvent(time: .milliseconds(4), kind: .configuration(node: NodeID(1), ConfigurationChange(
                kind: .regular, ringID: ring, members: [NodeID(1), NodeID(2)], left: [], joined: [NodeID(2)]))),
            TraceEvent(time: .milliseconds(5), kind: .deliver(node: NodeID(1), DeliveryRecord(
                id: id, sender: NodeID(2), ringID: ring, delivery: .agreed, size: 40, digest: 0))),
            TraceEvent(time: .milliseconds(6), kind: .crash(node: NodeID(2))),
            TraceEvent(time: .milliseconds(7), kind: .heal),
            TraceEvent(time: .milliseconds(8), kind: .end),
        ])
        #expect(trace.renderJSONLines() == """
            {"t":0,"node":1,"ev":"start","inc":1}
            {"t":3,"node":2,"ev":"send","id":"2.1.5","size":40}
            {"t":4,"node":1,"ev":"config","kind":"transitional","ring":"1.8","members":[1],"left":[3]}
            {"t":4,"node":1,"ev":"config","kind":"regular","ring":"1.8","members":[1,2],"joined":[2]}
            {"t":5,"node":1,"ev":"deliver","id":"2.1.5","ring":"1.8"}
            {"t":6,"node":2,"ev":"crash"}
            {"t":7,"ev":"heal"}
            {"t":8,"ev":"end"}

            """)
        #expect(trace.sendCount == 1 && trace.deliveryCount == 1 && trace.configurationCount == 2)
    }

    @Test("the command line parses every option")
    func parseOptions() throws {
        let command = try SimulationOptions.parse([
            "--seed", "18446744073709551615", "--nodes", "7", "--duration-ms=5000", "--loss", "0.3",
            "--duplicate", "0.1", "--reorder", "0.2", "--partitions", "--crashes", "--rate", "12.5",
            "--max-size", "200000", "--safe", "0.5", "--trace", "/tmp/x.jsonl",
        ])
        var expected = SimulationOptions(seed: .max, nodes: 7)
        expected.durationMilliseconds = 5_000
        expected.loss = 0.3
        expected.duplicate = 0.1
        expected.reorder = 0.2
        expected.partitions = true
        expected.crashes = true
        expected.rate = 12.5
        expected.maxSize = 200_000
        expected.safe = 0.5
        expected.tracePath = "/tmp/x.jsonl"
        #expect(command == .run(expected))
        #expect(try SimulationOptions.parse(["--help"]) == .help)
        #expect(try SimulationOptions.parse(["--seed", "1", "-h"]) == .help)
    }

    @Test("the replay command parses back to the same options")
    func replayRoundTrip() throws {
        var options = SimulationOptions(seed: 99, nodes: 5)
        options.loss = 0.1
        options.crashes = true
        options.rate = 20
        let words = options.replayCommand.split(separator: " ").map(String.init)
        #expect(Array(words.prefix(4)) == ["swift", "run", "-c", "release"])
        #expect(try SimulationOptions.parse(Array(words.dropFirst(5))) == .run(options))
    }

    @Test("bad arguments are rejected with a clear message", arguments: [
        ([] as [String], "--seed is required"),
        (["--seed", "1"], "--nodes is required"),
        (["--seed", "x", "--nodes", "3"], "--seed must be an unsigned 64-bit integer, not 'x'"),
        (["--seed", "1", "--nodes", "0"], "--nodes must be an integer in 1...32, not '0'"),
        (["--seed", "1", "--nodes", "3", "--loss", "1.5"], "--loss must be a probability in 0...1, not '1.5'"),
        (["--seed", "1", "--nodes", "3", "--rate", "-1"], "--rate must be a number"),
        (["--seed", "1", "--nodes", "3", "--max-size", "2000000"], "--max-size must be an integer in 0...1048576"),
        (["--seed", "1", "--nodes", "3", "--loss"], "--loss needs a value"),
        (["--seed", "1", "--nodes", "3", "--partitions=yes"], "--partitions takes no value"),
        (["--seed", "1", "--nodes", "3", "--frobnicate"], "unknown argument '--frobnicate'"),
    ])
    func badArguments(arguments: [String], message: String) {
        #expect {
            _ = try SimulationOptions.parse(arguments)
        } throws: { error in
            (error as? SimulationOptions.ArgumentError)?.message.hasPrefix(message) == true
        }
    }
}
