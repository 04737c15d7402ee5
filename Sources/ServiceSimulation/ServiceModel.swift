// The checker's own record of a service run, kept apart from the services: what each server's
// local table holds (from the clients' requests, minus what a crash lost), every state each
// server ever set, and, from the ring's deliveries read independently, which MWI writes and
// alerts each node has seen and where they stand in ring order. It records; ServiceChecker judges.

import DeviceState
import Totem

/// An MWI write as the model orders them: by stamp, then counts (`MailboxRecord.supersedes`:
/// equal stamps come only from a server that reused a ring sequence after a crash).
struct KnownWrite: Sendable, Equatable, Comparable, CustomStringConvertible {
    var stamp: WriteStamp
    var counts: MailboxCounts

    static func < (lhs: KnownWrite, rhs: KnownWrite) -> Bool { (lhs.stamp, lhs.counts) < (rhs.stamp, rhs.counts) }

    var description: String { "\(counts) at \(stamp)" }
}

/// What the model knows of one alert.
struct AlertRecord: Sendable {
    /// Retention of the original publication.
    var retentionMilliseconds: UInt32
    /// When a node first delivered the original (virtual nanoseconds): every node's copy expires
    /// no earlier than this plus the retention.
    var firstDelivery: Int64?
}

/// The record the checker compares the nodes with.
struct ServiceModel {
    let nodeCount: Int
    /// Per node: its server's own device states, as its clients left them (after losses).
    private(set) var devices: [[String: DeviceStateValue]]
    /// Per node: each effective device write, with the state before it, to undo a lost write.
    private var deviceWrites: [[(device: String, previous: DeviceStateValue?)]]
    /// Per device and server: every state that server ever set for it (any incarnation).
    private(set) var everSet: [String: [NodeID: Set<DeviceStateValue>]] = [:]
    /// Per mailbox: every count any server wrote.
    private(set) var mailboxCounts: [String: Set<MailboxCounts>] = [:]
    /// Per node: the ring position of its next event-service delivery (sequence of its last
    /// regular configuration, index counted from it).
    private var positions: [(sequence: UInt64, index: UInt64)]
    /// Per node, since its services last started: the latest MWI write it has seen per mailbox.
    private(set) var knownMailboxes: [[String: KnownWrite]]
    /// Per node, since its services last started: the alerts it delivered.
    private(set) var knownAlerts: [Set<String>]
    /// Every alert published (by event id).
    private(set) var alerts: [String: AlertRecord] = [:]

    init(nodeCount: Int) {
        self.nodeCount = nodeCount
        devices = Array(repeating: [:], count: nodeCount)
        deviceWrites = Array(repeating: [], count: nodeCount)
        positions = Array(repeating: (0, 0), count: nodeCount)
        knownMailboxes = Array(repeating: [:], count: nodeCount)
        knownAlerts = Array(repeating: [], count: nodeCount)
    }

    private static func node(_ index: Int) -> NodeID { NodeID(UInt32(index + 1)) }

    // MARK: Clients

    /// Node `index`'s client set `device` to `state` and the services took it.
    mutating func recordSet(_ state: DeviceStateValue, of device: String, node index: Int) {
        everSet[device, default: [:]][Self.node(index), default: []].insert(state)
        guard devices[index][device] != state else { return }
        deviceWrites[index].append((device, devices[index][device]))
        devices[index][device] = state
    }

    /// Node `index`'s client cleared `device`.
    mutating func recordClear(_ device: String, node index: Int) {
        guard let previous = devices[index].removeValue(forKey: device) else { return }
        deviceWrites[index].append((device, previous))
    }

    /// Node `index`'s client wrote MWI counts.
    mutating func recordMailbox(_ mailbox: String, counts: MailboxCounts) {
        mailboxCounts[mailbox, default: []].insert(counts)
    }

    /// A crash lost node `index`'s last writes (oldest first). Device writes are undone, newest
    /// first; each must be the model's own last write, else the services persisted something
    /// their clients did not ask for.
    ///
    /// - Returns: A description of each mismatch.
    mutating func lose(_ lost: [OwnWrite], node index: Int) -> [String] {
        var problems: [String] = []
        for write in lost.reversed() {
            guard case .device(let device, let state) = write else { continue }
            guard let last = deviceWrites[index].popLast() else {
                problems.append("node \(Self.node(index)) lost \(write), which its clients never asked for")
                continue
            }
            guard last.device == device, devices[index][device] == state else {
                problems.append("node \(Self.node(index)) lost \(write), but its clients' last change was of \(last.device) "
                    + "to \(devices[index][last.device].map(\.name) ?? "cleared")")
                continue
            }
            devices[index][device] = last.previous
        }
        return problems
    }

    // MARK: The ring, read independently

    /// Node `index`'s services were given `change`.
    mutating func configurationChanged(_ change: ConfigurationChange, node index: Int) {
        if change.kind == .regular { positions[index] = (change.ringID.sequence, 0) }
    }

    /// Node `index` delivered a message saying `summary` at `time`.
    mutating func delivered(_ summary: RingMessageSummary, node index: Int, time: MonotonicInstant) {
        let event: EventSummary
        switch summary {
        case .membership, .unknown: return
        case .undecodableEvent:
            positions[index].index += 1
            return
        case .event(let decoded):
            event = decoded
        }
        let position = positions[index]
        positions[index].index += 1
        switch event.content {
        case .mailboxWrite(let mailbox, let counts, let entity):
            learn(KnownWrite(stamp: WriteStamp(ringSequence: position.sequence, index: position.index, entity: entity), counts: counts),
                  of: mailbox, node: index)
        case .mailboxRepublication(let mailbox, let counts, let stamp, _):
            learn(KnownWrite(stamp: stamp, counts: counts), of: mailbox, node: index)
        case .alert:
            guard event.retentionMilliseconds > 0 else { return }
            knownAlerts[index].insert(event.id)
            if !event.republished {
                var record = alerts[event.id] ?? AlertRecord(retentionMilliseconds: event.retentionMilliseconds)
                record.firstDelivery = min(record.firstDelivery ?? time.nanoseconds, time.nanoseconds)
                alerts[event.id] = record
            }
        case .deviceStates, .other:
            break
        }
    }

    /// A client published alert `id` (retention in milliseconds, 0 for none).
    mutating func recordAlert(_ id: String, retentionMilliseconds: UInt32) {
        alerts[id] = alerts[id] ?? AlertRecord(retentionMilliseconds: retentionMilliseconds)
    }

    private mutating func learn(_ write: KnownWrite, of mailbox: String, node index: Int) {
        if let known = knownMailboxes[index][mailbox], !(known < write) { return }
        knownMailboxes[index][mailbox] = write
    }

    // MARK: Lifecycle

    /// Node `index`'s services stopped (crash or leave): what they knew is gone.
    mutating func stopped(node index: Int) {
        knownMailboxes[index] = [:]
        knownAlerts[index] = []
        positions[index] = (0, 0)
    }

    /// Node `index`'s services started from its disk, whose MWI entries are `own`: those with a
    /// stamp are writes it knows (it re-publishes them with that stamp).
    mutating func started(node index: Int, own: [String: (counts: MailboxCounts, stamp: WriteStamp?)]) {
        for (mailbox, entry) in own {
            if let stamp = entry.stamp { learn(KnownWrite(stamp: stamp, counts: entry.counts), of: mailbox, node: index) }
        }
    }
}
