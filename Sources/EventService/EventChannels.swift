// Module overview: the event service, its terms, the join re-publication rule, and where it
// departs from AIS EVT.

/// The EventService module: named event channels multiplexed over the one Totem ring.
///
/// `EventChannelService` is a pure state machine (inputs: configuration changes, ring
/// deliveries, local publish/subscribe requests, each with `now` where time matters; outputs:
/// `EventServiceEffect`s). An event has a channel, a type (`device_state`, `mwi`, ...), a
/// cluster-unique `EventID`, the publisher's entity id, attributes (used by subscription filters),
/// a payload and an optional retention time. Every node delivers every event in ring order to
/// its matching local subscribers.
///
/// ## Terms
/// - **channel configuration**: per channel, the event types this node publishes
///   (`publish_event`) and the types it takes in (`subscribe_event`), as in the seed's `ais.conf`.
///   Publishing another type is an error; deliveries of types not subscribed are ignored.
/// - **event id**: (publisher node id, publisher incarnation, counter). The incarnation is a
///   per-process generation the daemon supplies (it must grow across restarts of one node), so a
///   restarted publisher, whose counter starts again at 1, never reuses an id.
/// - **ring position**: (ring sequence, index of the event among the event messages delivered
///   in that ring). Every member of a ring delivers the same event messages in the same order
///   from its REGULAR configuration on, so members agree on positions; later rings have higher
///   sequences. Positions order events "by ring order" across rings.
/// - **retention**: a retained event is kept by every node, counted from its receipt there,
///   whatever that node's subscriptions (the store is the cluster's memory, not a subscriber's).
///   Local subscribers that open a channel later get the retained events replayed.
///
/// ## Join re-publication (decided here)
/// After a REGULAR configuration with joined members, the lowest-id member of this node's
/// preceding TRANSITIONAL configuration re-publishes every retained event it holds, with its
/// original id, publisher, and ring position, and its *remaining* retention. Members of one
/// transitional configuration hold the same retained events (they delivered the same messages,
/// by virtual synchrony, and keep them whatever their subscriptions), so one of them suffices
/// per partition; after a merge each side's lowest member re-publishes. Receivers drop a
/// re-published event whose id they hold or held recently (a tombstone outlives expiry by
/// `EventLimits.tombstoneGrace`), so nodes that had it see no duplicate. Fresh publications are
/// never de-duplicated: Totem delivers each exactly once.
///
/// ## Departures from AIS EVT
/// - Channels are configured, not opened and created at run time; a channel's publish/subscribe
///   types come from configuration.
/// - Filters are exact or prefix matches on named attributes (AIS matches patterns by position).
/// - No priorities; ring order is the only order.
public enum EventChannels {}
