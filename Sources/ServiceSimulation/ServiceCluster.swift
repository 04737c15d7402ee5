// The simulator's cores with the services on top: every configuration change and delivery a
// core makes goes, in order, to its node's services at that instant; their submits go back
// into that core; their writes to the node's disk; a crashed node's services die and a restarted
// node's start from its disk. It executes; the schedule is ServiceRun's, the judging
// ServiceChecker's. Client requests and faults are in ServiceCluster+Clients.swift.

import DeviceState
import Totem
import TotemSimulation

/// The ring events a simulator observer collected, waiting for the services. A class: the
/// observer closure appends while the simulator runs, and the cluster takes them in between.
final class RingEventInbox {
    enum Event {
        case configuration(ConfigurationChange)
        case delivery(sender: NodeID, payload: [UInt8])
    }

    struct Batch {
        var node: NodeID
        var time: MonotonicInstant
        var events: [Event]
    }

    private var batches: [Batch] = []
    private var head = 0

    var hasBatches: Bool { head < batches.count }

    /// The ring events among one batch of a core's effects, if any.
    func observe(_ observation: SimulatorObservation) {
        guard case .effects(let node, let time, let effects) = observation else { return }
        var events: [Event] = []
        for effect in effects {
            switch effect {
            case .deliver(let message):
                events.append(.delivery(sender: message.sender, payload: Array(MessageEnvelope.body(of: message.payload))))
            case .configurationChanged(let change):
                events.append(.configuration(change))
            default:
                break
            }
        }
        if !events.isEmpty { batches.append(Batch(node: node, time: time, events: events)) }
    }

    func takeFirst() -> Batch? {
        guard head < batches.count else { return nil }
        defer {
            head += 1
            if head == batches.count {
                batches.removeAll(keepingCapacity: true)
                head = 0
            }
        }
        return batches[head]
    }
}

/// What a service run counted.
public struct ServiceRunStatistics: Sendable, Equatable {
    /// Client requests performed (on running, unpaused nodes).
    public var operations = 0
    /// Deliveries and configuration changes fed to services.
    public var deliveries = 0
    public var configurations = 0
    /// Starts of a node's services (first starts and restarts).
    public var serviceStarts = 0
    /// Crashes during a services' disk write, and the writes they lost.
    public var diskCrashes = 0
    public var lostWrites = 0
    /// Nodes that left for good.
    public var departures = 0
    /// Submits the core refused with `tryAgain` (retried later).
    public var submitRetries = 0

    /// Adds another run's counts (a sweep's totals).
    public mutating func add(_ other: ServiceRunStatistics) {
        operations += other.operations
        deliveries += other.deliveries
        configurations += other.configurations
        serviceStarts += other.serviceStarts
        diskCrashes += other.diskCrashes
        lostWrites += other.lostWrites
        departures += other.departures
        submitRetries += other.submitRetries
    }

    /// `operations=.. deliveries=.. ...`, as a sweep's totals line shows them.
    public var description: String {
        "operations=\(operations) deliveries=\(deliveries) configurations=\(configurations) starts=\(serviceStarts) "
            + "disk-crashes=\(diskCrashes) lost-writes=\(lostWrites) departures=\(departures) submit-retries=\(submitRetries)"
    }
}

/// N simulated nodes, each a Totem core with its services, and the record the checker needs.
struct ServiceCluster {
    var simulator: Simulator
    let nodeIDs: [NodeID]
    var nodes: [SimulatedServiceNode?]
    var disks: [SimulatedDisk]
    var model: ServiceModel
    let inbox = RingEventInbox()
    private(set) var trace: [String] = []
    let recordsTrace: Bool
    /// The first violations found (at most `violationLimit`), and how many there were.
    private(set) var violations: [ServiceViolation] = []
    private(set) var violationCount = 0
    /// Per node: the members of the configuration its services were last given.
    private(set) var members: [[NodeID]]
    /// Per node: a crash is armed for its services' next disk write; and when it strikes once
    /// that write happened (virtual nanoseconds).
    var diskCrashArmed: [Bool]
    var diskCrashAt: [Int64?]
    var random: SeededGenerator
    var statistics = ServiceRunStatistics()
    let serviceDiskCrashes: Bool
    /// A node that leaves for good the instant it installs a regular configuration others
    /// joined (`ServiceRunOptions.Departure.atMerge`).
    var departAtMerge: Int?
    private var departureDue = false
    let plantedFault: (node: NodeID, fault: PlantedServiceFault)?

