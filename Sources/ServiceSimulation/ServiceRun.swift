// One randomized run of the services under the simulator's faults: clients on every node
// during a fault phase, the heal, a quiet ring, then the checks after the heal. It schedules;
// ServiceCluster executes and ServiceChecker judges.

import DeviceState
import Totem
import TotemSimulation

/// Everything that determines a service run; the same options give the same run.
public struct ServiceRunOptions: Sendable, Equatable {
    /// A server that leaves the cluster for good during the fault phase.
    public struct Departure: Sendable, Equatable {
        public var node: NodeID
        /// When it leaves (or as soon after as it is up).
        public var at: Duration
        /// It leaves at the first merge from `at` on: the instant it installs a regular
        /// configuration that others joined, before anything it submits for them is delivered.
        public var atMerge: Bool

        public init(node: NodeID, at: Duration, atMerge: Bool = false) {
            self.node = node
            self.at = at
            self.atMerge = atMerge
        }

        public var description: String {
            "node \(node) leaves " + (atMerge ? "at its first merge from \(at.totalMilliseconds) ms" : "at \(at.totalMilliseconds) ms")
        }
    }

    /// The ring's nodes, fault phase, network and process faults (`rate`, `maxSize` and `safe`
    /// are not used: the services make the traffic).
    public var ring: SimulationOptions
    /// Client requests per second per node.
    public var operationsPerSecond: Double = 5
    public var departure: Departure?
    /// Some crashes happen during the services' disk write instead, which they lose.
    public var serviceDiskCrashes = false
    /// The cores' send queue in bytes (`TotemSettings.maxPendingBytes`), `nil` for the default: a
    /// small one makes the cores refuse submits with `tryAgain`, and the services' backlog work.
    public var sendQueueBytes: Int?
    /// How the sweep derived these options (for the replay command): its node range and the
    /// wider faults it left out; `nil` for options made by hand.
    public var sweep: (nodes: ClosedRange<Int>, without: Set<SweepFault>)?

    public init(ring: SimulationOptions) {
        self.ring = ring
    }

    public static func == (lhs: ServiceRunOptions, rhs: ServiceRunOptions) -> Bool {
        lhs.ring == rhs.ring && lhs.operationsPerSecond == rhs.operationsPerSecond && lhs.departure == rhs.departure
            && lhs.serviceDiskCrashes == rhs.serviceDiskCrashes && lhs.sendQueueBytes == rhs.sendQueueBytes
            && lhs.sweep?.nodes == rhs.sweep?.nodes
            && lhs.sweep?.without == rhs.sweep?.without
    }

    /// The command that replays this run with its trace of service events.
    public var replayCommand: String {
        guard let sweep else { return "(options made by hand: \(self))" }
        var words = ["swift run -c release totem-sim --services --seed \(ring.seed)"]
        if sweep.nodes != ServiceSweep.defaultNodes { words.append("--max-nodes \(sweep.nodes.upperBound)") }
        if !sweep.without.isEmpty { words.append("--without " + sweep.without.map(\.rawValue).sorted().joined(separator: ",")) }
        return words.joined(separator: " ")
    }
}

/// The outcome of a service run.
public struct ServiceReport: Sendable {
    public var options: ServiceRunOptions
    /// The first violations (at most `ServiceCluster.violationLimit` of the services' own, then
    /// the ring's), and how many the services broke in all.
    public var violations: [ServiceViolation]
    public var violationCount: Int
    /// The service events, one line each (only with `ServiceRun.recordsTrace`).
    public var trace: [String]
    public var healedAt: MonotonicInstant
    /// When the cluster was last quiet before the checks; `nil` if it never was.
    public var quietAt: MonotonicInstant?
    public var plan: FaultPlan
    public var statistics: ServiceRunStatistics

    public var summaryLine: String {
        let ring = options.ring
        return "services seed=\(ring.seed) nodes=\(ring.nodes) operations=\(statistics.operations) deliveries=\(statistics.deliveries) "
            + "starts=\(statistics.serviceStarts) disk-crashes=\(statistics.diskCrashes) departures=\(statistics.departures) "
            + "violations=\(violationCount)"
    }

