// The cluster services as one pure host: MembershipService and DeviceStateService (with its event
// channels) plus what running them for clients takes: the submit backlog, flow control, timers,
// the ring ping, watchers, event subscriptions, adapters and rate-limited logs. Stored state,
// creation and queries here; each input has its own file. No clock, socket or file: the shell
// (devclusterd's ClusterHub) passes time in and executes the effects.

import DeviceState
import EventService
import Membership
import Totem

/// The services of one server as a pure state machine: ring events, client commands and time in,
/// effects out (the instance of swift-cluster-membership's Instance/Shell/Directive split).
///
/// Inputs, each with `now` (the host never reads a clock) and an array its effects are
/// appended to, which the caller keeps from input to input:
/// - the ring: `configurationChanged(_:now:into:)`, `delivered(_:from:now:ringQueuedBytes:into:)`
///   (routed by the message's first byte, its `ServiceID`), and the outcome of the shell's ring
///   submits: `submitRefused(_:now:into:)` and `submitFailed(_:error:queued:now:into:)`;
/// - clients, each known by the `ClientID` the shell gives its connection: one function per
///   control command (`setDeviceState`, `watch`, `ping`, ...), and `clientClosed`;
/// - timers: `timerFired(_:now:ringQueuedBytes:into:)` for the `Timer`s it armed;
/// - `stop(into:)` when the daemon stops.
///
/// Outputs: `Effect`s, executed in order (see `Effect` for the contract). Commands answer with
/// their typed result (or throw `ServiceHostError`); only `ping` answers later, by an effect.
public struct ServiceHost: Sendable {
    /// The node directory, views and quorum.
    public internal(set) var membership: MembershipService
    /// Device states, hints, MWI and the event channels they travel on.
    public internal(set) var deviceState: DeviceStateService
    /// Names of nodes for log lines.
    let nodeNames: [NodeID: String]
    /// Where this server's entity id comes from, for an adapter's mismatch.
    let entityIDOrigin: String

    // Ring submits and flow control (ServiceHost+FlowControl.swift).
    var backlog = SubmitBacklog(limit: ServiceHost.backlogLimit)
    /// Clients not read while the ring catches up, ascending.
    var heldClients: [ClientID] = []

    // Clients (ServiceHost+Clients.swift, ServiceHost+Events.swift, ServiceHost+Adapters.swift).
    var watchers = WatcherTable()
    var subscriptionOwners = SubscriptionOwners()
    var adapters: [ClientID: AdapterRegistration] = [:]
    /// Adapter entity-id mismatches already logged (adapter name and id).
    var reportedMismatches: Set<String> = []

    /// The deadline the expiry timer is armed for, if any.
    var armedExpiry: MonotonicInstant?
    /// Pings waiting for replies (ServiceHost+Ping.swift).
    var pings = PendingPings()

    // Ring inputs (ServiceHost+Ring.swift).
    /// The nodes of the last transitional configuration that left gracefully (the others
    /// failed), for the `left` notifications of that change.
    var leftGracefully: Set<NodeID> = []
    /// Entity-id conflicts already logged.
    var reportedEntityConflicts: [EntityConflict] = []
    /// Retained events dropped at a cap, already logged (event cap, byte cap).
    var loggedRetentionDrops = (events: 0, bytes: 0)
    var limitedLog = RateLimitedLog(interval: ServiceHost.limitedLogInterval)
    /// Scratch for `delivered`: one message's device-state effects. Empty between calls.
    var deliveredEffectScratch: [DeviceStateEffect] = []

    // MARK: Constants

    /// The most ring messages kept waiting; beyond it the oldest are dropped (and logged).
    public static let backlogLimit = 100_000
    /// How often a backlog is retried while the ring refuses.
    public static let backlogRetry = Duration.milliseconds(5)
    /// The most backlog messages one drain hands out; more follow at the next turn of the loop.
    public static let backlogDrainBatch = 1_024
    /// Above this many bytes queued for the ring (or with any backlog), a client that submits is held.
    public static let holdAboveBytes = 256 << 10
    /// Held clients are released when the ring's queue is below this and the backlog empty.
    public static let releaseBelowBytes = 128 << 10
    /// How often held clients are checked when no delivery comes to check them.
    public static let releaseCheckInterval = Duration.milliseconds(2)
    /// The least time between two lines of one rate-limited log key.
    public static let limitedLogInterval = Duration.seconds(10)
    /// How long `ping` waits for the members' replies.
    public static let pingTimeout = Duration.seconds(2)
    /// The most event subscriptions one client may hold.
    public static let subscriptionsPerClient = 64
    /// How much of a replay is handed out at a time (retained bytes, as `max_retained_bytes`
    /// counts them; at least one event).
    public static let replayStretchBytes = 64 << 10

    /// Creates the host around services built from the configuration (and restored state).
    ///
    /// - Parameters:
    ///   - membership: The membership service.
    ///   - deviceState: The device-state service (it owns the event channels).
    ///   - nodeNames: The configured nodes' names, for log lines; others are `node<ID>`.
    ///   - entityIDOrigin: Where this server's entity id comes from, told to an adapter that
    ///     claims another (`from [options] entity_id`).
    public init(membership: MembershipService, deviceState: DeviceStateService, nodeNames: [NodeID: String],
                entityIDOrigin: String) {
        precondition(membership.localNode == deviceState.localNode,
                     "membership is node \(membership.localNode), device state node \(deviceState.localNode)")
        self.membership = membership
        self.deviceState = deviceState
        self.nodeNames = nodeNames
        self.entityIDOrigin = entityIDOrigin
    }

    // MARK: Queries

    /// This node.
    public var localNode: NodeID { membership.localNode }

    /// The name of `node` in log lines: its configured name, else `node<ID>`.
    public func name(of node: NodeID) -> String {
        nodeNames[node] ?? "node\(node.rawValue)"
    }

    /// Ring messages waiting in the backlog.
    public var backlogCount: Int { backlog.count }
    /// Messages dropped because the backlog was full.
    public var backlogDropped: Int { backlog.dropped }
    /// Clients watching some topic.
    public var watcherCount: Int { watchers.count }
    /// The registered adapters, by name.
    public var registeredAdapters: [AdapterRegistration] { adapters.values.sorted { $0.name < $1.name } }
    /// Clients held now, ascending.
    public var held: [ClientID] { heldClients }
    /// Pings waiting for replies.
    public var pendingPingCount: Int { pings.count }

    /// Whether the host keeps anything for `client` that ends only when it closes (a watch, an
    /// event subscription or an adapter registration): the shell must then tell `clientClosed`.
    public func keepsState(of client: ClientID) -> Bool {
        watchers.topics(of: client) != nil || subscriptionOwners.count(of: client) > 0 || adapters[client] != nil
    }

    // MARK: Invariants

    /// Checked after every input. A failure is a bug in this module, not bad input.
    func checkInvariants() {
        precondition(backlog.count <= Self.backlogLimit, "backlog of \(backlog.count) above \(Self.backlogLimit)")
        precondition(zip(heldClients, heldClients.dropFirst()).allSatisfy { $0 < $1 }, "held clients not ascending: \(heldClients)")
        precondition(pings.count == 0 || pings.earliestDeadline != nil, "pending pings without a deadline")
        watchers.checkInvariants()
        subscriptionOwners.checkInvariants()
    }
}
