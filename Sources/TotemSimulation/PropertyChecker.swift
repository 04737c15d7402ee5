// The oracle: checks a trace against the EVS properties of spec §1.7 and the liveness rules of a
// healed run. It only reads the trace; it knows nothing about the simulator or the core.

import Totem

/// A property a run broke, with readable text naming the node, ring and message involved.
public struct Violation: Sendable, Equatable, CustomStringConvertible {
    /// The properties of spec §1.7 the checker verifies (and the liveness rules of a healed run).
    public enum Property: String, Sendable, Hashable, CaseIterable {
        /// E1: every delivered message was sent, before it was delivered, unaltered, by the
        /// sender the core names, and every node agrees on the ring it was originated in.
        case integrity = "E1 integrity"
        /// E2: no node (incarnation) delivers a message twice.
        case atMostOnce = "E2 at-most-once"
        /// E3: a node is a member of every configuration it installs (except the empty
        /// transitional before an incarnation's first regular configuration).
        case selfInclusion = "E3 self-inclusion"
        /// E4: configurations alternate (transitional, regular)+ with the same ring id in each
        /// pair, and a node's regular ring sequence numbers strictly increase, across restarts too.
        case alternation = "E4 alternation"
        /// E5: one member list per regular ring id; nodes moving together from C to R agree on the
        /// transitional members, which are exactly the nodes that came from C.
        case configurationAgreement = "E5 configuration agreement"
        /// E6: transitional ⊆ previous regular ∩ next regular; `left` and `joined` are the differences.
        case subset = "E6 subset"
        /// E7: a message originated in ring C is delivered only in C or in the transitional right
        /// after C, and its sender installed C.
        case originatingConfiguration = "E7 originating configuration"
        /// E8: nodes moving together from C to R delivered the same set of C's messages in C and
        /// the same set in the transitional configuration.
        case virtualSynchrony = "E8 virtual synchrony"
        /// E9: any two nodes deliver their common messages in the same order.
        case totalOrder = "E9 total order"
        /// E10 as observable without sequence numbers: each node delivers one sender's messages
        /// in submission order, without holes within one originating ring.
        case senderOrder = "E10 sender order"
        /// E12: a node that does not crash delivers all of its own messages (checked at the end
        /// of a healed run).
        case selfDelivery = "E12 self-delivery"
        /// E14: a safe message delivered in a regular configuration C is delivered by every member
        /// of C that moves on from C.
        case safeDelivery = "E14 safe delivery"
        /// E15 and E13 after heal: every live node ends in one regular configuration of exactly
        /// the live nodes, and all of them delivered the same messages in it.
        case liveness = "E15 liveness"
        /// Not an EVS property: the core asked for something impossible (a unicast to an unknown
        /// node) or refused a valid submission.
        case runtime = "runtime"
    }

    public var property: Property
    /// When the violation became visible, if it is tied to one event.
    public var time: MonotonicInstant?
    public var text: String

    public init(_ property: Property, at time: MonotonicInstant?, _ text: String) {
        self.property = property
        self.time = time
        self.text = text
    }

    public var description: String {
        if let time { return "\(property.rawValue) at \(time): \(text)" }
        return "\(property.rawValue): \(text)"
    }
}

/// Checks a simulation trace for the EVS properties of spec §1.7.
///
/// Histories are per node incarnation: a restarted node starts a new history, and a crashed one
/// is checked for the prefix it lived. The liveness rules (E12, E15) apply only to a trace with
/// a `heal` event followed by `end`, unless `verify(includingLiveness:)` says otherwise.
///
/// Not checked, because a trace without sequence numbers cannot show it: E10's "no gaps" beyond
/// per-sender order, and E11 (causality of transitional deliveries after a gap).
public struct PropertyChecker: Sendable {
    public let events: [TraceEvent]
    /// At most this many violations are reported per property.
    public var limitPerProperty = 100

    public init(events: [TraceEvent]) {
        self.events = events
    }

    public init(trace: Trace) {
        self.events = trace.events
    }

    /// All violations found, grouped by property in the order of `Violation.Property`, each group
    /// in the order found. `includingLiveness: nil` checks liveness iff the trace has a `heal`
    /// followed by an `end`.
    public func verify(includingLiveness: Bool? = nil) -> [Violation] {
        var check = PropertyCheck(events: events, limitPerProperty: limitPerProperty)
        check.run(includingLiveness: includingLiveness)
        return Violation.Property.allCases.flatMap { check.found[$0] ?? [] }
    }
}

