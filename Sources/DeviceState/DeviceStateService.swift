// The distributed device-state service: local states in, per-entity caches, cluster-wide
// aggregates, hints and MWI out. Stored state, local requests and queries; ring inputs are in
// DeviceStateService+Ring.swift. Pure: no I/O, clock, randomness or threads.

import EventService
import Membership
import Totem

/// Asterisk's distributed device state and MWI for one server, as a pure state machine.
///
/// Inputs: `configurationChanged(_:now:)` for every Totem configuration change;
/// `delivered(payload:from:now:)` for every ring message whose envelope names
/// `ServiceID.event`, in ring order; local requests (`setLocalState`, `setMailbox`,
/// watchers, event subscriptions); `expireEvents(now:)` when `nextEventExpiry` passes.
/// Outputs: `DeviceStateEffect`s, executed in order. The service owns an
/// `EventChannelService`: device states and MWI travel as `device_state` and `mwi` events on
/// the configured channels. See `DistributedDeviceState` for the semantics and decisions.
public struct DeviceStateService: Sendable {
    struct HintState: Sendable {
        var hint: Hint
        var state: ExtensionState
        var watchers: Int
    }

    /// This node.
    public let localNode: NodeID
    /// This server's entity id.
    public let entityID: EntityID
    /// Caps on devices and mailboxes.
    public let limits: DeviceStateLimits
    /// The event service carrying device states and MWI (read it for `channels`).
    public internal(set) var events: EventChannelService
    /// This server's own states, as persisted.
    public internal(set) var localState: LocalStateTable
    var cache = EntityCache()
    /// Other servers with device-state slots here, and the node that published for each: told
    /// as `serverLeft` when that node leaves the configuration.
    var remoteEntities: [EntityID: NodeID] = [:]
    /// Members of the current configuration, ascending (and as a set, for lookups).
    public internal(set) var members: [NodeID] = []
    var memberSet: Set<NodeID> = []
    let deviceStateChannels: [ChannelName]
    let mailboxChannels: [ChannelName]
    /// The service's own subscriptions (one per device-state or MWI channel): a handful, so an
    /// array; it is searched for every event delivered, where hashing each id cost more.
    var internalSubscriptions: [SubscriptionID] = []
    let subscribesMailboxes: Bool
    var mailboxRecords: [MailboxName: MailboxRecord] = [:]
    /// Our MWI publications not yet delivered back, by event id ...
    var pendingMailboxPublications: [EventID: MailboxName] = [:]
    /// ... and by mailbox (the same entries), so that forgetting a mailbox's publications costs
    /// their number, not a pass over every pending one.
    var pendingMailboxIDs: [MailboxName: [EventID]] = [:]
    let hintOrder: [HintKey]
    var hints: [HintKey: HintState]
    let hintsByDevice: [DeviceName: [HintKey]]
    var hasPublishedLocalState = false
    /// This node's side of the last merge (its TRANSITIONAL members then): each re-published
    /// its own MWI for the nodes that joined; one that leaves before that was delivered leaves
    /// them without it, so the others re-publish its records (`configurationChanged`).
    var joinSide: Set<NodeID> = []
    /// Counters.
    public internal(set) var statistics = DeviceStateStatistics()
    /// Scratch for `delivered`: the event service's effects of one message. Empty between calls.
    var eventEffectScratch: [EventServiceEffect] = []
    /// Inputs since the last full invariant check (see `checkInvariants`).
    var inputsSinceFullCheck = 0

