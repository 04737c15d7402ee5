// A tiny, deterministic driver for unit tests of the core: N nodes, a FIFO network with an
// optional packet filter, and timers fired in deadline order. The full simulator, with faults
// and the EVS checker, is TotemSimulation; this one keeps unit tests free of it.
@testable import Totem

struct TestCluster {
    struct Record: Equatable {
        var node: NodeID
        var effect: Effect
    }

    var nodes: [NodeID: SingleRingProtocol] = [:]
    var now = MonotonicInstant.zero
    var inFlight: [(to: NodeID, packet: Packet)] = []
    var timers: [NodeID: [RingTimer: MonotonicInstant]] = [:]
    var persisted: [NodeID: UInt64] = [:]
    var delivered: [NodeID: [DeliveredMessage]] = [:]
    var configurations: [NodeID: [ConfigurationChange]] = [:]
    var log: [Record] = []
    /// Return false to drop a packet on its way to `to`.
    var filter: (_ packet: Packet, _ from: NodeID, _ to: NodeID) -> Bool = { _, _, _ in true }
    var settings: TotemSettings

    init(nodeCount: Int, settings: TotemSettings = .simulation, start: Bool = true) {
        self.settings = settings
        for raw in 1...UInt32(nodeCount) {
            let id = NodeID(raw)
            nodes[id] = SingleRingProtocol(nodeID: id, settings: settings, persistedRingSequence: nil)
        }
        if start {
            for id in nodes.keys.sorted() { startNode(id) }
        }
    }

    var ids: [NodeID] { nodes.keys.sorted() }

    mutating func startNode(_ id: NodeID) {
        guard var node = nodes[id] else { return }
        let effects = node.start(now: now)
        nodes[id] = node
        execute(effects, at: id)
    }

    mutating func crash(_ id: NodeID) {
        nodes[id] = nil
        timers[id] = nil
        inFlight.removeAll { $0.to == id }
    }

    mutating func restart(_ id: NodeID) {
        nodes[id] = SingleRingProtocol(nodeID: id, settings: settings, persistedRingSequence: persisted[id])
        startNode(id)
    }

    mutating func submit(_ payload: [UInt8], at id: NodeID, delivery: DeliveryMode = .agreed) throws {
        guard var node = nodes[id] else { return }
        let effects = try node.submit(payload, delivery: delivery, now: now)
        nodes[id] = node
        execute(effects, at: id)
    }

    mutating func leave(_ id: NodeID) {
        guard var node = nodes[id] else { return }
        let effects = node.leave(now: now)
        nodes[id] = node
        execute(effects, at: id)
        timers[id] = nil
    }

    mutating func execute(_ effects: [Effect], at id: NodeID) {
        for effect in effects {
            log.append(Record(node: id, effect: effect))
            switch effect {
            case .multicast(let packet):
                for destination in ids where filter(packet, id, destination) {
                    inFlight.append((destination, packet))
                }
            case .unicast(let packet, let destination):
                if filter(packet, id, destination) { inFlight.append((destination, packet)) }
            case .armTimer(let timer, let deadline):
                timers[id, default: [:]][timer] = deadline
            case .cancelTimer(let timer):
                timers[id]?[timer] = nil
            case .persistRingSequence(let sequence):
                persisted[id] = sequence
            case .deliver(let message):
                delivered[id, default: []].append(message)
            case .configurationChanged(let change):
                configurations[id, default: []].append(change)
            case .stateChanged:
                break
            }
        }
    }

    /// Delivers one in-flight packet, or fires the earliest timer. False when nothing is left
    /// or the next timer lies beyond `deadline`.
    mutating func step(until deadline: MonotonicInstant) -> Bool {
        if !inFlight.isEmpty {
            let (destination, packet) = inFlight.removeFirst()
            guard var node = nodes[destination] else { return true }
            let effects = node.receive(packet, now: now)
            nodes[destination] = node
            execute(effects, at: destination)
            return true
        }
        var earliest: (NodeID, RingTimer, MonotonicInstant)?
        for id in ids {
            for timer in RingTimer.allCases {
                guard let at = timers[id]?[timer] else { continue }
                if earliest == nil || at < earliest!.2 { earliest = (id, timer, at) }
            }
        }
        guard let (id, timer, at) = earliest, at <= deadline else { return false }
        timers[id]?[timer] = nil
        now = max(now, at)
        guard var node = nodes[id] else { return true }
        let effects = node.timerExpired(timer, now: now)
        nodes[id] = node
        execute(effects, at: id)
        return true
    }

    /// Runs until `duration` of virtual time has passed (bounded in steps).
    mutating func run(for duration: Duration) {
        let deadline = now + duration
        var steps = 0
        while steps < 2_000_000 && step(until: deadline) { steps += 1 }
        now = max(now, deadline)
    }

    func state(_ id: NodeID) -> MembershipState? { nodes[id]?.state }

    /// True when every given node is operational in one ring made of exactly them.
    func formedOneRing(of members: [NodeID]) -> Bool {
        guard let first = nodes[members[0]] else { return false }
        return members.allSatisfy { id in
            guard let node = nodes[id] else { return false }
            return node.state == .operational && node.ringID == first.ringID && node.members == members
        }
    }
}
