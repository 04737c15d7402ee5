// One Totem node at work on its event loop: owns the core, the transport, the codec, the
// authenticator and the core's timers, and executes the core's effects (Effect.swift's contract).
// Decides nothing about the protocol: every decision is the core's. This file holds its state,
// life cycle and application interface; the receive path, freshness, send path, and timers with
// the liveness checks are in RingNode+{Receive,Freshness,Send,Liveness}.swift.

import Glibc
import Totem

/// What a running node reports to the layer above, on the event-loop thread.
public enum RingEvent: Sendable, Equatable {
    /// A message in agreed (or safe) order.
    case delivered(DeliveredMessage)
    /// A transitional, then a regular configuration (extended virtual synchrony).
    case configurationChanged(ConfigurationChange)
    /// A membership state transition with its reason (for logs and status).
    case stateChanged(MembershipState, TransitionReason)
}

/// One Totem node, confined to its event loop: everything here runs on the loop thread.
///
/// Receive path: read a batch of datagrams → authenticate → decode (drop and count failures) →
/// `core.receive` → execute the effects. Tokens of a batch are held back until every other
/// packet of the batch, and everything waiting on the multicast socket, has been processed
/// (spec §6.2 `receiveFlush`, pitfall P1).
///
/// Effects run in order: multicasts and unicasts are encoded, sealed and queued in a
/// `SendBatch`, sent when the input is done; timers map to one loop timer per `RingTimer`;
/// `persistRingSequence` is written durably at once, so it precedes every send queued after it;
/// reports go to the event handler. This node's own multicasts (udpu) and unicasts to itself (a
/// ring of one) are handed back to the core through an in-memory queue right after the input
/// that produced them, instead of through the network.
///
/// The layer above lives on the same thread: its event handler may call `submit` directly; the
/// effects of such a nested call run after those of the input being handled.
public final class RingNode {
    public let nodeID: NodeID
    public let eventLoop: EventLoop
    var core: SingleRingProtocol
    let codec: WireCodec
    var authenticator: PacketAuthenticator
    /// Refuses replayed datagrams (with a key only; ReplayGuard.swift).
    var replayGuard: ReplayGuard
    let transport: any Transport
    let store: RingSequenceStore?
    private let logHandler: LogHandler
    let logLevel: LogLevel
    var dropLog = LogRateLimiter(interval: .seconds(1))
    /// Send errors already logged (the transport counts them; the log says so once a second).
    var sendErrorsLogged = 0
    var eventHandler: ((RingEvent) -> Void)?

    private var registrations: [EventLoop.Registration] = []
    /// One loop timer per `RingTimer`, indexed by its raw value.
    var timers: [EventLoop.TimerID] = []
    let receiveBatch: ReceiveBatch
    let sendBatch: SendBatch
    var encodeBuffer: [UInt8] = []
    /// Channels carrying multicasts only (drained before a token is processed).
    let multicastChannels: [Int]

    /// Own packets waiting to be handed back to the core (self-delivery).
    var loopback: [Packet] = []
    var loopbackHead = 0
    var isLoopbackDrainScheduled = false
    var isUnreachableReportScheduled = false
    /// Most own packets handled in one go before the loop gets a turn (a busy ring of one
    /// passes the token to itself indefinitely).
    static let loopbackBurst = 256
    /// Tokens of the batch being processed, held back until its multicasts are done.
    var pendingTokens: [Packet] = []
    /// Effects of nested inputs (an event handler's `submit`), run after the current effects.
    var deferredEffects: [Effect] = []
    /// One array for the effects of every received packet, kept between packets (`receiveInCore`).
    var receivedEffects: [Effect] = []
    var isExecutingEffects = false
    var isHandlingInput = false
    /// Reports of the inputs handled, waiting for their sends to go out (`dispatchEvents`).
    var pendingEvents: [RingEvent] = []
    var pendingEventsHead = 0
    var isDispatchingEvents = false

