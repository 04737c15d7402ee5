// The properties the services must keep under the simulator's faults: what every node may show
// while faults go on, and what every node must show once the cluster healed and went quiet. It
// compares the nodes' views (SimulatedServiceNode) with the model (ServiceModel); it runs nothing.

import DeviceState
import Totem

/// A broken property of a service run, with what was expected and what was found.
public struct ServiceViolation: Sendable, Equatable, CustomStringConvertible {
    public enum Property: String, Sendable {
        /// (a) A device's cluster-wide state or per-server states differ from Asterisk's
        /// aggregation over the live servers' last local states (or from another node), or a
        /// hint's extension state does not follow.
        case aggregate
        /// (b) A node holds a state of a server that departed (down, or not in its configuration).
        case departed
        /// (c) MWI differs from the last write in ring order.
        case mwi
        /// (d) A retained, unexpired alert is missing, or an alert nobody published is held.
        case retained
        /// (e) A node showed a state no server ever set (or counts nobody wrote).
        case invented
        /// A server's own table differs from what its clients left (persistence).
        case persistence
        /// The services did something no correct run does (an undecodable message, a refusal).
        case service
        /// The cluster did not become quiet in one ring after the heal.
        case convergence
        /// Membership views disagree after the heal.
        case membership
        /// The ring broke an EVS property (PropertyChecker) under the services' traffic.
        case ring
    }

    public var property: Property
    public var time: MonotonicInstant?
    public var message: String

    public init(_ property: Property, at time: MonotonicInstant?, _ message: String) {
        self.property = property
        self.time = time
        self.message = message
    }

    public var description: String {
        "[\(property.rawValue)]" + (time.map { " at \($0.milliseconds) ms" } ?? "") + ": \(message)"
    }
}

/// The checks of a service run.
enum ServiceChecker {
    /// The state of a device no live server reports, as the product defines it (DeviceState's
    /// `DistributedDeviceState`, departures from Asterisk): `Custom:` devices are UNKNOWN, as
    /// Asterisk's Custom provider answers without an astdb entry; others are INVALID, the empty
    /// aggregate (`ast_devstate_aggregate_result` of nothing).
    static func unreported(_ device: String) -> DeviceStateValue {
        device.hasPrefix("Custom:") ? .unknown : .invalid
    }

    /// The cluster-wide state of `device` over these per-server states: Asterisk's aggregation,
    /// as DeviceState implements it (`DeviceStateAggregate`, reference §2.1).
    static func expectedState(of device: String, servers: [NodeID: DeviceStateValue]) -> DeviceStateValue {
        servers.isEmpty ? unreported(device) : DeviceStateAggregate.of(servers.keys.sorted().compactMap { servers[$0] })
    }

    // MARK: During the fault phase

    /// What node `index` may show at any moment: per-server states each set by that server at
    /// some time (e), from servers in its current configuration or itself (b), aggregated as
    /// Asterisk does (e), and MWI counts some server wrote (e).
    static func checkDuringRun(_ node: SimulatedServiceNode, members: [NodeID], model: ServiceModel,
                               at time: MonotonicInstant) -> [ServiceViolation] {
        var violations: [ServiceViolation] = []
        for device in ServiceWorkload.devices {
            let view = node.device(device)
            for server in view.servers.keys.sorted() {
                guard let state = view.servers[server] else { continue }
                let set = model.everSet[device]?[server] ?? []
                if !set.contains(state) {
                    violations.append(ServiceViolation(.invented, at: time,
                        "node \(node.node) shows server \(server)'s state of \(device) as \(state), which server \(server) never set "
                            + "(it set: \(names(set)))"))
                }
                if server != node.node && !members.contains(server) {
                    violations.append(ServiceViolation(.departed, at: time,
                        "node \(node.node) holds server \(server)'s state \(state) of \(device), but server \(server) is not in its "
                            + "configuration \(members)"))
                }
            }
            let aggregate = expectedState(of: device, servers: view.servers)
            if view.state != aggregate {
                violations.append(ServiceViolation(.invented, at: time,
                    "node \(node.node) shows \(device) as \(view.state), but its servers' states \(describe(view.servers)) "
                        + "aggregate to \(aggregate)"))
            }
        }
        for mailbox in ServiceWorkload.mailboxes {
            guard let view = node.mailbox(mailbox) else { continue }
            if !(model.mailboxCounts[mailbox] ?? []).contains(view.counts) {
                violations.append(ServiceViolation(.invented, at: time,
                    "node \(node.node) shows MWI \(mailbox) as \(view.counts), which no server wrote"))
            }
        }
        return violations
    }

