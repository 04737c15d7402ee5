// Event channels for clients (EVT-like): `event_publish`, `event_subscribe` (with the replay of
// retained events at the client's pace), `event_unsubscribe`, and the expiry of retained events.

import DeviceState
import EventService
import Membership
import Totem

extension ServiceHost {
    /// `event_publish`: publishes an event on a channel this node publishes its type on. The
    /// device-state types are refused (they are `devstate_set`'s and `mwi_set`'s).
    ///
    /// - Parameters:
    ///   - client: Who asked (held while the ring is busy); `nil` for an in-process caller.
    ///   - ringQueuedBytes: Bytes in the ring's send queue now.
    /// - Returns: The event's id.
    /// - Throws: `.publish`; nothing changes then.
    public mutating func publishEvent(on channel: ChannelName, type: EventType, attributes: [String: String], payload: [UInt8],
                                      retention: Duration?, client: ClientID?, now: MonotonicInstant, ringQueuedBytes: Int,
                                      into effects: inout [Effect]) throws(ServiceHostError) -> EventID {
        defer { checkInvariants() }
        do {
            let (id, published) = try deviceState.publishEvent(on: channel, type: type, attributes: attributes, payload: payload,
                                                               retention: retention)
            applyLocalChange(published, client: client, now: now, ringQueuedBytes: ringQueuedBytes, into: &effects)
            return id
        } catch {
            throw .publish(error)
        }
    }

    /// `event_subscribe`: opens a subscription for `client` (at most `subscriptionsPerClient`).
    /// Its live events come as `deliverEvent` effects; the retained events it matches are
    /// replayed through the result's cursor, which the shell starts after the answer (a replay
    /// ahead of the answer would name a subscription the client does not know yet).
    ///
    /// - Throws: `.tooManySubscriptions`, `.subscribe`; nothing changes then.
    public mutating func subscribeEvents(_ subscription: Subscription, client: ClientID,
                                         now: MonotonicInstant) throws(ServiceHostError) -> EventSubscriptionResult {
        defer { checkInvariants() }
        guard subscriptionOwners.count(of: client) < Self.subscriptionsPerClient else {
            throw .tooManySubscriptions(limit: Self.subscriptionsPerClient)
        }
        let id: SubscriptionID
        let replay: RetainedReplay
        do {
            (id, replay) = try deviceState.subscribeEvents(subscription, now: now)
        } catch {
            throw .subscribe(error)
        }
        subscriptionOwners.add(id, for: client)
        return EventSubscriptionResult(subscription: id, channel: subscription.channel, replayed: replay.matchingAtStart,
                                       replay: replay.isFinished ? nil : replay)
    }

    /// `event_unsubscribe`: closes `client`'s subscription `id`.
    ///
    /// - Returns: Whether `client` had it open.
    public mutating func unsubscribeEvents(_ id: SubscriptionID, client: ClientID?) -> Bool {
        defer { checkInvariants() }
        guard let client, subscriptionOwners.remove(id, for: client) else { return false }
        deviceState.unsubscribeEvents(id)
        return true
    }

    /// The next stretch of a replay (at least one event when any is left, then more up to
    /// `replayStretchBytes`), as `deliverEvent` effects marked `replayed`; call again while
    /// `replay.isFinished` is false. A closed subscription finishes it.
    public func continueReplay(_ replay: inout RetainedReplay, now: MonotonicInstant, into effects: inout [Effect]) {
        let events = deviceState.continueReplay(&replay, now: now, maximumBytes: Self.replayStretchBytes)
        guard let client = subscriptionOwners.owner(of: replay.subscription) else { return }
        for event in events {
            effects.append(.deliverEvent(event, subscription: replay.subscription, client: client, replayed: true))
        }
    }

    // MARK: Retention expiry

    /// Arms the expiry of retained events for the next deadline, if any (disarms it otherwise).
    mutating func scheduleExpiry(into effects: inout [Effect]) {
        let previous = armedExpiry
        armedExpiry = deviceState.nextEventExpiry
        if let deadline = armedExpiry {
            effects.append(.armTimer(.expiry, at: deadline))
        } else if previous != nil {
            effects.append(.disarmTimer(.expiry))
        }
    }

    mutating func expiryTimerFired(now: MonotonicInstant, into effects: inout [Effect]) {
        deviceState.expireEvents(now: now)
        scheduleExpiry(into: &effects)
    }
}
