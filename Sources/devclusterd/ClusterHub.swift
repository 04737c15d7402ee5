// The cluster services inside the daemon: the shell of the services' host (ClusterServices'
// ServiceHost). It feeds the host the ring's events, the control clients' commands and the
// timers it armed, reading the clock once per input, and executes the host's effects: ring
// submits, the local state writer (its thread writes the disk), event-loop timers, pushes to
// connections, holds and log lines. Decisions are the host's; this class only executes.
// Commands: ClusterHub+Commands.swift; JSON: ClusterHub+JSON.swift.

import ClusterServices
import DeviceState
import EventService
import Membership
import Totem
import TotemRuntime

/// The cluster services of one daemon. Loop thread only.
final class ClusterHub {
    /// The services and what runs them; mutated in place, never copied out (its tables are large).
    var host: ServiceHost
    let incarnation: UInt64
    let stateFilePath: String
    private(set) var context: ServiceContext?

    // The local state's writer thread (made at start, when the logger is known): every change of
    // the table goes to it at once; the loop never waits for the disk.
    private(set) var stateWriter: LocalStateWriter?
    /// How long `stop` waits for the writer's last write (a frozen disk would hold it forever).
    static let stateWriterStopTimeout = Duration.seconds(5)

    /// The effects of one input, kept between inputs; taken out while in use: executing them may
    /// bring another input (a connection's close handler), which needs an array of its own.
    private var effectScratch: [ServiceHost.Effect] = []
    /// The connections of clients the host keeps something for (`observedClients`) and of held
    /// clients. Strong references: a connection's close handler removes it (a weak reference
    /// inside a dictionary value crashed in swift_weakCopyInit).
    private var connections: [ClientID: ControlConnection] = [:]
    /// Clients whose close the host hears (`ServiceHost.clientClosed`).
    private var observedClients: Set<ClientID> = []
    /// The client an event went to last: a busy channel's events mostly go to one subscriber.
    private var lastEventClient: (id: ClientID, connection: ControlConnection)?
    /// The event-loop timers of the host's timers, by `ServiceHost.Timer.rawValue`, made on first use.
    private var timers: [EventLoop.TimerID?] = Array(repeating: nil, count: ServiceHost.Timer.allCases.count)
    /// Pings waiting for the host's answer.
    var pingReplies: [PingID: ControlReply] = [:]
    private let eventLines = ChannelEventLines()

    init(setup: ClusterSetup) {
        host = setup.host
        incarnation = setup.incarnation
        stateFilePath = setup.stateFilePath
    }

    /// The three DaemonServices that put this hub on the seam (one per ring tag).
    func services() -> [DaemonService] {
        [MembershipAdapter(hub: self), DeviceStateAdapter(hub: self), PingAdapter(hub: self)]
    }

    fileprivate func start(_ context: ServiceContext) {
        guard self.context == nil else { return }
        self.context = context
        installReports(on: context)
        let logger = context.logger
        do {
            stateWriter = try LocalStateWriter(snapshotPath: stateFilePath, table: host.deviceState.localState,
                                               log: { logger.error($0) })
        } catch {
            logger.error("persistence unavailable: cannot start the local state writer: \(error); local states are not persisted")
        }
    }

    fileprivate func stop() {
        if let stateWriter, !stateWriter.finish(timeout: Self.stateWriterStopTimeout) {
            context?.logger.error("the local state writer did not finish within \(Self.stateWriterStopTimeout) (is the disk "
                + "of \(stateFilePath) frozen?); \(stateWriter.report.unpersisted) change(s) may not be persisted")
        }
        run { effects, _ in host.stop(into: &effects) }
        for case let timer? in timers { context?.eventLoop.removeTimer(timer) }
        timers = timers.map { _ in nil }
    }

    // MARK: Inputs

