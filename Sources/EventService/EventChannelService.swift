// The EVT-like event service: channels, publish/subscribe with filters, retention, join
// re-publication. Pure: no I/O, no clock (time is `now`), no randomness, no threads.

import Membership
import Totem

/// Named event channels over the ring, for one node, as a pure state machine.
///
/// Inputs: `configurationChanged(_:now:)` for each Totem configuration change;
/// `delivered(payload:from:now:)` for each ring message whose envelope names
/// `ServiceID.event`, in ring order; local requests `publish`, `subscribe`, `unsubscribe`;
/// `expireRetained(now:)` when `nextExpiry` passes. Outputs: `EventServiceEffect`s, executed in
/// order. See `EventChannels` for the terms and the join re-publication rule.
public struct EventChannelService: Sendable {
    struct ChannelState: Sendable {
        var configuration: ChannelConfiguration
        var published = 0
        var delivered = 0
        var ignored = 0
        var subscriptions: [SubscriptionID] = []
        /// Whether every subscription listed takes every event of the channel (no types, no
        /// filters, the usual kind): delivery then returns `subscriptions` without looking any up.
        var everySubscriptionTakesAll = true
    }

    /// This node.
    public let localNode: NodeID
    /// This node's entity id, stamped on every event it publishes.
    public let entityID: EntityID
    /// This process's incarnation, part of every event id it creates.
    public let incarnation: UInt64
    /// The channels' states, in configuration order; the set of channels never changes.
    private var channels: [ChannelState]
    /// Where each channel's state is in `channels`.
    private let slots: [ChannelName: Int]
    /// The channel of the last event delivered and its slot: a busy channel's events skip hashing
    /// its name.
    private var lastDeliveredChannel: (name: ChannelName, slot: Int)?
    private var subscriptions: [SubscriptionID: Subscription] = [:]
    private var nextSubscription: UInt64 = 1
    private var nextCounter: UInt64 = 1
    /// The retained events (read by `continueReplay`).
    private(set) var retention: RetentionStore
    /// Names of the last event message delivered, reused by the next one's decoding.
    private var decodedNames = EventNameCache()
    /// Sequence of the ring whose events are being counted (the last REGULAR configuration's).
    private var ringSequence: UInt64 = 0
    /// Index the next event message delivered in that ring gets.
    private var nextIndex: UInt64 = 0
    /// Members of the last TRANSITIONAL configuration (`nil` before the first).
    private var transitionalMembers: [NodeID]?
    /// This node's side of the last merge (its TRANSITIONAL members then), ascending: the first
    /// re-publishes the retained events for the nodes that joined; while it has not left since,
    /// nobody else needs to.
    private var joinSide: [NodeID] = []
    /// Counters.
    public private(set) var statistics = EventStatistics()

    /// Creates the service.
    ///
    /// - Parameters:
    ///   - localNode: This node.
    ///   - entityID: This node's entity id.
    ///   - incarnation: This process's incarnation: greater at every start of this node.
    ///   - channels: The configured channels, in configuration order.
    ///   - retainedBytes: The most bytes of retained events kept (`RetentionStore.accountedBytes`),
    ///     within `EventLimits.retainedBytesRange`.
    /// - Throws: `ChannelConfigurationError.duplicateChannel` when a name repeats.
    public init(localNode: NodeID, entityID: EntityID, incarnation: UInt64, channels: [ChannelConfiguration],
                retainedBytes: Int = EventLimits.defaultRetainedBytes) throws(ChannelConfigurationError) {
        var slots: [ChannelName: Int] = [:]
        for (slot, channel) in channels.enumerated() {
            guard slots.updateValue(slot, forKey: channel.name) == nil else { throw .duplicateChannel(channel.name) }
        }
        self.localNode = localNode
        self.entityID = entityID
        self.incarnation = incarnation
        self.channels = channels.map { ChannelState(configuration: $0) }
        self.slots = slots
        precondition(EventLimits.retainedBytesRange.contains(retainedBytes), "retained bytes \(retainedBytes) out of range")
        retention = RetentionStore(capacityBytes: retainedBytes)
        checkInvariants()
    }

