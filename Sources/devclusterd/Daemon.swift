// The running daemon on its event-loop thread: receives the ring's events and hands them to the
// services, routes control requests to them, logs membership changes with node names, summarises
// retransmissions, handles SIGTERM/SIGINT (leave, exit) and SIGHUP (reload), and keeps systemd
// informed (SystemdSupervisor). Protocol decisions stay in Totem; service logic stays in the services.

import Glibc
import Totem
import TotemRuntime

/// The daemon's coordinator, confined to the event loop (built there, used only there).
final class Daemon: ControlRequestHandler {
    let context: ServiceContext
    private let services: [DaemonService]
    private var serviceByCommand: [String: DaemonService] = [:]
    private var serviceByTag: [UInt8: DaemonService] = [:]
    private var controlServer: ControlServer?
    private var signalWatcher: SignalWatcher?
    /// Talks to systemd when it started the daemon (NOTIFY_SOCKET), else `nil`.
    private var supervisor: SystemdSupervisor?
    private var summaryTimer: EventLoop.TimerID?
    private let summaryInterval: Duration
    private var lastSummary = SummaryCounters()
    private(set) var isStopping = false
    /// Called once when the daemon has stopped, with the process exit status.
    private let onStopped: @Sendable (Int32) -> Void
    /// Deliveries whose tag no service owns (a newer node's service, or garbage), dropped.
    private(set) var unroutableMessages = 0

    /// Registers the services and starts them. Loop thread only.
    ///
    /// - Parameters:
    ///   - services: in the order they are called; the built-in `NodeService` first.
    ///   - summaryInterval: how often retransmissions and drops are summarised in the log.
    ///   - onStopped: called on the loop thread when the daemon has left the ring and closed its
    ///     socket, with the exit status; the loop stops right after.
    init(context: ServiceContext, services: [DaemonService], summaryInterval: Duration = .seconds(10),
         onStopped: @escaping @Sendable (Int32) -> Void) {
        context.eventLoop.preconditionInEventLoop()
        self.context = context
        self.services = services
        self.summaryInterval = summaryInterval
        self.onStopped = onStopped
        for service in services {
            for command in service.commands {
                precondition(serviceByCommand[command] == nil, "command \(command) claimed by two services")
                serviceByCommand[command] = service
            }
            if let tag = service.messageTag {
                precondition(serviceByTag[tag] == nil, "message tag \(tag) claimed by two services")
                serviceByTag[tag] = service
            }
        }
        context.availableCommands = serviceByCommand.keys.sorted()
        for service in services { service.start(context) }
    }

    /// Every command some service answers.
    var commands: [String] { context.availableCommands }

    // MARK: Start-up

    /// Opens the control socket with the `[control]` allow-list; `limits` default to `[control]`'s.
    func openControlSocket(limits: ControlServer.Limits? = nil) throws(UnixSocket.Failure) {
        let options = context.configuration.options
        let control = context.configuration.control
        let access = ControlAccess(control: control, daemonUserID: UInt32(geteuid()))
        let server = try ControlServer(path: options.controlSocket, group: options.controlSocketGroup, access: access,
                                       eventLoop: context.eventLoop, logger: context.logger,
                                       limits: limits ?? ControlServer.Limits(control), handler: self)
        controlServer = server
        // Strong, and reset in `stop`: a weak reference would give the server a side table and
        // slow every retain of it (its connections reach it for every request).
        context.controlClientCount = { server.connectionCount }
        let mode = FileSystem.octal(ControlServer.socketMode(group: options.controlSocketGroup, allowsOtherUsers: control.allowsOtherUsers))
        context.logger.info("control socket listening on \(options.controlSocket) (mode \(mode)"
            + (options.controlSocketGroup.map { ", group \($0)" } ?? "") + "); " + Self.describeAccess(control))
    }

    /// `full control: root, the daemon's user, users asterisk (110); read-only: groups monitoring (120)`.
    static func describeAccess(_ control: DaemonConfiguration.Control) -> String {
        func list(_ label: String, _ principals: [DaemonConfiguration.Control.Principal]) -> String? {
            principals.isEmpty ? nil : "\(label) " + principals.map(\.description).joined(separator: ", ")
        }
        let full = ["root", "the daemon's user"] + [list("users", control.users), list("groups", control.groups)].compactMap { $0 }
        let readOnly = [list("users", control.readOnlyUsers), list("groups", control.readOnlyGroups)].compactMap { $0 }
        return "full control: " + full.joined(separator: ", ") + (readOnly.isEmpty ? "" : "; read-only: " + readOnly.joined(separator: ", "))
    }

    /// Takes SIGTERM, SIGINT and SIGHUP through a signalfd (they must be blocked already).
    func watchSignals() throws(SystemError) {
        signalWatcher = try SignalWatcher(eventLoop: context.eventLoop) { [unowned self] signal in
            handleSignal(signal)
        }
    }

