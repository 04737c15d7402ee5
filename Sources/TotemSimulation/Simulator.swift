// N protocol cores in one process over a simulated network, on a virtual clock. It runs the
// cores, executes their effects and records a trace; it does not decide what the faults are
// (FaultPlan, RandomizedRun or a scripted test does) and does not judge (PropertyChecker does).

import Totem

/// A delivery as seen by a node's application in a simulation.
public struct SimulatedDelivery: Sendable, Equatable {
    public var time: MonotonicInstant
    /// The id from the payload's envelope, `nil` if it had none.
    public var id: MessageID?
    public var sender: NodeID
    public var ringID: RingID
    public var delivery: DeliveryMode
    /// The payload as submitted (without the simulator's envelope), if the simulator records
    /// payloads.
    public var payload: [UInt8]?
}

/// What a simulator observer sees: every input a core gets and the effects it answers with.
public enum SimulatorObservation {
    case packet(node: NodeID, time: MonotonicInstant, Packet)
    case timer(node: NodeID, time: MonotonicInstant, RingTimer)
    case effects(node: NodeID, time: MonotonicInstant, [Effect])
}

/// N Totem cores (node ids 1...N) over a simulated network on a virtual clock.
///
/// Deterministic: the same construction and the same calls give the same trace. Time advances
/// only in `run`; everything else (submissions, faults) happens at the current instant.
/// Effects are executed as `Effect` prescribes: in order, multicasts to every node including
/// the sender, `armTimer` replacing the pending deadline, the persisted ring sequence kept across
/// crashes. A node's own packets use a local loop that is never lost or cut.
///
/// ```swift
/// var simulation = Simulator(nodeCount: 3)
/// simulation.run(for: .seconds(2))
/// try simulation.submit(node: NodeID(1), payload: Array("hello".utf8))
/// simulation.partition([[NodeID(1)], [NodeID(2), NodeID(3)]])
/// simulation.run(for: .seconds(2))
/// simulation.heal()
/// let converged = simulation.run(untilConvergedWithin: .seconds(10))
/// simulation.finish()
/// let violations = simulation.checker.verify()
/// ```
public struct Simulator {
    /// The settings every core runs with.
    public let settings: TotemSettings
    /// The node ids, 1...N.
    public let nodeIDs: [NodeID]
    /// The virtual clock.
    public internal(set) var now: MonotonicInstant = .zero
    /// Everything that happened so far.
    public internal(set) var trace = Trace()
    /// Inspects every copy of every packet before the network handles it (scripted scenarios:
    /// "drop every token to node 3"). Also sees a node's packets to itself.
    public var packetFilter: ((PacketInFlight) -> PacketVerdict)?
    /// Sees every input and every batch of effects (diagnostics, step-by-step scenario traces).
    public var observer: ((SimulatorObservation) -> Void)?
    /// Keep delivered payloads in `deliveries(of:)` (off for long randomized runs).
    public var recordsPayloads: Bool
    /// Whether a unicast to a crashed node comes back as "port unreachable" (its host is up):
    /// the sender's core then gets `peerUnreachable`, as the runtime hands it the kernel's ICMP
    /// report. Off by default (a crashed host answers nothing).
    public var reportsUnreachable = false
    /// Whether a node that reads a token first reads the multicasts waiting unread in its
    /// socket, as the runtime does (spec §6.2 `receiveFlush`, pitfall P1; MulticastSocket.swift).
    /// Matters only with `NetworkConditions.multicastReadLag`; off models a runtime without it.
    public var drainsMulticastsBeforeTokens = true
    /// Problems of the run itself (e.g. a unicast to an unknown node), reported as violations
    /// by `RandomizedRun`.
    public internal(set) var anomalies: [String] = []

    /// Why the simulation stopped making progress (a packet storm or a zero-delay timer loop),
    /// `nil` while it is healthy. Once set, `run` processes nothing more.
    public internal(set) var stall: String?
    /// Most events one window of virtual time may hold before the run counts as stalled.
    public var stallEventLimit = 200_000
    /// The window for `stallEventLimit`.
    public var stallWindow: Duration = .milliseconds(10)

