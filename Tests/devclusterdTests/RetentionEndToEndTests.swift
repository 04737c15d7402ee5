// Retained events on real daemons over the control socket (issue 14, finding 4): a replay far
// larger than the 4 MiB output limit reaches slow readers whole and in order, without the
// daemon's memory growing by the replay per subscriber; the largest payload crosses the ring
// byte-identical and one byte more is refused; retention over [options] max_retained_bytes keeps
// the newest events, and the daemon's resident memory stays near the cap.

import Foundation
import Glibc
import Synchronization
import Testing
@testable import devclusterd
import EventService

private let retentionChannels = """
    [alerts]
    type = event_channel
    publish_event = alarm, note
    subscribe_event = alarm, note

    """

/// The daemon's resident memory (`VmRSS` of /proc/PID/status) in KiB.
private func residentKiB(_ pid: Int32) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Int($0) }
    }
    return nil
}

/// A payload of `bytes` text bytes starting with the zero-padded `index` and a colon.
private func indexedPayload(_ index: Int, bytes: Int) -> String {
    let number = String(index)
    let head = String(repeating: "0", count: max(0, 6 - number.count)) + number + ":"
    return head + String(repeating: "x", count: bytes - head.count)
}

/// The index at the front of a payload made by `indexedPayload`.
private func payloadIndex(_ event: JSONValue) -> Int? {
    event["data"]?["payload"]?.stringValue.flatMap { text in text.split(separator: ":").first.flatMap { Int($0) } }
}

/// Publishes `count` retained events of `bytes` from `first` on, pipelined 16 at a time; returns
/// the errors answered (empty when every one was accepted).
private func publishRetained(_ client: ControlClient, from first: Int, count: Int, bytes: Int) throws -> [String] {
    var errors: [String] = []
    var index = first
    while index < first + count {
        let batch = min(16, first + count - index)
        for offset in 0..<batch {
            let arguments: JSONObject = ["channel": "alerts", "type": "note", "payload": .string(indexedPayload(index + offset, bytes: bytes)),
                                         "retention_ms": 600_000]
            try client.send(ControlRequest(id: .integer(Int64(index + offset)), command: "event_publish", arguments: arguments).json)
        }
        for _ in 0..<batch {
            let response = try ControlResponse.decode(line: client.readLine())
            if case .failure(let error) = response.outcome { errors.append(error.message) }
        }
        index += batch
    }
    return errors
}

/// The `retained_events` member of the daemon's `status`.
private func retainedStatus(_ node: TestNode) -> JSONValue? {
    guard let client = try? ControlClient(path: node.socket, timeout: .seconds(5)),
          case .success(let status)? = try? client.call("status") else { return nil }
    return status["retained_events"]
}

/// A subscriber that reads its socket slowly, on a thread of its own: it waits `stall` before
/// its first read, then takes at most `chunkBytes` per read (the client's receive buffer) with
/// `pause` between reads.
/// Unchecked: after `init`, only the subscriber's thread uses the client.
private final class SlowSubscriber: @unchecked Sendable {
    struct Outcome: Sendable {
        var response: JSONValue?
        var indexes: [Int] = []
        var allMarkedReplayed = true
        var answeredAfterwards = false
        var problem: String?
    }

    private let client: ControlClient
    private let outcome = Mutex(Outcome())
    private let finished = Mutex(false)

    /// Connects; `chunkBytes` is the most one read takes.
    init(path: String, chunkBytes: Int) throws {
        client = try ControlClient(path: path, timeout: .seconds(10), receiveBufferBytes: chunkBytes)
    }

    var isFinished: Bool { finished.withLock { $0 } }
    var result: Outcome { outcome.withLock { $0 } }

