// The send path of a RingNode: executing the core's effects in order (Effect.swift), encoding,
// sealing and batching datagrams, the durable ring sequence before any later send, and the
// reports handed to the layer above once the input's datagrams are out.

import Glibc
import Totem

extension RingNode {
    /// Hands the reports (deliveries, configuration and state changes) of the inputs just
    /// handled to the event handler, in order, once the input's datagrams are sent: the token
    /// has then left for the next node, so the application's work on a batch of deliveries
    /// overlaps the token's trip instead of lengthening every rotation by it. Reports made
    /// while dispatching (the handler submits) join the queue and go out in order.
    func dispatchEvents() {
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

    /// Executes effects in order (Effect.swift). Effects of a nested input wait for the end.
    func execute(_ effects: [Effect]) {
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
    func send(_ packet: Packet, to destination: SendBatch.Destination) {
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

    func flushSends() {
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
}
