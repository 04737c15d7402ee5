// The seam for the cluster services (Membership, EventService, DeviceState): what a service gets
// from the daemon (ServiceContext) and what the daemon calls on it (DaemonService). Both live on
// the event-loop thread; nothing here crosses threads.

import Totem
import TotemRuntime

/// A cluster service inside the daemon, on the event-loop thread.
///
/// The `Daemon` calls a service in this order: `start` once; then, in the ring's agreed order,
/// `configurationChanged` (transitional, then regular) and `delivered` for the service's own
/// messages; `handle` for each control request naming one of its `commands`, in between; and
/// `stop` once, before the node leaves the ring. The methods run on the loop thread and must not
/// block: the ring's timers run on the same thread.
///
/// Ring messages are multiplexed by a one-byte tag (`messageTag`, a `ServiceID`): every message
/// starts with it and the Daemon routes each delivery by it to the service owning it. The service
/// gets the whole message, tag included: the tags are the cluster services' wire envelope's
/// service byte, so they parse it as it arrived, without a copy.
protocol DaemonService: AnyObject {
    /// A short name for logs (`node`, `membership`, `events`).
    var name: String { get }
    /// The control commands this service answers. Two services may not claim one command.
    var commands: [String] { get }
    /// The first byte of every ring message of this service (`ServiceID`), or `nil` for a
    /// service that sends none.
    var messageTag: UInt8? { get }

    /// Called once before any other call, with the context the service keeps.
    func start(_ context: ServiceContext)
    /// A configuration change, in the agreed order relative to deliveries (extended virtual
    /// synchrony: messages delivered before a regular configuration belong to the previous one).
    func configurationChanged(_ change: ConfigurationChange)
    /// One of this service's messages in agreed order, its tag (first byte) included.
    func delivered(_ message: [UInt8], from sender: NodeID)
    /// Answers a control request for one of `commands`, through `reply`, now or later.
    func handle(_ request: ControlRequest, reply: ControlReply)
    /// The daemon is stopping; the ring is still there (the leave comes after).
    func stop()
}

extension DaemonService {
    var messageTag: UInt8? { nil }
    func configurationChanged(_ change: ConfigurationChange) {}
    func delivered(_ message: [UInt8], from sender: NodeID) {}
    func stop() {}
}

/// What the daemon offers its services: the configuration, identity, ring state, logging and
/// sending on the ring. Loop thread only.
final class ServiceContext {
    /// The configuration the daemon runs with (a reload changes only what applies live).
    private(set) var configuration: DaemonConfiguration
    /// Where it came from.
    let origin: DaemonConfiguration.Origin
    /// The runtime's configuration (effective timers, frame size, transport).
    let runtimeConfiguration: NodeRuntimeConfiguration
    /// This server's entity id, however it was chosen.
    let entityID: DaemonConfiguration.EntityID
    let logger: DaemonLogger
    let eventLoop: EventLoop
    /// When the daemon started (monotonic).
    let startedAt: MonotonicInstant
    /// The ring node, once the runtime has started it.
    private(set) var node: RingNode?
    /// The log level from the configuration; `debug on` overrides it until `debug off`.
    private(set) var configuredLogLevel: LogLevel
    /// Whether `debug on` (or `--debug`) is in force.
    private(set) var isDebugForced: Bool
    /// Open control connections, for `status`.
    var controlClientCount: () -> Int = { 0 }
    /// Every control command some service answers, sorted (for `hello`); set by the Daemon.
    var availableCommands: [String] = []

    init(configuration: DaemonConfiguration, origin: DaemonConfiguration.Origin, runtimeConfiguration: NodeRuntimeConfiguration,
         entityID: DaemonConfiguration.EntityID, logger: DaemonLogger, eventLoop: EventLoop, isDebugForced: Bool) {
        self.configuration = configuration
        self.origin = origin
        self.runtimeConfiguration = runtimeConfiguration
        self.entityID = entityID
        self.logger = logger
        self.eventLoop = eventLoop
        startedAt = MonotonicClock.now()
        configuredLogLevel = LogLevel(configuration.options.logLevel)
        self.isDebugForced = isDebugForced
        applyLogLevel()
    }