    // The successor probe (only with unreachable reports on). A daemon that crashed on a live
    // host is noticed from the ICMP "port unreachable" its host answers to the token sent to it;
    // but on an idle ring the representative holds the token, and if it is the one that crashed
    // its predecessor sends nothing more to it until the token retransmit timeout (0.87 s with
    // the defaults and three nodes). So whenever no token has left this node for a whole probe
    // interval, the last one is sent again: a duplicate, which a live successor ignores (it has
    // seen that token sequence), and which a crashed one's host answers. A held token costs each
    // node one datagram per interval (about 7 a second); a busy ring sends none.
    var lastToken: (packet: Packet, destination: NodeID)?
    var tokensSent: UInt64 = 0
    var tokensSentAtLastProbeTick: UInt64 = 0
    var probeTimer: EventLoop.TimerID?
    let probesSuccessor: Bool
    /// How often the probe looks: a crashed successor is probed at most two intervals after it
    /// crashed.
    static let successorProbeInterval = Duration.milliseconds(150)

    /// The last token accepted here while operational, and its ring: the start of the rotation
    /// the next one ends (`TokenRotationStatistics`).
    var lastTokenAccepted: (ring: RingID, at: MonotonicInstant)?
    /// The state the core last reported, to tell a re-formation (leaving OPERATIONAL) apart.
    var reportedState = MembershipState.gather

    /// False before `start` and after `leave` or `shutdown`.
    public private(set) var isRunning = false
    var counters = RuntimeStatistics()

    /// Opens the transport and prepares the core. Loop thread only.
    ///
    /// - Throws: `NodeRuntimeError.system` if a socket cannot be set up.
    init(configuration: NodeRuntimeConfiguration, eventLoop: EventLoop, boot: BootRandomness) throws(NodeRuntimeError) {
        eventLoop.preconditionInEventLoop()
        precondition(configuration.validate().isEmpty, "invalid configuration: \(configuration.validate())")
        nodeID = configuration.nodeID
        self.eventLoop = eventLoop
        logHandler = configuration.log
        logLevel = configuration.logLevel
        codec = WireCodec(clusterName: configuration.clusterName, link: configuration.link)
        if let key = configuration.key, configuration.authentication != .none {
            authenticator = PacketAuthenticator(
                mode: configuration.authentication, key: key, clusterName: configuration.clusterName,
                nodeID: configuration.nodeID, epoch: boot.epoch, counterStart: boot.counterStart)
        } else {
            authenticator = .unprotected()
        }
        replayGuard = ReplayGuard(node: configuration.nodeID, nonceSeed: boot.challengeSeed)
        do {
            transport = try makeTransport(configuration.transport)
        } catch {
            throw .system(error)
        }
        let maxDatagramBytes = configuration.transport.maxDatagramBytes
        receiveBatch = ReceiveBatch(
            capacity: configuration.transport.receiveBatchSize, maxDatagramBytes: maxDatagramBytes,
            coalesced: transport.receivesCoalesced)
        sendBatch = SendBatch(capacity: configuration.transport.sendBatchSize, maxDatagramBytes: maxDatagramBytes)
        encodeBuffer.reserveCapacity(maxDatagramBytes + 64)
        let channels = transport.channels
        multicastChannels = channels.indices.filter { channels[$0].role == .multicast }
        probesSuccessor = configuration.transport.reportsUnreachable

        var persisted: UInt64?
        var loadProblem: String?
        if let directory = configuration.stateDirectory {
            let store = RingSequenceStore(directory: directory, nodeID: configuration.nodeID)
            self.store = store
            do {
                (persisted, loadProblem) = try store.load()
            } catch {
                // Starting below a sequence used before could reuse a ring id: refuse (the
                // message says what to do).
                throw .unusableStateFile(error.description)
            }
        } else {
            store = nil
        }
        core = SingleRingProtocol(nodeID: configuration.nodeID, settings: configuration.settings, persistedRingSequence: persisted)

        if let loadProblem { log(.warning, loadProblem) }
        reportSetup(configuration, persisted: persisted)
    }

