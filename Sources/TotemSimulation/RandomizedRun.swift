// One randomized run after TigerBeetle's VOPR (STYLE §6.3): a fault phase, a heal, a liveness
// phase, then the property check. It composes Simulator, FaultPlan, ApplicationLoad and
// PropertyChecker; the rules themselves live in those.

import Totem

/// The outcome of a randomized run.
public struct SimulationReport: Sendable {
    public var options: SimulationOptions
    public var trace: Trace
    public var violations: [Violation]
    /// When every node was idle in one ring after the heal, `nil` if it never was.
    public var convergedAt: MonotonicInstant?
    public var healedAt: MonotonicInstant
    public var faultCount: Int
    /// The planned faults, in time order.
    public var plan: FaultPlan = .none
    /// How many packet copies were late (`SimulationOptions.late`).
    public var latePackets = 0
    /// How many nodes crashed during a ring sequence persist.
    public var persistCrashes = 0
    /// How many multicasts nodes read before a token, draining their socket (`readLag`).
    public var multicastsReadBeforeTokens = 0

    /// `seed=S nodes=N sends=.. deliveries=.. configs=.. violations=V`.
    public var summaryLine: String {
        "seed=\(options.seed) nodes=\(options.nodes) sends=\(trace.sendCount) deliveries=\(trace.deliveryCount) configs=\(trace.configurationCount) violations=\(violations.count)"
    }

    public var replayCommand: String { options.replayCommand }

    /// What the fault phase did: the wider faults that happened and the planned faults.
    public func faultDescription(limit: Int = 40) -> [String] {
        var lines = ["faults: \(latePackets) late packets, \(persistCrashes) crashes during a persist, \(plan.faults.count) planned"]
        lines += plan.faults.prefix(limit).map { "  at \($0.time.milliseconds) ms: \($0.action)" }
        if plan.faults.count > limit { lines.append("  ... and \(plan.faults.count - limit) more") }
        return lines
    }

    /// The first `limit` violations, one per line, what the faults were, then the replay command.
    public func failureDescription(limit: Int = 20) -> String {
        var lines = violations.prefix(limit).map { "violation: \($0)" }
        if violations.count > limit { lines.append("... and \(violations.count - limit) more violations") }
        lines += faultDescription()
        lines.append("replay: \(replayCommand)")
        return lines.joined(separator: "\n")
    }
}

/// A randomized run: N nodes start at time 0 and the application of each submits messages at
/// `rate` (sizes uniform up to `maxSize`). During the fault phase the network loses, duplicates
/// and reorders packets and the `FaultPlan` applies partitions, crashes and pauses. Then `heal`:
/// the network is restored and crashed nodes restart. Submissions go on for
/// `submissionsAfterHeal`, stop, and the run continues until the nodes converge (one regular
/// ring of all nodes, everything delivered) or `convergenceBound` after the heal has passed;
/// after convergence it runs `settleTime` more to see the ring stay. Then the checker runs.
public struct RandomizedRun {
    public var options: SimulationOptions
    public var settings: TotemSettings
    public var submissionsAfterHeal: Duration = .seconds(2)
    public var convergenceBound: Duration = .seconds(60)
    public var settleTime: Duration = .seconds(1)
    /// Called between the steps of the run's schedule (faults, heal, submissions), for
    /// diagnostics.
    public var progress: ((Simulator) -> Void)?
    /// Handed to the simulator: sees every input and every batch of effects.
    public var observer: ((SimulatorObservation) -> Void)?

    public init(options: SimulationOptions, settings: TotemSettings = .simulation) {
        self.options = options
        self.settings = settings
    }