    var localNodeID: NodeID { configuration.options.nodeID }

    /// The configured name of `node`, or `node<ID>` for a node not in the list.
    func name(of node: NodeID) -> String {
        configuration.nodes.first { $0.id == node }?.name ?? DaemonConfiguration.defaultNodeName(node)
    }

    /// Names of `nodes`, comma-separated.
    func names(of nodes: [NodeID]) -> String {
        nodes.map { name(of: $0) }.joined(separator: ", ")
    }

    // MARK: Ring

    /// The last installed (regular) ring, or the ring being formed before the first; `nil`
    /// before the node started. While a new ring is formed (gather, commit, recovery) the core
    /// already names the new ring but still has the old members: reports would pair one ring's
    /// id with another's members, so they show the installed ring until the new one is.
    var ringID: RingID? { installedRing?.id ?? node?.ringID }
    /// Members of the ring `ringID` names, ascending.
    var members: [NodeID] { installedRing?.members ?? node?.members ?? [] }
    private var installedRing: (id: RingID, members: [NodeID])?

    /// Records a regular configuration as the installed ring (the Daemon calls it).
    func installed(_ change: ConfigurationChange) {
        installedRing = (change.ringID, change.members)
    }
    /// The membership state; `gather` before the node started.
    var membershipState: MembershipState { node?.state ?? .gather }
    /// A snapshot of the runtime's counters.
    var statistics: RuntimeStatistics { node?.statistics ?? RuntimeStatistics() }

    /// Queues a message that already starts with its tag (the services' `submit` effects carry
    /// their envelope byte), for agreed delivery.
    ///
    /// - Throws: `SubmitError` (too large, queue full: try again after deliveries, not running).
    ///   An empty message is a bug (traps).
    func submit(enveloped message: [UInt8], delivery: DeliveryMode = .agreed) throws(SubmitError) {
        guard let node else { throw .notRunning }
        precondition(!message.isEmpty, "a ring message needs its tag")
        try node.submit(message, delivery: delivery)
    }

    // MARK: Reports the cluster services add to the built-in commands

    /// `members` from the membership service (directory, view, quorum); `nil`: from the ring.
    var membersReport: (() -> JSONValue)?
    /// `channels` from the event service (configuration and counters); `nil`: configuration only.
    var channelsReport: (() -> JSONValue)?
    /// The `quorum` member of `status`; `nil`: not reported.
    var quorumReport: (() -> JSONValue)?
    /// The `adapters` member of `status` (registered PBX adapters); `nil`: not reported.
    var adaptersReport: (() -> JSONValue)?
    /// The `persistence` member of `status` (the local state file's writes); `nil`: not reported.
    var persistenceReport: (() -> JSONValue)?
    /// The `retained_events` member of `status` (retained events and bytes, caps, drops at a cap);
    /// `nil`: not reported.
    var retainedEventsReport: (() -> JSONValue)?
    /// The `device_state` member of `status` (local counts, caps, refused and rejected entries);
    /// `nil`: not reported.
    var deviceStateReport: (() -> JSONValue)?
    /// The cluster services' part of a metrics scrape; `nil`: not reported.
    var metricsServices: (() -> MetricsSnapshot.Services)?

    // MARK: Used by the Daemon

    func attach(_ node: RingNode) {
        self.node = node
    }

    func replaceConfiguration(_ configuration: DaemonConfiguration) {
        self.configuration = configuration
        configuredLogLevel = LogLevel(configuration.options.logLevel)
        applyLogLevel()
    }

    /// `debug on` / `debug off`.
    func setDebugForced(_ forced: Bool) {
        isDebugForced = forced
        applyLogLevel()
    }

    /// The level in force.
    var effectiveLogLevel: LogLevel { isDebugForced ? .debug : configuredLogLevel }

    private func applyLogLevel() {
        logger.setLevel(effectiveLogLevel)
    }
}
