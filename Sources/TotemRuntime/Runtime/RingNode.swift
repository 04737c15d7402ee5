// One Totem node at work on its event loop: owns the core, the transport, the codec, the
// authenticator and the core's timers, and executes the core's effects (Effect.swift's contract).
// Decides nothing about the protocol: every decision is the core's.

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
    private var core: SingleRingProtocol
    private let codec: WireCodec
    private var authenticator: PacketAuthenticator
    /// Refuses replayed datagrams (with a key only; ReplayGuard.swift).
    private var replayGuard: ReplayGuard
    private let transport: any Transport
    private let store: RingSequenceStore?
    private let logHandler: LogHandler
    private let logLevel: LogLevel
    private var dropLog = LogRateLimiter(interval: .seconds(1))
    /// Send errors already logged (the transport counts them; the log says so once a second).
    private var sendErrorsLogged = 0
    private var eventHandler: ((RingEvent) -> Void)?

    private var registrations: [EventLoop.Registration] = []
    /// One loop timer per `RingTimer`, indexed by its raw value.
    private var timers: [EventLoop.TimerID] = []
    private let receiveBatch: ReceiveBatch
    private let sendBatch: SendBatch
    private var encodeBuffer: [UInt8] = []
    /// Channels carrying multicasts only (drained before a token is processed).
    private let multicastChannels: [Int]

    /// Own packets waiting to be handed back to the core (self-delivery).
    private var loopback: [Packet] = []
    private var loopbackHead = 0
    private var isLoopbackDrainScheduled = false
    private var isUnreachableReportScheduled = false
    /// Most own packets handled in one go before the loop gets a turn (a busy ring of one
    /// passes the token to itself indefinitely).
    private static let loopbackBurst = 256
    /// Tokens of the batch being processed, held back until its multicasts are done.
    private var pendingTokens: [Packet] = []
    /// Effects of nested inputs (an event handler's `submit`), run after the current effects.
    private var deferredEffects: [Effect] = []
    /// One array for the effects of every received packet, kept between packets (`receiveInCore`).
    private var receivedEffects: [Effect] = []
    private var isExecutingEffects = false
    private var isHandlingInput = false
    /// Reports of the inputs handled, waiting for their sends to go out (`dispatchEvents`).
    private var pendingEvents: [RingEvent] = []
    private var pendingEventsHead = 0
    private var isDispatchingEvents = false

    // The successor probe (only with unreachable reports on). A daemon that crashed on a live
    // host is noticed from the ICMP "port unreachable" its host answers to the token sent to it;
    // but on an idle ring the representative holds the token, and if it is the one that crashed
    // its predecessor sends nothing more to it until the token retransmit timeout (0.87 s with
    // the defaults and three nodes). So whenever no token has left this node for a whole probe
    // interval, the last one is sent again: a duplicate, which a live successor ignores (it has
    // seen that token sequence), and which a crashed one's host answers. A held token costs each
    // node one datagram per interval (about 7 a second); a busy ring sends none.
    private var lastToken: (packet: Packet, destination: NodeID)?
    private var tokensSent: UInt64 = 0
    private var tokensSentAtLastProbeTick: UInt64 = 0
    private var probeTimer: EventLoop.TimerID?
    private let probesSuccessor: Bool
    /// How often the probe looks: a crashed successor is probed at most two intervals after it
    /// crashed.
    static let successorProbeInterval = Duration.milliseconds(150)

    /// The last token accepted here while operational, and its ring: the start of the rotation
    /// the next one ends (`TokenRotationStatistics`).
    private var lastTokenAccepted: (ring: RingID, at: MonotonicInstant)?
    /// The state the core last reported, to tell a re-formation (leaving OPERATIONAL) apart.
    private var reportedState = MembershipState.gather

    /// False before `start` and after `leave` or `shutdown`.
    public private(set) var isRunning = false
    private var counters = RuntimeStatistics()

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
    private func handleInput(_ input: (MonotonicInstant) -> [Effect]) {
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

    private func timerExpired(_ timer: RingTimer) {
        guard isRunning else { return }
        let failed = core.statistics.successorsUnreachable
        handleInput { now in core.timerExpired(timer, now: now) }
        if core.statistics.successorsUnreachable > failed {
            log(.notice, "node \(nodeID): its successor answered none of \(core.settings.livenessProbeAttempts) liveness probes "
                + "after an ICMP port unreachable (its daemon is gone, its host is up): re-forming the ring without it")
        }
    }

    /// Reads what waits on channel `index`, a few batches at most so timers and the other
    /// sockets get their turn (epoll is level-triggered: the rest is read next iteration).
    private func channelReadable(_ index: Int) {
        guard isRunning else { return }
        isHandlingInput = true
        for _ in 0..<4 {
            let count = transport.receive(on: index, into: receiveBatch)
            guard count > 0 else { break }
            processReceived(count)
            if !pendingTokens.isEmpty {
                receiveFlush()
                processPendingTokens()
            }
            if receiveBatch.messageCount < receiveBatch.capacity || !isRunning { break }
        }
        drainLoopback()
        flushSends()
        isHandlingInput = false
        dispatchEvents()
    }

    /// Hands every non-token packet of the batch to the core and holds tokens back.
    private func processReceived(_ count: Int) {
        for entry in 0..<count where !receiveBatch.isDropped(at: entry) {
            // Our own datagram, looped back by the network: the in-memory loop delivered it
            // already. The header is in clear in every authentication mode.
            if let header = WireCodec.peekHeader(UnsafeRawBufferPointer(receiveBatch.bytes(at: entry))) {
                // Another cluster on this address and port: say so before authentication, which
                // would fail anyway (keys are derived per cluster name) and blame the key.
                guard header.clusterID == codec.clusterID else {
                    dropUnread(entry, WireError.foreignCluster(header.clusterID))
                    continue
                }
                if header.sender == nodeID.rawValue {
                    counters.ownDatagramsDropped += 1
                    continue
                }
                // Another release's layout (before authentication, which would fail and blame
                // the key: the trailer and the derived keys differ between wire versions).
                guard header.version == WireCodec.version else {
                    dropUnread(entry, WireError.unsupportedVersion(header.version))
                    continue
                }
            }
            guard let packet = authenticateAndDecode(entry) else { continue }
            switch packet {
            case .token, .commitToken:
                pendingTokens.append(packet)
            case .multicast, .join, .mergeDetect, .tokenHoldCancel, .livenessProbe, .livenessReply:
                deliverToCore(packet)
            }
        }
    }

    /// Counts and logs (rate-limited) a datagram dropped for what its clear header says.
    private func dropUnread(_ entry: Int, _ error: WireError) {
        counters.decodeErrors[error.statisticsKey, default: 0] += 1
        logDrop(key: "decode \(error.statisticsKey)", entry: entry,
                header: UnsafeRawBufferPointer(receiveBatch.bytes(at: entry)), reason: "\(error)")
    }

    /// Spec §6.2 `receiveFlush` (pitfall P1): multicasts sent before a token travel on another
    /// socket and may still be waiting; process them before the token. Tokens found meanwhile
    /// join the pending ones, in order.
    private func receiveFlush() {
        for channel in multicastChannels {
            for _ in 0..<8 {
                let count = transport.receive(on: channel, into: receiveBatch)
                guard count > 0 else { break }
                processReceived(count)
                if receiveBatch.messageCount < receiveBatch.capacity { break }
            }
        }
    }

    private func processPendingTokens() {
        for token in pendingTokens where isRunning {
            deliverToCore(token)
        }
        pendingTokens.removeAll(keepingCapacity: true)
    }

    private func deliverToCore(_ packet: Packet) {
        guard isRunning else { return }
        counters.packetsReceived += 1
        receiveInCore(packet)
        drainLoopback()
    }

    /// Hands one packet to the core and executes its effects, reusing `receivedEffects`
    /// (taken out of the property while in use, so a nested call would get its own).
    private func receiveInCore(_ packet: Packet) {
        var effects: [Effect] = []
        swap(&effects, &receivedEffects)
        let now = MonotonicClock.now()
        let tokensBefore = core.statistics.tokensAccepted
        core.receive(packet, now: now, into: &effects)
        if core.statistics.tokensAccepted != tokensBefore { noteTokenAccepted(now: now) }
        execute(effects)
        effects.removeAll(keepingCapacity: true)
        receivedEffects = effects
    }

    /// Measures a rotation: from the last token accepted in this operational ring to this one.
    private func noteTokenAccepted(now: MonotonicInstant) {
        guard core.state == .operational else {
            lastTokenAccepted = nil
            return
        }
        let ring = core.ringID
        if let last = lastTokenAccepted, last.ring == ring { counters.tokenRotation.record(now - last.at) }
        lastTokenAccepted = (ring, now)
    }

    private func authenticateAndDecode(_ entry: Int) -> Packet? {
        let datagram = receiveBatch.bytes(at: entry)
        switch authenticator.open(datagram) {
        case .rejected(let reason):
            counters.authenticationFailures += 1
            // A rejected datagram is left as received; its header is in clear in every mode.
            logDrop(key: "authentication", entry: entry, header: UnsafeRawBufferPointer(datagram), reason: "\(reason)")
            return nil
        case .accepted(let plain, let stamp):
            let packet: Packet
            do {
                packet = try codec.decode(plain)
            } catch {
                counters.decodeErrors[error.statisticsKey, default: 0] += 1
                logDrop(key: "decode \(error.statisticsKey)", entry: entry, header: plain, reason: "\(error)")
                return nil
            }
            // Without a key there is no stamp, and nothing to check it with.
            guard let stamp else { return packet }
            return isFresh(packet, stamp: stamp, entry: entry) ? packet : nil
        }
    }

    /// ReplayGuard's check of an authentic datagram: sends the challenge it asks for, takes the
    /// answers to ours, and logs refusals (rate-limited).
    private func isFresh(_ packet: Packet, stamp: PacketAuthenticator.Stamp, entry: Int) -> Bool {
        let now = MonotonicClock.now()
        let sender = stamp.sealer
        switch packet {
        case .livenessProbe:
            if replayGuard.isAddressedHere(stamp) { return true }
        case .livenessReply(let reply):
            if replayGuard.answer(nonce: reply.nonce, stamp: stamp, now: now) {
                log(.info, "node \(nodeID): node \(sender) answered our challenge: its datagrams of epoch "
                    + "\(String(stamp.epoch, radix: 16)) are accepted from now on")
                return false
            }
        default:
            break
        }
        switch replayGuard.check(stamp, now: now) {
        case .accept:
            return true
        case .refuse(let refusal, let challenge):
            if let challenge, let node = NodeID(rawValue: sender) {
                send(.livenessProbe(LivenessProbe(sender: nodeID, nonce: challenge)), to: .node(node))
            }
            logRefusal(refusal, sender: sender, stamp: stamp, entry: entry, now: now)
            return false
        }
    }

    private func logRefusal(
        _ refusal: ReplayGuard.Refusal, sender: UInt32, stamp: PacketAuthenticator.Stamp, entry: Int, now: MonotonicInstant
    ) {
        let level: LogLevel = refusal == .unprovedEpoch ? .info : .warning
        guard level >= logLevel else { return }
        let (allowed, suppressed) = dropLog.admit("replay \(refusal.rawValue) \(sender)", now: now)
        guard allowed else { return }
        let source = receiveBatch.source(at: entry).map(String.init(describing:)) ?? "unknown source"
        let more = suppressed > 0 ? "; \(suppressed) more not logged" : ""
        let what = switch refusal {
        case .unprovedEpoch:
            "node \(sender) has not proved it is in epoch \(String(stamp.epoch, radix: 16)) (it just started, "
                + "or the datagram is a replay from an earlier life): it was asked to, with the key"
        case .misaddressed: "it was sealed for node \(stamp.destination): a replay"
        case .duplicate: "node \(sender) sent its counter \(stamp.counter) before: a replay"
        case .stale: "node \(sender)'s counter \(stamp.counter) is too old: a replay, or held up in the network for over a second"
        }
        log(level, "node \(nodeID): refused a datagram from \(source): \(what)\(more)")
    }

    // MARK: Reports to the layer above

    /// Hands the reports (deliveries, configuration and state changes) of the inputs just
    /// handled to the event handler, in order, once the input's datagrams are sent: the token
    /// has then left for the next node, so the application's work on a batch of deliveries
    /// overlaps the token's trip instead of lengthening every rotation by it. Reports made
    /// while dispatching (the handler submits) join the queue and go out in order.
    private func dispatchEvents() {
        guard !isDispatchingEvents else { return }
        isDispatchingEvents = true
        while pendingEventsHead < pendingEvents.count {
            let event = pendingEvents[pendingEventsHead]
            pendingEventsHead += 1
            eventHandler?(event)
        }
        pendingEvents.removeAll(keepingCapacity: pendingEvents.capacity <= 4_096)
        pendingEventsHead = 0
        isDispatchingEvents = false
    }

    // MARK: Self-delivery

    /// Hands own packets back to the core, in the order they were produced.
    private func drainLoopback() {
        var handled = 0
        while loopbackHead < loopback.count && isRunning {
            guard handled < Self.loopbackBurst else {
                scheduleLoopbackDrain()
                return
            }
            let packet = loopback[loopbackHead]
            loopbackHead += 1
            handled += 1
            counters.packetsLoopedBack += 1
            receiveInCore(packet)
        }
        loopback.removeAll(keepingCapacity: true)
        loopbackHead = 0
    }

    /// Hands the nodes the transport found unreachable (nothing listens at their address) to
    /// the core, after the current input: the successor among them means a lost token.
    private func scheduleUnreachableReport() {
        guard !isUnreachableReportScheduled else { return }
        isUnreachableReportScheduled = true
        eventLoop.runSoon { [self] in
            isUnreachableReportScheduled = false
            guard isRunning else { return }
            for node in transport.takeUnreachableNodes() where isRunning {
                let refuted = core.statistics.unreachableRefuted
                let checked = core.livenessCheck != nil
                handleInput { now in core.peerUnreachable(node, now: now) }
                if !checked && core.livenessCheck != nil {
                    // Logged once per refuted report at most once a second (a forger may send many).
                    let (allowed, suppressed) = dropLog.admit("unreachable-\(node)", now: MonotonicClock.now())
                    if allowed {
                        let more = suppressed > 0 ? " (\(suppressed) earlier reports not logged; \(refuted) refuted so far)" : ""
                        log(.info, "node \(nodeID): ICMP says nothing listens at node \(node)'s address: asking it, "
                            + "with the key, whether it is alive\(more)")
                    }
                }
            }
        }
    }

    /// Every `successorProbeInterval`: when no token left this node since the last look, sends
    /// the last one again (see `lastToken`).
    private func probeSuccessor() {
        guard isRunning, let probeTimer else { return }
        defer {
            tokensSentAtLastProbeTick = tokensSent
            eventLoop.arm(probeTimer, at: MonotonicClock.now() + Self.successorProbeInterval)
        }
        guard core.state == .operational, let (packet, destination) = lastToken,
              tokensSent == tokensSentAtLastProbeTick, core.members.contains(destination) else { return }
        counters.successorProbes += 1
        send(packet, to: .node(destination))
        flushSends()
    }

    private func scheduleLoopbackDrain() {
        guard !isLoopbackDrainScheduled else { return }
        isLoopbackDrainScheduled = true
        eventLoop.runSoon { [self] in
            isLoopbackDrainScheduled = false
            guard isRunning else { return }
            handleInput { _ in [] }
        }
    }

    // MARK: Effects

    /// Executes effects in order (Effect.swift). Effects of a nested input wait for the end.
    private func execute(_ effects: [Effect]) {
        if isExecutingEffects {
            deferredEffects.append(contentsOf: effects)
            return
        }
        isExecutingEffects = true
        for effect in effects { perform(effect) }
        var rounds = 0
        while !deferredEffects.isEmpty {
            rounds += 1
            precondition(rounds < 100_000, "event handler keeps submitting from inside its own effects")
            let nested = deferredEffects
            deferredEffects.removeAll(keepingCapacity: true)
            for effect in nested { perform(effect) }
        }
        isExecutingEffects = false
    }

    private func perform(_ effect: Effect) {
        switch effect {
        case .multicast(let packet):
            send(packet, to: .allNodes)
            if !transport.loopsBackOwnMulticasts { loopback.append(packet) }
        case .unicast(let packet, let destination):
            if destination == nodeID {
                loopback.append(packet)
            } else {
                send(packet, to: .node(destination))
                if probesSuccessor, case .token = packet {
                    lastToken = (packet, destination)
                    tokensSent &+= 1
                }
            }
        case .deliver(let message):
            counters.messageBytesDelivered += message.payload.count
            pendingEvents.append(.delivered(message))
        case .configurationChanged(let change):
            log(.notice, "node \(nodeID): \(change.kind.rawValue) configuration \(change.ringID): members \(change.members)\(change.left.isEmpty ? "" : ", left \(change.left)")\(change.joined.isEmpty ? "" : ", joined \(change.joined)")")
            pendingEvents.append(.configurationChanged(change))
        case .armTimer(let timer, let deadline):
            eventLoop.arm(timers[Int(timer.rawValue)], at: deadline)
        case .cancelTimer(let timer):
            eventLoop.disarm(timers[Int(timer.rawValue)])
        case .persistRingSequence(let sequence):
            persist(sequence)
        case .stateChanged(let state, let reason):
            if reportedState == .operational && state != .operational { counters.reformations[reason, default: 0] += 1 }
            reportedState = state
            log(state == .operational ? .info : .debug, "node \(nodeID) entered \(state.rawValue) (\(reason.rawValue))")
            pendingEvents.append(.stateChanged(state, reason))
        }
    }

    /// Encodes, seals and queues one datagram; the batch goes out at the end of the input.
    private func send(_ packet: Packet, to destination: SendBatch.Destination) {
        encodeBuffer.removeAll(keepingCapacity: true)
        codec.encode(packet, into: &encodeBuffer)
        switch destination {
        case .allNodes: authenticator.seal(&encodeBuffer)
        case .node(let node): authenticator.seal(&encodeBuffer, destination: node.rawValue)
        }
        if sendBatch.isFull { flushSends() }
        // SendBatch.append traps on a datagram over the MTU budget (pitfall P12).
        encodeBuffer.withUnsafeBytes { sendBatch.append($0, to: destination) }
    }

    private func flushSends() {
        // Reports come from sends and receives alike; every input ends here.
        if transport.hasUnreachableNodes { scheduleUnreachableReport() }
        guard !sendBatch.isEmpty else { return }
        transport.send(sendBatch)
        sendBatch.removeAll()
        for notice in transport.takeNotices() { log(.warning, notice) }
        // Send errors are counted by the transport; say so in the log at most once a second.
        let sendErrors = transport.sendErrorCount
        if sendErrors > sendErrorsLogged, dropLog.admit("send", now: MonotonicClock.now()).allowed {
            let failed = sendErrors - sendErrorsLogged
            sendErrorsLogged = sendErrors
            let lastError = transport.statistics.sockets.lastSendError
            log(.warning, "sending failed for \(failed) datagram(s): \(String(cString: strerror(lastError))); "
                + "is the interface down or a route missing?")
        }
    }

    /// Effect.swift rule 1: the ring sequence reaches the disk before anything queued after it
    /// is sent. Sends are queued and flushed only after this returns, so the order holds.
    private func persist(_ sequence: UInt64) {
        guard let store else { return }
        do {
            try store.save(sequence)
        } catch {
            counters.persistFailures += 1
            log(.error, "cannot persist ring sequence \(sequence): \(error)")
        }
    }

    // MARK: Logging

    private func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard level >= logLevel else { return }
        logHandler(level, message())
    }

    /// Logs a dropped datagram with its source and what its header claims, at most once a
    /// second per `key` (with the number of drops held back).
    private func logDrop(key: String, entry: Int, header bytes: UnsafeRawBufferPointer, reason: String) {
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