    /// The first `limit` violations, the faults, then the replay command.
    public func failureDescription(limit: Int = 20) -> String {
        var lines = violations.prefix(limit).map { "violation: \($0)" }
        if violationCount > limit { lines.append("... and \(violationCount - min(limit, violations.count)) more violations") }
        lines.append("faults: \(plan.faults.count) planned, \(statistics.diskCrashes) crashes during a services' disk write "
            + "(\(statistics.lostWrites) writes lost)" + (options.departure.map { ", \($0.description)" } ?? ""))
        lines += plan.faults.prefix(30).map { "  at \($0.time.milliseconds) ms: \($0.action)" }
        if plan.faults.count > 30 { lines.append("  ... and \(plan.faults.count - 30) more") }
        lines.append("replay: \(options.replayCommand)")
        return lines.joined(separator: "\n")
    }
}

/// A service run: every node runs a Totem core and the services; clients on every node make
/// requests at random times (`ServiceWorkload`) through a fault phase of the seed's faults
/// (`FaultPlan`, and crashes during the services' disk writes); then the heal, requests for
/// `operationsAfterHeal` more, and the run goes on until the cluster is quiet (one idle ring of
/// the running nodes, nothing waiting) or `convergenceBound` after the heal. After
/// `settleTime` more it checks what every node shows (`ServiceChecker`); during the run every
/// node was checked after every input.
public struct ServiceRun {
    public var options: ServiceRunOptions
    public var settings: TotemSettings
    /// Keep the trace of service events (replays; a sweep leaves it off).
    public var recordsTrace = false
    public var operationsAfterHeal: Duration = .seconds(1)
    public var convergenceBound: Duration = .seconds(60)
    public var settleTime: Duration = .seconds(1)
    /// Alerts whose every copy expires within this of the check are not required.
    public var retentionMargin: Duration = .milliseconds(500)
    /// Tests: faults instead of the seed's plan.
    var plan: FaultPlan?
    /// Tests: client requests instead of the seed's workload.
    var script: [ScriptedOperation]?
    /// Tests: a bug planted in one node's services.
    var plantedFault: (node: NodeID, fault: PlantedServiceFault)?

    public init(options: ServiceRunOptions, settings: TotemSettings = .simulation) {
        self.options = options
        self.settings = settings
    }

    /// Most steps of the schedule (faults, requests, timers); far above any run's need.
    static let scheduleLimit = 10_000_000

    public func run() -> ServiceReport {
        let ring = options.ring
        var settings = self.settings
        if let bytes = options.sendQueueBytes { settings.maxPendingBytes = bytes }
        var cluster = ServiceCluster(options: options, settings: settings, recordsTrace: recordsTrace, plantedFault: plantedFault)
        let healAt = ring.durationMilliseconds * 1_000_000
        let plan = self.plan ?? FaultPlan.random(
            seed: ring.seed, nodeCount: ring.nodes, settings: settings, faultPhase: .nanoseconds(healAt),
            partitions: ring.partitions, crashes: ring.crashes, maxGroups: ring.maxGroups, overlapping: ring.overlapping,
            persistCrashes: ring.persistCrashes)
        runSchedule(&cluster, plan: plan, healAt: healAt)
        let deadline = MonotonicInstant(nanoseconds: healAt) + convergenceBound
        var quiet = cluster.runUntilQuiet(within: max(.zero, deadline - cluster.simulator.now))
        if quiet {
            cluster.run(until: cluster.simulator.now + settleTime)
            quiet = cluster.runUntilQuiet(within: max(settleTime, deadline - cluster.simulator.now))
        }
        let quietAt = quiet ? cluster.simulator.now : nil
        cluster.simulator.finish()
        if quiet {
            for violation in ServiceChecker.checkAfterHeal(&cluster.nodes, model: cluster.model, now: cluster.simulator.now,
                                                           retentionMargin: retentionMargin) {
                cluster.report(violation)
            }
        } else {
            cluster.report(ServiceViolation(.convergence, at: cluster.simulator.now,
                "the cluster was not quiet in one ring within \(convergenceBound.totalMilliseconds) ms after the heal: "
                    + describe(cluster)))
        }
        if let stall = cluster.simulator.stall {
            cluster.report(ServiceViolation(.convergence, at: cluster.simulator.now, "the simulation stalled: \(stall)"))
        }
        // The ring's own properties over the same run: a ring bug shows as such, not as a service bug.
        var violations = cluster.violations
        let ringViolations = cluster.simulator.checker.verify(includingLiveness: false)
        violations += ringViolations.prefix(20).map { ServiceViolation(.ring, at: nil, $0.description) }
        return ServiceReport(options: options, violations: violations, violationCount: cluster.violationCount + ringViolations.count,
                             trace: cluster.trace, healedAt: MonotonicInstant(nanoseconds: healAt), quietAt: quietAt, plan: plan,
                             statistics: cluster.statistics)
    }

