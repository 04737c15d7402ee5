// Ring inputs of the services' host: configuration changes and delivered messages (routed by
// their ServiceID byte), and what the services' effects become: submits, persistence, pushes
// to watchers, events to subscribers and log lines.

import DeviceState
import EventService
import Membership
import Totem

extension ServiceHost {
    // MARK: Configuration changes

    /// A Totem configuration change, in agreed order with the deliveries (transitional, then
    /// regular): membership, then device state, see it; retention expiry is re-armed; a regular
    /// one ends the pings that then have every remaining member's reply.
    public mutating func configurationChanged(_ change: ConfigurationChange, now: MonotonicInstant, into effects: inout [Effect]) {
        defer { checkInvariants() }
        if change.kind == .transitional { leftGracefully = Set(change.leftGracefully) }
        for effect in membership.configurationChanged(change) {
            switch effect {
            case .submit(let bytes): submit(bytes, now: now, into: &effects)
            case .notify(let change): notify(change, into: &effects)
            }
        }
        apply(deviceState.configurationChanged(change, now: now), now: now, into: &effects)
        scheduleExpiry(into: &effects)
        if change.kind == .regular {
            // A ping waits only for nodes still in the ring.
            finishPings(pings.restrictExpected(to: change.members), into: &effects)
        }
    }

    // MARK: Deliveries

    /// A message the ring delivered, in agreed order, routed by its first byte (`ServiceID`).
    ///
    /// - Parameters:
    ///   - message: The whole message, its service byte included.
    ///   - sender: The node that submitted it.
    ///   - ringQueuedBytes: Bytes in the ring's send queue now (held clients are released when
    ///     it is low).
    public mutating func delivered(_ message: [UInt8], from sender: NodeID, now: MonotonicInstant, ringQueuedBytes: Int,
                                   into effects: inout [Effect]) {
        // In every build, as after every other input (STYLE §7): about 60 instructions of a
        // receiver's 9,500 per 64 B event (callgrind).
        defer { checkInvariants() }
        switch message.first.flatMap(ServiceID.init(rawValue:)) {
        case .membership?:
            deliveredMembership(message, from: sender, now: now, into: &effects)
        case .event?:
            deliveredEvent(message, from: sender, now: now, ringQueuedBytes: ringQueuedBytes, into: &effects)
        case .ping?:
            deliveredPing(message, from: sender, now: now, into: &effects)
        case nil:
            Self.log(.debug, "ignored a ring message from \(name(of: sender)) with tag "
                + "\(message.first.map(String.init) ?? "none"): no service here owns it", into: &effects)
        }
    }

    private mutating func deliveredMembership(_ message: [UInt8], from sender: NodeID, now: MonotonicInstant,
                                              into effects: inout [Effect]) {
        let membershipEffects: [MembershipEffect]
        do {
            membershipEffects = try membership.delivered(payload: message, from: sender)
        } catch {
            Self.log(.warning, "ignored a membership message from \(name(of: sender)): \(error)", into: &effects)
            return
        }
        for effect in membershipEffects {
            switch effect {
            case .submit(let bytes): submit(bytes, now: now, into: &effects)
            case .notify(let change): notify(change, into: &effects)
            }
        }
    }

    /// The hot path: tens of thousands of events a second on a busy channel. The device-state
    /// effects go into an array kept between messages, and notifications are built only for
    /// topics someone watches.
    private mutating func deliveredEvent(_ message: [UInt8], from sender: NodeID, now: MonotonicInstant, ringQueuedBytes: Int,
                                         into effects: inout [Effect]) {
        let start = effects.count
        var serviceEffects = deliveredEffectScratch
        deliveredEffectScratch = []
        do {
            try deviceState.delivered(payload: message, from: sender, now: now, into: &serviceEffects)
            apply(serviceEffects, now: now, into: &effects)
        } catch {
            Self.log(.warning, "ignored an event message from \(name(of: sender)): \(error)", into: &effects)
        }
        serviceEffects.removeAll(keepingCapacity: true)
        deliveredEffectScratch = serviceEffects
        if let next = deviceState.nextEventExpiry, armedExpiry.map({ next < $0 }) ?? true { scheduleExpiry(into: &effects) }
        if !heldClients.isEmpty {
            releaseHeldClientsIfRingCaughtUp(ringQueuedBytes: ringQueuedBytes + Self.submittedBytes(in: effects, from: start),
                                             into: &effects)
        }
        reportRetentionDrops(now: now, into: &effects)
    }

    // MARK: The services' effects