    /// Subscribes, reads the answer and `expected` replayed events, then asks `status` and reads
    /// its answer (the connection must still be open). Gives up after `deadline`.
    func start(expected: Int, stall: Duration, pause: Duration, within deadline: Duration) {
        let thread = Thread { [self] in
            let problem = run(expected: expected, stall: stall, pause: pause, deadline: deadline)
            outcome.withLock { $0.problem = problem }
            finished.withLock { $0 = true }
        }
        thread.start()
    }

    private func run(expected: Int, stall: Duration, pause: Duration, deadline: Duration) -> String? {
        let clock = ContinuousClock()
        let end = clock.now + deadline
        do {
            try client.send(ControlRequest(id: 1, ControlCommands.EventSubscribe(channel: "alerts")).json)
        } catch {
            return "cannot subscribe: \(error)"
        }
        Thread.sleep(forTimeInterval: Double(stall.components.seconds) + Double(stall.components.attoseconds) / 1e18)
        var askedStatus = false
        let pauseMicroseconds = UInt32(pause.components.attoseconds / 1_000_000_000_000) + UInt32(pause.components.seconds) * 1_000_000
        for _ in 0..<10_000_000 {
            guard clock.now < end else { return "gave up: \(result.indexes.count) of \(expected) events by the deadline" }
            var lines: [[UInt8]] = []
            let open: Bool
            do {
                open = try client.receiveLines(timeoutMilliseconds: 200) { lines.append(Array($0)) }
            } catch {
                return "\(error)"
            }
            for line in lines {
                guard let message = try? client.decode(line) else { return "a line that is not a response or an event" }
                switch message {
                case .response(id: 1, let answer):
                    let value = try? JSONParser.parse(line)
                    outcome.withLock { $0.response = value }
                    if case .failure(let error) = answer { return "event_subscribe failed: \(error)" }
                case .event(let event) where event.name == "channel_event":
                    let index = payloadIndex(event.json) ?? -1
                    let replayed = event.data["replayed"] == true
                    outcome.withLock {
                        $0.indexes.append(index)
                        $0.allMarkedReplayed = $0.allMarkedReplayed && replayed
                    }
                case .response(id: 2, let answer):
                    outcome.withLock { $0.answeredAfterwards = (try? answer.get()) != nil }
                    return nil
                default:
                    return "unexpected line \(String(decoding: line.prefix(200), as: UTF8.self))"
                }
            }
            if !open { return "the daemon closed the connection after \(result.indexes.count) events" }
            if !askedStatus && result.indexes.count >= expected {
                askedStatus = true
                do {
                    try client.send(ControlRequest(id: 2, ControlCommands.status).json)
                } catch {
                    return "cannot send status: \(error)"
                }
            }
            usleep(pauseMicroseconds)
        }
        return "too many reads"
    }
}

