// One `event_subscribe` connection per node during a throughput run. Per event it reads the
// payload by byte scanning (no JSON tree): `S<node>:<seq>:<monotonic_ns>:xxx` for data,
// `E<node>:<count>:` for a sender's END marker. It counts, folds (publisher, seq) into FNV-1a 64
// in delivery order, checks per-sender seq continuity and records remote one-way latency.

import DevclusterControl
import Foundation
import Glibc

struct SubscriberConfiguration: Sendable {
    var socket: String
    var node: Int
    /// The nodes that publish (each ends with an END marker).
    var senders: [Int]
    /// Monotonic time after which the subscriber stops waiting for END markers.
    var giveUpAt: UInt64
}

struct SubscriberResult: Sendable {
    var node = 0
    var subscribed = false
    var delivered = 0
    var firstDelivery: UInt64 = 0
    var lastDelivery: UInt64 = 0
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    /// Missing sequence numbers (jumps forward) and out-of-order or repeated ones.
    var gaps = 0
    var duplicates = 0
    var endsSeen = 0
    /// Per publisher: delivered count (indexed by node id, 1...64: an array, not a dictionary
    /// update per line), and the count its END marker announced.
    var deliveredBy = [Int](repeating: 0, count: 65)
    var announcedBy: [Int: Int] = [:]
    var remoteLatencyP50Microseconds: UInt32 = 0
    var remoteLatencyP99Microseconds: UInt32 = 0
    var remoteSamples = 0
    var malformed = 0
    var failure: String?

    var ratePerSecond: Double {
        let span = seconds(from: firstDelivery, to: lastDelivery)
        return span > 0 ? Double(delivered) / span : 0
    }
}

/// FNV-1a 64 over the bytes of `value` (little-endian).
@inline(__always)
func fold<T: FixedWidthInteger>(_ hash: inout UInt64, _ value: T) {
    var remaining = value.littleEndian
    for _ in 0..<MemoryLayout<T>.size {
        hash ^= UInt64(truncatingIfNeeded: remaining & 0xff)
        hash = hash &* 0x0000_0100_0000_01b3
        remaining = remaining >> 8
    }
}

/// Reads a decimal number at `index`, which then points at the byte after it.
@inline(__always)
func readDecimal(_ line: UnsafeBufferPointer<UInt8>, _ index: inout Int) -> UInt64? {
    var value: UInt64 = 0
    let start = index
    while index < line.count, line[index] >= 0x30, line[index] <= 0x39, index - start < 20 {
        value = value &* 10 &+ UInt64(line[index] - 0x30)
        index += 1
    }
    return index > start ? value : nil
}

struct Subscriber {
    let configuration: SubscriberConfiguration
    /// Found by its "y" (`anchor: 3`), which few keys of a channel_event have ("type", "entity_id").
    private static let payloadMarker = Array("\"payload\":\"".utf8)
    private static let eventMarker = Array("{\"event\":".utf8)

    /// Subscribes (bounded), then calls `ready`, then consumes events until every sender's END.
    func run(ready: () -> Void) -> SubscriberResult {
        var result = SubscriberResult()
        result.node = configuration.node
        let connection: ControlClient
        do {
            connection = try connectControl(path: configuration.socket, timeout: 5, requestTimeout: 10, bufferBytes: 1 << 22)
            _ = try requireResult(connection, ControlCommands.EventSubscribe(channel: "bench"))
            result.subscribed = true
        } catch {
            result.failure = "\(error)"
            ready()
            return result
        }
        ready()
        var nextSequence = [UInt64](repeating: 0, count: 65)
        var latencies: [UInt32] = []
        latencies.reserveCapacity(1 << 20)
        let senderCount = configuration.senders.count
        let localNode = configuration.node
        // Bounded by the give-up time and an iteration count. (Not `for ... where`: that keeps
        // counting through the whole range after the condition turns false.)
        var iterations = 0
        while result.endsSeen < senderCount && iterations < 1_000_000_000 {
            iterations += 1
            if monotonicNanoseconds() > configuration.giveUpAt {
                result.failure = "timed out waiting for END markers (\(result.endsSeen)/\(senderCount))"
                break
            }
            let open = (try? connection.receiveLines(timeoutMilliseconds: 100) { line in
                let now = monotonicNanoseconds()
                guard line.count > Self.eventMarker.count, line[1] == 0x22, line[2] == 0x65,  // {"e
                      var index = find(line, Self.payloadMarker, anchor: 3), index + 2 < line.count else { return }
                let kind = line[index]
                index += 1
                guard let publisher = readDecimal(line, &index), publisher < 65, index < line.count, line[index] == 0x3A else {
                    result.malformed += 1
                    return
                }
                index += 1
                guard let sequence = readDecimal(line, &index) else {
                    result.malformed += 1
                    return
                }
                let node = Int(publisher)
                if kind == 0x45 {  // "E": END, carrying how many data messages the sender published
                    result.endsSeen += 1
                    result.announcedBy[node] = Int(sequence)
                    return
                }
                guard kind == 0x53, index < line.count, line[index] == 0x3A else {
                    result.malformed += 1
                    return
                }
                index += 1
                guard let stamp = readDecimal(line, &index) else {
                    result.malformed += 1
                    return
                }
                if result.firstDelivery == 0 { result.firstDelivery = now }
                result.lastDelivery = now
                result.delivered += 1
                result.deliveredBy[node] += 1
                fold(&result.hash, UInt32(node))
                fold(&result.hash, sequence)
                let expected = nextSequence[node]
                if sequence > expected { result.gaps += Int(sequence - expected) }
                if sequence < expected { result.duplicates += 1 }
                nextSequence[node] = max(expected, sequence + 1)
                if node != localNode {
                    let microseconds = now > stamp ? (now - stamp) / 1_000 : 0
                    latencies.append(UInt32(min(microseconds, UInt64(UInt32.max))))
                }
            }) ?? false
            if !open {
                result.failure = "daemon closed the subscription"
                break
            }
        }
        latencies.sort()
        result.remoteSamples = latencies.count
        result.remoteLatencyP50Microseconds = Statistics.percentile(latencies, 0.50)
        result.remoteLatencyP99Microseconds = Statistics.percentile(latencies, 0.99)
        return result
    }
}