    /// Notifies systemd (readiness, status, reload, stop, watchdog) when `environment` names its
    /// notify socket; does nothing otherwise.
    func superviseWithSystemd(_ environment: SystemdEnvironment) {
        supervisor = SystemdSupervisor.make(environment, eventLoop: context.eventLoop, logger: context.logger)
    }

    /// What systemd shows as the service's status: `ring 1.12, members: server1, server2;
    /// quorate (2 of 3 configured nodes)` (past eight members, their count instead of names).
    var serviceStatus: String {
        guard let ring = context.ringID else { return "no ring yet" }
        let members = context.members
        let names = members.count <= 8 ? context.names(of: members) : "\(members.count) nodes"
        let quorum = context.quorumReport?()["text"]?.stringValue
        return "ring \(ring), members: \(names)" + (quorum.map { "; " + $0 } ?? "")
    }

    /// Connects the started ring node; returns the handler for its events.
    func attach(_ node: RingNode) -> (RingEvent) -> Void {
        context.attach(node)
        let timer = context.eventLoop.makeTimer { [unowned self] in summarise() }
        summaryTimer = timer
        context.eventLoop.arm(timer, at: MonotonicClock.now() + summaryInterval)
        return { [unowned self] event in handle(event) }
    }

    // MARK: Ring events

    /// One event of the ring node, in the ring's order.
    func handle(_ event: RingEvent) {
        switch event {
        case .delivered(let message):
            route(message)
        case .configurationChanged(let change):
            logMembership(change)
            if change.kind == .regular { context.installed(change) }
            for service in services { service.configurationChanged(change) }
            if change.kind == .regular { supervisor?.ringInstalled(status: serviceStatus) }
        case .stateChanged:
            break
        }
    }

    private func route(_ message: DeliveredMessage) {
        guard let tag = message.payload.first, let service = serviceByTag[tag] else {
            unroutableMessages += 1
            context.logger.debug("dropped a ring message from \(context.name(of: message.sender)) with tag "
                + "\(message.payload.first.map(String.init) ?? "none"): no service here owns it")
            return
        }
        service.delivered(message.payload, from: message.sender)
    }

    /// `ring 1.12 formed: server1, server2, server3 (joined: server3)`, `server2 left (graceful)`,
    /// `server3 failed`.
    private func logMembership(_ change: ConfigurationChange) {
        let local = context.localNodeID
        switch change.kind {
        case .transitional:
            for node in change.left where node != local {
                if change.leftGracefully.contains(node) {
                    context.logger.notice("\(context.name(of: node)) left (graceful)")
                } else {
                    context.logger.warning("\(context.name(of: node)) failed")
                }
            }
        case .regular:
            let joined = change.joined.filter { $0 != local }
            let suffix = joined.isEmpty ? "" : " (joined: \(context.names(of: joined)))"
            context.logger.info("ring \(change.ringID) formed: \(context.names(of: change.members))\(suffix)")
        }
    }

    // MARK: Control requests

    func handle(_ request: ControlRequest, reply: ControlReply) {
        guard !isStopping else {
            reply.fail(ControlError(.unavailable, "the daemon is stopping"))
            return
        }
        guard let service = serviceByCommand[request.command] else {
            let suggestion = ConfigurationReader.closest(to: request.command, among: commands)
            let hint = suggestion.map { " (did you mean \"\($0)\"?)" } ?? ""
            reply.fail(ControlError(.unknownCommand,
                "unknown command \"\(request.command)\"\(hint); commands: \(commands.joined(separator: ", "))"))
            return
        }
        if let connection = reply.connection, let refusal = connection.authorize(request.command) {
            reply.fail(refusal)
            return
        }
        service.handle(request, reply: reply)
    }

    // MARK: Periodic summary

    /// The counters compared between two summaries.
    struct SummaryCounters: Equatable {
        var retransmissions = 0
        var retransmitRequests = 0
        var tokenRetransmissions = 0
        var authenticationFailures = 0
        var decodeErrors = 0
        var receiveDrops = 0

        init() {}

        init(_ statistics: RuntimeStatistics) {
            retransmissions = statistics.core.retransmissionsServed
            retransmitRequests = statistics.core.retransmitRequestsMade
            tokenRetransmissions = statistics.core.tokenRetransmissions
            authenticationFailures = statistics.authenticationFailures
            decodeErrors = statistics.decodeErrorCount
            receiveDrops = statistics.kernelReceiveDrops
        }
    }

