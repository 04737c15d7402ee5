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
        var check = Check(events: events, limitPerProperty: limitPerProperty)
        check.run(includingLiveness: includingLiveness)
        return Violation.Property.allCases.flatMap { check.found[$0] ?? [] }
    }
}

// MARK: - The checking pass

/// The state of one verification.
private struct Check {
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

    /// E7: the sender of a message installed the ring the message claims to be originated in.
    mutating func checkOriginators() {
        var historyOfIncarnation: [SenderKey: Int] = [:]
        for (index, history) in histories.enumerated() {
            historyOfIncarnation[SenderKey(node: history.node, incarnation: history.incarnation)] = index
        }
        let ordered = originRing.keys.sorted()
        for message in ordered {
            guard let ring = originRing[message]?.ring, let id = messageIDs[message],
                  let sender = historyOfIncarnation[SenderKey(node: id.node, incarnation: id.incarnation)] else { continue }
            if !installedRings[sender].contains(ring) {
                report(.originatingConfiguration, at: nil,
                       "\(id) is said to be originated in \(ring), which its sender \(histories[sender].label) never installed")
            }
        }
    }

    /// E5 for transitional configurations: the histories that move from C to R agree on the
    /// transitional members, which contain every history that moved from C to R and none that
    /// came to R from elsewhere.
    mutating func checkTransitionalAgreement() {
        var byTarget: [RingID: [Int]] = [:]
        for (position, transition) in transitions.enumerated() { byTarget[transition.to, default: []].append(position) }
        for position in transitions.indices {
            let transition = transitions[position]
            guard let from = transition.from, let group = byTarget[transition.to] else { continue }
            let label = histories[transition.history].label
            var together: [NodeID] = []
            var elsewhere: [NodeID] = []
            for other in group where other != position {
                let node = histories[transitions[other].history].node
                if transitions[other].from == from { together.append(node) } else { elsewhere.append(node) }
            }
            let members = transition.transitionalMembers
            let missing = together.sorted().filter { !members.contains($0) }
            if !missing.isEmpty {
                report(.configurationAgreement, at: transition.time,
                       "\(label) moved from \(from) to \(transition.to) with transitional \(list(members)), missing \(list(missing)) that moved the same way")
            }
            let strangers = elsewhere.sorted().filter { members.contains($0) }
            if !strangers.isEmpty {
                report(.configurationAgreement, at: transition.time,
                       "\(label) moved from \(from) to \(transition.to) with transitional \(list(members)), which includes \(list(strangers)) that came from another ring")
            }
            if let first = group.first(where: { transitions[$0].from == from }), first != position,
               transitions[first].transitionalMembers != members {
                report(.configurationAgreement, at: transition.time,
                       "\(label) moved from \(from) to \(transition.to) with transitional \(list(members)), \(histories[transitions[first].history].label) with \(list(transitions[first].transitionalMembers))")
            }
        }
    }

    /// E8: histories that moved together from C to R delivered the same messages in C and in
    /// the transitional configuration.
    mutating func checkVirtualSynchrony() {
        var firstOfGroup: [String: Int] = [:]
        for position in transitions.indices {
            let transition = transitions[position]
            guard let from = transition.from else { continue }
            let key = "\(from)>\(transition.to)"
            guard let first = firstOfGroup[key] else {
                firstOfGroup[key] = position
                continue
            }
            let reference = transitions[first]
            let label = histories[transition.history].label
            let referenceLabel = histories[reference.history].label
            if transition.inRegular != reference.inRegular {
                report(.virtualSynchrony, at: transition.time,
                       "\(label) and \(referenceLabel) moved from \(from) to \(transition.to) but delivered different messages in \(from): "
                           + difference(transition.inRegular, reference.inRegular, label, referenceLabel))
            }
            if transition.inTransitional != reference.inTransitional {
                report(.virtualSynchrony, at: transition.time,
                       "\(label) and \(referenceLabel) moved from \(from) to \(transition.to) but delivered different messages in the transitional configuration: "
                           + difference(transition.inTransitional, reference.inTransitional, label, referenceLabel))
            }
        }
    }

    func difference(_ a: Set<Int>, _ b: Set<Int>, _ aLabel: String, _ bLabel: String) -> String {
        let onlyA = a.subtracting(b).sorted()
        let onlyB = b.subtracting(a).sorted()
        var parts: [String] = []
        if !onlyA.isEmpty { parts.append("only \(aLabel) has \(names(onlyA))") }
        if !onlyB.isEmpty { parts.append("only \(bLabel) has \(names(onlyB))") }
        return parts.joined(separator: "; ")
    }