    var nodes: [SimulatedNode]
    static let unreachableReportDelay: Int64 = 100_000
    var windowStart: Int64 = 0
    var windowEvents = 0
    /// Input kinds counted while a window is suspiciously busy, to explain a stall.
    var busyInputs: [String: Int] = [:]
    var queue = EventQueue()
    var multicastSockets = MulticastSockets()
    var network: SimulatedNetwork
    /// The links each active overlapping episode cuts (see `Simulator+Faults`).
    var episodeLinks: [Int: [(from: Int, to: Int)]] = [:]
    /// Per node: its next persist crashes it (`FaultAction.crashDuringNextPersist`).
    var crashArmedAtPersist: [Bool]
    /// How many nodes crashed during a persist so far.
    public internal(set) var persistCrashCount = 0
    /// Set when a delivery, configuration or state change may have changed convergence.
    var convergenceMayHaveChanged = true
    /// Reused by `transmit` so that routing does not allocate.
    var arrivals: (Int64?, Int64?) = (nil, nil)
    var late = (false, false)
    /// The incarnation of an arrival that any incarnation of its destination takes.
    static let anyIncarnation = UInt32.max

    /// Creates `nodeCount` nodes (ids 1...N) and, with `startingNodes`, starts them all at time 0.
    /// - Parameters:
    ///   - seed: seeds the network's randomness (loss, duplication, reordering, delays).
    ///   - network: the network's behaviour between different nodes; change it later with
    ///     `networkConditions`.
    public init(
        nodeCount: Int, settings: TotemSettings = .simulation, seed: UInt64 = 0,
        network: NetworkConditions = .perfect, startingNodes: Bool = true, recordsPayloads: Bool = true
    ) {
        precondition(nodeCount >= 1 && nodeCount <= WireLimits.maxNodes, "node count \(nodeCount) outside 1...\(WireLimits.maxNodes)")
        self.settings = settings
        self.recordsPayloads = recordsPayloads
        nodeIDs = (1...nodeCount).map { NodeID(UInt32($0)) }
        nodes = nodeIDs.map { SimulatedNode(id: $0, settings: settings) }
        crashArmedAtPersist = Array(repeating: false, count: nodeCount)
        self.network = SimulatedNetwork(
            nodeCount: nodeCount, conditions: network,
            random: SeededGenerator(seed: seed, stream: RandomStream.network.rawValue))
        if startingNodes {
            for node in nodeIDs { start(node: node) }
        }
    }

    /// The network's loss, duplication, reordering and delays between different nodes.
    public var networkConditions: NetworkConditions {
        get { network.conditions }
        set { network.conditions = newValue }
    }

    // MARK: Running

    /// Processes every event up to and including `deadline`, then sets the clock to it.
    public mutating func run(until deadline: MonotonicInstant) {
        while stall == nil, let next = queue.nextTime, next <= deadline.nanoseconds {
            step()
        }
        if stall == nil && now < deadline { now = deadline }
    }

    /// Runs for `duration` of virtual time.
    public mutating func run(for duration: Duration) {
        run(until: now + duration)
    }

    /// Runs until `isConverged` or until `limit` has passed.
    /// - Returns: whether the nodes converged; the clock stops at that instant.
    @discardableResult
    public mutating func run(untilConvergedWithin limit: Duration) -> Bool {
        let deadline = (now + limit).nanoseconds
        if isConverged { return true }
        while stall == nil, let next = queue.nextTime, next <= deadline {
            step()
            if convergenceMayHaveChanged {
                convergenceMayHaveChanged = false
                if isConverged { return true }
            }
        }
        if stall == nil { now = MonotonicInstant(nanoseconds: deadline) }
        return isConverged
    }

    /// Runs until `condition` holds (checked after every event) or `limit` has passed.
    /// - Returns: whether the condition held.
    @discardableResult
    public mutating func run(within limit: Duration, until condition: (Simulator) -> Bool) -> Bool {
        let deadline = (now + limit).nanoseconds
        if condition(self) { return true }
        while stall == nil, let next = queue.nextTime, next <= deadline {
            step()
            if condition(self) { return true }
        }
        if stall == nil { now = MonotonicInstant(nanoseconds: deadline) }
        return condition(self)
    }

    /// Records the `end` of the run in the trace.
    public mutating func finish() {
        trace.append(TraceEvent(time: now, kind: .end))
    }

    /// Events (packets in flight, armed timers, pending resumes) waiting in the agenda, stale
    /// timer deadlines included.
    public var pendingEventCount: Int { queue.count }