    // MARK: - Queries

    /// What `channels` shows, in configuration order.
    public var channelSummaries: [ChannelSummary] {
        let retainedByChannel = retention.usageByChannel
        return channels.map { state in
            let name = state.configuration.name
            return ChannelSummary(name: name, publishes: state.configuration.publishes, subscribes: state.configuration.subscribes,
                                  subscribers: state.subscriptions.count, published: state.published,
                                  delivered: state.delivered, ignored: state.ignored, retained: retainedByChannel[name]?.events ?? 0,
                                  retainedBytes: retainedByChannel[name]?.bytes ?? 0)
        }
    }

    /// The configuration of `channel`, if configured.
    public func configuration(of channel: ChannelName) -> ChannelConfiguration? { slots[channel].map { channels[$0].configuration } }

    /// Channels whose configuration publishes `type`, in configuration order.
    public func channels(publishing type: EventType) -> [ChannelName] {
        channels.filter { $0.configuration.publishes.contains(type) }.map(\.configuration.name)
    }

    /// Channels whose configuration subscribes `type`, in configuration order.
    public func channels(subscribing type: EventType) -> [ChannelName] {
        channels.filter { $0.configuration.subscribes.contains(type) }.map(\.configuration.name)
    }

    /// Retained events held now, in ring order (expired ones may linger until the next input).
    public var retainedEvents: [DeliveredEvent] { retention.inPositionOrder.map(\.event) }

    /// What the retained events hold and what the caps dropped.
    public var retentionSummary: RetentionSummary {
        RetentionSummary(events: retention.count, bytes: retention.bytes, maximumEvents: EventLimits.retainedEvents,
                         maximumBytes: retention.capacityBytes, droppedAtEventCap: retention.droppedAtEventCap,
                         droppedAtByteCap: retention.droppedAtByteCap)
    }

    /// When the next retained event (or tombstone) expires: arm a timer and call
    /// `expireRetained(now:)` then. `nil` when nothing is retained.
    public var nextExpiry: MonotonicInstant? { retention.nextDeadline }

    /// The open subscription `id`, if any.
    public func subscription(_ id: SubscriptionID) -> Subscription? { subscriptions[id] }

    // MARK: - Local requests

    /// Publishes an event on `channel`: returns its id and the `submit` effect. Local
    /// subscribers get it when the ring delivers it back, like everyone else.
    ///
    /// - Parameters:
    ///   - channel: A configured channel.
    ///   - type: A type the channel's configuration publishes.
    ///   - attributes: Matched by subscription filters (at most `EventLimits.attributes`).
    ///   - payload: Opaque bytes (at most `EventLimits.payloadBytes`).
    ///   - retention: How long every node keeps the event after receiving it; `nil` or zero for
    ///     none. Sub-millisecond parts round up.
    /// - Throws: `PublishError`; nothing changes on a throw.
    public mutating func publish(on channel: ChannelName, type: EventType, attributes: [String: String] = [:],
                                 payload: [UInt8] = [], retention: Duration? = nil) throws(PublishError) -> (id: EventID, effects: [EventServiceEffect]) {
        defer { checkInvariants() }
        // The channel's state is read and counted in place: a copy of it (and the write back)
        // costs retains per event on the hot path.
        guard let slot = slots[channel] else { throw .unknownChannel(channel) }
        guard channels[slot].configuration.publishes.contains(type) else {
            throw .typeNotPublished(type, channel: channel, allowed: channels[slot].configuration.publishes)
        }
        try Self.validate(attributes: attributes, payload: payload)
        let milliseconds = try Self.milliseconds(of: retention)
        let id = EventID(publisher: localNode, incarnation: incarnation, counter: nextCounter)
        let message = EventMessage(kind: .published, id: id, publisherEntity: entityID, channel: channel, type: type,
                                   retentionMilliseconds: milliseconds, attributes: attributes, payload: payload)
        nextCounter += 1
        channels[slot].published += 1
        statistics.published += 1
        return (id, [.submit(message.encoded())])
    }

