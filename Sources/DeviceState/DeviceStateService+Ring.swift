// Ring inputs of the device-state service: configuration changes (leave drops entries, join
// re-publishes) and deliveries (per-entity cache updates, MWI latest-wins).

import EventService
import Membership
import Totem

extension DeviceStateService {
    /// Applies a Totem configuration change.
    ///
    /// - Every configuration: entries of servers whose node is not a member stop counting at
    ///   once and the aggregates are recomputed (Asterisk 13.35+; older versions kept them).
    ///   On TRANSITIONAL this is the moment the leave is known.
    /// - REGULAR with joined members (or the first REGULAR after start): this server
    ///   re-publishes its own local device states (several to an event,
    ///   `DeviceStatePayload.deviceStates`), and its own MWI publications with their original
    ///   stamps; if it takes MWI in, also the MWI records whose publisher is not a member any
    ///   more (so MWI outlives its publisher and still reaches newcomers) or has just joined (so
    ///   a publisher whose crash lost its last update from its disk learns it back, and nodes
    ///   that never saw it get it). Re-publication goes only to channels whose configuration
    ///   lets this node publish the type.
    /// - REGULAR after a member of this node's side of the last join left: if it takes MWI in,
    ///   the records that member published (its own re-publication for the nodes that joined
    ///   may never have been delivered).
    /// - The event service's own join re-publication of retained events is included.
    ///
    /// - Returns: The notifications of the leave (aggregate and hint changes, then `serverLeft`
    ///   for each other server with device states here whose node left), then the `submit`s.
    public mutating func configurationChanged(_ change: ConfigurationChange, now: MonotonicInstant) -> [DeviceStateEffect] {
        defer { checkInvariants(full: true) }
        var effects: [DeviceStateEffect] = []
        let previousMembers = members
        members = change.members
        memberSet = Set(change.members)
        for leave in cache.removeServers(notIn: members, keeping: entityID) {
            notify(leave, into: &effects)
        }
        for (entity, node) in remoteEntities.sorted(by: { $0.key < $1.key }) where !memberSet.contains(node) {
            remoteEntities.removeValue(forKey: entity)
            effects.append(.serverLeft(entity: entity, node: node))
        }
        for effect in events.configurationChanged(change, now: now) { effects.append(Self.translate(effect)) }
        guard change.kind == .regular else { return effects }
        if !change.joined.isEmpty || !hasPublishedLocalState {
            republishOwnStates(joined: Set(change.joined), into: &effects)
            hasPublishedLocalState = true
            // The members of the TRANSITIONAL configuration just before.
            joinSide = Set(previousMembers)
        } else if !joinSide.isSubset(of: memberSet) {
            let departed = joinSide.subtracting(memberSet)
            joinSide.subtract(departed)
            republishRecords(where: { departed.contains($0.originNode) }, into: &effects)
        }
        return effects
    }

    /// Applies a ring message addressed to the event service.
    ///
    /// - Parameters:
    ///   - payload: The whole ring payload, envelope byte included.
    ///   - sender: The node the ring says submitted it.
    ///   - now: Delivery time (for event retention).
    /// - Returns: Aggregate, hint and MWI changes it caused; `rejectedEvent` for an event whose
    ///   device-state payload does not decode; `event` effects for other subscribers.
    /// - Throws: `ServiceWireError` when the event message itself does not decode (nothing
    ///   changed but the ring position count, which every node makes alike).
    public mutating func delivered(payload: [UInt8], from sender: NodeID, now: MonotonicInstant) throws(ServiceWireError) -> [DeviceStateEffect] {
        var effects: [DeviceStateEffect] = []
        try delivered(payload: payload, from: sender, now: now, into: &effects)
        return effects
    }

    /// `delivered(payload:from:now:)` appending its effects to `effects`, so that a caller
    /// handling message after message reuses one array. On a throw nothing is appended.
    public mutating func delivered(payload: [UInt8], from sender: NodeID, now: MonotonicInstant,
                                   into effects: inout [DeviceStateEffect]) throws(ServiceWireError) {
        defer { checkInvariants() }
        // The event service's effects go into an array kept between messages (taken out of the
        // property while in use, so a nested call could not share it).
        var eventEffects = eventEffectScratch
        eventEffectScratch = []
        defer {
            eventEffects.removeAll(keepingCapacity: true)
            eventEffectScratch = eventEffects
        }
        try events.delivered(payload: payload, from: sender, now: now, into: &eventEffects)
        for effect in eventEffects {
            switch effect {
            case .deliver(let event, let subscriptions):
                let forServices = subscriptions.contains(where: internalSubscriptions.contains)
                if forServices {
                    if event.type == .deviceState {
                        applyDeviceState(event, into: &effects)
                    } else if event.type == .mwi {
                        applyMailbox(event, into: &effects)
                    }
                }
                // Clients' events (the common case on a busy channel) pass through without a copy.
                let others = forServices ? subscriptions.filter { !internalSubscriptions.contains($0) } : subscriptions
                if !others.isEmpty { effects.append(.event(.deliver(event, to: others))) }
            case .confirmed(let event):
                if event.type == .mwi {
                    confirmMailbox(event, into: &effects)
                } else if event.type != .deviceState {
                    effects.append(.event(effect))
                }
            case .submit:
                effects.append(Self.translate(effect))
            }
        }
    }