    /// Runs one input of the host with the time read once (or `now`, for an input made while
    /// executing another's effects), then executes its effects, also when it throws (a refusal
    /// may log).
    ///
    /// - Parameter requester: The connection of the command being run, if any (a `hold` is for it).
    @discardableResult
    func run<Result, Failure: Error>(requester: ControlConnection? = nil, now: MonotonicInstant? = nil,
                                     _ input: (inout [ServiceHost.Effect], MonotonicInstant) throws(Failure) -> Result) throws(Failure) -> Result {
        let now = now ?? MonotonicClock.now()
        var effects = effectScratch
        effectScratch = []
        defer {
            effects.removeAll(keepingCapacity: effects.capacity <= 4_096)
            effectScratch = effects
        }
        do {
            let result = try input(&effects, now)
            execute(effects, now: now, requester: requester)
            return result
        } catch {
            execute(effects, now: now, requester: requester)
            throw error
        }
    }

    /// Bytes in the ring's send queue.
    var ringQueuedBytes: Int { context?.node?.pendingBytes ?? 0 }

    fileprivate func configurationChanged(_ change: ConfigurationChange) {
        run { host.configurationChanged(change, now: $1, into: &$0) }
    }

    fileprivate func delivered(_ message: [UInt8], from sender: NodeID) {
        let queued = ringQueuedBytes
        run { host.delivered(message, from: sender, now: $1, ringQueuedBytes: queued, into: &$0) }
    }

    private func timerFired(_ timer: ServiceHost.Timer) {
        let queued = ringQueuedBytes
        run { host.timerFired(timer, now: $1, ringQueuedBytes: queued, into: &$0) }
    }

    /// The client number the host knows `connection` by.
    static func clientID(of connection: ControlConnection) -> ClientID {
        ClientID(rawValue: UInt64(connection.number))
    }

    /// After a command from `connection`: if the host now keeps something for the client (a
    /// watch, a subscription, an adapter), its close must reach the host.
    func observeIfKept(_ connection: ControlConnection) {
        let client = Self.clientID(of: connection)
        guard !observedClients.contains(client), host.keepsState(of: client) else { return }
        observedClients.insert(client)
        connections[client] = connection
        // Strong: the connection drops its close handlers and its replay when it closes, and all
        // close when the daemon stops. (A weak reference would slow every retain of the hub.)
        connection.onClose { [self] in clientClosed(client) }
    }

    private func clientClosed(_ client: ClientID) {
        observedClients.remove(client)
        connections.removeValue(forKey: client)
        if lastEventClient?.id == client { lastEventClient = nil }
        run { effects, _ in host.clientClosed(client, into: &effects) }
    }

    /// Replays retained events to a new subscription as its client reads them: a stretch is
    /// made only when the connection's output is nearly all read, so a replay of any size costs
    /// the daemon a stretch per subscriber, and never the connection.
    func startReplay(_ replay: RetainedReplay, on connection: ControlConnection) {
        var replay = replay
        connection.sendPaced { [self] in
            run { effects, now in host.continueReplay(&replay, now: now, into: &effects) }
            return replay.isFinished
        }
    }

    // MARK: Effects

    private func execute(_ effects: [ServiceHost.Effect], now: MonotonicInstant, requester: ControlConnection?) {
        guard let context, !effects.isEmpty else { return }
        // Submits after one the ring refused with tryAgain, handed back to the host in order.
        var refused: [[UInt8]] = []
        // By index: the switch reads each effect in place (a `for in` copies it out and destroys it).
        for index in effects.indices {
            switch effects[index] {
            case .submit(let message, let queued):
                guard refused.isEmpty else {
                    refused.append(message)
                    continue
                }
                do {
                    try context.submit(enveloped: message)
                } catch {
                    if case .tryAgain = error {
                        refused.append(message)
                    } else {
                        run(now: now) { more, now in host.submitFailed(message, error: error, queued: queued, now: now, into: &more) }
                    }
                }
            case .persist(let change):
                // Written off the loop thread; the ring and the clients never wait for the disk.
                stateWriter?.record(change, table: host.deviceState.localState)
            case .armTimer(let timer, let deadline):
                context.eventLoop.arm(eventLoopTimer(timer, on: context.eventLoop), at: deadline)
            case .disarmTimer(let timer):
                if let id = timers[timer.rawValue] { context.eventLoop.disarm(id) }
            case .push(let notification, let clients):
                push(notification, to: clients, context: context)
            case .deliverEvent(let event, let subscription, let client, let replayed):
                guard let connection = eventConnection(client), connection.isOpen else { continue }
                eventLines.send(event, subscription: subscription, replayed: replayed, on: connection)
            case .hold(let client):
                guard let connection = connections[client] ?? requester.flatMap({ Self.clientID(of: $0) == client ? $0 : nil })
                else { continue }
                connections[client] = connection
                connection.hold()
            case .release(let clients):
                for client in clients {
                    connections[client]?.release()
                    if !observedClients.contains(client) { connections.removeValue(forKey: client) }
                }
            case .answerPing(let id, let result):
                answerPing(id, result)
            case .log(let level, let line):
                context.logger.log(LogLevel(level), line.description)
            }
        }
        if !refused.isEmpty { run(now: now) { more, now in host.submitRefused(refused, now: now, into: &more) } }
    }