    /// Opens a local subscription; the matching retained events are replayed to it through the
    /// returned cursor (`continueReplay`), as fast as its reader takes them.
    ///
    /// - Returns: The new id and its replay (finished at once when nothing matches).
    /// - Throws: `SubscribeError`; nothing changes on a throw.
    public mutating func subscribe(_ subscription: Subscription, now: MonotonicInstant) throws(SubscribeError) -> (id: SubscriptionID, replay: RetainedReplay) {
        defer { checkInvariants() }
        guard let slot = slots[subscription.channel] else { throw .unknownChannel(subscription.channel) }
        let allowed = channels[slot].configuration.subscribes
        for type in subscription.types where !allowed.contains(type) {
            throw .typeNotSubscribed(type, channel: subscription.channel, allowed: allowed)
        }
        guard subscription.filters.allSatisfy({ !$0.attribute.isEmpty }) else { throw .emptyFilterAttribute }
        retention.expire(now: now)
        let id = SubscriptionID(rawValue: nextSubscription)
        nextSubscription += 1
        subscriptions[id] = subscription
        channels[slot].subscriptions.append(id)
        channels[slot].everySubscriptionTakesAll = channels[slot].everySubscriptionTakesAll && subscription.takesEveryEvent
        var matching = 0
        for entry in retention.entries.values where allowed.contains(entry.event.type) && subscription.matches(entry.event) {
            matching += 1
        }
        return (id, RetainedReplay(subscription: id, matchingAtStart: matching, stampLimit: retention.stamp))
    }

    /// Closes a subscription. Returns whether it was open.
    @discardableResult
    public mutating func unsubscribe(_ id: SubscriptionID) -> Bool {
        defer { checkInvariants() }
        guard let subscription = subscriptions.removeValue(forKey: id) else { return false }
        guard let slot = slots[subscription.channel] else { preconditionFailure("subscription \(id) on unknown channel") }
        channels[slot].subscriptions.removeAll { $0 == id }
        let takeAll = channels[slot].subscriptions.allSatisfy { subscriptions[$0]?.takesEveryEvent == true }
        channels[slot].everySubscriptionTakesAll = takeAll
        return true
    }

    /// Drops retained events whose retention ran out at or before `now`.
    public mutating func expireRetained(now: MonotonicInstant) {
        retention.expire(now: now)
    }

    // MARK: - Ring inputs

    /// Applies a Totem configuration change.
    ///
    /// TRANSITIONAL: remembers its members. REGULAR: starts counting ring positions in the new
    /// ring, and if members joined and this node is the lowest member of the preceding
    /// TRANSITIONAL configuration, re-publishes every retained event it holds. If instead the
    /// member that was to re-publish for the last join has left since (perhaps before its
    /// re-publication was delivered), the lowest remaining member of that side re-publishes.
    ///
    /// - Returns: `submit` effects of re-publications, in ring order of the originals.
    public mutating func configurationChanged(_ change: ConfigurationChange, now: MonotonicInstant) -> [EventServiceEffect] {
        defer { checkInvariants() }
        retention.expire(now: now)
        switch change.kind {
        case .transitional:
            transitionalMembers = change.members
            return []
        case .regular:
            ringSequence = change.ringID.sequence
            nextIndex = 0
            var republishes = false
            if let republisher = joinSide.first, !change.members.contains(republisher) {
                // The re-publisher of this node's side left since the last join: the next
                // member of that side takes over (its side may still hold what the others lack,
                // even if this configuration is a join of its own).
                joinSide.removeAll { !change.members.contains($0) }
                republishes = joinSide.first == localNode
            }
            if !change.joined.isEmpty {
                joinSide = transitionalMembers ?? []
                republishes = republishes || joinSide.first == localNode
            }
            guard republishes else { return [] }
            let effects = republishRetained(now: now)
            statistics.republished += effects.count
            return effects
        }
    }