@Suite("End to end: retained events bounded in bytes, replays paced by the reader", .serialized)
struct RetentionEndToEndTests {
    @Test func aReplayFarOverTheOutputLimitReachesSlowReadersWholeWithoutGrowingTheDaemon() async throws {
        let cluster = try TestNodes(1, channels: retentionChannels, options: "max_retained_bytes = 64M")
        defer { cluster.tearDown() }
        let node = cluster.nodes[0]
        let processes = try await startRing([node], children: cluster.children)
        let pid = processes[0].processIdentifier

        // 300 retained events of 60 KB: about 18 MB, four and a half times the output limit.
        let count = 300
        let publisher = try ControlClient(path: node.socket, timeout: .seconds(10))
        let errors = try publishRetained(publisher, from: 0, count: count, bytes: 60_000)
        #expect(errors.isEmpty, "\(errors.prefix(3))")
        let retained = await eventually(within: .seconds(20)) { retainedStatus(node)?["events"]?.integerValue == Int64(count) }
        try #require(retained, "retained: \(String(describing: retainedStatus(node)))")
        let baseline = try #require(residentKiB(pid))

        // Four subscribers at once, each silent for a second, then reading 16 KiB every 2 ms.
        let subscribers = try (0..<4).map { _ in try SlowSubscriber(path: node.socket, chunkBytes: 16 << 10) }
        for subscriber in subscribers {
            subscriber.start(expected: count, stall: .seconds(1), pause: .milliseconds(2), within: .seconds(60))
        }
        var peak = baseline
        let done = await eventually(within: .seconds(70), every: .milliseconds(50)) {
            peak = max(peak, residentKiB(pid) ?? 0)
            return subscribers.allSatisfy(\.isFinished)
        }
        #expect(done, "the subscribers did not finish")
        for (number, subscriber) in subscribers.enumerated() {
            let outcome = subscriber.result
            #expect(outcome.problem == nil, "subscriber \(number): \(outcome.problem ?? "")")
            #expect(outcome.response?["ok"] == true, "subscriber \(number): \(String(describing: outcome.response))")
            #expect(outcome.response?["result"]?["replayed"] == .integer(Int64(count)))
            let firstMismatch = zip(outcome.indexes, 0...).first { $0 != $1 }.map { "\($0)" } ?? "end"
            #expect(outcome.indexes == Array(0..<count), "subscriber \(number): \(outcome.indexes.count) events, first out of order at \(firstMismatch)")
            #expect(outcome.allMarkedReplayed)
            #expect(outcome.answeredAfterwards, "subscriber \(number) was not answered after its replay")
        }
        #expect(!node.logText.contains("dropped"), "\(node.logText.suffix(2_000))")
        // Four replays of 18 MB each; the daemon grew by far less than one.
        let growthKiB = peak - baseline
        print("replay of \(count) x 60 KB to 4 slow subscribers: VmRSS \(baseline) KiB before, peak \(peak) KiB (+\(growthKiB) KiB)")
        #expect(growthKiB < 16 << 10, "VmRSS grew by \(growthKiB) KiB during the replays")
    }

    @Test func theLargestPayloadCrossesTheRingByteIdenticalAndOneByteMoreIsRefused() async throws {
        let cluster = try TestNodes(2, channels: retentionChannels)
        defer { cluster.tearDown() }
        let nodes = cluster.nodes
        _ = try await startRing(nodes, children: cluster.children)
        let publisher = try ControlClient(path: nodes[0].socket, timeout: .seconds(5))
        let subscriber = try ControlClient(path: nodes[1].socket, timeout: .seconds(5))
        #expect((try? subscriber.call("event_subscribe", arguments: ["channel": "alerts"]).get()) != nil)

        // 65,536 bytes that are not UTF-8, with the largest attributes: the largest request.
        var state: UInt32 = 12_345
        let payload: [UInt8] = (0..<EventLimits.payloadBytes).map { _ in
            state = state &* 1_103_515_245 &+ 12_345
            return UInt8(truncatingIfNeeded: state >> 16) | 0x80
        }
        var attributes = JSONObject()
        for index in 0..<EventLimits.attributes {
            let key = "k\(index)" + String(repeating: "k", count: EventLimits.attributeKeyBytes - 1 - String(index).count)
            attributes.set(key, .string(String(repeating: "v", count: EventLimits.attributeValueBytes)))
        }
        let request = ControlRequest(id: 1, command: "event_publish", arguments: [
            "channel": "alerts", "type": "alarm", "attributes": .object(attributes), "payload_base64": .string(Base64.encode(payload)),
        ])
        var line: [UInt8] = []
        request.json.encode(into: &line)
        // Larger than the former 64 KiB limit, within the new one.
        #expect(line.count > 64 << 10 && line.count <= ControlProtocol.maximumLineBytes, "request of \(line.count) bytes")
        let published = try publisher.call("event_publish", arguments: request.arguments)
        #expect((try? published.get())?["event_id"] != nil, "\(published)")
        let event = try #require(try subscriber.nextLine().flatMap { try? JSONParser.parse($0) })
        let received = try event["data"]?["payload_base64"]?.stringValue.map { try Base64.decode($0) }
        #expect(received == payload, "received \(received?.count ?? 0) bytes")
        #expect(event["data"]?["attributes"]?.objectValue?.count == EventLimits.attributes)

        // One byte more: refused with the limit in payload bytes, and the connection goes on.
        let over = try publisher.call("event_publish", arguments: [
            "channel": "alerts", "type": "alarm", "payload_base64": .string(Base64.encode(payload + [0x41])),
        ])
        guard case .failure(let error) = over else { Issue.record("65,537 bytes accepted"); return }
        #expect(error.code == .invalidArgument)
        #expect(error.message == "payload of 65537 bytes: an event's payload is at most 65536 bytes")
        #expect((try? publisher.call("status").get())?["node"] != nil)
        #expect(try subscriber.nextLine() == nil, "the refused event was delivered")
    }