    /// A checker over the trace so far.
    public var checker: PropertyChecker { PropertyChecker(trace: trace) }

    /// True when every running node is operational (as far as its `stateChanged` effects said),
    /// not paused, in one regular configuration of exactly the running nodes, has delivered all
    /// of its own messages, and all of them delivered the same number of messages in that ring.
    public var isConverged: Bool {
        guard let first = nodes.firstIndex(where: { $0.status == .running }),
              let ring = nodes[first].lastConfiguration, ring.kind == .regular else { return false }
        let expectedDeliveries = nodes[first].deliveriesSinceRegular
        var memberPosition = 0
        for index in nodes.indices where nodes[index].status == .running {
            guard memberPosition < ring.members.count, ring.members[memberPosition] == nodes[index].id else { return false }
            memberPosition += 1
            guard !nodes[index].isPaused, let current = nodes[index].lastConfiguration,
                  current.kind == .regular, current.ringID == ring.ringID else { return false }
            if let state = nodes[index].membershipState, state != .operational { return false }
            guard nodes[index].ownDelivered == Int(nodes[index].sentCount),
                  nodes[index].deliveriesSinceRegular == expectedDeliveries else { return false }
        }
        return memberPosition == ring.members.count
    }

    // MARK: Inspecting nodes

    /// Whether `node` is running (started, not crashed, not left). A paused node is running.
    public func isRunning(_ node: NodeID) -> Bool { self[node].status == .running }

    /// Whether `node` is paused.
    public func isPaused(_ node: NodeID) -> Bool { self[node].isPaused }

    /// The incarnation of `node` (0 before its first start).
    public func incarnation(of node: NodeID) -> UInt32 { self[node].incarnation }

    /// The membership state `node` last reported, `nil` before its first report.
    public func membershipState(of node: NodeID) -> MembershipState? { self[node].membershipState }

    /// The last ring sequence `node` asked to persist (survives crashes).
    public func persistedRingSequence(of node: NodeID) -> UInt64? { self[node].persistedRingSequence }

    /// The messages `node`'s current incarnation delivered, in order.
    public func deliveries(of node: NodeID) -> [SimulatedDelivery] { self[node].deliveries }

    /// The configurations `node`'s current incarnation installed, in order.
    public func configurations(of node: NodeID) -> [ConfigurationChange] { self[node].configurations }

    /// The last configuration `node`'s current incarnation installed.
    public func currentConfiguration(of node: NodeID) -> ConfigurationChange? { self[node].lastConfiguration }

    /// How many messages `node`'s current incarnation submitted successfully.
    public func sentCount(of node: NodeID) -> Int { Int(self[node].sentCount) }

    private subscript(node: NodeID) -> SimulatedNode { nodes[index(of: node)] }

    func index(of node: NodeID) -> Int {
        let index = Int(node.rawValue) - 1
        precondition(nodes.indices.contains(index), "node \(node) is not one of 1...\(nodes.count)")
        return index
    }

    // MARK: Application

    /// Submits `payload` from `node`'s application at the current instant. The core gets it
    /// behind a 12-byte envelope carrying the message id (so it counts 12 bytes more against
    /// `maxMessageBytes`); deliveries show it without the envelope.
    /// - Returns: the id of the accepted message.
    /// - Throws: the core's `SubmitError`; `.notRunning` if the node is not running.
    @discardableResult
    public mutating func submit(node: NodeID, payload: [UInt8], delivery: DeliveryMode = .agreed) throws(SubmitError) -> MessageID {
        let index = index(of: node)
        let id = MessageID(node: node, incarnation: nodes[index].incarnation, index: nodes[index].sentCount + 1)
        return try submit(MessageEnvelope.make(id, body: payload), id: id, at: index, delivery: delivery)
    }

    /// Submits a generated message of `bodyBytes` filler bytes (randomized load).
    @discardableResult
    mutating func submitGenerated(node: NodeID, bodyBytes: Int, delivery: DeliveryMode) throws(SubmitError) -> MessageID {
        let index = index(of: node)
        let id = MessageID(node: node, incarnation: nodes[index].incarnation, index: nodes[index].sentCount + 1)
        return try submit(MessageEnvelope.makeGenerated(id, bodyBytes: bodyBytes), id: id, at: index, delivery: delivery)
    }