    /// Creates the service, restoring the local states of a previous run (they count at once,
    /// and are published at the first REGULAR configuration).
    ///
    /// - Throws: `DeviceStateConfigurationError` for a bad channel configuration or duplicate hints.
    public init(configuration: DeviceStateConfiguration) throws(DeviceStateConfigurationError) {
        do {
            events = try EventChannelService(localNode: configuration.localNode, entityID: configuration.entityID,
                                             incarnation: configuration.incarnation, channels: configuration.channels,
                                             retainedBytes: configuration.retainedEventBytes)
        } catch {
            throw .channels(error)
        }
        localNode = configuration.localNode
        entityID = configuration.entityID
        limits = configuration.limits
        localState = configuration.restoredLocalState
        deviceStateChannels = events.channels(publishing: .deviceState)
        mailboxChannels = events.channels(publishing: .mwi)
        subscribesMailboxes = !events.channels(subscribing: .mwi).isEmpty
        var hints: [HintKey: HintState] = [:]
        var hintsByDevice: [DeviceName: [HintKey]] = [:]
        for hint in configuration.hints {
            guard hints[hint.key] == nil else { throw .duplicateHint(hint.key) }
            hints[hint.key] = HintState(hint: hint, state: .unavailable, watchers: 0)
            for device in Set(hint.devices) { hintsByDevice[device, default: []].append(hint.key) }
        }
        hintOrder = configuration.hints.map(\.key)
        self.hints = hints
        self.hintsByDevice = hintsByDevice
        for type in [EventType.deviceState, .mwi] {
            for channel in events.channels(subscribing: type) {
                do {
                    let (id, _) = try events.subscribe(Subscription(channel: channel, types: [type]), now: .zero)
                    internalSubscriptions.append(id)
                } catch {
                    preconditionFailure("cannot subscribe \(type) on \(channel), which subscribes it: \(error)")
                }
            }
        }
        for (device, state) in localState.devices {
            _ = cache.set(state, of: device, entity: entityID, node: localNode)
        }
        for key in hintOrder { _ = reevaluate(key) }
        checkInvariants(full: true)
    }

    // MARK: - Local requests

    /// Sets this server's own state of `device`: persisted, counted in the aggregate at once,
    /// and published on every channel that publishes `device_state`.
    ///
    /// Setting the state a device already has does nothing (Asterisk does not re-publish an
    /// unchanged cachable state).
    ///
    /// - Returns: `persist`, the `submit`s, then `deviceStateChanged` and `extensionStateChanged`
    ///   if the aggregate moved.
    /// - Throws: `DeviceStateError.deviceStateNotPublished` when no channel publishes
    ///   `device_state` here (the state would stay on this server, unseen: refused, as MWI is);
    ///   `tooManyDevices` for a new device when this server already reports
    ///   `limits.maxDevices`. Nothing changes on a throw.
    public mutating func setLocalState(_ state: DeviceStateValue, of device: DeviceName) throws(DeviceStateError) -> [DeviceStateEffect] {
        defer { checkInvariants(touching: device) }
        guard !deviceStateChannels.isEmpty else { throw .deviceStateNotPublished }
        guard localState.devices[device] != state else { return [] }
        if localState.devices[device] == nil, localState.devices.count >= limits.maxDevices {
            throw .tooManyDevices(limit: limits.maxDevices)
        }
        localState.devices[device] = state
        statistics.localChanges += 1
        var effects: [DeviceStateEffect] = [.persist(.device(device, state))]
        publish(.deviceState(device, state), attributes: ["device": device.rawValue], on: deviceStateChannels, into: &effects)
        if let change = cache.set(state, of: device, entity: entityID, node: localNode) {
            notify(change, into: &effects)
        }
        return effects
    }

    /// Removes this server's own state of `device`: persisted, and published so that every
    /// server drops this server's slot (the device may stay known through other servers).
    ///
    /// - Returns: Nothing when this server does not report the device; else `persist`, the
    ///   `submit`s, then `deviceStateChanged` and `extensionStateChanged` if the aggregate moved.
    public mutating func clearLocalState(of device: DeviceName) -> [DeviceStateEffect] {
        defer { checkInvariants(touching: device) }
        guard localState.devices.removeValue(forKey: device) != nil else { return [] }
        statistics.localChanges += 1
        var effects: [DeviceStateEffect] = [.persist(.device(device, nil))]
        publish(.deviceStateCleared(device), attributes: ["device": device.rawValue], on: deviceStateChannels, into: &effects)
        if let change = cache.remove(device, entity: entityID) {
            notify(change, into: &effects)
        }
        return effects
    }