    // MARK: After the heal

    /// What every live node must show once the cluster is one quiet ring: (a) every device as
    /// the aggregate of the live servers' last local states, with exactly those per-server
    /// states, and every hint following; (b) nothing of servers that are down; (c) each mailbox
    /// as the latest write in ring order that a live node knows; (d) every alert a live node
    /// delivered that cannot have expired, and no alert nobody published; own tables as the
    /// clients left them; one membership view; and the nodes agree with each other.
    static func checkAfterHeal(_ nodes: inout [SimulatedServiceNode?], model: ServiceModel, now: MonotonicInstant,
                               retentionMargin: Duration) -> [ServiceViolation] {
        let live = nodes.indices.filter { nodes[$0] != nil }
        var violations: [ServiceViolation] = []
        func fail(_ property: ServiceViolation.Property, _ message: String) {
            violations.append(ServiceViolation(property, at: now, message))
        }
        let liveIDs = live.map { NodeID(UInt32($0 + 1)) }
        var expectedStates: [String: DeviceStateValue] = [:]
        for device in ServiceWorkload.devices {
            var servers: [NodeID: DeviceStateValue] = [:]
            for index in live { servers[NodeID(UInt32(index + 1))] = model.devices[index][device] }
            let expected = expectedState(of: device, servers: servers)
            expectedStates[device] = expected
            for index in live {
                guard let view = nodes[index]?.device(device) else { continue }
                let name = "node \(index + 1)"
                if view.state != expected {
                    fail(.aggregate, "\(name) shows \(device) as \(view.state), expected \(expected) (the aggregate of the live servers' "
                        + "last states \(describe(servers)); it holds \(describe(view.servers)))")
                }
                for server in view.servers.keys.sorted() where !liveIDs.contains(server) {
                    fail(.departed, "\(name) still holds \(device) = \(view.servers[server].map(\.name) ?? "?") of server \(server), "
                        + "which is down")
                }
                let held = view.servers.filter { liveIDs.contains($0.key) }
                if held != servers {
                    fail(.aggregate, "\(name) holds the live servers' states of \(device) as \(describe(held)), expected \(describe(servers))")
                }
            }
        }
        for hint in SimulatedServiceNode.hints {
            let expected = ExtensionState.of(hint.devices.compactMap { expectedStates[$0] ?? unreported($0) })
            for index in live where nodes[index]?.hintStates[hint.key] != expected {
                fail(.aggregate, "node \(index + 1) shows hint \(hint.key) as "
                    + "\(nodes[index]?.hintStates[hint.key].map(\.description) ?? "missing"), expected \(expected)")
            }
        }
        for mailbox in ServiceWorkload.mailboxes {
            let expected = live.compactMap { model.knownMailboxes[$0][mailbox] }.max()
            for index in live {
                let view = nodes[index]?.mailbox(mailbox)
                guard view.map({ KnownWrite(stamp: $0.stamp, counts: $0.counts) }) != expected else { continue }
                fail(.mwi, "node \(index + 1) shows MWI \(mailbox) as \(view.map(\.description) ?? "unknown"), expected the last write "
                    + "in ring order \(expected.map(\.description) ?? "none")")
            }
        }
        // The nodes among themselves: a disagreement is the services' doing whatever the model says.
        if let first = live.first, let reference = nodes[first] {
            for index in live.dropFirst() {
                guard let node = nodes[index] else { continue }
                for device in ServiceWorkload.devices where node.device(device) != reference.device(device) {
                    fail(.aggregate, "node \(index + 1) and node \(first + 1) disagree on \(device): \(node.device(device).state) "
                        + "\(describe(node.device(device).servers)) against \(reference.device(device).state) \(describe(reference.device(device).servers))")
                }
                for mailbox in ServiceWorkload.mailboxes where node.mailbox(mailbox) != reference.mailbox(mailbox) {
                    fail(.mwi, "node \(index + 1) and node \(first + 1) disagree on MWI \(mailbox): "
                        + "\(node.mailbox(mailbox).map(\.description) ?? "unknown") against \(reference.mailbox(mailbox).map(\.description) ?? "unknown")")
                }
            }
        }
        violations += checkRetained(&nodes, live: live, model: model, now: now, margin: retentionMargin)
        for index in live {
            guard let node = nodes[index] else { continue }
            if node.ownDevices != model.devices[index] {
                fail(.persistence, "node \(index + 1)'s own table is \(describe(node.ownDevices)), its clients left "
                    + "\(describe(model.devices[index]))")
            }
            guard let view = node.view, view.members == liveIDs else {
                fail(.membership, "node \(index + 1)'s membership view is \(node.view.map { "\($0.members) in \($0.ringID)" } ?? "none"), "
                    + "expected \(liveIDs)")
                continue
            }
            if let first = live.first, let other = nodes[first]?.view, other.ringID != view.ringID {
                fail(.membership, "node \(index + 1) installed ring \(view.ringID), node \(first + 1) \(other.ringID)")
            }
            for member in liveIDs where node.knownEntity(of: member) != SimulatedServiceNode.entity(of: member) {
                fail(.membership, "node \(index + 1) knows node \(member)'s entity as \(node.knownEntity(of: member).map { String($0, radix: 16) } ?? "nothing")")
            }
        }
        return violations
    }