    static let violationLimit = 100
    static let traceLimit = 2_000_000
    /// Most batches of ring events handled in one `drain` (far above any run's need).
    static let drainLimit = 10_000_000

    init(options: ServiceRunOptions, settings: TotemSettings, recordsTrace: Bool,
         plantedFault: (node: NodeID, fault: PlantedServiceFault)?) {
        let ring = options.ring
        simulator = Simulator(
            nodeCount: ring.nodes, settings: settings, seed: ring.seed,
            network: NetworkConditions(loss: ring.loss, duplicate: ring.duplicate, reorder: ring.reorder, late: ring.late),
            startingNodes: false, recordsPayloads: false)
        simulator.reportsUnreachable = ring.seed % 2 == 0
        nodeIDs = simulator.nodeIDs
        nodes = Array(repeating: nil, count: ring.nodes)
        let empty = SimulatedServiceNode.emptyDisk
        disks = Array(repeating: SimulatedDisk(snapshot: empty.snapshot, log: empty.log), count: ring.nodes)
        model = ServiceModel(nodeCount: ring.nodes)
        members = Array(repeating: [], count: ring.nodes)
        diskCrashArmed = Array(repeating: false, count: ring.nodes)
        diskCrashAt = Array(repeating: nil, count: ring.nodes)
        random = SeededGenerator(seed: ring.seed, stream: ServiceStream.diskCrashes)
        serviceDiskCrashes = options.serviceDiskCrashes
        self.recordsTrace = recordsTrace
        self.plantedFault = plantedFault
        let inbox = self.inbox
        simulator.observer = { inbox.observe($0) }
        for node in nodeIDs { simulator.start(node: node) }
        drain()
    }

    // MARK: Running

    /// Runs the simulator until `deadline`, handing every ring event to the services as it happens.
    mutating func run(until deadline: MonotonicInstant) {
        let inbox = self.inbox
        for _ in 0..<Self.drainLimit {
            simulator.run(within: max(.zero, deadline - simulator.now), until: { _ in inbox.hasBatches })
            guard inbox.hasBatches, simulator.stall == nil else { return }
            drain()
        }
        report(ServiceViolation(.service, at: simulator.now, "the run did not reach \(deadline.milliseconds) ms in \(Self.drainLimit) steps"))
    }

    /// The earliest timer of the cluster itself: a node's backlog retry (its host's timer) or a
    /// disk crash about to strike.
    var nextWakeup: Int64? {
        (nodes.map { $0?.nextBacklogRetry?.nanoseconds } + diskCrashAt).compactMap { $0 }.min()
    }

    /// Runs what is due at the current instant: the hosts' timers (backlog retries) and disk crashes.
    mutating func handleWakeups() {
        let now = simulator.now
        for index in nodes.indices {
            guard let retry = nodes[index]?.nextBacklogRetry, retry <= now,
                  let effects = nodes[index]?.fireTimers(now: now) else { continue }
            execute(effects, on: index, at: now)
            flush(index)
        }
        for index in diskCrashAt.indices {
            guard let time = diskCrashAt[index], time <= now.nanoseconds else { continue }
            strikeDiskCrash(index)
        }
        drain()
    }

    /// Nothing left to do: one idle ring of the running nodes, no ring event waiting, no
    /// backlog, no disk crash pending.
    var isQuiet: Bool {
        !inbox.hasBatches && diskCrashAt.allSatisfy { $0 == nil } && nodes.allSatisfy { ($0?.backlogCount ?? 0) == 0 }
            && simulator.isConverged
    }

    /// Runs until `isQuiet` or until `limit` passed. Returns whether the cluster became quiet.
    mutating func runUntilQuiet(within limit: Duration) -> Bool {
        let deadline = simulator.now + limit
        let inbox = self.inbox
        for _ in 0..<Self.drainLimit {
            handleWakeups()
            if isQuiet { return true }
            guard simulator.now < deadline, simulator.stall == nil else { return false }
            var target = deadline
            if let wake = nextWakeup, wake < target.nanoseconds { target = MonotonicInstant(nanoseconds: wake) }
            if simulator.isConverged {
                // The ring is idle but the services wait for a timer (a retry): let time pass.
                run(until: max(target, simulator.now + .milliseconds(1)))
            } else {
                simulator.run(within: max(.zero, target - simulator.now), until: { inbox.hasBatches || $0.isConverged })
                drain()
            }
        }
        return isQuiet
    }