// MARK: - The checking pass

/// The state of one verification.
struct PropertyCheck {
    struct SendRecord {
        var time: MonotonicInstant
        var size: Int
        var digest: UInt64
        var delivery: DeliveryMode
    }

    enum Entry {
        case deliver(MonotonicInstant, DeliveryRecord, message: Int)
        case configuration(MonotonicInstant, ConfigurationChange)
    }

    enum Status { case running, crashed, left }

    struct History {
        var node: NodeID
        var incarnation: UInt32
        var entries: [Entry] = []
        var status = Status.running
        var label: String { "node \(node) (incarnation \(incarnation))" }
    }

    /// One move of one history from regular C (nil for an incarnation's first ring) to regular R.
    struct Transition {
        var history: Int
        var from: RingID?
        var to: RingID
        var time: MonotonicInstant
        var transitionalMembers: [NodeID]
        /// Messages delivered in C (after REGULAR C, before the transitional).
        var inRegular: Set<Int>
        /// Messages delivered in the transitional configuration.
        var inTransitional: Set<Int>
    }

    struct SenderKey: Hashable {
        var node: NodeID
        var incarnation: UInt32
    }

    let events: [TraceEvent]
    let limitPerProperty: Int
    var found: [Violation.Property: [Violation]] = [:]

    var sends: [MessageID: SendRecord] = [:]
    var messageNumbers: [MessageID: Int] = [:]
    var messageIDs: [MessageID?] = []
    var histories: [History] = []
    var currentHistory: [NodeID: Int] = [:]
    var healSeen = false
    var endAfterHeal = false

    var transitions: [Transition] = []
    /// Ring id → index of the first history that installed it and its members.
    var regularMembers: [RingID: (history: Int, members: [NodeID])] = [:]
    /// Per history: the ring ids it installed.
    var installedRings: [Set<RingID>] = []
    /// Message → ring it was originated in, as first reported.
    var originRing: [Int: (ring: RingID, history: Int)] = [:]
    /// Safe messages delivered in a regular configuration: (message, ring, history, time).
    var safeInRegular: [(message: Int, ring: RingID, history: Int, time: MonotonicInstant)] = []

    init(events: [TraceEvent], limitPerProperty: Int) {
        self.events = events
        self.limitPerProperty = limitPerProperty
    }

    mutating func report(_ property: Violation.Property, at time: MonotonicInstant?, _ text: String) {
        var list = found[property] ?? []
        guard list.count < limitPerProperty else { return }
        list.append(Violation(property, at: time, text))
        found[property] = list
    }

    func name(_ message: Int) -> String {
        messageIDs[message].map { String(describing: $0) } ?? "?"
    }

    mutating func number(of id: MessageID?) -> Int {
        if let id, let known = messageNumbers[id] { return known }
        let number = messageIDs.count
        messageIDs.append(id)
        if let id { messageNumbers[id] = number }
        return number
    }

    mutating func run(includingLiveness: Bool?) {
        collect()
        installedRings = Array(repeating: [], count: histories.count)
        var highestRegular: [NodeID: UInt64] = [:]
        for index in histories.indices {
            walk(history: index, highestRegular: &highestRegular)
        }
        checkOriginators()
        checkTransitionalAgreement()
        checkVirtualSynchrony()
        checkTotalOrder()
        checkSafeDelivery()
        if includingLiveness ?? endAfterHeal {
            checkLiveness()
        }
    }

    /// Splits the trace into per-incarnation histories and collects the sends.
    mutating func collect() {
        for event in events {
            switch event.kind {
            case .start(let node, let incarnation):
                currentHistory[node] = histories.count
                histories.append(History(node: node, incarnation: incarnation))
            case .crash(let node):
                if let index = currentHistory[node] { histories[index].status = .crashed }
            case .leave(let node):
                if let index = currentHistory[node] { histories[index].status = .left }
            case .send(let id, let size, let digest, let delivery):
                if sends[id] != nil {
                    report(.integrity, at: event.time, "message id \(id) was submitted twice")
                }
                sends[id] = SendRecord(time: event.time, size: size, digest: digest, delivery: delivery)
                _ = number(of: id)
            case .deliver(let node, let record):
                let index = history(of: node)
                let message = number(of: record.id)
                histories[index].entries.append(.deliver(event.time, record, message: message))
            case .configuration(let node, let change):
                let index = history(of: node)
                histories[index].entries.append(.configuration(event.time, change))
            case .heal:
                healSeen = true
            case .end:
                endAfterHeal = healSeen
            }
        }
    }