    func names(_ messages: [Int], limit: Int = 5) -> String {
        let shown = messages.prefix(limit).map(name).joined(separator: ", ")
        return messages.count > limit ? "\(shown) and \(messages.count - limit) more" : shown
    }

    /// E9: for every pair of histories, their common messages appear in the same order.
    mutating func checkTotalOrder() {
        // First deliveries only: a duplicate is E2's finding.
        let sequences: [[Int]] = histories.map { history in
            var seen: Set<Int> = []
            return history.entries.compactMap { entry in
                if case .deliver(_, _, let message) = entry, seen.insert(message).inserted { return message }
                return nil
            }
        }
        var position = Array(repeating: -1, count: messageIDs.count)
        for a in sequences.indices {
            for (offset, message) in sequences[a].enumerated() where position[message] < 0 {
                position[message] = offset
            }
            for b in sequences.indices where b > a {
                var last = -1
                var lastMessage = -1
                for message in sequences[b] {
                    let here = position[message]
                    guard here >= 0 else { continue }
                    if here < last {
                        report(.totalOrder, at: nil,
                               "\(histories[a].label) delivered \(name(message)) before \(name(lastMessage)), \(histories[b].label) after it")
                        break
                    }
                    last = here
                    lastMessage = message
                }
            }
            for message in sequences[a] { position[message] = -1 }
        }
    }

    /// E14: a safe message delivered in regular C reached every member of C that moved on.
    mutating func checkSafeDelivery() {
        for entry in safeInRegular {
            for transition in transitions where transition.from == entry.ring && transition.history != entry.history {
                if !transition.inRegular.contains(entry.message) && !transition.inTransitional.contains(entry.message) {
                    report(.safeDelivery, at: entry.time,
                           "\(histories[entry.history].label) delivered safe \(name(entry.message)) in regular \(entry.ring), but \(histories[transition.history].label) moved on to \(transition.to) without delivering it")
                }
            }
        }
    }

    /// E12, E13 and E15 at the end of a healed run.
    mutating func checkLiveness() {
        let live = histories.indices.filter { index in
            histories[index].status == .running && currentHistory[histories[index].node] == index
        }
        let liveNodes = live.map { histories[$0].node }.sorted()
        let endTime = events.last?.time
        guard !live.isEmpty else {
            report(.liveness, at: endTime, "no node is alive at the end of the run")
            return
        }
        var finals: [(index: Int, change: ConfigurationChange?, since: [Int])] = []
        for index in live {
            var last: ConfigurationChange?
            var since: [Int] = []
            for entry in histories[index].entries {
                switch entry {
                case .configuration(_, let change):
                    last = change
                    since = []
                case .deliver(_, _, let message):
                    since.append(message)
                }
            }
            finals.append((index, last, since))
        }
        let reference = finals[0]
        let agreed = finals.allSatisfy { final in
            guard let change = final.change, change.kind == .regular, change.members == liveNodes else { return false }
            return change.ringID == reference.change?.ringID
        }
        if !agreed {
            let states = finals.map { final in
                let state = final.change.map { "\($0.kind.rawValue) \($0.ringID) \(list($0.members))" } ?? "no configuration"
                return "node \(histories[final.index].node): \(state)"
            }
            report(.liveness, at: endTime,
                   "the live nodes \(list(liveNodes)) did not end in one regular configuration of exactly themselves: "
                       + states.joined(separator: "; "))
        } else {
            for final in finals.dropFirst() where final.since != reference.since {
                let ring = reference.change.map { "\($0.ringID)" } ?? "?"
                report(.liveness, at: endTime,
                       "\(histories[final.index].label) delivered \(final.since.count) messages in the final ring \(ring), \(histories[reference.index].label) \(reference.since.count): "
                           + difference(Set(final.since), Set(reference.since), histories[final.index].label, histories[reference.index].label))
            }
        }
        for index in live {
            let history = histories[index]
            var delivered: Set<MessageID> = []
            for entry in history.entries {
                if case .deliver(_, let record, _) = entry, let id = record.id, id.node == history.node { delivered.insert(id) }
            }
            let missing = sends.keys
                .filter { $0.node == history.node && $0.incarnation == history.incarnation && !delivered.contains($0) }
                .sorted()
            if !missing.isEmpty {
                let shown = missing.prefix(5).map(\.description).joined(separator: ", ")
                let more = missing.count > 5 ? " and \(missing.count - 5) more" : ""
                report(.selfDelivery, at: endTime,
                       "\(history.label) never delivered \(missing.count) of its own messages: \(shown)\(more)")
            }
        }
    }

    func list(_ nodes: [NodeID]) -> String {
        "[" + nodes.map(\.description).joined(separator: ",") + "]"
    }
}
