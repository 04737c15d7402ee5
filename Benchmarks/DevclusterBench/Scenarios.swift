// The scenario driver: one cluster per invocation (built, formed, torn down also on failure),
// then --reps repetitions of the scenario on it.

import Foundation
import Glibc

func runScenario(_ options: BenchOptions, figures: FigureWriter) throws {
    let daemon = try options.daemonPath()
    let needsChannel = ["throughput", "latency", "order"].contains(options.scenario)
        || options.scenario == "client" && options.operation == "publish"
    let cluster = try BenchCluster(nodes: options.nodes, transport: options.transport, token: options.token, daemon: daemon,
                                   benchChannel: needsChannel)
    progress("cluster: \(options.nodes) nodes, \(options.transport), token \(options.token.map { "\($0) ms" } ?? "default"), files in \(cluster.base)")
    var failure: Error?
    do {
        try cluster.build()
        try cluster.startAll()
        let formed = try cluster.waitForRing()
        progress(String(format: "ring of %d formed in %.2f s", options.nodes, formed))
        try runOnCluster(cluster, options, figures: figures)
    } catch {
        failure = error
        for index in 1...options.nodes { progress("--- node \(index) log tail:\n\(cluster.logTail(index, lines: 8))") }
    }
    let problems = cluster.tearDown(keepLogsIn: options.keepLogs)
    for problem in problems { progress("DAEMON PROBLEM: \(problem)") }
    if let failure { throw failure }
}

private func runOnCluster(_ cluster: BenchCluster, _ options: BenchOptions, figures: FigureWriter) throws {
    for rep in 1...options.reps {
        var context = FigureContext(scenario: options.scenario, nodes: options.nodes, size: options.size ?? 64,
                                    senders: options.senders, rate: options.rate ?? 0, transport: options.transport, rep: rep)
        let cpuBefore = ownCPUSeconds()
        let wallBefore = monotonicNanoseconds()
        switch options.scenario {
        case "throughput", "order", "latency":
            if options.scenario == "latency" {
                context.senders = 1
                context.rate = options.rate ?? 1_000
            }
            let duration = options.duration ?? 5
            progress("rep \(rep): \(options.scenario) size \(context.size) senders \(context.senders) rate \(Int(context.rate)) for \(duration) s")
            let outcome = try runThroughput(cluster: cluster, size: context.size, senders: context.senders, rate: context.rate,
                                            duration: duration, window: options.window, subscriberNodes: Array(1...options.nodes))
            reportThroughput(outcome, size: context.size, context: context, figures: figures)
        case "client":
            let duration = options.duration ?? 5
            context.senders = 1
            if options.operation == "publish" {
                progress("rep \(rep): client pipelining event_publish \(context.size) B on node 1 for \(duration) s")
                let outcome = try runThroughput(cluster: cluster, size: context.size, senders: 1, rate: context.rate,
                                                duration: duration, window: options.window, subscriberNodes: [2])
                reportClient(outcome, context: context, figures: figures)
            } else {
                context.scenario = "client-devstate"
                progress("rep \(rep): client pipelining devstate_set on node 1 for \(duration) s")
                try runDeviceStateClient(cluster: cluster, duration: duration, window: options.window, context: context, figures: figures)
            }
        case "failover":
            context.size = 0
            try runFailover(cluster: cluster, rep: rep, context: context, figures: figures)
        case "idle":
            context.size = 0
            try runIdle(cluster: cluster, duration: options.duration ?? 10, context: context, figures: figures)
        case "devstate":
            context.size = 0
            context.rate = options.rate ?? 200
            try runDeviceState(cluster: cluster, rate: context.rate, duration: options.duration ?? 5, context: context, figures: figures)
        default:
            throw BenchError("unknown scenario \(options.scenario)")
        }
        let wall = seconds(from: wallBefore, to: monotonicNanoseconds())
        progress(String(format: "rep %d done: bench client used %.2f s CPU in %.2f s (%.0f%% of one core)",
                        rep, ownCPUSeconds() - cpuBefore, wall, wall > 0 ? (ownCPUSeconds() - cpuBefore) / wall * 100 : 0))
        if rep < options.reps && options.scenario != "failover" { sleep(1) }
    }
}
