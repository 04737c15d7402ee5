// devstate: node 1 sets Custom:bench<k> alternately INUSE / NOT_INUSE at a paced rate; nodes
// 2..N subscribed to `device` time the push of each change from the moment the request was
// written. client (--op devstate): one client pipelines devstate_set as fast as accepted.

import DevclusterControl
import Foundation
import Glibc

private let deviceMarker = Array("\"device\":\"Custom:".utf8)
private let stateMarker = Array("\"state\":\"".utf8)
private let deviceEventPrefix = Array("{\"event\":\"device\"".utf8)
private let okMarker = Array("\"ok\":true".utf8)
private let deviceCount: UInt64 = 64
private let debugLines = ProcessInfo.processInfo.environment["DCB_DEBUG"] != nil

private struct DeviceEvent: Sendable {
    var device: Int
    var inUse: Bool
    var receivedAt: UInt64
}

/// Reads `{"event":"device",...}` lines of Custom:bench<k> until `stopAt`.
private func collectDeviceEvents(socket: String, prefix: String, stopAt: UInt64, ready: () -> Void) -> ([DeviceEvent], String?) {
    var events: [DeviceEvent] = []
    let connection: ControlClient
    do {
        connection = try connectControl(path: socket, timeout: 5)
        _ = try requireResult(connection, ControlCommands.Watch(topics: ["device"]))
    } catch {
        ready()
        return ([], "\(error)")
    }
    ready()
    let name = Array(prefix.utf8)
    var iterations = 0
    while monotonicNanoseconds() < stopAt && iterations < 10_000_000 {
        iterations += 1
        let open = (try? connection.receiveLines(timeoutMilliseconds: 50) { line in
            let now = monotonicNanoseconds()
            guard line.count > deviceEventPrefix.count, memcmp(line.baseAddress!, deviceEventPrefix, deviceEventPrefix.count) == 0,
                  var index = find(line, deviceMarker) else {
                if debugLines { progress("device subscriber ignored: \(String(decoding: line, as: UTF8.self))") }
                return
            }
            guard index + name.count < line.count,
                  memcmp(line.baseAddress! + index, name, name.count) == 0 else { return }
            index += name.count
            guard let device = readDecimal(line, &index), let state = find(line, stateMarker), state < line.count else { return }
            events.append(DeviceEvent(device: Int(device), inUse: line[state] == 0x49, receivedAt: now))  // "I"NUSE
        }) ?? false
        if !open { return (events, "daemon closed the subscription") }
    }
    return (events, nil)
}

