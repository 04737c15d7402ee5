// Module overview: what Totem is here, its glossary, and where we depart from the paper and
// from corosync. Read this first; the spec is ../shared/reference/totem-spec.md.

/// The Totem single-ring ordering and membership protocol.
///
/// Totem gives every node of a cluster the same totally ordered stream of messages and the same
/// sequence of membership views, with extended virtual synchrony (EVS): nodes that move together
/// from one configuration to the next delivered the same messages in it. A token circulates
/// around a logical ring of the members in ascending node-id order; only its holder broadcasts,
/// stamping each message with the token's sequence counter. When the token is lost or a node
/// appears, the members exchange JOINs (GATHER), agree (consensus), the lowest id circulates a
/// commit token twice (COMMIT), old-ring messages are re-broadcast until every survivor holds
/// them (RECOVERY), and the new ring is installed: a transitional configuration (the members that
/// came along), then a regular one.
///
/// The core, `SingleRingProtocol`, is a pure state machine: inputs (packet, timer expiry,
/// submit, leave, each with `now`) and ordered `Effect`s out. It never touches a socket, clock,
/// thread or random source, so the same code runs in `devclusterd` and, many at once, in the
/// deterministic simulator (`TotemSimulation`). Its membership phase is a `RingState`, an enum
/// whose cases (operational, gather, commit, recovery) carry the data that only means something
/// in that phase; `MembershipState` names the case for logs, status and metrics.
///
/// ## Glossary
/// - **aru** ("all received up to"): the highest sequence number such that every message up to
///   it is held. The token carries the ring-wide minimum.
/// - **ring id**: representative plus ring sequence number (`RingID`).
/// - **representative**: the lowest node id of a ring; it creates the commit token and holds the
///   token while the ring is idle.
/// - **token**: the ORF token (ordering, reliability, flow control) unicast around the ring.
/// - **frame**: one sequenced SRP message; the packing layer packs several application messages
///   into a frame or fragments one across frames.
/// - **transitional configuration**: the members of the old ring that are also in the new one.
///
/// ## Departures from corosync (each also commented where it is implemented)
/// - Big-endian wire format with a cluster id, link number, explicit lengths and exact-length
///   validation; LEAVE is a flag on JOIN, not node id 0.
/// - Safe delivery is implemented as a per-message flag (corosync ignores `guarantee`).
/// - A token of another ring is dropped before the idle bookkeeping; the hold timer is cancelled
///   on entering GATHER; a JOIN in COMMIT/RECOVERY first moves us to GATHER and is then processed
///   there; a regular message is stored only in the queue of its own ring.
/// - Framing is lazy: application messages stay whole in `FramePacker` until the token lets this
///   node send, and frames are built then. Packing therefore adds no latency, and a message that
///   straddles a configuration change is simply framed again, whole, in the new ring, while every
///   receiver drops incomplete assemblies at each REGULAR configuration (spec §5.3 "ours").
/// - GATHER restarts (answering with a JOIN) only when a JOIN changed our proc or fail set;
///   the spec restarts it for every JOIN it cannot agree with, which lets two gatherers that
///   distrust each other's fail lists ping-pong JOINs at network speed.
/// - At install, a safe old-ring message is delivered in the old regular configuration only if a
///   transitional member already delivered it there (known from the commit token), so every
///   node moving to the new ring splits old-ring messages between regular and transitional alike.
/// - A commit token must name its lowest member as representative; a multicast or merge detect
///   of an older ring from a current member is stale (delayed or replayed) and ignored.
/// - In COMMIT, a JOIN from a new member naming a live processor outside the new ring abandons
///   the commit whatever its ring sequence: that member can never accept our commit token, and
///   the spec's sequence rule made both sides wait for a token timeout (cold starts of three or
///   five daemons formed only after 3.7 s / 5 s with corosync's default token).
/// - The transitional configuration says which departed nodes left gracefully (`leftGracefully`).
/// - There is no application-level sync barrier (`transAck`) in Totem: the layers above
///   re-synchronise by re-publishing after a REGULAR configuration, so the core behaves as if
///   `transAck()` were called right after it, and one send queue and one set of reassembly
///   buffers suffice (the spec's two sets exist only for the barrier).
/// - `send_join` jitter is not implemented (its default is 0); it would need randomness as input.
public enum Totem {}
