// Module overview: Asterisk's distributed device state and MWI over the event service; the
// decisions taken where the issue left a choice, and the departures from Asterisk.

/// The DeviceState module: the telephony domain on top of `EventService`.
///
/// `DeviceStateService` keeps, for one server:
/// - its **local device states** (`setLocalState`), persisted through `persist` effects and
///   restored at start;
/// - a **per-entity cache**: device → entity id → state, one slot per server, replaced by that
///   server's newer state (`EntityCache`);
/// - the **cluster-wide state** of each device: the aggregate of its slots
///   (`DeviceStateAggregate`, reference §2.1; empty is INVALID). Subscribers hear
///   `deviceStateChanged` only when it changes;
/// - **hints**: the extension state of `DEV1&DEV2...` is the aggregate of the devices'
///   cluster-wide states, mapped by `ExtensionState.init(_:)` (reference §3); watchers hear
///   `extensionStateChanged` only when it changes;
/// - **MWI**: per mailbox, the latest update in ring order (`MailboxRecord`).
///
/// Routing: the daemon hands every ring payload whose envelope names `ServiceID.event` to
/// `DeviceStateService.delivered(payload:from:now:)` (the service owns the event service), and
/// every `ServiceID.membership` payload to `MembershipService`.
///
/// Device states travel as `device_state` events, MWI as `mwi` events, on every channel whose
/// configuration publishes the type; they are taken in from every channel that subscribes it.
/// Event attributes: `device` (the normalized name) or `mailbox` (`MAILBOX@CONTEXT`), so other
/// subscribers can filter, e.g. prefix `Custom:`; a join re-publication's batch of device states
/// has none.
///
/// ## Decisions
/// - **Own states** count from the local table at once; the ring copy of our own entity's
///   states is ignored (Asterisk drops events with its own EID).
/// - **Leave**: at every configuration change, slots of servers whose publishing node is not a
///   member are dropped and aggregates recomputed (the entity → node map comes from each
///   event's publisher field). A device state delivered from a non-member (after a
///   TRANSITIONAL configuration) is ignored.
/// - **Clear**: a server can stop reporting a device (`clearLocalState`, a `deviceStateCleared`
///   payload); every server drops its slot. PBX adapters use it to re-synchronise after their PBX
///   restarted without some device.
/// - **Per-server view**: besides the aggregate, the service tells (`serverStateChanged`,
///   `serverLeft`) each change of another server's slot and each departure of a server with slots,
///   for adapters whose PBX aggregates itself (Asterisk folds per-EID entries in its own cache).
/// - **Join**: after a REGULAR configuration with joined members (and after the first one
///   after start), every server re-publishes all its local states, like res_corosync; its
///   device states go several to an event (`DeviceStatePayload.deviceStates`).
/// - **MWI ordering**: an MWI update's stamp is the ring position of its original publication
///   (`RingPosition`), then the publisher's entity id. A record is replaced only by a greater
///   stamp, so within a ring the later delivery wins (Asterisk's last-writer-wins), and a stale
///   re-publication never overrides a newer value.
/// - **MWI on join**: each server re-publishes the MWI counts it published itself, with the
///   stamp every node keeps for them (that of the last copy of the update delivered: a join
///   before the first copy came back publishes it afresh); and each server that takes MWI in
///   re-publishes the records whose publisher is no longer a member (MWI survives its
///   publisher's leave) or has just joined (a publisher whose crash lost its last update
///   before its disk had it learns it back, takes it into its own table, and nodes that never
///   saw it get it). Receivers keep the greatest stamp, so duplicates and stale copies are
///   harmless and all nodes converge. Only nodes whose configuration publishes `mwi` can
///   re-publish.
/// - **MWI on leave**: kept.
///
/// ## Departures from Asterisk
/// - Unknown state names are errors listing the valid ones (Asterisk maps them to UNKNOWN).
/// - A `Custom:` device nobody reports is UNKNOWN (hint Idle), as Asterisk's `Custom` provider
///   reports a name without an astdb entry; any other device nobody reports is INVALID (the empty
///   aggregate, hint Unavailable), as for a device no channel driver claims.
/// - Device names are validated and normalized once (`DeviceName`); hints compare devices by
///   that normalized name (Asterisk compares hint parts case-insensitively).
/// - No non-cachable states: every state is cached.
public enum DistributedDeviceState {}