func runDeviceState(cluster: BenchCluster, rate: Double, duration: Double, context: FigureContext, figures: FigureWriter) throws {
    let receivers = Array(2...cluster.nodeCount)
    // Fresh device names per repetition: a device left INUSE by the previous one would not
    // change (and push nothing) when set INUSE again.
    let prefix = "bench\(context.rep)r"
    let stopAt = monotonicNanoseconds() + UInt64((duration + 3) * 1e9)
    let readyCount = Shared(0)
    let collected = Shared<[Int: ([DeviceEvent], String?)]>([:])
    let group = DispatchGroup()
    for node in receivers {
        let socket = cluster.socket(node)
        startThread(group) {
            let outcome = collectDeviceEvents(socket: socket, prefix: prefix, stopAt: stopAt) { readyCount.update { $0 += 1 } }
            collected.update { $0[node] = outcome }
        }
    }
    for _ in 0..<1_000 {
        guard readyCount.value < receivers.count else { break }
        usleep(10_000)
    }
    let setter = try connectControl(path: cluster.socket(1))
    let total = Int(rate * duration)
    var sentAt = [UInt64](repeating: 0, count: total)
    var errors = 0
    let startAt = monotonicNanoseconds() + 100_000_000
    for sequence in 0..<total {
        let due = startAt + UInt64(Double(sequence) * 1e9 / rate)
        for _ in 0..<10_000 {
            let now = monotonicNanoseconds()
            guard now < due else { break }
            _ = try? setter.receiveLines(timeoutMilliseconds: Int32(min(50, (due - now) / 1_000_000))) { line in
                if !contains(line, okMarker) { errors += 1 }
            }
            let remaining = due &- monotonicNanoseconds()
            if remaining < 1_000_000 {
                var pause = timespec(tv_sec: 0, tv_nsec: Int(remaining))
                nanosleep(&pause, nil)
                break
            }
        }
        let device = UInt64(sequence) % deviceCount
        let state = (UInt64(sequence) / deviceCount) % 2 == 0 ? "INUSE" : "NOT_INUSE"
        let request = ControlRequest(id: .number(sequence), ControlCommands.DevstateSet(device: "Custom:\(prefix)\(device)", state: state))
        var line: [UInt8] = []
        request.json.encode(into: &line)
        line.append(0x0A)
        sentAt[sequence] = monotonicNanoseconds()
        do {
            try setter.sendRaw(line)
        } catch {
            throw BenchError("cannot write devstate_set to node 1: \(error)")
        }
    }
    for _ in 0..<100 { _ = try? setter.receiveLines(timeoutMilliseconds: 10) { line in if !contains(line, okMarker) { errors += 1 } } }
    if group.wait(timeout: .now() + duration + 10) == .timedOut { throw BenchError("device subscribers did not finish") }

    // Match each push to the latest request for that device and state written before it.
    var perNodeP50: [Double] = []
    var perNodeP99: [Double] = []
    var missing = 0
    for node in receivers {
        let (events, failure) = collected.value[node] ?? ([], "no result")
        if let failure { progress("WARNING: node \(node) device subscriber: \(failure)") }
        var latencies: [UInt32] = []
        for event in events {
            var candidate = -1
            var sequence = event.device
            let wantedRoundParity = event.inUse ? 0 : 1
            while sequence < total {
                if (sequence / Int(deviceCount)) % 2 == wantedRoundParity && sentAt[sequence] <= event.receivedAt { candidate = sequence }
                sequence += Int(deviceCount)
            }
            guard candidate >= 0 else { continue }
            latencies.append(UInt32(min(UInt64(UInt32.max), (event.receivedAt - sentAt[candidate]) / 1_000)))
        }
        latencies.sort()
        missing += max(0, total - events.count)
        let p50 = Double(Statistics.percentile(latencies, 0.5)) / 1_000
        let p99 = Double(Statistics.percentile(latencies, 0.99)) / 1_000
        perNodeP50.append(p50)
        perNodeP99.append(p99)
        progress(String(format: "  node %d: %d device events for %d sets, p50 %.3f ms, p99 %.3f ms", node, events.count, total, p50, p99))
    }
    figures.emit(context, metric: "devstate_p50_ms", value: Statistics.median(perNodeP50), unit: "ms")
    figures.emit(context, metric: "devstate_p99_ms", value: Statistics.median(perNodeP99), unit: "ms")
    figures.emit(context, metric: "devstate_p99_max_ms", value: perNodeP99.max() ?? .nan, unit: "ms")
    figures.emit(context, metric: "devstate_events_missing", value: Double(missing), unit: "count")
    figures.emit(context, metric: "devstate_errors", value: Double(errors), unit: "count")
}

func runDeviceStateClient(cluster: BenchCluster, duration: Double, window: Int, context: FigureContext, figures: FigureWriter) throws {
    let startAt = monotonicNanoseconds() + 300_000_000
    let stopAt = startAt + UInt64((duration + 3) * 1e9)
    let readyCount = Shared(0)
    let collected = Shared<([DeviceEvent], String?)>(([], nil))
    let group = DispatchGroup()
    let socket = cluster.socket(2)
    startThread(group) {
        let outcome = collectDeviceEvents(socket: socket, prefix: "c", stopAt: stopAt) { readyCount.update { $0 += 1 } }
        collected.set(outcome)
    }
    for _ in 0..<1_000 {
        guard readyCount.value < 1 else { break }
        usleep(10_000)
    }
    let configuration = PublisherConfiguration(socket: cluster.socket(1), node: 1, size: 0, rate: 0, duration: duration,
                                               window: window, startAt: startAt, operation: .deviceState)
    let publisher = Publisher(configuration: configuration).run()
    if group.wait(timeout: .now() + duration + 10) == .timedOut { throw BenchError("device subscriber did not finish") }
    let (events, failure) = collected.value
    if let failure { progress("WARNING: node 2 device subscriber: \(failure)") }
    let span = seconds(from: publisher.firstSend, to: publisher.lastResponse)
    let accepted = span > 0 ? Double(publisher.accepted) / span : 0
    let deliverySpan = events.count > 1 ? seconds(from: events[0].receivedAt, to: events[events.count - 1].receivedAt) : 0
    let delivered = deliverySpan > 0 ? Double(events.count) / deliverySpan : 0
    progress(String(format: "  client devstate_set: sent %d, accepted %d (%.0f req/s), errors %d%@; node 2 got %d device events (%.0f/s)",
                    publisher.sent, publisher.accepted, accepted, publisher.errors,
                    publisher.firstError.map { " first error: \($0)" } ?? "", events.count, delivered))
    figures.emit(context, metric: "accepted_requests_per_s", value: accepted, unit: "req/s")
    figures.emit(context, metric: "delivered_events_per_s", value: delivered, unit: "events/s")
    figures.emit(context, metric: "publish_errors", value: Double(publisher.errors), unit: "count")
}