    private func eventLoopTimer(_ timer: ServiceHost.Timer, on loop: EventLoop) -> EventLoop.TimerID {
        if let id = timers[timer.rawValue] { return id }
        let id = loop.makeTimer { [unowned self] in timerFired(timer) }
        timers[timer.rawValue] = id
        return id
    }

    private func eventConnection(_ client: ClientID) -> ControlConnection? {
        if let last = lastEventClient, last.id == client { return last.connection }
        guard let connection = connections[client] else { return nil }
        lastEventClient = (client, connection)
        return connection
    }

    /// Pushes one notification to its watchers; its JSON is built once, only if one is open.
    private func push(_ notification: ServiceHost.Notification, to clients: [ClientID], context: ServiceContext) {
        var data: JSONValue?
        for client in clients {
            guard let connection = connections[client], connection.isOpen else { continue }
            let value = data ?? .object(Self.json(notification, name: context.name(of:)))
            data = value
            connection.push(event: notification.eventName, data: value)
        }
    }
}

extension LogLevel {
    /// The daemon's level of a host's log line.
    init(_ level: ServiceHost.LogLevel) {
        switch level {
        case .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        }
    }
}

// MARK: - The adapters on the seam

/// Membership announcements (tag 1); `members`, `status` and quorum come through ServiceContext.
private final class MembershipAdapter: DaemonService {
    let name = "membership"
    let commands: [String] = []
    let messageTag: UInt8? = ServiceID.membership.rawValue
    private let hub: ClusterHub

    init(hub: ClusterHub) { self.hub = hub }

    func start(_ context: ServiceContext) { hub.start(context) }
    // The hub hears configuration changes once, through this adapter.
    func configurationChanged(_ change: ConfigurationChange) { hub.configurationChanged(change) }
    // The tag is the membership envelope's service byte: the message is parsed as delivered.
    func delivered(_ message: [UInt8], from sender: NodeID) { hub.delivered(message, from: sender) }
    func handle(_ request: ControlRequest, reply: ControlReply) {
        reply.fail(ControlError(.unknownCommand, "the membership service has no command \"\(request.command)\""))
    }
    func stop() { hub.stop() }
}

/// Events (tag 2): device state, hints and MWI, and their commands.
private final class DeviceStateAdapter: DaemonService {
    let name = "devstate"
    let commands = ClusterHub.deviceCommands
    let messageTag: UInt8? = ServiceID.event.rawValue
    private let hub: ClusterHub

    init(hub: ClusterHub) { self.hub = hub }

    func start(_ context: ServiceContext) { hub.start(context) }
    // The tag is the event envelope's service byte: the message is parsed as delivered.
    func delivered(_ message: [UInt8], from sender: NodeID) { hub.delivered(message, from: sender) }
    func handle(_ request: ControlRequest, reply: ControlReply) { hub.handle(request, reply: reply) }
}

/// The ring ping (tag 3).
private final class PingAdapter: DaemonService {
    let name = "ping"
    let commands = ["ping"]
    let messageTag: UInt8? = ServiceID.ping.rawValue
    private let hub: ClusterHub

    init(hub: ClusterHub) { self.hub = hub }

    func start(_ context: ServiceContext) { hub.start(context) }
    func delivered(_ message: [UInt8], from sender: NodeID) { hub.delivered(message, from: sender) }
    func handle(_ request: ControlRequest, reply: ControlReply) { hub.handlePing(request, reply: reply) }
}
