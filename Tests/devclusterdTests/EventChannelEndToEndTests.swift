// Event channels through the control socket with real daemons on 127.0.0.1-2: event_publish
// and event_subscribe with type and attribute filters, text and Base64 payloads, retention
// replayed to a late subscriber, specific errors, and flow control that holds a fast publisher
// instead of dropping what it sent.

import Foundation
import Glibc
import Synchronization
import Testing
@testable import devclusterd

private let alertChannels = """
    [alerts]
    type = event_channel
    publish_event = alarm, note
    subscribe_event = alarm, note

    [device_state]
    type = event_channel
    publish_event = device_state
    subscribe_event = device_state

    """

/// The next pushed event line (skipping nothing), or `nil` when none comes within the timeout.
private func nextEvent(_ client: ControlClient) -> JSONValue? {
    guard case .event(let event)? = try? client.nextMessage() else { return nil }
    return event.json
}

private func call(_ client: ControlClient, _ command: String, _ arguments: JSONObject) -> Result<JSONValue, ControlError>? {
    try? client.call(command, arguments: arguments)
}

/// The error message of a failed call, or `nil` when it succeeded or got no answer.
private func errorMessage(_ outcome: Result<JSONValue, ControlError>?) -> String? {
    guard case .failure(let error)? = outcome else { return nil }
    return "\(error.code.rawValue): \(error.message)"
}

/// One connection used by a writer thread (`send` only: no shared state) and a reader thread
/// (`readLine` only: the framer and its lines), as a pipelining client does.
private final class SplitClient: @unchecked Sendable {
    let client: ControlClient
    init(_ client: ControlClient) { self.client = client }
}

