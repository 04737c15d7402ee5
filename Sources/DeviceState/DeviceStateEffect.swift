// What the device-state service asks of the daemon, its configuration, errors and snapshots.

import EventService
import Membership
import Totem

/// What the device-state service asks the daemon to do, in the order returned.
///
/// Execute in order. `persist` hands over one change of the local state table, to be appended to
/// the state directory's change log (`LocalStateLog`) in order; the daemon writes it off the
/// ring's thread, so a crash within milliseconds of a change may restart without it (a PBX adapter
/// re-sends its states when it reconnects).
public enum DeviceStateEffect: Sendable, Equatable {
    /// Submit these bytes to the ring (they already carry the service envelope).
    case submit([UInt8])
    /// Record this change of `localState` durably (in order with the earlier ones).
    case persist(LocalStateChange)
    /// A device's cluster-wide state changed: tell device-state subscribers (PBX adapters, CLI
    /// watchers).
    case deviceStateChanged(DeviceStateChange)
    /// A hint's extension state changed: tell its watchers.
    case extensionStateChanged(ExtensionStateChange)
    /// A mailbox's cluster-wide counts changed: tell MWI subscribers.
    case mailboxChanged(MailboxChange)
    /// Another server's own state of one device changed (`state` nil: it no longer reports the
    /// device): tell adapters that aggregate per server themselves (Asterisk's `res_devcluster`).
    case serverStateChanged(ServerStateChange)
    /// A server whose device states this node held left the configuration: its slots no longer
    /// count. Adapters purge every entry carrying its entity id.
    case serverLeft(entity: EntityID, node: NodeID)
    /// An event of type `device_state` or `mwi` carried a payload that does not decode; it was
    /// ignored (log and count it).
    case rejectedEvent(EventID, ServiceWireError)
    /// A remote entry was refused at a cap (`DeviceStateLimits`); nothing changed (log and count it).
    case entryRefused(RefusedEntry)
    /// An event-service effect for a subscription opened through `subscribeEvents` (or the
    /// confirmation of a `publishEvent`): pass it to that client.
    case event(EventServiceEffect)
}

/// The device-state service's configuration, from the daemon's.
public struct DeviceStateConfiguration: Sendable {
    /// This node.
    public var localNode: NodeID
    /// This server's entity id, which tags its device states.
    public var entityID: EntityID
    /// This process's incarnation (greater at every start of this node).
    public var incarnation: UInt64
    /// The event channels (`publish_event`/`subscribe_event` with `device_state` and `mwi`).
    public var channels: [ChannelConfiguration]
    /// The hints, in configuration order.
    public var hints: [Hint]
    /// The local state table read back from the state file (empty on a first start).
    public var restoredLocalState: LocalStateTable
    /// Caps on devices and mailboxes.
    public var limits: DeviceStateLimits
    /// The most bytes of retained events the event service keeps (`[options] max_retained_bytes`).
    public var retainedEventBytes: Int

    /// Creates a configuration.
    public init(localNode: NodeID, entityID: EntityID, incarnation: UInt64, channels: [ChannelConfiguration],
                hints: [Hint] = [], restoredLocalState: LocalStateTable = LocalStateTable(),
                limits: DeviceStateLimits = DeviceStateLimits(), retainedEventBytes: Int = EventLimits.defaultRetainedBytes) {
        self.limits = limits
        self.retainedEventBytes = retainedEventBytes
        self.localNode = localNode
        self.entityID = entityID
        self.incarnation = incarnation
        self.channels = channels
        self.hints = hints
        self.restoredLocalState = restoredLocalState
    }
}

/// Caps on what the device-state service holds, so that nothing a client or a remote node sends
/// grows memory (or the state file) without bound.
///
/// - `maxDevices`: the most devices one server reports. This server's own (`setLocalState` of a
///   new device at the cap throws `tooManyDevices`), and each other node's: a remote state of a
///   new device from a node that already holds `maxDevices` slots is refused (counted in
///   `remoteDevicesRefused`, told as `entryRefused`). Per publishing node, so every node of a ring
///   refuses the same states (they see the same deliveries).
/// - `maxMailboxes`: the most mailboxes this server publishes (`setMailbox` of a new mailbox at
///   the cap throws `tooManyMailboxes`), and the most cluster-wide MWI records it keeps (a record
///   of a new mailbox beyond it is refused, counted in `remoteMailboxesRefused`).
///
/// A restored state table larger than the caps is kept whole (it was accepted before); only new
/// entries are refused. Both caps are at most `maximum`, the state file format's limit.
public struct DeviceStateLimits: Sendable, Equatable {
    /// The default of `maxDevices`.
    public static let defaultMaxDevices = 100_000
    /// The default of `maxMailboxes`.
    public static let defaultMaxMailboxes = 100_000
    /// The largest cap: the state file holds at most this many devices and as many mailboxes.
    public static let maximum = LocalStateTable.maxEntries