    // MARK: - Device states

    private mutating func applyDeviceState(_ event: DeliveredEvent, into effects: inout [DeviceStateEffect]) {
        guard let payload = decode(event, into: &effects, as: { payload -> DeviceStatePayload? in
            switch payload {
            case .deviceState, .deviceStateCleared, .deviceStates: payload
            case .mailboxUpdate, .mailboxRepublication: nil
            }
        }) else { return }
        let stateCount = if case .deviceStates(let entries) = payload { entries.count } else { 1 }
        let publisher = event.id.publisher
        let entity = event.publisherEntity
        // Our own states count from the local table; the ring copy of them is ignored (as
        // Asterisk drops events carrying its own EID).
        guard entity != entityID else {
            if publisher != localNode { statistics.ownEntityConflicts += stateCount }
            return
        }
        // A message delivered after the TRANSITIONAL configuration may come from a node that
        // left; its states must not count again.
        guard memberSet.contains(publisher) else {
            statistics.ignoredFromNonMembers += stateCount
            return
        }
        switch payload {
        case .deviceState(let device, let state):
            apply(state, of: device, entity: entity, publisher: publisher, into: &effects)
        case .deviceStateCleared(let device):
            apply(nil, of: device, entity: entity, publisher: publisher, into: &effects)
        case .deviceStates(let entries):
            for entry in entries { apply(entry.state, of: entry.device, entity: entity, publisher: publisher, into: &effects) }
        case .mailboxUpdate, .mailboxRepublication:
            break
        }
    }

    /// Stores another server's state of `device` (`nil`: it no longer reports the device).
    private mutating func apply(_ state: DeviceStateValue?, of device: DeviceName, entity: EntityID, publisher: NodeID,
                                into effects: inout [DeviceStateEffect]) {
        let before = cache.state(of: device, entity: entity)
        let change: DeviceStateChange?
        if let state {
            // A new slot beyond the publisher's cap is refused; every node counts the same slots
            // per publisher (same deliveries), so every node refuses the same states.
            if before == nil, cache.slotsByNode[publisher, default: 0] >= limits.maxDevices {
                statistics.remoteDevicesRefused += 1
                effects.append(.entryRefused(.device(device, node: publisher, limit: limits.maxDevices)))
                return
            }
            statistics.remoteStatesApplied += 1
            remoteEntities[entity] = publisher
            change = cache.set(state, of: device, entity: entity, node: publisher)
        } else {
            guard before != nil else { return }
            statistics.remoteStatesCleared += 1
            change = cache.remove(device, entity: entity)
        }
        if before != state {
            effects.append(.serverStateChanged(ServerStateChange(device: device, entity: entity, node: publisher, state: state)))
        }
        if let change { notify(change, into: &effects) }
        assert(invariantsHold(for: device))
    }

    // MARK: - MWI

    private mutating func applyMailbox(_ event: DeliveredEvent, into effects: inout [DeviceStateEffect]) {
        guard let record = decode(event, into: &effects, as: { payload -> MailboxRecord? in
            switch payload {
            case .mailboxUpdate(let mailbox, let counts):
                MailboxRecord(mailbox: mailbox, counts: counts, originEntity: event.publisherEntity, originNode: event.id.publisher,
                              stamp: MailboxStamp(position: event.position, entity: event.publisherEntity))
            case .mailboxRepublication(let record):
                record
            case .deviceState, .deviceStateCleared, .deviceStates:
                nil
            }
        }) else { return }
        let current = mailboxRecords[record.mailbox]
        if current == nil, mailboxRecords.count >= limits.maxMailboxes {
            statistics.remoteMailboxesRefused += 1
            effects.append(.entryRefused(.mailbox(record.mailbox, node: event.id.publisher, limit: limits.maxMailboxes)))
            return
        }
        if record.originNode == localNode, record.originEntity == entityID {
            recoverOwnMailbox(record, into: &effects)
        }
        if let current, !record.supersedes(current) {
            statistics.staleMailboxUpdates += 1
            return
        }
        mailboxRecords[record.mailbox] = record
        statistics.mailboxUpdatesApplied += 1
        if current?.counts != record.counts {
            effects.append(.mailboxChanged(MailboxChange(old: current?.counts, new: record)))
        }
    }

