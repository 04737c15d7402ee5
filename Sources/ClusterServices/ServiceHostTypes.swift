// The values the services' host takes from clients and answers with: client and ping ids, watch
// topics, typed command results and errors. Their JSON is the daemon's.

import DeviceState
import EventService
import Membership
import Totem

/// A client of the host: one control connection, numbered by the shell. Opaque to the host.
public struct ClientID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static func < (lhs: ClientID, rhs: ClientID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "client \(rawValue)" }
}

/// One `ping` in flight: the id its request and replies carry on the ring.
public struct PingID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static func < (lhs: PingID, rhs: PingID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "ping \(rawValue)" }
}

/// What a watcher (`watch`, `subscribe`) can ask for.
public enum WatchTopic: String, CaseIterable, Sendable, Hashable {
    case membership, device, `extension`, mwi
    /// Other servers' own device states and departures (`server_device`, `server_left`), for
    /// adapters whose PBX aggregates per server; only when asked for.
    case servers

    /// The topics of a `watch`/`subscribe` that names none.
    public static let defaults: Set<WatchTopic> = [.membership, .device, .extension, .mwi]

    /// Position in `allCases`.
    var index: Int {
        switch self {
        case .membership: 0
        case .device: 1
        case .extension: 2
        case .mwi: 3
        case .servers: 4
        }
    }
}

/// Why the host refused a command. The texts are the control protocol's messages.
public enum ServiceHostError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The device-state service refused a local change (invalid, or at a cap).
    case deviceState(DeviceStateError)
    /// The event service refused a publication.
    case publish(EventPublishError)
    /// The event service refused a subscription.
    case subscribe(SubscribeError)
    /// The client holds `ServiceHost.subscriptionsPerClient` event subscriptions already.
    case tooManySubscriptions(limit: Int)
    /// An adapter publishes for another entity id than this server's.
    case entityMismatch(EntityMismatch)
    /// `ping` while this node is not running in a ring.
    case notInRing
    /// The daemon stopped before the answer was ready.
    case stopping

    public var description: String {
        switch self {
        case .deviceState(let error): error.description
        case .publish(let error): error.description
        case .subscribe(let error): error.description
        case .tooManySubscriptions(let limit): "this connection has \(limit) event subscriptions already"
        case .entityMismatch(let mismatch): mismatch.description
        case .notInRing: "this node is not in a ring"
        case .stopping: "the daemon is stopping"
        }
    }
}

/// An adapter that claims another entity id than this server's.
public struct EntityMismatch: Sendable, Equatable, CustomStringConvertible {
    /// The adapter's name.
    public var adapter: String
    /// The entity id it publishes for.
    public var claimed: EntityID
    /// This server's.
    public var own: EntityID
    /// Where this server's comes from (`ServiceHost.entityIDOrigin`).
    public var origin: String

    public var description: String {
        "\(adapter) publishes for entity id \(claimed), but this server's entity id is \(own) (\(origin)); "
            + "set [options] entity_id = \(claimed) in devcluster.conf and restart devclusterd, "
            + "or set entityid = \(own) in asterisk.conf, so that both name this server alike"
    }
}

/// A registered PBX adapter (`adapter_register`).
public struct AdapterRegistration: Sendable, Equatable {
    public var name: String
    public var entityID: EntityID
    public var systemName: String?
    public var version: String?

    public init(name: String, entityID: EntityID, systemName: String? = nil, version: String? = nil) {
        self.name = name
        self.entityID = entityID
        self.systemName = systemName
        self.version = version
    }
}

/// The answer to `watch`: the topics now watched (in `WatchTopic.allCases` order), and the
/// snapshot when asked for.
public struct WatchResult: Sendable, Equatable {
    public var topics: [WatchTopic]
    public var snapshot: ServicesSnapshot?
}

/// Everything an adapter needs to start from (`snapshot`): devices with each server's state,
/// hints, mailboxes, and this server's own states as it publishes them. Members are the daemon's
/// report (it adds the ring's state).
public struct ServicesSnapshot: Sendable, Equatable {
    /// This server's own state of one device.
    public struct LocalDevice: Sendable, Equatable {
        public var device: DeviceName
        public var state: DeviceStateValue
    }

    /// One mailbox this server publishes.
    public struct LocalMailbox: Sendable, Equatable {
        public var mailbox: MailboxName
        public var counts: MailboxCounts
    }

    public var entityID: EntityID
    /// Every device some server reports, ascending.
    public var devices: [DeviceSnapshot]
    /// The hints, in configuration order.
    public var hints: [HintRow]
    /// Every known mailbox, ascending.
    public var mailboxes: [MailboxRecord]
    /// This server's own device states, ascending by device.
    public var localDevices: [LocalDevice]
    /// This server's own mailboxes, ascending.
    public var localMailboxes: [LocalMailbox]
}

/// The answer to `devstate_clear`.
public struct ClearResult: Sendable, Equatable {
    /// The device's cluster-wide state now.
    public var snapshot: DeviceSnapshot
    /// Whether this server reported the device (and so cleared something).
    public var cleared: Bool
}

/// The answer to `event_subscribe`.
public struct EventSubscriptionResult: Sendable, Equatable {
    public var subscription: SubscriptionID
    public var channel: ChannelName
    /// Retained events matching it when it opened (replayed after the answer).
    public var replayed: Int
    /// The replay of those events, to start once the answer is sent (`continueReplay`); `nil`
    /// when there is nothing to replay.
    public var replay: RetainedReplay?
}

/// The answer to `ping`: each member's round trip through the ring, `nil` for a member that did
/// not answer within `timeout`. Nodes ascending.
public struct PingResult: Sendable, Equatable {
    public struct Node: Sendable, Equatable {
        public var node: NodeID
        public var roundTrip: Duration?
    }

    public var timeout: Duration
    public var nodes: [Node]
}