    /// The current history of `node`, created (incarnation 0) if the trace never started it.
    mutating func history(of node: NodeID) -> Int {
        if let index = currentHistory[node] { return index }
        currentHistory[node] = histories.count
        histories.append(History(node: node, incarnation: 0))
        return histories.count - 1
    }

    /// Checks one history in order: E1–E4, E6, E7, E10; records transitions for E5, E8, E14.
    mutating func walk(history index: Int, highestRegular: inout [NodeID: UInt64]) {
        let history = histories[index]
        let node = history.node
        var lastRegular: ConfigurationChange?
        var transitional: ConfigurationChange?
        var delivered: Set<Int> = []
        var inRegular: Set<Int> = []
        var inTransitional: Set<Int> = []
        var lastFromSender: [SenderKey: (index: UInt32, ring: RingID)] = [:]

        for entry in history.entries {
            switch entry {
            case .configuration(let time, let change):
                let isInitialTransitional = change.kind == .transitional && change.members.isEmpty && lastRegular == nil
                if !change.members.contains(node) && !isInitialTransitional {
                    report(.selfInclusion, at: time,
                           "\(history.label) installed \(change.kind.rawValue) \(change.ringID) \(list(change.members)) without itself")
                }
                switch change.kind {
                case .transitional:
                    if let pending = transitional {
                        report(.alternation, at: time,
                               "\(history.label) installed transitional \(change.ringID) right after transitional \(pending.ringID)")
                    }
                    checkTransitionalSubset(change, previous: lastRegular, history: history, time: time)
                    transitional = change
                case .regular:
                    guard let pending = transitional else {
                        report(.alternation, at: time,
                               "\(history.label) installed regular \(change.ringID) without a transitional configuration before it")
                        finishRegular(change, history: index, from: lastRegular, transitional: nil, time: time,
                                      inRegular: inRegular, inTransitional: inTransitional, highestRegular: &highestRegular)
                        lastRegular = change
                        inRegular = []
                        inTransitional = []
                        continue
                    }
                    if pending.ringID != change.ringID {
                        report(.alternation, at: time,
                               "\(history.label) installed transitional \(pending.ringID) but then regular \(change.ringID)")
                    }
                    checkRegularSubset(change, transitional: pending, history: history, time: time)
                    finishRegular(change, history: index, from: lastRegular, transitional: pending, time: time,
                                  inRegular: inRegular, inTransitional: inTransitional, highestRegular: &highestRegular)
                    lastRegular = change
                    transitional = nil
                    inRegular = []
                    inTransitional = []
                }
            case .deliver(let time, let record, let message):
                checkIntegrity(record, message: message, history: index, time: time)
                if !delivered.insert(message).inserted {
                    // The other checks look at first deliveries only: a duplicate is E2's finding.
                    report(.atMostOnce, at: time, "\(history.label) delivered \(name(message)) twice")
                    continue
                }
                guard let current = lastRegular else {
                    report(.originatingConfiguration, at: time,
                           "\(history.label) delivered \(name(message)) (originated in \(record.ringID)) before installing any regular configuration")
                    continue
                }
                if current.ringID != record.ringID {
                    let place = transitional.map { "in transitional \($0.ringID) after regular \(current.ringID)" }
                        ?? "in regular \(current.ringID)"
                    report(.originatingConfiguration, at: time,
                           "\(history.label) delivered \(name(message)) \(place), but it was originated in \(record.ringID)")
                }
                if transitional == nil {
                    inRegular.insert(message)
                    if record.delivery == .safe {
                        safeInRegular.append((message, current.ringID, index, time))
                    }
                } else {
                    inTransitional.insert(message)
                }
                if let id = record.id {
                    let key = SenderKey(node: id.node, incarnation: id.incarnation)
                    if let last = lastFromSender[key] {
                        if id.index <= last.index {
                            report(.senderOrder, at: time,
                                   "\(history.label) delivered \(id) after \(id.node).\(id.incarnation).\(last.index)")
                        } else if record.ringID == last.ring && id.index != last.index + 1 {
                            report(.senderOrder, at: time,
                                   "\(history.label) delivered \(id) right after \(id.node).\(id.incarnation).\(last.index) (both originated in \(record.ringID)): the messages between are missing")
                        }
                    }
                    lastFromSender[key] = (id.index, record.ringID)
                }
            }
        }
    }