    /// Our MWI publication came back: remember where, so a later re-publication carries the
    /// stamp every node keeps (and loses against anything newer).
    private mutating func confirmMailbox(_ event: DeliveredEvent, into effects: inout [DeviceStateEffect]) {
        // Every pending publication of the mailbox carries the same counts (a new `setMailbox`
        // forgets the older ones): one per channel, and a fresh copy when a join re-published
        // the entry before the first copy came back. Each node keeps the copy delivered last,
        // the greatest stamp; so does the publisher, or its later re-publications would carry
        // an older stamp than the record the others hold (and nodes that never saw the later
        // copy could then let another server's update in between win).
        guard let mailbox = pendingMailboxPublications.removeValue(forKey: event.id) else { return }
        pendingMailboxIDs[mailbox]?.removeAll { $0 == event.id }
        if pendingMailboxIDs[mailbox]?.isEmpty == true { pendingMailboxIDs.removeValue(forKey: mailbox) }
        guard var entry = localState.mailboxes[mailbox], entry.position.map({ $0 < event.position }) ?? true else { return }
        entry.position = event.position
        localState.mailboxes[mailbox] = entry
        effects.append(.persist(.mailbox(mailbox, entry)))
    }

    /// A record of our own later than our table's entry is an update of ours that a crash took
    /// before our disk had it (the daemon writes behind the ring), kept by the nodes that got
    /// it: it becomes ours again, so that our re-publications carry it, not the older one.
    private mutating func recoverOwnMailbox(_ record: MailboxRecord, into effects: inout [DeviceStateEffect]) {
        if let entry = localState.mailboxes[record.mailbox] {
            // An entry without a position is a publication of ours still on its way: later.
            guard let position = entry.position, position < record.stamp.position else { return }
        } else {
            guard localState.mailboxes.count < limits.maxMailboxes else { return }
        }
        let recovered = LocalStateTable.PublishedMailbox(counts: record.counts, position: record.stamp.position)
        localState.mailboxes[record.mailbox] = recovered
        effects.append(.persist(.mailbox(record.mailbox, recovered)))
    }

    // MARK: - Join re-publication

    /// Our device states go out in batches (kind 5, about 1 KiB each, without attributes): one
    /// event per device made a join cost every node thousands of deliveries at a few thousand
    /// devices, on the loop thread that must also pass the token.
    private mutating func republishOwnStates(joined: Set<NodeID>, into effects: inout [DeviceStateEffect]) {
        if !deviceStateChannels.isEmpty {
            let entries = localState.devices.keys.sorted().compactMap { device in
                localState.devices[device].map { DeviceStateEntry(device: device, state: $0) }
            }
            for batch in DeviceStatePayload.batches(of: entries) {
                publish(batch, attributes: [:], on: deviceStateChannels, into: &effects)
            }
            statistics.republished += entries.count * deviceStateChannels.count
        }
        let before = effects.count
        for mailbox in localState.mailboxes.keys.sorted() {
            guard let entry = localState.mailboxes[mailbox] else { continue }
            if let position = entry.position {
                let record = MailboxRecord(mailbox: mailbox, counts: entry.counts, originEntity: entityID, originNode: localNode,
                                           stamp: MailboxStamp(position: position, entity: entityID))
                publish(.mailboxRepublication(record), attributes: ["mailbox": mailbox.description], on: mailboxChannels, into: &effects)
            } else {
                publishFreshMailbox(mailbox, counts: entry.counts, into: &effects)
            }
        }
        statistics.republished += effects.count - before
        let members = memberSet
        republishRecords(where: { !members.contains($0.originNode) || joined.contains($0.originNode) }, into: &effects)
    }

    /// Re-publishes (if this node takes MWI in) the records of other servers that `include` picks.
    private mutating func republishRecords(where include: (MailboxRecord) -> Bool, into effects: inout [DeviceStateEffect]) {
        guard subscribesMailboxes else { return }
        let before = effects.count
        for mailbox in mailboxRecords.keys.sorted() {
            guard let record = mailboxRecords[mailbox], record.originNode != localNode, include(record) else { continue }
            publish(.mailboxRepublication(record), attributes: ["mailbox": mailbox.description], on: mailboxChannels, into: &effects)
        }
        statistics.republished += effects.count - before
    }

    // MARK: - Decoding

    private mutating func decode<Value>(_ event: DeliveredEvent, into effects: inout [DeviceStateEffect],
                                        as extract: (DeviceStatePayload) -> Value?) -> Value? {
        do {
            let payload = try DeviceStatePayload(decoding: event.payload)
            guard let value = extract(payload) else {
                statistics.rejectedPayloads += 1
                effects.append(.rejectedEvent(event.id, .unknownKind(event.payloadBytes.dropFirst().first ?? 0, format: "\(event.type) payload")))
                return nil
            }
            return value
        } catch {
            statistics.rejectedPayloads += 1
            effects.append(.rejectedEvent(event.id, error))
            return nil
        }
    }
}
