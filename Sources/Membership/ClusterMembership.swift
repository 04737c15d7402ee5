// Module overview: the membership layer, its terms and where it departs from AIS CLM.

/// The Membership module: the first layer above Totem.
///
/// Totem delivers configuration changes (TRANSITIONAL, then REGULAR) with extended virtual
/// synchrony. `MembershipService` turns them into a node directory, locally numbered views, a
/// quorum verdict and a stream of `MembershipChange`s. The module also owns what every service
/// on the ring shares: the one-byte `ServiceEnvelope` that multiplexes services over one ring,
/// the `EntityID` that tags device states, and the bounds-checked codec helpers
/// (`ServiceWireError`).
///
/// ## Terms
/// - **view**: the members of one REGULAR configuration, numbered 1, 2, ... by this process.
/// - **entity id**: a server's six-octet identity (Asterisk's EID), learned from announcements.
/// - **announcement**: the `NodeAnnouncement` every node submits after every REGULAR
///   configuration.
///
/// ## Departures from AIS CLM
/// - No tracking API with callbacks: the change stream is returned as effects.
/// - View numbers are local counts, not cluster-agreed; the ring id is the agreed identity.
/// - Quorum is part of the service (CLM has none): a strict majority of the configured node
///   list, or always quorate without a list.
public enum ClusterMembership {}