    /// The log lines for the change between two snapshots: nothing when nothing happened.
    static func summaryLines(from old: SummaryCounters, to new: SummaryCounters, interval: Duration) -> [(LogLevel, String)] {
        let seconds = interval.totalMilliseconds / 1_000
        let resent = max(0, new.retransmissions - old.retransmissions)
        let requested = max(0, new.retransmitRequests - old.retransmitRequests)
        let tokens = max(0, new.tokenRetransmissions - old.tokenRetransmissions)
        let authentication = max(0, new.authenticationFailures - old.authenticationFailures)
        let decode = max(0, new.decodeErrors - old.decodeErrors)
        let drops = max(0, new.receiveDrops - old.receiveDrops)
        var lines: [(LogLevel, String)] = []
        if resent + requested + tokens > 0 {
            lines.append((.info, "retransmissions in the last \(seconds) s: \(resent) messages resent, "
                + "\(requested) requested, \(tokens) token retransmissions"))
        }
        if authentication > 0 {
            lines.append((.warning, "\(authentication) datagrams failed authentication in the last \(seconds) s "
                + "(a node with a different cluster key or cluster_name?)"))
        }
        if decode > 0 {
            lines.append((.notice, "\(decode) datagrams could not be decoded in the last \(seconds) s "
                + "(another cluster or version on this port?)"))
        }
        if drops > 0 {
            // SO_RXQ_OVFL reports the socket's sk_drops, which Linux raises for a full receive
            // buffer and also for a bad UDP checksum (found on receipt or on copying out) and a
            // datagram a socket filter or IPsec policy refused: the line says so.
            lines.append((.warning, "the kernel dropped \(drops) datagrams addressed to this node in the last \(seconds) s "
                + "(its per-socket drop count: a full receive buffer, a bad UDP checksum, or a filter or IPsec policy)"))
        }
        return lines
    }

    private func summarise() {
        let current = SummaryCounters(context.statistics)
        for (level, line) in Self.summaryLines(from: lastSummary, to: current, interval: summaryInterval) {
            context.logger.log(level, line)
        }
        lastSummary = current
        if let summaryTimer, !isStopping {
            context.eventLoop.arm(summaryTimer, at: MonotonicClock.now() + summaryInterval)
        }
    }

    // MARK: Signals

    private func handleSignal(_ signal: Int32) {
        switch signal {
        case SIGTERM, SIGINT:
            stop(reason: "received \(signal == SIGTERM ? "SIGTERM" : "SIGINT")", exitStatus: 0)
        case SIGHUP:
            supervisor?.reloading(context.origin == .embedded ? "(no configuration file)" : DaemonConfiguration.fileName(of: context.origin))
            reload()
            supervisor?.reloaded(status: serviceStatus)
        default:
            context.logger.debug("ignoring signal \(signal)")
        }
    }

    /// Leaves the ring gracefully (the others reform at once), closes the control socket and
    /// stops the loop. Later calls do nothing.
    func stop(reason: String, exitStatus: Int32) {
        guard !isStopping else { return }
        isStopping = true
        supervisor?.stopping(reason)
        let isInRing = context.node?.isRunning == true
        context.logger.notice("\(reason): \(isInRing ? "leaving the ring and stopping" : "stopping")")
        for service in services.reversed() { service.stop() }
        if let node = context.node, node.isRunning { node.leave() }
        if let summaryTimer { context.eventLoop.removeTimer(summaryTimer) }
        summaryTimer = nil
        controlServer?.close()
        controlServer = nil
        context.controlClientCount = { 0 }
        signalWatcher?.close()
        signalWatcher = nil
        context.logger.info("stopped")
        onStopped(exitStatus)
        context.eventLoop.stop()
    }

    /// SIGHUP: applies the log level of the file and lists what else changed (needs a restart).
    func reload() {
        guard case .file(let path) = context.origin else {
            context.logger.notice("SIGHUP: running on the embedded default configuration; there is no file to reload")
            return
        }
        let reloaded: DaemonConfiguration
        do {
            reloaded = try DaemonConfiguration.load(path: path)
        } catch {
            for problem in error.errors { context.logger.error("reload: \(problem)") }
            context.logger.error("reload of \(path) failed; the running configuration stays as it is")
            return
        }
        let running = context.configuration
        let previousLevel = context.effectiveLogLevel
        var updated = running
        updated.options.logLevel = reloaded.options.logLevel
        updated.control = reloaded.control
        context.replaceConfiguration(updated)
        controlServer?.apply(reloaded.control)
        let changes = running.restartRequiredChanges(to: reloaded)
        var applied: [String] = []
        if running.options.logLevel != reloaded.options.logLevel {
            applied.append("log_level \(running.options.logLevel.rawValue) -> \(reloaded.options.logLevel.rawValue)"
                + (context.isDebugForced ? " (debug stays on until \"debug off\")" : ""))
        }
        if running.control != reloaded.control {
            applied.append("[control] (" + Self.describeAccess(reloaded.control) + ")")
        }
        let appliedText = applied.isEmpty ? "nothing to apply live" : "applied " + applied.joined(separator: ", ")
        context.logger.notice("reloaded \(path): \(appliedText)")
        if !changes.isEmpty {
            context.logger.notice("\(path) also changes \(changes.joined(separator: "; ")); these take effect after a restart")
        }
        if previousLevel != context.effectiveLogLevel {
            context.logger.notice("log level \(previousLevel) -> \(context.effectiveLogLevel)")
        }
    }
}