    /// Parses and sets a local state (`devstate set DEVICE STATE`).
    ///
    /// - Throws: `DeviceStateError.invalidDeviceName`, `invisibleCharacter`, `unknownStateName`
    ///   (listing the valid names) or `tooManyDevices`.
    public mutating func setLocalState(device: String, state: String) throws(DeviceStateError) -> [DeviceStateEffect] {
        let name = try DeviceName(parsing: device)
        let value = try DeviceStateValue(parsing: state)
        return try setLocalState(value, of: name)
    }

    /// Publishes MWI counts for `mailbox` (this server is its voicemail server). The
    /// cluster-wide value changes when the ring delivers it: the latest in ring order wins.
    ///
    /// - Returns: `persist`, then the `submit`s.
    /// - Throws: `DeviceStateError.mwiNotPublished` when no channel publishes `mwi` here;
    ///   `tooManyMailboxes` for a new mailbox when this server already publishes
    ///   `limits.maxMailboxes`. Nothing changes on a throw.
    public mutating func setMailbox(_ mailbox: MailboxName, counts: MailboxCounts) throws(DeviceStateError) -> [DeviceStateEffect] {
        defer { checkInvariants() }
        guard !mailboxChannels.isEmpty else { throw .mwiNotPublished }
        if localState.mailboxes[mailbox] == nil, localState.mailboxes.count >= limits.maxMailboxes {
            throw .tooManyMailboxes(limit: limits.maxMailboxes)
        }
        let entry = LocalStateTable.PublishedMailbox(counts: counts, position: nil)
        localState.mailboxes[mailbox] = entry
        forgetPendingPublications(of: mailbox)
        var effects: [DeviceStateEffect] = [.persist(.mailbox(mailbox, entry))]
        publishFreshMailbox(mailbox, counts: counts, into: &effects)
        return effects
    }

    /// Registers a local watcher of a hint (counted in `Watchers`).
    ///
    /// - Returns: The hint's row now.
    /// - Throws: `DeviceStateError.unknownHint`.
    public mutating func addWatcher(to key: HintKey) throws(DeviceStateError) -> HintRow {
        guard var state = hints[key] else { throw .unknownHint(key) }
        state.watchers += 1
        hints[key] = state
        return row(state)
    }

    /// Removes a local watcher of a hint (never below zero).
    ///
    /// - Throws: `DeviceStateError.unknownHint`.
    public mutating func removeWatcher(from key: HintKey) throws(DeviceStateError) {
        guard var state = hints[key] else { throw .unknownHint(key) }
        state.watchers = max(0, state.watchers - 1)
        hints[key] = state
    }

    /// Opens an event subscription for another client (for example a channel `watch`); its
    /// deliveries come back as `event` effects. Retained events are replayed through the
    /// returned cursor, at the client's pace (`continueReplay`).
    ///
    /// - Throws: `SubscribeError`.
    public mutating func subscribeEvents(_ subscription: Subscription, now: MonotonicInstant) throws(SubscribeError) -> (id: SubscriptionID, replay: RetainedReplay) {
        try events.subscribe(subscription, now: now)
    }

    /// The next retained events of a replay opened by `subscribeEvents`
    /// (`EventChannelService.continueReplay`).
    public func continueReplay(_ replay: inout RetainedReplay, now: MonotonicInstant, maximumBytes: Int) -> [DeliveredEvent] {
        events.continueReplay(&replay, now: now, maximumBytes: maximumBytes)
    }

    /// Publishes an event for another client (`event_publish`); it is confirmed by an `event`
    /// effect when the ring delivers it back. The device-state types are refused: their payloads
    /// are this service's own format, published through `setLocalState` and `setMailbox`.
    ///
    /// - Throws: `EventPublishError`; nothing changes on a throw.
    public mutating func publishEvent(on channel: ChannelName, type: EventType, attributes: [String: String] = [:],
                                      payload: [UInt8] = [], retention: Duration? = nil) throws(EventPublishError) -> (id: EventID, effects: [DeviceStateEffect]) {
        guard type != .deviceState, type != .mwi else { throw .reservedType(type) }
        do {
            let (id, effects) = try events.publish(on: channel, type: type, attributes: attributes, payload: payload, retention: retention)
            return (id, effects.map(Self.translate))
        } catch {
            throw .refused(error)
        }
    }

