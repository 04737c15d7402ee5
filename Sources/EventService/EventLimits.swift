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
    /// Default of the most bytes of retained events a node keeps (`[options] max_retained_bytes`);
    /// beyond it the oldest (by ring position) are dropped, as at `retainedEvents`.
    public static let defaultRetainedBytes = 32 << 20
    /// The range `max_retained_bytes` may take: at least room for several of the largest events
    /// (`largestRetainedEventBytes`), at most 64 GiB.
    public static let retainedBytesRange = (1 << 20)...(1 << 36)
    /// What a retained event is counted for besides its payload and attributes: the event's
    /// fields, its entry in the store and its order, the payload's and table's headers.
    public static let retainedEventOverheadBytes = 384
    /// What each attribute of a retained event is counted for besides its key and value.
    public static let retainedAttributeOverheadBytes = 64
    /// The most one retained event can be counted for (the largest payload and attributes).
    public static let largestRetainedEventBytes = retainedEventOverheadBytes + payloadBytes
        + attributes * (retainedAttributeOverheadBytes + attributeKeyBytes + attributeValueBytes)
    /// Most ids of expired or dropped events remembered (`tombstoneGrace`); past it the half
    /// that runs out first is forgotten.
    public static let tombstones = 4 * retainedEvents
    /// How long an expired event's id is still recognised, so that a late re-publication of it
    /// is not taken for a new event.
    public static let tombstoneGrace: Duration = .seconds(60)
}