    /// (d): every alert a live node delivered whose every copy outlives `now + margin` is held
    /// by every live node; nothing held was never published.
    private static func checkRetained(_ nodes: inout [SimulatedServiceNode?], live: [Int], model: ServiceModel,
                                      now: MonotonicInstant, margin: Duration) -> [ServiceViolation] {
        var expected = Set<String>()
        for index in live {
            for id in model.knownAlerts[index] {
                guard let record = model.alerts[id], let first = record.firstDelivery else { continue }
                let expiry = first + Int64(record.retentionMilliseconds) * 1_000_000
                if expiry > (now + margin).nanoseconds { expected.insert(id) }
            }
        }
        var violations: [ServiceViolation] = []
        for index in live {
            guard let held = nodes[index]?.retainedAlerts(now: now) else { continue }
            let missing = expected.subtracting(held).sorted()
            if !missing.isEmpty {
                violations.append(ServiceViolation(.retained, at: now,
                    "node \(index + 1) lacks \(missing.count) retained, unexpired alert(s): \(missing.prefix(8).joined(separator: ", "))"
                        + " (" + missing.prefix(3).map { id in
                            let record = model.alerts[id]
                            let holders = live.filter { model.knownAlerts[$0].contains(id) }.map { "\($0 + 1)" }.joined(separator: ",")
                            return "\(id): first delivered at \((record?.firstDelivery ?? 0) / 1_000_000) ms, retained "
                                + "\(record?.retentionMilliseconds ?? 0) ms, the ring delivered it to nodes \(holders)"
                        }.joined(separator: "; ") + ")"))
            }
            let unknown = held.filter { model.alerts[$0] == nil }.sorted()
            if !unknown.isEmpty {
                violations.append(ServiceViolation(.retained, at: now,
                    "node \(index + 1) holds alert(s) nobody published: \(unknown.prefix(8).joined(separator: ", "))"))
            }
        }
        return violations
    }

    private static func names(_ states: Set<DeviceStateValue>) -> String {
        states.isEmpty ? "nothing" : states.map(\.name).sorted().joined(separator: ", ")
    }

    static func describe(_ servers: [NodeID: DeviceStateValue]) -> String {
        "{" + servers.keys.sorted().compactMap { node in servers[node].map { "\(node): \($0.name)" } }.joined(separator: ", ") + "}"
    }

    static func describe(_ table: [String: DeviceStateValue]) -> String {
        "{" + table.keys.sorted().compactMap { device in table[device].map { "\(device): \($0.name)" } }.joined(separator: ", ") + "}"
    }
}