    // MARK: Ring events to services

    /// Hands every collected ring event to its node's services, in order.
    mutating func drain() {
        for _ in 0..<Self.drainLimit {
            guard let batch = inbox.takeFirst() else { break }
            let index = Int(batch.node.rawValue) - 1
            syncLifecycle(index)
            // Services that died with this batch (a crash during a ring sequence persist in it)
            // never see it; a restarted node's services see only its new incarnation's batches.
            guard nodes[index] != nil else { continue }
            for event in batch.events {
                switch event {
                case .configuration(let change): feed(change, to: index, at: batch.time)
                case .delivery(let sender, let payload): feed(payload, from: sender, to: index, at: batch.time)
                }
            }
            if let node = nodes[index] {
                for violation in ServiceChecker.checkDuringRun(node, members: members[index], model: model, at: batch.time) {
                    report(violation)
                }
            }
            flush(index)
        }
        for index in nodes.indices { syncLifecycle(index) }
        if departureDue, let index = departAtMerge {
            departureDue = false
            departAtMerge = nil
            _ = depart(index)
        }
    }

    private mutating func feed(_ change: ConfigurationChange, to index: Int, at time: MonotonicInstant) {
        statistics.configurations += 1
        model.configurationChanged(change, node: index)
        members[index] = change.members
        if index == departAtMerge, change.kind == .regular, !change.joined.isEmpty { departureDue = true }
        record(time, index, "\(change.kind.rawValue) \(change.ringID) members \(change.members)"
            + (change.left.isEmpty ? "" : " left \(change.left)") + (change.joined.isEmpty ? "" : " joined \(change.joined)"))
        guard let effects = nodes[index]?.configurationChanged(change, now: time) else { return }
        execute(effects, on: index, at: time)
    }

    private mutating func feed(_ payload: [UInt8], from sender: NodeID, to index: Int, at time: MonotonicInstant) {
        statistics.deliveries += 1
        let summary = SimulatedServiceNode.summarize(payload)
        model.delivered(summary, node: index, time: time)
        if recordsTrace { record(time, index, "deliver from \(sender): \(Self.describe(summary))") }
        guard let effects = nodes[index]?.delivered(payload, from: sender, now: time) else { return }
        execute(effects, on: index, at: time)
    }

    /// Executes what the services of node `index` asked (their submits wait in their backlog).
    mutating func execute(_ effects: [ServiceNodeEffect], on index: Int, at time: MonotonicInstant) {
        for effect in effects {
            switch effect {
            case .persist(let write):
                record(time, index, "persist \(write.summary)")
                if disks[index].append(write) {
                    // This write is the one a crash interrupts, within a few milliseconds (the
                    // daemon's writer thread is behind the ring: the submits may be out already).
                    diskCrashArmed[index] = false
                    diskCrashAt[index] = time.nanoseconds + random.integer(in: 0...3_000_000)
                    record(time, index, "the disk crash is armed on this write")
                }
            case .note(let text):
                record(time, index, text)
            case .anomaly(let text):
                report(ServiceViolation(.service, at: time, "node \(nodeIDs[index]): \(text)"))
            }
        }
    }

    /// Submits node `index`'s waiting messages to its core, oldest first, until the core says
    /// `tryAgain` (then the rest go back to its host's backlog, which arms its retry timer).
    mutating func flush(_ index: Int) {
        let node = nodeIDs[index]
        for _ in 0..<100_000 {
            // A submit can crash the node (its effects may hold a ring sequence persist that an
            // armed crash interrupts): its services die with it, and their backlog.
            guard simulator.isRunning(node), simulator.incarnation(of: node) == nodes[index]?.incarnation else {
                syncLifecycle(index)
                return
            }
            guard let bytes = nodes[index]?.nextSubmit else { return }
            do throws(SubmitError) {
                try simulator.submit(node: node, payload: bytes)
                nodes[index]?.submitTaken()
            } catch {
                switch error {
                case .tryAgain:
                    statistics.submitRetries += 1
                    if let effects = nodes[index]?.submitRefused(now: simulator.now) { execute(effects, on: index, at: simulator.now) }
                    return
                case .notRunning, .messageTooLarge:
                    report(ServiceViolation(.service, at: simulator.now, "node \(node)'s core refused a service message: \(error)"))
                    if let effects = nodes[index]?.submitFailed(error, now: simulator.now) { execute(effects, on: index, at: simulator.now) }
                }
            }
        }
    }