    /// Applies a ring message addressed to the event service.
    ///
    /// - Parameters:
    ///   - payload: The whole ring payload, envelope byte included.
    ///   - sender: The node the ring says submitted it.
    ///   - now: The time of delivery (retention counts from here).
    /// - Returns: `confirmed` for our own publication, then `deliver` to the matching local
    ///   subscriptions if the channel subscribes the type. A known re-publication returns nothing.
    /// - Throws: `ServiceWireError` for a malformed message, or `senderMismatch` when an
    ///   original publication names another publisher than its sender. The message still takes a
    ///   ring position (every member counts it alike).
    public mutating func delivered(payload: [UInt8], from sender: NodeID, now: MonotonicInstant) throws(ServiceWireError) -> [EventServiceEffect] {
        var effects: [EventServiceEffect] = []
        try delivered(payload: payload, from: sender, now: now, into: &effects)
        return effects
    }

    /// `delivered(payload:from:now:)` appending its effects to `effects`, so that a caller
    /// handling event after event reuses one array. On a throw nothing is appended.
    public mutating func delivered(payload: [UInt8], from sender: NodeID, now: MonotonicInstant,
                                   into effects: inout [EventServiceEffect]) throws(ServiceWireError) {
        defer { checkInvariants() }
        let service = try ServiceEnvelope.service(of: payload)
        guard service == .event else { throw .wrongService(expected: .event, actual: service.rawValue) }
        let position = RingPosition(ringSequence: ringSequence, index: nextIndex)
        nextIndex += 1
        let message = try EventMessage(decoding: payload, names: &decodedNames)
        retention.expire(now: now)
        let event: DeliveredEvent
        switch message.kind {
        case .published:
            guard message.id.publisher == sender else {
                throw .senderMismatch(claimed: message.id.publisher.rawValue, sender: sender.rawValue)
            }
            event = Self.event(from: message, position: position, isRepublished: false, sender: sender)
        case .republished(let originalPosition):
            guard !retention.isKnown(message.id) else {
                statistics.duplicatesDropped += 1
                return
            }
            event = Self.event(from: message, position: originalPosition, isRepublished: true, sender: sender)
        }
        statistics.delivered += 1
        if let lifetime = event.retention {
            retention.insert(event, expiresAt: now + lifetime)
        }
        if event.id.publisher == localNode, event.id.incarnation == incarnation, !event.isRepublished {
            effects.append(.confirmed(event))
        }
        let slot: Int
        if let last = lastDeliveredChannel, last.name == event.channel {
            slot = last.slot
        } else if let found = slots[event.channel] {
            slot = found
            lastDeliveredChannel = (event.channel, found)
        } else {
            statistics.unknownChannel += 1
            return
        }
        let matching = Self.count(event, in: &channels[slot], subscriptions: subscriptions)
        if !matching.isEmpty { effects.append(.deliver(event, to: matching)) }
    }

    // MARK: - Helpers

    /// Counts a delivered `event` on its channel and returns the subscriptions it matches.
    /// Works on the state in place (`inout` on the dictionary slot): reading it through the
    /// dictionary would copy the whole state, with its arrays, per event.
    private static func count(
        _ event: DeliveredEvent, in state: inout ChannelState, subscriptions: [SubscriptionID: Subscription]
    ) -> [SubscriptionID] {
        guard state.configuration.subscribes.contains(event.type) else {
            state.ignored += 1
            return []
        }
        state.delivered += 1
        // Usually every subscription of the channel matches: the channel's own list is then
        // returned as it is (shared, not a new array per event), and without a lookup per
        // subscription (each copied a Subscription out of the table: three retains, three releases).
        if state.everySubscriptionTakesAll { return state.subscriptions }
        guard let first = state.subscriptions.firstIndex(where: { subscriptions[$0]?.matches(event) != true }) else {
            return state.subscriptions
        }
        var matching = Array(state.subscriptions[..<first])
        for id in state.subscriptions[(first + 1)...] where subscriptions[id]?.matches(event) == true { matching.append(id) }
        return matching
    }