    @Test func retentionOverTheByteCapKeepsTheNewestAndResidentMemoryStaysNearTheCap() async throws {
        let cap = 2 << 20
        let cluster = try TestNodes(1, channels: retentionChannels, options: "max_retained_bytes = 2M")
        defer { cluster.tearDown() }
        let node = cluster.nodes[0]
        let processes = try await startRing([node], children: cluster.children)
        let pid = processes[0].processIdentifier
        let publisher = try ControlClient(path: node.socket, timeout: .seconds(10))
        let perEvent = EventLimits.retainedEventOverheadBytes + 60_000
        let kept = cap / perEvent

        // Fill the cap once, then measure while 460 more events (about 28 MB, 13 times the cap) pass.
        #expect(try publishRetained(publisher, from: 0, count: 40, bytes: 60_000).isEmpty)
        let filled = await eventually(within: .seconds(10)) { retainedStatus(node)?["dropped_at_byte_cap"]?.integerValue == Int64(40 - kept) }
        try #require(filled, "\(String(describing: retainedStatus(node)))")
        let baseline = try #require(residentKiB(pid))
        let total = 500
        #expect(try publishRetained(publisher, from: 40, count: total - 40, bytes: 60_000).isEmpty)
        let settled = await eventually(within: .seconds(20)) {
            retainedStatus(node)?["dropped_at_byte_cap"]?.integerValue == Int64(total - kept)
        }
        let status = try #require(retainedStatus(node))
        #expect(settled, "\(status)")
        let after = try #require(residentKiB(pid))
        print("\(total) x 60 KB retained under a 2 MiB cap: VmRSS \(baseline) KiB after the first 40, \(after) KiB after all; status \(status.encoded)")
        #expect(status["events"] == .integer(Int64(kept)))
        #expect(status["bytes"] == .integer(Int64(kept * perEvent)))
        #expect(status["max_bytes"] == .integer(Int64(cap)))
        #expect(status["dropped_at_event_cap"] == 0)
        #expect(after - baseline < 8 << 10, "VmRSS grew by \(after - baseline) KiB while 28 MB passed a 2 MiB cap")
        #expect(node.logText.contains("[options] max_retained_bytes"), "\(node.logText.suffix(1_000))")

        // `channels` shows the bytes too, and a new subscriber gets the newest events, in order.
        let channels = try publisher.call("channels").get()
        let alerts = channels["channels"]?.arrayValue?.first { $0["name"] == "alerts" }
        #expect(alerts?["retained"] == .integer(Int64(kept)))
        #expect(alerts?["retained_bytes"] == .integer(Int64(kept * perEvent)))
        let late = try ControlClient(path: node.socket, timeout: .seconds(5))
        let subscribed = try late.call("event_subscribe", arguments: ["channel": "alerts"]).get()
        #expect(subscribed["replayed"] == .integer(Int64(kept)))
        var indexes: [Int] = []
        for _ in 0..<kept {
            guard let line = try late.nextLine(), let event = try? JSONParser.parse(line) else { break }
            indexes.append(payloadIndex(event) ?? -1)
        }
        #expect(indexes == Array((total - kept)..<total))
    }
}