    mutating func checkIntegrity(_ record: DeliveryRecord, message: Int, history index: Int, time: MonotonicInstant) {
        let history = histories[index]
        guard let id = record.id else {
            report(.integrity, at: time,
                   "\(history.label) delivered a \(record.size)-byte payload from \(record.sender) that carries no message id")
            return
        }
        guard let send = sends[id] else {
            report(.integrity, at: time, "\(history.label) delivered \(id), which was never sent")
            return
        }
        if send.time > time {
            report(.integrity, at: time, "\(history.label) delivered \(id) before it was sent (at \(send.time))")
        }
        if send.size != record.size || send.digest != record.digest {
            report(.integrity, at: time,
                   "\(history.label) delivered \(id) with different content (\(record.size) bytes, sent \(send.size))")
        }
        if record.sender != id.node {
            report(.integrity, at: time, "\(history.label) delivered \(id) as sent by node \(record.sender)")
        }
        if record.delivery != send.delivery {
            report(.integrity, at: time,
                   "\(history.label) delivered \(id) as \(record.delivery) but it was sent \(send.delivery)")
        }
        if let origin = originRing[message] {
            if origin.ring != record.ringID {
                report(.integrity, at: time,
                       "\(history.label) delivered \(id) as originated in \(record.ringID), \(histories[origin.history].label) in \(origin.ring)")
            }
        } else {
            originRing[message] = (record.ringID, index)
        }
    }

    mutating func checkTransitionalSubset(_ change: ConfigurationChange, previous: ConfigurationChange?, history: History, time: MonotonicInstant) {
        let previousMembers = previous?.members ?? []
        let outside = change.members.filter { !previousMembers.contains($0) }
        if !outside.isEmpty {
            let what = previous.map { "previous regular \($0.ringID) \(list($0.members))" } ?? "no previous regular configuration"
            report(.subset, at: time,
                   "\(history.label): transitional \(change.ringID) \(list(change.members)) has \(list(outside)) outside \(what)")
        }
        let expectedLeft = previousMembers.filter { !change.members.contains($0) }
        if change.left.sorted() != expectedLeft {
            report(.subset, at: time,
                   "\(history.label): transitional \(change.ringID) says left \(list(change.left)), expected \(list(expectedLeft))")
        }
    }

    mutating func checkRegularSubset(_ change: ConfigurationChange, transitional: ConfigurationChange, history: History, time: MonotonicInstant) {
        let outside = transitional.members.filter { !change.members.contains($0) }
        if !outside.isEmpty {
            report(.subset, at: time,
                   "\(history.label): transitional \(transitional.ringID) has \(list(outside)) outside the next regular \(change.ringID) \(list(change.members))")
        }
        let expectedJoined = change.members.filter { !transitional.members.contains($0) }
        if change.joined.sorted() != expectedJoined {
            report(.subset, at: time,
                   "\(history.label): regular \(change.ringID) says joined \(list(change.joined)), expected \(list(expectedJoined))")
        }
    }

    /// Bookkeeping when a history installs a regular configuration: E4 monotonicity, E5 member
    /// agreement, and the transition record.
    mutating func finishRegular(
        _ change: ConfigurationChange, history index: Int, from previous: ConfigurationChange?,
        transitional: ConfigurationChange?, time: MonotonicInstant,
        inRegular: Set<Int>, inTransitional: Set<Int>, highestRegular: inout [NodeID: UInt64]
    ) {
        let history = histories[index]
        if let highest = highestRegular[history.node], change.ringID.sequence <= highest {
            report(.alternation, at: time,
                   "\(history.label) installed regular \(change.ringID) after a regular ring with sequence \(highest)")
        }
        highestRegular[history.node] = max(highestRegular[history.node] ?? 0, change.ringID.sequence)
        if let first = regularMembers[change.ringID] {
            if first.members != change.members {
                report(.configurationAgreement, at: time,
                       "\(history.label) installed regular \(change.ringID) with members \(list(change.members)), \(histories[first.history].label) with \(list(first.members))")
            }
        } else {
            regularMembers[change.ringID] = (index, change.members)
        }
        installedRings[index].insert(change.ringID)
        // Without a transitional configuration (an E4 violation already reported) there is no
        // transition to compare with others.
        guard let transitional else { return }
        transitions.append(Transition(
            history: index, from: previous?.ringID, to: change.ringID, time: time,
            transitionalMembers: transitional.members.sorted(),
            inRegular: inRegular, inTransitional: inTransitional))
    }
}