    private func republishRetained(now: MonotonicInstant) -> [EventServiceEffect] {
        var effects: [EventServiceEffect] = []
        for entry in retention.inPositionOrder {
            let remaining = entry.expiresAt - now
            guard remaining > .zero, let milliseconds = try? Self.milliseconds(of: remaining), milliseconds > 0 else { continue }
            let event = entry.event
            let message = EventMessage(kind: .republished(originalPosition: event.position), id: event.id,
                                       publisherEntity: event.publisherEntity, channel: event.channel, type: event.type,
                                       retentionMilliseconds: milliseconds, attributes: event.attributes, payloadBytes: event.payloadBytes)
            effects.append(.submit(message.encoded()))
        }
        return effects
    }

    /// The delivered form of a decoded message.
    private static func event(from message: EventMessage, position: RingPosition, isRepublished: Bool, sender: NodeID) -> DeliveredEvent {
        DeliveredEvent(id: message.id, publisherEntity: message.publisherEntity, channel: message.channel, type: message.type,
                       attributes: message.attributes, payloadBytes: message.payloadBytes,
                       retention: message.retentionMilliseconds == 0 ? nil : .milliseconds(Int64(message.retentionMilliseconds)),
                       position: position, isRepublished: isRepublished, sender: sender)
    }

    private static func validate(attributes: [String: String], payload: [UInt8]) throws(PublishError) {
        guard attributes.count <= EventLimits.attributes else {
            throw .tooManyAttributes(count: attributes.count, limit: EventLimits.attributes)
        }
        for (key, value) in attributes.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            guard (1...EventLimits.attributeKeyBytes).contains(key.utf8.count) else { throw .invalidAttributeKey(key) }
            guard value.utf8.count <= EventLimits.attributeValueBytes else {
                throw .attributeValueTooLong(key: key, bytes: value.utf8.count, limit: EventLimits.attributeValueBytes)
            }
        }
        guard payload.count <= EventLimits.payloadBytes else {
            throw .payloadTooLarge(bytes: payload.count, limit: EventLimits.payloadBytes)
        }
    }

    /// Whole milliseconds of `retention`, rounded up; 0 for `nil` or zero.
    private static func milliseconds(of retention: Duration?) throws(PublishError) -> UInt32 {
        guard let retention, retention != .zero else { return 0 }
        guard retention > .zero, retention <= EventLimits.maxRetention else { throw .retentionOutOfRange(retention) }
        let nanoseconds = retention.totalNanoseconds
        guard let milliseconds = UInt32(exactly: (nanoseconds + 999_999) / 1_000_000) else { throw .retentionOutOfRange(retention) }
        return milliseconds
    }

    /// Checked after every input. A failure is a bug in this file, not bad input.
    /// Cheap checks after every input; the cross-check of channels and subscriptions (linear in
    /// both, and run for every event) in debug builds, as DeviceStateService does.
    private func checkInvariants() {
        precondition(nextCounter >= 1, "event counter \(nextCounter)")
        precondition(channels.count == slots.count, "channel table and slots disagree")
        precondition(retention.count <= EventLimits.retainedEvents, "retained \(retention.count) events")
        precondition(retention.bytes <= retention.capacityBytes, "retained \(retention.bytes) bytes")
        assert(subscriptionTablesAgree())
    }

    private func subscriptionTablesAgree() -> Bool {
        var open = 0
        for (slot, state) in channels.enumerated() {
            let name = state.configuration.name
            precondition(slots[name] == slot, "channel \(name) stored under another slot")
            for id in state.subscriptions {
                precondition(subscriptions[id]?.channel == name, "subscription \(id) listed on \(name) but not open there")
            }
            let takeAll = state.subscriptions.allSatisfy { subscriptions[$0]?.takesEveryEvent == true }
            precondition(state.everySubscriptionTakesAll == takeAll, "channel \(name): stale everySubscriptionTakesAll")
            open += state.subscriptions.count
        }
        precondition(open == subscriptions.count, "\(open) listed subscriptions, \(subscriptions.count) open")
        return true
    }
}