    /// The most devices one server reports.
    public var maxDevices: Int
    /// The most mailboxes published here, and kept cluster-wide.
    public var maxMailboxes: Int

    /// Creates caps, each 1...`maximum`.
    public init(maxDevices: Int = defaultMaxDevices, maxMailboxes: Int = defaultMaxMailboxes) {
        precondition((1...Self.maximum).contains(maxDevices), "max devices \(maxDevices) outside 1...\(Self.maximum)")
        precondition((1...Self.maximum).contains(maxMailboxes), "max mailboxes \(maxMailboxes) outside 1...\(Self.maximum)")
        self.maxDevices = maxDevices
        self.maxMailboxes = maxMailboxes
    }
}

/// A remote entry the service refused because a cap was reached (`DeviceStateLimits`).
public enum RefusedEntry: Sendable, Equatable, CustomStringConvertible {
    /// A state of a new device from `node`, which already reports `limit` devices.
    case device(DeviceName, node: NodeID, limit: Int)
    /// A record of a new mailbox, published by `node`, with `limit` mailboxes already known.
    case mailbox(MailboxName, node: NodeID, limit: Int)

    public var description: String {
        switch self {
        case .device(let device, let node, let limit):
            "the state of device \(device) from node \(node), which already reports \(limit) devices ([options] max_devices)"
        case .mailbox(let mailbox, let node, let limit):
            "the MWI of mailbox \(mailbox) from node \(node): \(limit) mailboxes are known already ([options] max_mailboxes)"
        }
    }
}

/// Why the device-state service refused its configuration.
public enum DeviceStateConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The channel configuration is invalid.
    case channels(ChannelConfigurationError)
    /// Two hints have the same key.
    case duplicateHint(HintKey)

    public var description: String {
        switch self {
        case .channels(let error): error.description
        case .duplicateHint(let key): "hint \(key) is configured twice"
        }
    }
}

/// Why a local request was refused. Texts are meant for the CLI user.
public enum DeviceStateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A state name that is none of the nine; `valid` lists them.
    case unknownStateName(String, valid: [String])
    /// A device name that breaks `DeviceName` rules.
    case invalidDeviceName(String, reason: String)
    /// A mailbox that is not `MAILBOX[@CONTEXT]` with valid parts.
    case invalidMailbox(String)
    /// A hint key or device list that is not valid.
    case invalidHint(String, reason: String)
    /// No hint has this key.
    case unknownHint(HintKey)
    /// No channel lets this node publish `mwi`, so it cannot set MWI.
    case mwiNotPublished
    /// No channel lets this node publish `device_state`: a state set here would reach no other
    /// server, so it is refused (as MWI is).
    case deviceStateNotPublished
    /// A name (`field`: device name, mailbox, mailbox context, hint extension or context)
    /// contains a control, format or space character; `character` is the first.
    case invisibleCharacter(field: String, name: String, InvisibleCharacter)
    /// This server already reports `limit` devices (`DeviceStateLimits.maxDevices`).
    case tooManyDevices(limit: Int)
    /// This server already publishes `limit` mailboxes (`DeviceStateLimits.maxMailboxes`).
    case tooManyMailboxes(limit: Int)

    // Names in these texts are escaped (`InvisibleCharacter.escaped`): a refused name must not
    // reach a terminal or a log raw.
    public var description: String {
        switch self {
        case .unknownStateName(let name, let valid):
            "unknown device state \"\(InvisibleCharacter.escaped(name))\"; valid states: \(valid.joined(separator: ", "))"
        case .invalidDeviceName(let name, let reason):
            "invalid device name \"\(InvisibleCharacter.escaped(name))\": \(reason)"
        case .invalidMailbox(let text):
            "invalid mailbox \"\(InvisibleCharacter.escaped(text))\": expected MAILBOX@CONTEXT, 1-80 printable characters each, without '@' or spaces"
        case .invalidHint(let text, let reason):
            "invalid hint \"\(InvisibleCharacter.escaped(text))\": \(reason)"
        case .invisibleCharacter(let field, let name, let character):
            "\(field) contains \(character): \"\(InvisibleCharacter.escaped(name))\""
        case .tooManyDevices(let limit):
            "this server already reports \(limit) devices, the most [options] max_devices allows; "
                + "clear devices it no longer needs (devstate clear) or raise max_devices"
        case .tooManyMailboxes(let limit):
            "this server already publishes \(limit) mailboxes, the most [options] max_mailboxes allows; raise max_mailboxes"
        case .unknownHint(let key):
            "no hint \(key)"
        case .mwiNotPublished:
            "no event channel publishes mwi on this node, so no other server would see it; "
                + "add an event channel with publish_event = mwi (as [mwi] in the README)"
        case .deviceStateNotPublished:
            "no event channel publishes device_state on this node, so no other server would see the state; "
                + "add an event channel with publish_event = device_state (as [device_state] in the README)"
        }
    }
}

