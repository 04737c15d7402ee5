// The receive path of a RingNode: reading datagram batches, dropping what the clear header
// rules out, holding tokens back until the multicast socket is drained (spec §6.2, P1), handing
// packets to the core, and handing this node's own packets back to it. Authentication and
// freshness are in RingNode+Freshness; executing what the core answers is in RingNode+Send.

import Totem

extension RingNode {
    /// Reads what waits on channel `index`, a few batches at most so timers and the other
    /// sockets get their turn (epoll is level-triggered: the rest is read next iteration).
    func channelReadable(_ index: Int) {
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
        // One reading of the clock for the batch's freshness checks (its datagrams were read at once).
        let readAt = MonotonicClock.now()
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
            guard let packet = authenticateAndDecode(entry, readAt: readAt) else { continue }
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
    /// join the pending ones, in order. The simulator models this rule
    /// (TotemSimulation/MulticastSocket.swift): a change here belongs there too.
    func receiveFlush() {
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
    func receiveInCore(_ packet: Packet) {
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

    /// Hands own packets back to the core, in the order they were produced.
    func drainLoopback() {
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

    func scheduleLoopbackDrain() {
        runSoonOnce(\.isLoopbackDrainScheduled) { [self] in handleInput { _ in [] } }
    }
}
