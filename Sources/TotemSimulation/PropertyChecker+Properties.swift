// The oracle's checks across histories: originators (E7), agreement on transitional
// configurations, virtual synchrony, total order, safe delivery and the liveness of a healed
// run. The pass that collects the histories is in PropertyChecker.swift.

import Totem

extension PropertyCheck {
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
