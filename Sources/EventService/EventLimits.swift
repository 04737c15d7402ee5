// Every bound of the event service in one place: wire limits (checked by the decoder before
// any arithmetic) and store limits.

/// Bounds of the event format and store.
public enum EventLimits {
    /// Longest channel name in bytes.
    public static let channelNameBytes = 64
    /// Longest event type name in bytes.
    public static let eventTypeBytes = 32
    /// Most attributes per event.
    public static let attributes = 32
    /// Longest attribute key in bytes (at least 1).
    public static let attributeKeyBytes = 64
    /// Longest attribute value in bytes.
    public static let attributeValueBytes = 1024
    /// Largest payload in bytes.
    public static let payloadBytes = 65_536
    /// Longest retention: `UInt32.max` milliseconds (about 49.7 days).
    public static let maxRetention: Duration = .milliseconds(Int64(UInt32.max))
    /// Most retained events a node keeps; beyond it the oldest (by ring position) is dropped.
    public static let retainedEvents = 10_000
    /// How long an expired event's id is still recognised, so that a late re-publication of it
    /// is not taken for a new event.
    public static let tombstoneGrace: Duration = .seconds(60)
}
