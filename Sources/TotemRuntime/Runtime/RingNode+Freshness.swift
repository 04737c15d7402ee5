// Authentication, decoding and freshness of one received datagram: the PacketAuthenticator's
// verdict, the codec, and ReplayGuard's check with the challenges it asks for. It decides
// nothing about the protocol and does not read sockets (RingNode+Receive does).

import Totem

extension RingNode {
    /// The packet in datagram `entry` of the receive batch, if it is authentic, well formed and
    /// fresh; `readAt`: when the batch was read.
    func authenticateAndDecode(_ entry: Int, readAt: MonotonicInstant) -> Packet? {
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
            return isFresh(packet, stamp: stamp, entry: entry, now: readAt) ? packet : nil
        }
    }

    /// ReplayGuard's check of an authentic datagram: sends the challenge it asks for, takes the
    /// answers to ours, and logs refusals (rate-limited).
    private func isFresh(_ packet: Packet, stamp: PacketAuthenticator.Stamp, entry: Int, now: MonotonicInstant) -> Bool {
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
}
