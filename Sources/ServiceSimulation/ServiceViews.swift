// The values SimulatedServiceNode hands to the rest of the service simulation: what a node
// shows, what it writes to its disk, what it asks of the harness, and what a ring message says.
// Plain data; nothing here calls a service.

import DeviceState
import Totem

/// A device as one node shows it: the cluster-wide state and the per-server states behind it.
public struct DeviceView: Sendable, Equatable {
    public var state: DeviceStateValue
    /// Each server's own state of the device, by the node that published it.
    public var servers: [NodeID: DeviceStateValue]

    public init(state: DeviceStateValue, servers: [NodeID: DeviceStateValue]) {
        self.state = state
        self.servers = servers
    }
}

/// Where an MWI write stands in ring order: the ring sequence and index of its original
/// delivery (counted in event-service messages from the ring's regular configuration), then the
/// writer's entity id (two concurrent rings can share a sequence).
public struct WriteStamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var ringSequence: UInt64
    public var index: UInt64
    public var entity: UInt64

    public init(ringSequence: UInt64, index: UInt64, entity: UInt64) {
        self.ringSequence = ringSequence
        self.index = index
        self.entity = entity
    }

    public static func < (lhs: WriteStamp, rhs: WriteStamp) -> Bool {
        (lhs.ringSequence, lhs.index, lhs.entity) < (rhs.ringSequence, rhs.index, rhs.entity)
    }

    public var description: String { "\(ringSequence):\(index) by \(String(entity, radix: 16))" }
}

/// A mailbox's cluster-wide MWI as one node shows it.
public struct MailboxView: Sendable, Equatable, CustomStringConvertible {
    public var counts: MailboxCounts
    public var stamp: WriteStamp
    /// The node that wrote it.
    public var origin: NodeID

    public init(counts: MailboxCounts, stamp: WriteStamp, origin: NodeID) {
        self.counts = counts
        self.stamp = stamp
        self.origin = origin
    }

    public var description: String { "\(counts) at \(stamp) from node \(origin)" }
}

/// One change of a server's own state, as its services asked to persist it.
public enum OwnWrite: Sendable, Equatable, CustomStringConvertible {
    /// A device's own state set (`nil`: cleared).
    case device(String, DeviceStateValue?)
    /// A mailbox's published counts (`nil`: no longer published), with or without the ring
    /// position of its delivery.
    case mailbox(String, MailboxCounts?, positioned: Bool)

    public var description: String {
        switch self {
        case .device(let device, let state): "device \(device) = \(state.map(\.name) ?? "cleared")"
        case .mailbox(let mailbox, let counts, let positioned):
            "mailbox \(mailbox) = \(counts.map(\.description) ?? "removed")\(positioned ? " (delivered)" : "")"
        }
    }
}

/// A `persist` effect: the record to append to the node's disk (opaque bytes) and what it says.
public struct PersistedWrite: Sendable, Equatable {
    public var record: [UInt8]
    public var summary: OwnWrite

    public init(record: [UInt8], summary: OwnWrite) {
        self.record = record
        self.summary = summary
    }
}

/// What a node's services ask of the harness besides ring submits (those wait in the node's
/// backlog, `SimulatedServiceNode.nextSubmit`).
public enum ServiceNodeEffect: Sendable, Equatable {
    /// Append this write to the node's disk, in order.
    case persist(PersistedWrite)
    /// Something the services told their watchers (for the trace).
    case note(String)
    /// Something no correct run produces: a service message that does not decode, a refused
    /// entry, a refused client request. The run reports it.
    case anomaly(String)
}

/// One device's state in a device-state message (`nil`: the server cleared it).
public struct DeviceWrite: Sendable, Equatable {
    public var device: String
    public var state: DeviceStateValue?

    public init(device: String, state: DeviceStateValue?) {
        self.device = device
        self.state = state
    }
}

/// What an event-service message carries.
public enum EventContent: Sendable, Equatable {
    /// The publisher's own states (one set or clear, or a join re-publication's batch).
    case deviceStates([DeviceWrite])
    /// A fresh MWI write, stamped where it is delivered.
    case mailboxWrite(mailbox: String, counts: MailboxCounts, entity: UInt64)
    /// A re-published MWI record with its original stamp.
    case mailboxRepublication(mailbox: String, counts: MailboxCounts, stamp: WriteStamp, origin: NodeID)
    /// A client's alert.
    case alert
    case other
}

/// An event-service message: its id (`EventID` text), publisher and retention.
public struct EventSummary: Sendable, Equatable {
    public var id: String
    public var publisher: NodeID
    public var retentionMilliseconds: UInt32
    /// A re-publication of a retained event after a join (not the original).
    public var republished: Bool
    public var content: EventContent
}

/// What a delivered ring payload is.
public enum RingMessageSummary: Sendable, Equatable {
    case membership
    case event(EventSummary)
    /// Addressed to the event service but not decodable (it still takes a ring position).
    case undecodableEvent(String)
    case unknown
}

/// A bug a test plants in one node's services to show that the checker catches it. Internal:
/// only `@testable` test code can set it.
enum PlantedServiceFault: Sendable, Equatable {
    /// The node skips its `n`-th event-service delivery (1 is the first).
    case skipEventDelivery(Int)
    /// The node's device state never hears that a server left: departed servers' states stay.
    case keepDepartedServers
    /// Every single device state delivered to the node is read as this state.
    case rewriteDeviceStates(DeviceStateValue)
}