    // MARK: Lifecycles

    /// Makes node `index`'s services follow its core: they die when it stops (crash or leave)
    /// and start from its disk when a new incarnation runs.
    mutating func syncLifecycle(_ index: Int) {
        let id = nodeIDs[index]
        let running = simulator.isRunning(id)
        let incarnation = simulator.incarnation(of: id)
        if let node = nodes[index], !running || node.incarnation != incarnation {
            nodes[index] = nil
            servicesStopped(index)
        }
        guard nodes[index] == nil, running else { return }
        var node = SimulatedServiceNode(node: id, incarnation: incarnation, nodeCount: nodeIDs.count,
                                        snapshot: disks[index].snapshot, log: disks[index].log)
        if let plantedFault, plantedFault.node == id { node.plantedFault = plantedFault.fault }
        let compacted = node.compactedDisk
        disks[index].compact(snapshot: compacted.snapshot, log: compacted.log)
        model.started(node: index, own: node.ownMailboxes)
        statistics.serviceStarts += 1
        record(simulator.now, index, "services start (incarnation \(incarnation)) with \(ServiceChecker.describe(node.ownDevices))"
            + node.restoreProblems.map { "; \($0)" }.joined())
        if node.ownDevices != model.devices[index] {
            report(ServiceViolation(.persistence, at: simulator.now,
                "node \(id) restarted with its own states \(ServiceChecker.describe(node.ownDevices)) from its disk, but its clients "
                    + "left \(ServiceChecker.describe(model.devices[index]))"))
        }
        nodes[index] = node
    }

    private mutating func servicesStopped(_ index: Int) {
        let lost = disks[index].loseUnsynced(tornBytes: random.index(below: 40))
        if !lost.isEmpty {
            statistics.lostWrites += lost.count
            record(simulator.now, index, "the crash tore the disk: lost \(lost.map(\.description).joined(separator: ", "))")
            for problem in model.lose(lost, node: index) {
                report(ServiceViolation(.persistence, at: simulator.now, problem))
            }
        }
        diskCrashArmed[index] = false
        diskCrashAt[index] = nil
        disks[index].disarm()
        model.stopped(node: index)
        members[index] = []
        record(simulator.now, index, "services stop")
    }

    /// The crash armed on node `index`'s disk write strikes now.
    mutating func strikeDiskCrash(_ index: Int) {
        diskCrashAt[index] = nil
        statistics.diskCrashes += 1
        record(simulator.now, index, "crash during the services' disk write")
        simulator.crash(node: nodeIDs[index])
        syncLifecycle(index)
    }

    // MARK: Reporting

    mutating func report(_ violation: ServiceViolation) {
        violationCount += 1
        if violations.count < Self.violationLimit { violations.append(violation) }
        if recordsTrace { record(violation.time ?? simulator.now, nil, "VIOLATION \(violation)") }
    }

    mutating func record(_ time: MonotonicInstant, _ index: Int?, _ text: @autoclosure () -> String) {
        guard recordsTrace, trace.count < Self.traceLimit else { return }
        let milliseconds = Double(time.nanoseconds) / 1_000_000
        trace.append("\(milliseconds) ms " + (index.map { "node \($0 + 1): " } ?? "") + text())
    }

    private static func describe(_ summary: RingMessageSummary) -> String {
        switch summary {
        case .membership: return "membership announcement"
        case .unknown: return "a message for no service"
        case .undecodableEvent(let problem): return "an undecodable event (\(problem))"
        case .event(let event):
            let kind = event.republished ? "re-published event" : "event"
            switch event.content {
            case .deviceStates(let writes):
                return "\(kind) \(event.id) device states " + writes.map { "\($0.device)=\($0.state.map(\.name) ?? "cleared")" }
                    .joined(separator: " ")
            case .mailboxWrite(let mailbox, let counts, _): return "\(kind) \(event.id) mwi \(mailbox) \(counts)"
            case .mailboxRepublication(let mailbox, let counts, let stamp, let origin):
                return "\(kind) \(event.id) mwi \(mailbox) \(counts) stamped \(stamp) from node \(origin)"
            case .alert: return "\(kind) \(event.id) alert retained \(event.retentionMilliseconds) ms"
            case .other: return "\(kind) \(event.id)"
            }
        }
    }
}