@Suite("End to end: event channels over the control socket", .serialized)
struct EventChannelEndToEndTests {
    @Test func publishSubscribeWithFiltersPayloadsAndRetention() async throws {
        let cluster = try TestNodes(2, channels: alertChannels)
        defer { cluster.tearDown() }
        let nodes = cluster.nodes
        _ = try await startRing(nodes, children: cluster.children)
        let publisher = try ControlClient(path: nodes[0].socket, timeout: .seconds(5))
        let subscriber = try ControlClient(path: nodes[1].socket, timeout: .seconds(2))

        let subscribed = call(subscriber, "event_subscribe", [
            "channel": "alerts", "types": ["alarm"], "filters": [["attribute": "site", "prefix": "par"]],
        ])
        guard case .success(let result)? = subscribed else { Issue.record("event_subscribe failed: \(String(describing: subscribed))"); return }
        #expect(result["channel"] == "alerts")
        #expect(result["replayed"] == 0)
        let subscription = try #require(result["subscription"]?.integerValue)

        // Four publications; only two pass the type and the filter.
        let first = call(publisher, "event_publish", ["channel": "alerts", "type": "alarm", "attributes": ["site": "paris"], "payload": "hello"])
        guard case .success(let firstResult)? = first else { Issue.record("publish failed: \(String(describing: first))"); return }
        #expect(firstResult["event_id"]?.stringValue?.hasPrefix("1.") == true)
        #expect(call(publisher, "event_publish", ["channel": "alerts", "type": "note", "attributes": ["site": "paris"]]).map { (try? $0.get()) != nil } == true)
        #expect(call(publisher, "event_publish", ["channel": "alerts", "type": "alarm", "attributes": ["site": "berlin"]]).map { (try? $0.get()) != nil } == true)
        #expect(call(publisher, "event_publish", [
            "channel": "alerts", "type": "ALARM", "attributes": ["site": "parma"], "payload_base64": "AP8B", "retention_ms": 60_000,
        ]).map { (try? $0.get()) != nil } == true)
        // Text that must be escaped, and non-ASCII text: not the plain-text path of the push.
        let escaped = "say \"hi\" \\ tab\there\nnew line \u{7F} caf\u{E9} \u{20AC}" + String(repeating: "x", count: 40)
        let unicode = String(repeating: "\u{E9}t\u{E9} ", count: 12)
        for text in [escaped, unicode] {
            #expect(call(publisher, "event_publish", ["channel": "alerts", "type": "alarm", "attributes": ["site": "paris"], "payload": .string(text)])
                .map { (try? $0.get()) != nil } == true)
        }

        let one = nextEvent(subscriber)
        #expect(one?["event"] == "channel_event")
        #expect(one?["data"]?["subscription"]?.integerValue == subscription)
        #expect(one?["data"]?["type"] == "alarm")
        #expect(one?["data"]?["payload"] == "hello")
        #expect(one?["data"]?["publisher"] == 1)
        #expect(one?["data"]?["attributes"] == ["site": "paris"])
        #expect(one?["data"]?["event_id"] == firstResult["event_id"])
        #expect(one?["data"]?["replayed"] == false)
        let two = nextEvent(subscriber)
        #expect(two?["data"]?["payload_base64"] == "AP8B")
        #expect(two?["data"]?["payload"] == nil)
        #expect(two?["data"]?["attributes"] == ["site": "parma"])
        #expect(two?["data"]?["retention_ms"] == 60_000)
        #expect(nextEvent(subscriber)?["data"]?["payload"]?.stringValue == escaped)
        #expect(nextEvent(subscriber)?["data"]?["payload"]?.stringValue == unicode)
        #expect(nextEvent(subscriber) == nil, "an event passed the type or attribute filter")

        // A late subscriber on the publishing node gets the retained event replayed, marked so.
        let late = try ControlClient(path: nodes[0].socket, timeout: .seconds(2))
        let lateResult = call(late, "event_subscribe", ["channel": "alerts"])
        #expect((try? lateResult?.get())?["replayed"] == 1)
        let replayed = nextEvent(late)
        #expect(replayed?["data"]?["payload_base64"] == "AP8B")
        #expect(replayed?["data"]?["replayed"] == true)

        // Unsubscribed: nothing more arrives, and the connection still answers.
        #expect((try? call(subscriber, "event_unsubscribe", ["subscription": .number(subscription)])?.get())?["unsubscribed"] == true)
        _ = call(publisher, "event_publish", ["channel": "alerts", "type": "alarm", "attributes": ["site": "paris"], "payload": "after"])
        #expect(nextEvent(subscriber) == nil)
        let again = Result { () throws(ControlClientError) in try subscriber.call("event_unsubscribe", arguments: ["subscription": .number(subscription)]) }
        #expect((try? again.get().get())?["unsubscribed"] == false, "\(again) \(nodes[1].logText)")

        // Specific errors; the daemon goes on.
        #expect(errorMessage(call(publisher, "event_publish", ["channel": "alerts", "type": "device_state"]))?
            .contains("use devstate_set") == true)
        #expect(errorMessage(call(publisher, "event_publish", ["channel": "nope", "type": "alarm"]))?
            .contains("invalid_argument: no channel nope is configured") == true)
        #expect(errorMessage(call(publisher, "event_publish", ["channel": "alerts", "type": "other"]))?
            .contains("does not publish other (publishes: alarm, note)") == true)
        #expect(errorMessage(call(publisher, "event_publish", ["channel": "alerts", "type": "alarm", "payload_base64": "AP8"]))?
            .contains("multiple of 4") == true)
        #expect(errorMessage(call(publisher, "event_publish", ["channel": "alerts", "type": "alarm", "payload": "a", "payload_base64": "AA=="]))?
            .contains("not both") == true)
        #expect(errorMessage(call(publisher, "event_publish", ["channel": "alerts", "type": "alarm", "retention_ms": -1]))?
            .contains("retention_ms") == true)
        #expect(errorMessage(call(publisher, "event_subscribe", ["channel": "alerts", "filters": [["attribute": "site"]]]))?
            .contains("filter 1 must be") == true)
        #expect(errorMessage(call(publisher, "event_subscribe", ["channel": "alerts", "types": ["mwi"]]))?
            .contains("does not subscribe mwi") == true)
        #expect(membership(nodes[0])?.members == [1, 2])
    }

    @Test func aPublisherFasterThanTheRingIsHeldAndNothingIsLost() async throws {
        let cluster = try TestNodes(2, channels: alertChannels)
        defer { cluster.tearDown() }
        let nodes = cluster.nodes
        _ = try await startRing(nodes, children: cluster.children)
        let subscriber = try ControlClient(path: nodes[1].socket, timeout: .seconds(10))
        #expect((try? call(subscriber, "event_subscribe", ["channel": "alerts"])?.get()) != nil)

        // 3,000 publications of 4 KiB (12 MB, far beyond the 256 KiB at which a client is
        // held), pipelined by a writer thread while a reader thread takes the responses.
        let count = 3_000
        let filler = String(repeating: "x", count: 4_096 - 16)
        let accepted = Mutex(0)
        let failures = Mutex<[String]>([])
        let socket = nodes[0].socket
        let writer = Thread {
            guard let connected = try? ControlClient(path: socket, timeout: .seconds(20)) else {
                failures.withLock { $0.append("cannot connect") }
                return
            }
            let client = SplitClient(connected)
            let reader = Thread {
                for _ in 0..<count {
                    guard let line = try? client.client.readLine(), let response = try? ControlResponse.decode(line: line) else {
                        failures.withLock { $0.append("no response") }
                        return
                    }
                    if case .failure(let error) = response.outcome { failures.withLock { $0.append(error.message) } }
                    accepted.withLock { $0 += 1 }
                }
            }
            reader.start()
            for sequence in 0..<count {
                let payload = String(sequence) + ":" + filler
                let request = ControlRequest(id: .integer(Int64(sequence)), command: "event_publish",
                                             arguments: ["channel": "alerts", "type": "note", "payload": .string(payload)])
                do {
                    try client.client.send(request.json)
                } catch {
                    failures.withLock { $0.append("send: \(error)") }
                    return
                }
            }
            for _ in 0..<2_000 {
                guard accepted.withLock({ $0 }) < count else { break }
                usleep(10_000)
            }
        }
        writer.start()

        var received: [Int] = []
        for _ in 0..<(count + 10) {
            guard let event = nextEvent(subscriber), let payload = event["data"]?["payload"]?.stringValue,
                  let sequence = payload.split(separator: ":").first.flatMap({ Int($0) }) else { break }
            received.append(sequence)
            if received.count == count { break }
        }
        #expect(received == Array(0..<count), "received \(received.count) of \(count); first mismatch at \(zip(received, 0...).first { $0 != $1 }.map { "\($0)" } ?? "end")")
        let settled = await eventually(within: .seconds(10)) { accepted.withLock { $0 } == count }
        #expect(settled, "\(accepted.withLock { $0 }) of \(count) accepted")
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 }.prefix(3))")
        #expect(!nodes[0].logText.contains("backlog full"))
    }
}