    /// Logs what was set up: cluster, stored ring sequence, sockets with the buffer sizes the
    /// kernel granted, the MTU budget, and (loudly) a missing key.
    private func reportSetup(_ configuration: NodeRuntimeConfiguration, persisted: UInt64?) {
        let clusterID = String(codec.clusterID, radix: 16)
        log(.info, "node \(nodeID): cluster \(configuration.clusterName) (id 0x\(clusterID)), stored ring sequence \(persisted.map(String.init) ?? "none")")
        for line in transport.setupReport { log(.info, line) }
        log(.info, "frame capacity \(configuration.settings.frameCapacityBytes) bytes, datagrams at most \(transport.maxDatagramBytes) bytes")
        if authenticator.mode == .none {
            log(.warning, "AUTHENTICATION IS OFF: any host that can reach this node's ports can join or disrupt the ring. Configure a cluster key.")
        } else {
            log(.info, "datagrams protected with \(authenticator.mode.rawValue)")
        }
    }

    // MARK: Life cycle

    /// Sets the closure receiving deliveries and configuration changes (loop thread only).
    public func setEventHandler(_ handler: ((RingEvent) -> Void)?) {
        eventLoop.preconditionInEventLoop()
        eventHandler = handler
    }

    /// Watches the sockets, creates the timers and starts the protocol (GATHER).
    func start() throws(NodeRuntimeError) {
        eventLoop.preconditionInEventLoop()
        precondition(!isRunning && timers.isEmpty, "node \(nodeID) started twice")
        for timer in RingTimer.allCases {
            precondition(Int(timer.rawValue) == timers.count, "RingTimer raw values must be 0, 1, 2, ...")
            timers.append(eventLoop.makeTimer { [self] in timerExpired(timer) })
        }
        for (index, channel) in transport.channels.enumerated() {
            do {
                // After the other descriptors (the daemon's clients): a message submitted in the
                // same wake-up as the token arrives then leaves with this token, not the next.
                registrations.append(try eventLoop.register(fileDescriptor: channel.fileDescriptor, order: .afterOthers) {
                    [self] in channelReadable(index)
                })
            } catch {
                shutdown()
                throw .system(error)
            }
        }
        isRunning = true
        if probesSuccessor {
            let timer = eventLoop.makeTimer { [self] in probeSuccessor() }
            probeTimer = timer
            eventLoop.arm(timer, at: MonotonicClock.now() + Self.successorProbeInterval)
        }
        handleInput { now in core.start(now: now) }
    }

    /// Leaves the ring gracefully: the LEAVE goes out, then the node shuts down.
    public func leave() {
        eventLoop.preconditionInEventLoop()
        guard isRunning else { return }
        handleInput { now in core.leave(now: now) }
        // Called from an event handler, the input above is nested and sends nothing yet.
        flushSends()
        log(.info, "node \(nodeID) left the ring")
        shutdown()
    }

    /// Stops at once, without a LEAVE (the others notice by token loss): closes the sockets
    /// and removes the timers. The statistics stay readable.
    public func shutdown() {
        eventLoop.preconditionInEventLoop()
        for registration in registrations { eventLoop.deregister(registration) }
        registrations.removeAll()
        for timer in timers { eventLoop.removeTimer(timer) }
        timers.removeAll()
        if let probeTimer { eventLoop.removeTimer(probeTimer) }
        probeTimer = nil
        transport.close()
        isRunning = false
        eventHandler = nil
    }

    // MARK: Application interface