    /// Closes a subscription opened with `subscribeEvents`. Returns whether it was open.
    @discardableResult
    public mutating func unsubscribeEvents(_ id: SubscriptionID) -> Bool {
        guard !internalSubscriptions.contains(id) else { return false }
        return events.unsubscribe(id)
    }

    /// Drops retained events whose retention ran out.
    public mutating func expireEvents(now: MonotonicInstant) {
        events.expireRetained(now: now)
    }

    /// When `expireEvents` should next be called, if anything is retained.
    public var nextEventExpiry: MonotonicInstant? { events.nextExpiry }

    // MARK: - Queries

    /// `devstate get`: the cluster-wide state and per-server breakdown (INVALID and no
    /// servers for a device nobody reports).
    public func device(_ device: DeviceName) -> DeviceSnapshot {
        DeviceSnapshot(device: device, state: cache.aggregate(of: device), servers: cache.servers(of: device))
    }

    /// `devstate list`: every device some server reports, ascending by name.
    public var devices: [DeviceSnapshot] {
        cache.records.keys.sorted().map { device($0) }
    }

    /// Devices some server reports here (what `devstate list` lists), without listing them.
    public var knownDeviceCount: Int { cache.records.count }

    /// Mailboxes known here (what `mwi list` lists), without listing them.
    public var knownMailboxCount: Int { mailboxRecords.count }

    /// `mwi get`: the cluster-wide record of a mailbox (`nil` if unknown or MWI is not
    /// subscribed here).
    public func mailbox(_ mailbox: MailboxName) -> MailboxRecord? { mailboxRecords[mailbox] }

    /// `mwi list`: every known mailbox, ascending (empty when MWI is not subscribed here).
    public var mailboxes: [MailboxRecord] {
        mailboxRecords.keys.sorted().compactMap { mailboxRecords[$0] }
    }

    /// `hints`: one row per hint, in configuration order.
    public var hintRows: [HintRow] { hintOrder.compactMap { hints[$0].map(row) } }

    /// The row of one hint.
    public func hintRow(_ key: HintKey) -> HintRow? { hints[key].map(row) }

    /// `channels`: the event channels and their counters.
    public var channelSummaries: [ChannelSummary] { events.channelSummaries }

    // MARK: - Helpers shared with the ring handlers

    private func row(_ state: HintState) -> HintRow {
        HintRow(key: state.hint.key, devices: state.hint.deviceList, state: state.state, watchers: state.watchers)
    }

    /// Publishes `payload` on each of `channels`, appending the `submit`s. The channels come from
    /// the configuration's publish lists, so a refusal is a bug.
    @discardableResult
    mutating func publish(_ payload: DeviceStatePayload, attributes: [String: String], on channels: [ChannelName],
                          into effects: inout [DeviceStateEffect]) -> [EventID] {
        var ids: [EventID] = []
        let bytes = payload.encoded()
        for channel in channels {
            do {
                let (id, published) = try events.publish(on: channel, type: payload.eventType, attributes: attributes, payload: bytes)
                ids.append(id)
                for effect in published { effects.append(Self.translate(effect)) }
            } catch {
                preconditionFailure("channel \(channel) refused \(payload.eventType), which it publishes: \(error)")
            }
        }
        return ids
    }

    /// Publishes a fresh MWI update and remembers it until the ring confirms it.
    mutating func publishFreshMailbox(_ mailbox: MailboxName, counts: MailboxCounts, into effects: inout [DeviceStateEffect]) {
        let ids = publish(.mailboxUpdate(mailbox, counts), attributes: ["mailbox": mailbox.description], on: mailboxChannels, into: &effects)
        for id in ids { pendingMailboxPublications[id] = mailbox }
        pendingMailboxIDs[mailbox, default: []].append(contentsOf: ids)
    }

    /// Forgets every publication of `mailbox` still waiting to come back from the ring.
    mutating func forgetPendingPublications(of mailbox: MailboxName) {
        for id in pendingMailboxIDs.removeValue(forKey: mailbox) ?? [] {
            pendingMailboxPublications.removeValue(forKey: id)
        }
    }