    private mutating func submit(_ payload: [UInt8], id: MessageID, at index: Int, delivery: DeliveryMode) throws(SubmitError) -> MessageID {
        guard nodes[index].status == .running else { throw .notRunning }
        let effects = try nodes[index].core.submit(payload, delivery: delivery, now: now)
        nodes[index].sentCount += 1
        trace.append(TraceEvent(time: now, kind: .send(
            id: id, size: payload.count, digest: MessageEnvelope.digest(payload), delivery: delivery)))
        convergenceMayHaveChanged = true
        execute(effects, at: index)
        return id
    }

    // MARK: Process faults

    /// Starts `node` (first start, or restart after a crash or leave) as a new incarnation with
    /// its persisted ring sequence. Does nothing if it is running.
    public mutating func start(node: NodeID) {
        let index = index(of: node)
        start(at: index, persisted: nodes[index].persistedRingSequence)
    }

    /// Restarts a crashed (or left) `node` as a new incarnation with its persisted ring sequence.
    public mutating func restart(node: NodeID) {
        start(node: node)
    }

    /// Restarts a crashed (or left) `node` as a new incarnation with `persisted` as its stored
    /// ring sequence (`nil`: the file is missing, spec T23).
    public mutating func restart(node: NodeID, persisted: UInt64?) {
        let index = index(of: node)
        nodes[index].persistedRingSequence = persisted
        start(at: index, persisted: persisted)
    }

    private mutating func start(at index: Int, persisted: UInt64?) {
        guard nodes[index].status != .running else { return }
        nodes[index].beginIncarnation(settings: settings, persisted: persisted)
        trace.append(TraceEvent(time: now, kind: .start(node: nodes[index].id, incarnation: nodes[index].incarnation)))
        convergenceMayHaveChanged = true
        let effects = nodes[index].core.start(now: now)
        execute(effects, at: index)
    }

    /// Crashes `node`: its core, timers, queued input and packets in flight to it are lost; the
    /// persisted ring sequence survives. Does nothing if it is not running.
    public mutating func crash(node: NodeID) {
        let index = index(of: node)
        guard nodes[index].status == .running else { return }
        nodes[index].end(as: .crashed, settings: settings)
        trace.append(TraceEvent(time: now, kind: .crash(node: node)))
        convergenceMayHaveChanged = true
    }

    /// `node` leaves the ring gracefully (the core multicasts a LEAVE) and stops.
    public mutating func leave(node: NodeID) {
        let index = index(of: node)
        guard nodes[index].status == .running else { return }
        trace.append(TraceEvent(time: now, kind: .leave(node: node)))
        let effects = nodes[index].core.leave(now: now)
        execute(effects, at: index)
        nodes[index].end(as: .left, settings: settings)
        convergenceMayHaveChanged = true
    }

    /// Pauses `node` for `duration`: it processes nothing; packets and timer expiries are queued
    /// and handled, in order, when it resumes (spec T24). Its application keeps running.
    public mutating func pause(node: NodeID, for duration: Duration) {
        let index = index(of: node)
        guard nodes[index].status == .running, !nodes[index].isPaused else { return }
        nodes[index].isPaused = true
        nodes[index].pauseNumber += 1
        queue.schedule(.resume(index: index, pause: nodes[index].pauseNumber), at: (now + duration).nanoseconds)
        convergenceMayHaveChanged = true
    }

    /// Ends a pause of `node` now.
    public mutating func resume(node: NodeID) {
        resume(at: index(of: node))
    }

    mutating func resume(at index: Int) {
        guard nodes[index].isPaused else { return }
        nodes[index].isPaused = false
        convergenceMayHaveChanged = true
        let backlog = nodes[index].backlog
        nodes[index].backlog = []
        for event in backlog { handle(event) }
    }

    // MARK: Network faults

    /// Only nodes in the same group reach each other; nodes in no group are isolated.
    public mutating func partition(_ groups: [[NodeID]]) {
        var groupOf: [Int?] = Array(repeating: nil, count: nodes.count)
        for (group, members) in groups.enumerated() {
            for node in members { groupOf[index(of: node)] = group }
        }
        network.partition(groupOf: groupOf)
    }

    /// Packets from `from` no longer reach `to` (one direction).
    public mutating func cut(from: NodeID, to: NodeID) {
        network.setReachable(false, from: index(of: from), to: index(of: to))
    }