/// What `devstate get` shows: the cluster-wide state and the per-server breakdown.
public struct DeviceSnapshot: Sendable, Equatable {
    /// The device.
    public var device: DeviceName
    /// The cluster-wide (aggregate) state; INVALID when no server reports the device.
    public var state: DeviceStateValue
    /// Each reporting server's state, ascending by entity id.
    public var servers: [ServerState]

    /// Creates a snapshot.
    public init(device: DeviceName, state: DeviceStateValue, servers: [ServerState]) {
        self.device = device
        self.state = state
        self.servers = servers
    }
}

/// A change of one other server's own state of one device.
public struct ServerStateChange: Sendable, Equatable {
    /// The device.
    public var device: DeviceName
    /// The server's entity id.
    public var entity: EntityID
    /// The node that published it.
    public var node: NodeID
    /// The server's state now; `nil` when it no longer reports the device.
    public var state: DeviceStateValue?

    /// Creates a change.
    public init(device: DeviceName, entity: EntityID, node: NodeID, state: DeviceStateValue?) {
        self.device = device
        self.entity = entity
        self.node = node
        self.state = state
    }
}

/// Counters of the device-state service, for `status` and debugging.
public struct DeviceStateStatistics: Sendable, Equatable {
    /// Local device-state changes (clears included).
    public var localChanges = 0
    /// Remote device states removed because their server cleared them.
    public var remoteStatesCleared = 0
    /// Remote device states applied to the cache.
    public var remoteStatesApplied = 0
    /// Device states ignored because their publisher is not a member of the configuration.
    public var ignoredFromNonMembers = 0
    /// Device states from another node claiming this server's entity id (a misconfiguration).
    public var ownEntityConflicts = 0
    /// MWI updates applied (counts or stamp moved).
    public var mailboxUpdatesApplied = 0
    /// MWI updates older than the record held, ignored.
    public var staleMailboxUpdates = 0
    /// Events whose payload did not decode (a name with a control or format character included).
    public var rejectedPayloads = 0
    /// Remote device states refused at `DeviceStateLimits.maxDevices`.
    public var remoteDevicesRefused = 0
    /// MWI records refused at `DeviceStateLimits.maxMailboxes`.
    public var remoteMailboxesRefused = 0
    /// Device states and MWI records re-published after joins, once per channel (device states
    /// travel several to a message).
    public var republished = 0

    /// All zero.
    public init() {}
}

/// Why `DeviceStateService.publishEvent` refused an event.
public enum EventPublishError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `device_state` and `mwi` carry this service's own payloads; clients set them with
    /// `setLocalState` / `setMailbox` (`devstate_set`, `mwi_set`).
    case reservedType(EventType)
    /// The event service refused it.
    case refused(PublishError)

    public var description: String {
        switch self {
        case .reservedType(let type):
            "events of type \(type) are published by the device-state service; use \(type == .mwi ? "mwi_set" : "devstate_set")"
        case .refused(let error):
            error.description
        }
    }
}