    /// Queues a message for totally ordered delivery to every member (loop thread only).
    ///
    /// - Throws: `SubmitError` when the message is too large, the queue is full, or the node
    ///   is not running.
    public func submit(_ payload: [UInt8], delivery: DeliveryMode = .agreed) throws(SubmitError) {
        eventLoop.preconditionInEventLoop()
        guard isRunning else { throw .notRunning }
        let effects = try core.submit(payload, delivery: delivery, now: MonotonicClock.now())
        counters.messageBytesSubmitted += payload.count
        // Usually there is nothing to do: the token takes the message on its next visit.
        guard !effects.isEmpty else { return }
        if isHandlingInput {
            execute(effects)
            return
        }
        // The message woke a held token (a TOKEN_HOLD_CANCEL, spec §3.2): it is sent at once,
        // but this node's own copy of it, and so in a ring of one the token itself, is handled
        // after this turn of the loop. A burst of submits in one turn (a join re-publication,
        // a client's pipelined requests) then wakes the token once, not once per message: in
        // a ring of one each wake-up ran some 30 token visits before the token was held again,
        // and 5,000 re-published states kept a restarted node busy for seconds.
        isHandlingInput = true
        execute(effects)
        flushSends()
        isHandlingInput = false
        if loopbackHead < loopback.count { scheduleLoopbackDrain() }
        dispatchEvents()
    }

    /// Application messages queued and not yet sent.
    public var pendingMessageCount: Int { core.pendingMessageCount }
    /// Bytes of application messages queued and not yet sent.
    public var pendingBytes: Int { core.pendingBytes }

    /// The membership state.
    public var state: MembershipState { core.state }

    /// The current ring and its members.
    public var ringID: RingID { core.ringID }
    public var members: [NodeID] { core.members }

    /// A snapshot of every counter.
    public var statistics: RuntimeStatistics {
        var snapshot = counters
        snapshot.transport = transport.statistics
        snapshot.core = core.statistics
        snapshot.state = core.state
        snapshot.ringID = core.ringID
        snapshot.members = core.members
        for (refusal, count) in replayGuard.refused { snapshot.replayRefusals[refusal.rawValue] = Int(count) }
        snapshot.freshnessChallenges = Int(replayGuard.challengesSent)
        snapshot.epochsProved = Int(replayGuard.epochsProved)
        return snapshot
    }

    // MARK: Inputs

    /// Runs one input's core call and its effects, then hands back own packets and sends what
    /// was queued. A nested input (from the event handler) only adds its effects.
    func handleInput(_ input: (MonotonicInstant) -> [Effect]) {
        if isHandlingInput {
            execute(input(MonotonicClock.now()))
            return
        }
        isHandlingInput = true
        execute(input(MonotonicClock.now()))
        drainLoopback()
        flushSends()
        isHandlingInput = false
        dispatchEvents()
    }

    /// Runs `work` after the current input, while the node runs, once however often it is asked
    /// for before then; `isScheduled` remembers that it is asked for.
    func runSoonOnce(_ isScheduled: ReferenceWritableKeyPath<RingNode, Bool>, _ work: @escaping () -> Void) {
        guard !self[keyPath: isScheduled] else { return }
        self[keyPath: isScheduled] = true
        eventLoop.runSoon { [self] in
            self[keyPath: isScheduled] = false
            guard isRunning else { return }
            work()
        }
    }

    // MARK: Logging

    func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard level >= logLevel else { return }
        logHandler(level, message())
    }

    /// Logs a dropped datagram with its source and what its header claims, at most once a
    /// second per `key` (with the number of drops held back).
    func logDrop(key: String, entry: Int, header bytes: UnsafeRawBufferPointer, reason: String) {
        guard logLevel <= .warning else { return }
        let (allowed, suppressed) = dropLog.admit(key, now: MonotonicClock.now())
        guard allowed else { return }
        let source = receiveBatch.source(at: entry).map(String.init(describing:)) ?? "unknown source"
        let header = WireCodec.peekHeader(bytes)
            .map { " (type \($0.type), sender \($0.sender), cluster 0x\(String($0.clusterID, radix: 16)))" } ?? ""
        let more = suppressed > 0 ? "; \(suppressed) similar drops not logged" : ""
        log(.warning, "dropped datagram from \(source)\(header): \(reason)\(more)")
    }
}
