// The per-entity device-state cache (device → entity → state) and the cluster-wide aggregate
// of each device. Owns replacement, removal and recomputation; not who may write (the service).

import Membership
import Totem

/// One server's state of one device: what it last published, and the node that published it.
public struct ServerState: Sendable, Equatable {
    /// The server's entity id.
    public var entity: EntityID
    /// The node that published the state (the entity's node, from the event's publisher field).
    public var node: NodeID
    /// The state that server reports.
    public var state: DeviceStateValue

    /// Creates a per-server state.
    public init(entity: EntityID, node: NodeID, state: DeviceStateValue) {
        self.entity = entity
        self.node = node
        self.state = state
    }
}

/// A change of a device's cluster-wide (aggregate) state.
public struct DeviceStateChange: Sendable, Equatable {
    /// The device.
    public var device: DeviceName
    /// The aggregate before.
    public var old: DeviceStateValue
    /// The aggregate now.
    public var new: DeviceStateValue

    /// Creates a change.
    public init(device: DeviceName, old: DeviceStateValue, new: DeviceStateValue) {
        precondition(old != new, "no change for \(device): \(old)")
        self.device = device
        self.old = old
        self.new = new
    }
}

/// device → entity → state, with each device's aggregate kept up to date.
///
/// Exactly one slot per (device, entity): a newer state from the same entity replaces the older
/// (Asterisk's `DEVICE_STATE_CHANGE` cache key). A device with no slot left is dropped; its
/// state is then `unreported(device)`.
struct EntityCache: Sendable {
    struct Record: Sendable {
        /// Per-entity states; a handful of servers, so an array beats a dictionary.
        var servers: [ServerState]
        var aggregate: DeviceStateValue
    }

    private(set) var records: [DeviceName: Record] = [:]
    /// Slots per publishing node (nodes with none are absent): a configuration change whose
    /// members include every node listed here has nothing to remove, and costs no sweep.
    private(set) var slotsByNode: [NodeID: Int] = [:]

    /// The aggregate of `device` (INVALID when no server reports it).
    func aggregate(of device: DeviceName) -> DeviceStateValue { records[device]?.aggregate ?? Self.unreported(device) }

    /// The state of a device no server reports. `Custom:` devices are UNKNOWN (extension state
    /// Idle), as Asterisk's `Custom` provider answers for a name it has no astdb entry for; any
    /// other device is INVALID (the empty aggregate, extension state Unavailable): no provider
    /// here knows it, as Asterisk says of a device no channel driver claims.
    static func unreported(_ device: DeviceName) -> DeviceStateValue { device.isCustom ? .unknown : .invalid }

    /// The per-server states of `device`, ascending by entity id.
    func servers(of device: DeviceName) -> [ServerState] {
        (records[device]?.servers ?? []).sorted { $0.entity < $1.entity }
    }

    /// `entity`'s state of `device`, if it reports one.
    func state(of device: DeviceName, entity: EntityID) -> DeviceStateValue? {
        records[device]?.servers.first { $0.entity == entity }?.state
    }

    /// Stores `entity`'s state of `device`, replacing its previous one.
    ///
    /// - Returns: The aggregate change, if the aggregate moved.
    mutating func set(_ state: DeviceStateValue, of device: DeviceName, entity: EntityID, node: NodeID) -> DeviceStateChange? {
        let server = ServerState(entity: entity, node: node, state: state)
        var record = records[device] ?? Record(servers: [], aggregate: Self.unreported(device))
        if let index = record.servers.firstIndex(where: { $0.entity == entity }) {
            count(record.servers[index].node, by: -1)
            record.servers[index] = server
        } else {
            record.servers.append(server)
        }
        count(node, by: 1)
        return store(record, for: device)
    }

    /// Removes `entity`'s slot of `device`, if it has one.
    ///
    /// - Returns: The aggregate change, if the aggregate moved.
    mutating func remove(_ device: DeviceName, entity: EntityID) -> DeviceStateChange? {
        guard var record = records[device], let index = record.servers.firstIndex(where: { $0.entity == entity }) else { return nil }
        count(record.servers[index].node, by: -1)
        record.servers.remove(at: index)
        return store(record, for: device)
    }

    /// Removes every slot whose node is not in `members` (sorted ascending), except `keep`'s
    /// (this node's own entity always counts).
    ///
    /// Costs nothing when every node with slots is a member (the usual configuration change:
    /// nobody left, or only nodes without device states); otherwise one pass over the devices,
    /// and a sort of only the devices that lost a slot.
    ///
    /// - Returns: The aggregate changes, ascending by device name.
    mutating func removeServers(notIn members: [NodeID], keeping keep: EntityID) -> [DeviceStateChange] {
        guard slotsByNode.keys.contains(where: { !Self.contains(members, $0) }) else { return [] }
        let isRemoved = { (server: ServerState) in server.entity != keep && !Self.contains(members, server.node) }
        var affected: [DeviceName] = []
        for (device, record) in records where record.servers.contains(where: isRemoved) {
            affected.append(device)
        }
        affected.sort()
        var changes: [DeviceStateChange] = []
        for device in affected {
            guard var record = records[device] else { continue }
            for server in record.servers where isRemoved(server) { count(server.node, by: -1) }
            record.servers.removeAll(where: isRemoved)
            if let change = store(record, for: device) { changes.append(change) }
        }
        return changes
    }

    private mutating func count(_ node: NodeID, by delta: Int) {
        let total = slotsByNode[node, default: 0] + delta
        precondition(total >= 0, "node \(node) would hold \(total) slots")
        slotsByNode[node] = total == 0 ? nil : total
    }

    private mutating func store(_ record: Record, for device: DeviceName) -> DeviceStateChange? {
        var record = record
        let old = record.aggregate
        record.aggregate = record.servers.isEmpty ? Self.unreported(device) : DeviceStateAggregate.of(record.servers.map(\.state))
        records[device] = record.servers.isEmpty ? nil : record
        return old == record.aggregate ? nil : DeviceStateChange(device: device, old: old, new: record.aggregate)
    }

    private static func contains(_ sorted: [NodeID], _ node: NodeID) -> Bool {
        var low = 0
        var high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            if sorted[middle] < node { low = middle + 1 } else { high = middle }
        }
        return low < sorted.count && sorted[low] == node
    }

    /// Checks every record (see `checkRecord(of:)`) and the slot counts per node (linear in the
    /// cache: tests and debug builds, amortized by the service).
    func checkAggregates() {
        var slots: [NodeID: Int] = [:]
        for (device, record) in records {
            checkRecord(of: device)
            for server in record.servers { slots[server.node, default: 0] += 1 }
        }
        precondition(slots == slotsByNode, "slot counts per node \(slotsByNode), the records hold \(slots)")
    }

    /// Checks that `device`'s record, if any, has slots, one per entity, and an up-to-date aggregate.
    func checkRecord(of device: DeviceName) {
        guard let record = records[device] else { return }
        precondition(!record.servers.isEmpty, "empty record kept for \(device)")
        precondition(record.aggregate == DeviceStateAggregate.of(record.servers.map(\.state)),
                     "stale aggregate \(record.aggregate) for \(device)")
        for (index, server) in record.servers.enumerated() {
            precondition(!record.servers[..<index].contains { $0.entity == server.entity }, "two slots for \(server.entity) on \(device)")
        }
    }
}