    /// Appends what the device-state service's effects ask of the shell.
    mutating func apply(_ serviceEffects: [DeviceStateEffect], now: MonotonicInstant, into effects: inout [Effect]) {
        for index in serviceEffects.indices {
            switch serviceEffects[index] {
            case .submit(let bytes):
                submit(bytes, now: now, into: &effects)
            case .persist(let change):
                effects.append(.persist(change))
            case .deviceStateChanged(let change):
                effects.append(.log(.debug, .deviceStateChanged(change)))
                push(.device(change), topic: .device, into: &effects)
            case .extensionStateChanged(let change):
                push(.extensionState(change, devices: deviceState.hintRow(change.hint)?.devices ?? ""), topic: .extension, into: &effects)
            case .mailboxChanged(let change):
                push(.mailbox(change), topic: .mwi, into: &effects)
            case .serverStateChanged(let change):
                push(.serverDevice(change), topic: .servers, into: &effects)
            case .serverLeft(let entity, let node):
                Self.log(.info, "\(name(of: node)) (entity \(entity)) left the ring: its device states no longer count here", into: &effects)
                push(.serverLeft(entity: entity, node: node), topic: .servers, into: &effects)
            case .rejectedEvent(let id, let error):
                // Counted in status (device_state.rejected_payloads); a node sending a stream of
                // them must not flood the log.
                logLimited("rejected payload", "ignored event \(id): its payload does not decode: \(error)", now: now, into: &effects)
            case .entryRefused(let entry):
                logLimited(entry.isDevice ? "device cap" : "mailbox cap", "refused \(entry)", now: now, into: &effects)
            case .event(.deliver(let event, let subscriptions)):
                deliverEvent(event, to: subscriptions, into: &effects)
            case .event(.confirmed), .event(.submit):
                // A client's publication came back (its answer went out when it was queued);
                // submits of the event service arrive translated to `.submit`.
                break
            }
        }
    }

    /// Hands a live event to the clients owning its subscriptions, in the order given.
    private mutating func deliverEvent(_ event: DeliveredEvent, to subscriptions: [SubscriptionID], into effects: inout [Effect]) {
        for id in subscriptions {
            guard let client = subscriptionOwners.lookUpOwner(of: id) else { continue }
            effects.append(.deliverEvent(event, subscription: id, client: client, replayed: false))
        }
    }

    /// A membership change: logged when quorum flips, pushed to the `membership` watchers, and
    /// new entity-id conflicts logged once.
    private mutating func notify(_ change: MembershipChange, into effects: inout [Effect]) {
        var graceful = false
        switch change {
        case .left(let node, _):
            graceful = leftGracefully.contains(node)
        case .quorumChanged(let quorum):
            if quorum.isQuorate {
                Self.log(.notice, "quorum regained: \(quorum)", into: &effects)
            } else {
                Self.log(.warning, "quorum lost: \(quorum)", into: &effects)
            }
        case .joined, .viewInstalled, .nodeIdentified:
            break
        }
        push(.membership(change, graceful: graceful), topic: .membership, into: &effects)
        switch change {
        case .nodeIdentified, .viewInstalled: logNewEntityConflicts(into: &effects)
        case .left, .joined, .quorumChanged: break
        }
    }

    /// Logs each group of members sharing an entity id once, when it appears.
    private mutating func logNewEntityConflicts(into effects: inout [Effect]) {
        let conflicts = membership.entityConflicts
        for conflict in conflicts where !reportedEntityConflicts.contains(conflict) {
            let nodes = conflict.nodes.map { "\(name(of: $0)) (node \($0))" }.joined(separator: ", ")
            Self.log(.error, "entity id \(conflict.entityID) is used by \(nodes): their device states overwrite each "
                + "other; give each server its own entity_id in [options] (daemons on one host derive the same id from its MAC address)",
                     into: &effects)
        }
        reportedEntityConflicts = conflicts
    }

    /// Logs (at most once per `limitedLogInterval`) that retained events were dropped before
    /// their expiry because a cap was reached.
    private mutating func reportRetentionDrops(now: MonotonicInstant, into effects: inout [Effect]) {
        let summary = deviceState.events.retentionSummary
        let (atEvents, atBytes) = (summary.droppedAtEventCap, summary.droppedAtByteCap)
        guard atEvents != loggedRetentionDrops.events || atBytes != loggedRetentionDrops.bytes else { return }
        let newly = (atEvents - loggedRetentionDrops.events) + (atBytes - loggedRetentionDrops.bytes)
        loggedRetentionDrops = (atEvents, atBytes)
        logLimited("retention cap", "dropped \(newly) retained event\(newly == 1 ? "" : "s") before \(newly == 1 ? "its" : "their") expiry, "
            + "oldest first: this node keeps at most \(summary.maximumEvents) retained events and "
            + "\(ByteCountText.describe(summary.maximumBytes)) of them ([options] max_retained_bytes; now \(summary.events) events, "
            + "\(ByteCountText.describe(summary.bytes))); status retained_events counts the drops", now: now, into: &effects)
    }
}

extension RefusedEntry {
    /// Whether a device (not a mailbox) was refused: the log key.
    fileprivate var isDevice: Bool {
        if case .device = self { return true }
        return false
    }
}
