// throughput / latency / order / client(publish): subscribers on every node (client: node 2
// only), senders on nodes 1..K, END markers, then the figures. As cpgbench: throughput is each
// node's data deliveries over (last - first delivery), median over nodes; latency is remote
// deliveries only, p50 and p99 per node, median over nodes (and the max p99).

import Foundation

struct ThroughputOutcome {
    var publishers: [PublisherResult]
    var subscribers: [SubscriberResult]
}

func runThroughput(cluster: BenchCluster, size: Int, senders: Int, rate: Double, duration: Double, window: Int,
                   subscriberNodes: [Int]) throws -> ThroughputOutcome {
    let senderNodes = Array(1...senders)
    let giveUpAt = monotonicNanoseconds() + UInt64((duration + 60) * 1e9)
    let subscriberResults = Shared<[SubscriberResult]>([])
    let readyCount = Shared(0)
    let subscriberGroup = DispatchGroup()
    for node in subscriberNodes {
        let configuration = SubscriberConfiguration(socket: cluster.socket(node), node: node, senders: senderNodes, giveUpAt: giveUpAt)
        startThread(subscriberGroup) {
            let result = Subscriber(configuration: configuration).run { readyCount.update { $0 += 1 } }
            subscriberResults.update { $0.append(result) }
        }
    }
    for _ in 0..<1_000 {
        guard readyCount.value < subscriberNodes.count else { break }
        usleep(10_000)
    }
    guard readyCount.value == subscriberNodes.count else { throw BenchError("subscribers not ready within 10 s") }
    let startAt = monotonicNanoseconds() + 200_000_000
    let publisherResults = Shared<[PublisherResult]>([])
    let publisherGroup = DispatchGroup()
    for node in senderNodes {
        let configuration = PublisherConfiguration(socket: cluster.socket(node), node: node, size: size, rate: rate,
                                                   duration: duration, window: window, startAt: startAt)
        startThread(publisherGroup) {
            let result = Publisher(configuration: configuration).run()
            publisherResults.update { $0.append(result) }
        }
    }
    if publisherGroup.wait(timeout: .now() + duration + 100) == .timedOut { throw BenchError("senders did not finish") }
    if subscriberGroup.wait(timeout: .now() + 70) == .timedOut { throw BenchError("subscribers did not finish") }
    for result in subscriberResults.value {
        if let failure = result.failure { progress("WARNING: subscriber node \(result.node): \(failure)") }
    }
    for result in publisherResults.value {
        if let failure = result.failure { progress("WARNING: sender: \(failure)") }
    }
    return ThroughputOutcome(publishers: publisherResults.value, subscribers: subscriberResults.value.sorted { $0.node < $1.node })
}

/// The figures of one throughput (or latency) repetition.
func reportThroughput(_ outcome: ThroughputOutcome, size: Int, context: FigureContext, figures: FigureWriter) {
    let subscribers = outcome.subscribers
    let rates = subscribers.map(\.ratePerSecond)
    let medianRate = Statistics.median(rates)
    let remote = subscribers.filter { $0.remoteSamples > 0 }
    let p50 = Statistics.median(remote.map { Double($0.remoteLatencyP50Microseconds) / 1_000 })
    let p99 = Statistics.median(remote.map { Double($0.remoteLatencyP99Microseconds) / 1_000 })
    let p99Max = remote.map { Double($0.remoteLatencyP99Microseconds) / 1_000 }.max() ?? .nan
    let publishErrors = outcome.publishers.reduce(0) { $0 + $1.errors }
    let sent = outcome.publishers.reduce(0) { $0 + $1.sent }

    // Identical order: same hash and count everywhere, nothing missing, nothing repeated, and every
    // sender's announced count delivered (a rejected publish leaves a gap; it is counted apart).
    let hashes = Set(subscribers.map(\.hash))
    let counts = Set(subscribers.map(\.delivered))
    let complete = subscribers.allSatisfy { subscriber in
        subscriber.failure == nil && subscriber.duplicates == 0 && subscriber.gaps == 0 && subscriber.malformed == 0
            && subscriber.announcedBy.allSatisfy { subscriber.deliveredBy[$0.key] == $0.value }
    }
    let identical = !subscribers.isEmpty && hashes.count == 1 && counts.count == 1 && complete && publishErrors == 0
    for subscriber in subscribers {
        progress(String(format: "  node %d: delivered %d (%.0f msg/s), remote p50 %.3f ms p99 %.3f ms (%d samples), hash %016llx, gaps %d, dups %d, ends %d%@",
                        subscriber.node, subscriber.delivered, subscriber.ratePerSecond,
                        Double(subscriber.remoteLatencyP50Microseconds) / 1_000, Double(subscriber.remoteLatencyP99Microseconds) / 1_000,
                        subscriber.remoteSamples, subscriber.hash, subscriber.gaps, subscriber.duplicates, subscriber.endsSeen,
                        subscriber.failure.map { " FAILURE: \($0)" } ?? ""))
    }
    for publisher in outcome.publishers {
        let span = seconds(from: publisher.firstSend, to: publisher.lastResponse)
        progress(String(format: "  sender: sent %d, accepted %d (%.0f/s), errors %d%@", publisher.sent, publisher.accepted,
                        span > 0 ? Double(publisher.accepted) / span : 0, publisher.errors,
                        publisher.firstError.map { " first error: \($0)" } ?? ""))
    }
    if !identical {
        progress("  ORDER CHECK FAILED: hashes \(hashes.count), counts \(counts.sorted()), sent \(sent), publish errors \(publishErrors)")
    }
    figures.emit(context, metric: "delivered_msgs_per_s", value: medianRate, unit: "msg/s")
    figures.emit(context, metric: "mb_per_s", value: medianRate * Double(size) / 1e6, unit: "MB/s")
    figures.emit(context, metric: "latency_p50_ms", value: p50, unit: "ms")
    figures.emit(context, metric: "latency_p99_ms", value: p99, unit: "ms")
    figures.emit(context, metric: "latency_p99_max_ms", value: p99Max, unit: "ms")
    figures.emit(context, metric: "order_identical", value: identical ? 1 : 0, unit: "bool")
    figures.emit(context, metric: "publish_errors", value: Double(publishErrors), unit: "count")
    figures.emit(context, metric: "delivered_msgs", value: Double(subscribers.map(\.delivered).min() ?? 0), unit: "count")
}

/// `client` with `--op publish`: one client on node 1 pipelining 64-byte publishes as fast as
/// accepted; accepted requests/s at the client and delivered events/s at node 2.
func reportClient(_ outcome: ThroughputOutcome, context: FigureContext, figures: FigureWriter) {
    let accepted = outcome.publishers.first.map { publisher -> Double in
        let span = seconds(from: publisher.firstSend, to: publisher.lastResponse)
        return span > 0 ? Double(publisher.accepted) / span : 0
    } ?? .nan
    let delivered = outcome.subscribers.first?.ratePerSecond ?? .nan
    progress(String(format: "  client: accepted %.0f req/s, delivered at node 2 %.0f events/s, errors %d",
                    accepted, delivered, outcome.publishers.first?.errors ?? -1))
    figures.emit(context, metric: "accepted_requests_per_s", value: accepted, unit: "req/s")
    figures.emit(context, metric: "delivered_events_per_s", value: delivered, unit: "events/s")
    figures.emit(context, metric: "publish_errors", value: Double(outcome.publishers.first?.errors ?? 0), unit: "count")
}
