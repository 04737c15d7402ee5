// The core's timers and the liveness checks around them: timer expiries, the kernel's ICMP
// "port unreachable" reports handed to the core, and the successor probe that makes a crashed
// successor's host answer one. The decisions are the core's (`peerUnreachable`).

import Totem

extension RingNode {
    func timerExpired(_ timer: RingTimer) {
        guard isRunning else { return }
        let failed = core.statistics.successorsUnreachable
        handleInput { now in core.timerExpired(timer, now: now) }
        if core.statistics.successorsUnreachable > failed {
            log(.notice, "node \(nodeID): its successor answered none of \(core.settings.livenessProbeAttempts) liveness probes "
                + "after an ICMP port unreachable (its daemon is gone, its host is up): re-forming the ring without it")
        }
    }

    /// Hands the nodes the transport found unreachable (nothing listens at their address) to
    /// the core, after the current input: the successor among them means a lost token.
    func scheduleUnreachableReport() {
        runSoonOnce(\.isUnreachableReportScheduled) { [self] in
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
    func probeSuccessor() {
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
}