    /// Packets from `from` reach `to` again.
    public mutating func restore(from: NodeID, to: NodeID) {
        network.setReachable(true, from: index(of: from), to: index(of: to))
    }

    /// Whether packets from `from` currently reach `to`.
    public func isReachable(from: NodeID, to: NodeID) -> Bool {
        network.isReachable(from: index(of: from), to: index(of: to))
    }

    /// Restores every link (conditions such as loss stay as they are).
    public mutating func healNetwork() {
        network.healPartitions()
    }

    /// Ends all faults and records `heal` in the trace, after which the run must converge:
    /// every link restored, the network perfect, the packet filter removed, crashed nodes
    /// restarted (in id order), paused nodes resumed. Nodes that left stay out.
    public mutating func heal() {
        trace.append(TraceEvent(time: now, kind: .heal))
        network.healPartitions()
        endEpisodes()
        network.conditions = NetworkConditions(
            delay: network.conditions.delay, reorderDelay: network.conditions.reorderDelay,
            lateDelay: network.conditions.lateDelay)
        packetFilter = nil
        for index in crashArmedAtPersist.indices { crashArmedAtPersist[index] = false }
        for index in nodes.indices where nodes[index].status == .crashed {
            start(at: index, persisted: nodes[index].persistedRingSequence)
        }
        for index in nodes.indices where nodes[index].isPaused {
            resume(at: index)
        }
    }

    /// Applies one planned fault.
    public mutating func apply(_ action: FaultAction) {
        switch action {
        case .partition(let groups): partition(groups)
        case .cut(let from, let to): cut(from: from, to: to)
        case .restore(let from, let to): restore(from: from, to: to)
        case .healNetwork: healNetwork()
        case .crash(let node): crash(node: node)
        case .restart(let node):
            crashArmedAtPersist[index(of: node)] = false
            if self[node].status == .crashed { restart(node: node) }
        case .pause(let node, let duration): pause(node: node, for: duration)
        case .beginEpisode(let id, let episode): beginEpisode(id, episode)
        case .endEpisode(let id): endEpisode(id)
        case .crashDuringNextPersist(let node): crashDuringNextPersist(node: node)
        }
    }
}

/// One simulated node: its core and what the simulator tracks about it.
struct SimulatedNode {
    enum Status { case notStarted, running, crashed, left }

    let id: NodeID
    var core: SingleRingProtocol
    var status = Status.notStarted
    var incarnation: UInt32 = 0
    /// Per `RingTimer.rawValue`: the generation of the pending deadline; any other is stale.
    var timerGenerations = Array(repeating: UInt64(0), count: RingTimer.allCases.count)
    var isPaused = false
    var pauseNumber: UInt64 = 0
    /// Input that arrived while paused, in order.
    var backlog: [SimulationEvent] = []
    /// The last ring sequence the core asked to persist; survives crashes.
    var persistedRingSequence: UInt64?
    var membershipState: MembershipState?
    /// Messages the application of this incarnation submitted successfully.
    var sentCount: UInt32 = 0
    /// How many of those this incarnation delivered.
    var ownDelivered = 0
    var deliveries: [SimulatedDelivery] = []
    var configurations: [ConfigurationChange] = []
    var lastConfiguration: ConfigurationChange?
    var deliveriesSinceRegular = 0

    init(id: NodeID, settings: TotemSettings) {
        self.id = id
        core = SingleRingProtocol(nodeID: id, settings: settings, persistedRingSequence: nil)
    }

    mutating func beginIncarnation(settings: TotemSettings, persisted: UInt64?) {
        incarnation += 1
        status = .running
        core = SingleRingProtocol(nodeID: id, settings: settings, persistedRingSequence: persisted)
        for timer in timerGenerations.indices { timerGenerations[timer] &+= 1 }
        isPaused = false
        backlog = []
        membershipState = nil
        sentCount = 0
        ownDelivered = 0
        deliveries = []
        configurations = []
        lastConfiguration = nil
        deliveriesSinceRegular = 0
    }

    mutating func end(as status: Status, settings: TotemSettings) {
        self.status = status
        core = SingleRingProtocol(nodeID: id, settings: settings, persistedRingSequence: nil)
        for timer in timerGenerations.indices { timerGenerations[timer] &+= 1 }
        isPaused = false
        backlog = []
        membershipState = nil
    }
}