    /// Appends the aggregate change and the hint changes it causes.
    mutating func notify(_ change: DeviceStateChange, into effects: inout [DeviceStateEffect]) {
        effects.append(.deviceStateChanged(change))
        for key in hintsByDevice[change.device] ?? [] {
            if let hintChange = reevaluate(key) { effects.append(.extensionStateChanged(hintChange)) }
        }
    }

    /// Recomputes a hint (reference §3: aggregate its devices' cluster-wide states, then map).
    ///
    /// - Returns: The change, if the extension state moved (watchers are told only then).
    mutating func reevaluate(_ key: HintKey) -> ExtensionStateChange? {
        guard var state = hints[key] else { return nil }
        let new = ExtensionState.of(state.hint.devices.map { cache.aggregate(of: $0) })
        guard new != state.state else { return nil }
        let change = ExtensionStateChange(hint: key, old: state.state, new: new, watchers: state.watchers)
        state.state = new
        hints[key] = state
        return change
    }

    /// An event-service effect as a device-state effect (submits stay submits).
    static func translate(_ effect: EventServiceEffect) -> DeviceStateEffect {
        if case .submit(let bytes) = effect { return .submit(bytes) }
        return .event(effect)
    }

    /// Entries of the tables each input pays for in full invariant checks (see `checkInvariants`).
    static let fullCheckEntriesPerInput = 2

    /// Checked after every input. Cheap checks always. In debug builds also the consistency of
    /// `device` (the one the input touched), and the full cross-check of the cache against the
    /// local table and the hints: at every configuration change, and whenever the inputs since
    /// the last one reach half the tables' size. That full check is linear in the tables; run
    /// after every input, N deliveries cost O(N²), and a debug build at a few thousand devices
    /// spent seconds per token visit (the ring re-formed around it). Amortized, every input costs
    /// the check of about two entries, and small tables (tests) are still checked after every input.
    mutating func checkInvariants(touching device: DeviceName? = nil, full: Bool = false) {
        precondition(hints.count == hintOrder.count, "\(hints.count) hints, \(hintOrder.count) keys")
        precondition(members.count == memberSet.count, "member list and set disagree")
        inputsSinceFullCheck += 1
        if full || inputsSinceFullCheck * Self.fullCheckEntriesPerInput >= cache.records.count + hintOrder.count {
            inputsSinceFullCheck = 0
            assert(fullInvariantsHold())
        } else if let device {
            assert(invariantsHold(for: device))
        }
    }

    /// The checks of `invariantsHold(for:)` for every device, the cache's slot counts, and the
    /// two indexes of pending MWI publications.
    private func fullInvariantsHold() -> Bool {
        cache.checkAggregates()
        precondition(pendingMailboxIDs.values.reduce(0) { $0 + $1.count } == pendingMailboxPublications.count,
                     "pending MWI publications: \(pendingMailboxPublications.count) by id, \(pendingMailboxIDs) by mailbox")
        for (mailbox, ids) in pendingMailboxIDs {
            precondition(ids.allSatisfy { pendingMailboxPublications[$0] == mailbox }, "pending MWI publications of \(mailbox) disagree")
        }
        for (device, state) in localState.devices {
            let own = cache.state(of: device, entity: entityID)
            precondition(own == state, "own state of \(device) is \(String(describing: own)), table says \(state)")
        }
        for key in hintOrder {
            guard let hint = hints[key] else { return false }
            precondition(hint.state == ExtensionState.of(hint.hint.devices.map { cache.aggregate(of: $0) }), "stale hint \(key)")
        }
        return true
    }

    /// `device`'s record is consistent, its own slot is the local table's state (or absent with
    /// it), and the hints naming it are up to date.
    func invariantsHold(for device: DeviceName) -> Bool {
        cache.checkRecord(of: device)
        let own = cache.state(of: device, entity: entityID)
        precondition(own == localState.devices[device],
                     "own state of \(device) is \(String(describing: own)), table says \(String(describing: localState.devices[device]))")
        for key in hintsByDevice[device] ?? [] {
            guard let hint = hints[key] else { return false }
            precondition(hint.state == ExtensionState.of(hint.hint.devices.map { cache.aggregate(of: $0) }), "stale hint \(key)")
        }
        return true
    }
}