    /// The fault phase and the requests after the heal: each step runs the cluster to the next
    /// planned instant (a fault, the heal, a request, the departure, a timer of the cluster),
    /// then does what is due then.
    private func runSchedule(_ cluster: inout ServiceCluster, plan: FaultPlan, healAt: Int64) {
        let stopAt = healAt + operationsAfterHeal.totalNanoseconds
        var workload = ServiceWorkload(seed: options.ring.seed, nodeCount: options.ring.nodes,
                                       operationsPerSecond: script == nil ? options.operationsPerSecond : 0)
        let script = self.script ?? []
        var scripted = 0
        var departure = options.departure.map { (index: Int($0.node.rawValue) - 1, at: $0.at.totalNanoseconds, atMerge: $0.atMerge) }
        var nextFault = 0
        var healed = false
        for _ in 0..<Self.scheduleLimit {
            let now = cluster.simulator.now.nanoseconds
            // After the requests stop, only a departure still waiting for its node keeps the schedule going.
            var next = !healed ? healAt : now < stopAt ? stopAt : departure?.at ?? now
            if !healed, nextFault < plan.faults.count { next = min(next, plan.faults[nextFault].time.nanoseconds) }
            if let tick = workload.earliest, tick < stopAt { next = min(next, tick) }
            if scripted < script.count { next = min(next, script[scripted].time.nanoseconds) }
            if let departure { next = min(next, departure.at) }
            if let wake = cluster.nextWakeup { next = min(next, wake) }
            next = max(next, now)
            cluster.run(until: MonotonicInstant(nanoseconds: next))
            cluster.handleWakeups()
            while !healed, nextFault < plan.faults.count, plan.faults[nextFault].time.nanoseconds <= next {
                cluster.apply(plan.faults[nextFault].action)
                nextFault += 1
            }
            if let pending = departure, pending.at <= next {
                if pending.atMerge {
                    cluster.departAtMerge = pending.index
                    departure = nil
                } else if cluster.depart(pending.index) {
                    workload.stop(node: pending.index)
                    departure = nil
                } else {
                    departure?.at = next + 50_000_000
                }
            }
            if !healed && next >= healAt {
                cluster.heal()
                healed = true
            }
            for index in 0..<options.ring.nodes where workload.nextTick[index].map({ $0 <= next && $0 < stopAt }) ?? false {
                cluster.perform(workload.take(node: index), on: index)
            }
            while scripted < script.count, script[scripted].time.nanoseconds <= next {
                cluster.perform(script[scripted].operation, on: Int(script[scripted].node.rawValue) - 1)
                scripted += 1
            }
            if healed && next >= stopAt && departure == nil { return }
            if cluster.simulator.stall != nil { return }
        }
        cluster.report(ServiceViolation(.service, at: cluster.simulator.now, "the schedule did not end in \(Self.scheduleLimit) steps"))
    }

    private func describe(_ cluster: ServiceCluster) -> String {
        cluster.nodeIDs.enumerated().map { index, node in
            let simulator = cluster.simulator
            guard simulator.isRunning(node) else { return "node \(node) down" }
            let configuration = simulator.currentConfiguration(of: node).map {
                "\($0.kind.rawValue) \($0.ringID) \($0.members)"
            } ?? "no configuration"
            return "node \(node) \(simulator.membershipState(of: node).map(\.rawValue) ?? "?"), \(configuration), "
                + "backlog \(cluster.nodes[index]?.backlogCount ?? 0)"
        }.joined(separator: "; ")
    }
}