    public func run() -> SimulationReport {
        let conditions = NetworkConditions(
            loss: options.loss, duplicate: options.duplicate, reorder: options.reorder, late: options.late,
            multicastReadLag: options.readLag)
        var simulator = Simulator(
            nodeCount: options.nodes, settings: settings, seed: options.seed, network: conditions,
            startingNodes: false, recordsPayloads: false)
        simulator.observer = observer
        // Half the runs (even seeds) let crashed nodes' hosts answer unicasts with "port
        // unreachable", so that the early failure path meets every fault the plan makes.
        simulator.reportsUnreachable = options.seed % 2 == 0
        for node in simulator.nodeIDs { simulator.start(node: node) }
        let profile = LoadProfile(rate: options.rate, maxSize: options.maxSize, safeFraction: options.safe)
        var loads = (0..<options.nodes).map { index in
            ApplicationLoad(
                profile: profile,
                random: SeededGenerator(seed: options.seed, stream: RandomStream.load.rawValue + UInt64(index)),
                start: 0)
        }
        let healAt = Duration.milliseconds(options.durationMilliseconds).totalNanoseconds
        let plan = FaultPlan.random(
            seed: options.seed, nodeCount: options.nodes, settings: settings,
            faultPhase: .nanoseconds(healAt), partitions: options.partitions, crashes: options.crashes,
            maxGroups: options.maxGroups, overlapping: options.overlapping, persistCrashes: options.persistCrashes)
        let stopAt = healAt + submissionsAfterHeal.totalNanoseconds
        var runtimeProblems: [String] = []

        var nextFault = 0
        var healed = false
        while true {
            var next = healed ? stopAt : healAt
            if !healed, nextFault < plan.faults.count { next = min(next, plan.faults[nextFault].time.nanoseconds) }
            for load in loads { if let tick = load.nextTick, tick < next { next = tick } }
            simulator.run(until: MonotonicInstant(nanoseconds: next))
            progress?(simulator)
            while !healed, nextFault < plan.faults.count, plan.faults[nextFault].time.nanoseconds == next {
                simulator.apply(plan.faults[nextFault].action)
                nextFault += 1
            }
            if !healed && next == healAt {
                simulator.heal()
                healed = true
            }
            for index in loads.indices where loads[index].nextTick == next {
                submit(from: index, load: &loads[index], simulator: &simulator, problems: &runtimeProblems)
            }
            if healed && next == stopAt { break }
            if simulator.stall != nil { break }
        }

        let deadline = MonotonicInstant(nanoseconds: healAt) + convergenceBound
        let converged = simulator.run(untilConvergedWithin: deadline - simulator.now)
        let convergedAt = converged ? simulator.now : nil
        if converged { simulator.run(for: settleTime) }
        simulator.finish()

        // A stalled run ends early: its liveness is moot, the stall is the finding.
        var violations = simulator.checker.verify(includingLiveness: simulator.stall == nil ? nil : false)
        if !converged && simulator.stall == nil && !violations.contains(where: { $0.property == .liveness || $0.property == .selfDelivery }) {
            violations.append(Violation(.liveness, at: simulator.now,
                "the nodes did not become idle in one ring within \(convergenceBound.totalMilliseconds) ms after the heal: "
                    + nodeSummary(simulator)))
        }
        if let stall = simulator.stall {
            violations.append(Violation(.runtime, at: simulator.now, "the simulation stalled: \(stall)"))
        }
        for problem in runtimeProblems + simulator.anomalies {
            violations.append(Violation(.runtime, at: nil, problem))
        }
        return SimulationReport(
            options: options, trace: simulator.trace, violations: violations, convergedAt: convergedAt,
            healedAt: MonotonicInstant(nanoseconds: healAt), faultCount: plan.faults.count, plan: plan,
            latePackets: simulator.latePacketCount, persistCrashes: simulator.persistCrashCount,
            multicastsReadBeforeTokens: simulator.multicastsReadBeforeTokens)
    }

    private func submit(from index: Int, load: inout ApplicationLoad, simulator: inout Simulator, problems: inout [String]) {
        defer { load.advance() }
        let node = simulator.nodeIDs[index]
        guard simulator.isRunning(node), !simulator.isPaused(node) else { return }
        let message = load.currentMessage()
        do throws(SubmitError) {
            try simulator.submitGenerated(node: node, bodyBytes: message.bodyBytes, delivery: message.delivery)
            load.accepted()
        } catch {
            switch error {
            case .tryAgain:
                break  // The application offers the same message again at its next tick.
            case .notRunning:
                problems.append("\(simulator.now): node \(node) refused a message with notRunning while running")
                load.accepted()
            case .messageTooLarge(let size, let limit):
                problems.append("\(simulator.now): node \(node) refused a \(size)-byte message as larger than \(limit)")
                load.accepted()
            }
        }
    }

    private func nodeSummary(_ simulator: Simulator) -> String {
        simulator.nodeIDs.map { node in
            let state = simulator.membershipState(of: node).map(\.rawValue) ?? "?"
            let configuration = simulator.currentConfiguration(of: node).map {
                "\($0.kind.rawValue) \($0.ringID) [" + $0.members.map(\.description).joined(separator: ",") + "]"
            } ?? "no configuration"
            let own = simulator.deliveries(of: node).filter {
                $0.id?.node == node && $0.id?.incarnation == simulator.incarnation(of: node)
            }.count
            return "node \(node) \(simulator.isRunning(node) ? state : "down"), \(configuration), own \(own)/\(simulator.sentCount(of: node))"
        }.joined(separator: "; ")
    }
}
