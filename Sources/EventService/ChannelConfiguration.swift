// Per-channel configuration (what this node publishes and takes in) and the `channels` summary.

/// One configured event channel: the section of the daemon's configuration with
/// `type = event_channel`, `publish_event` and `subscribe_event`.
public struct ChannelConfiguration: Sendable, Equatable {
    /// The channel name.
    public var name: ChannelName
    /// Types this node may publish on the channel; publishing another type is an error.
    public var publishes: [EventType]
    /// Types this node takes in from the channel; deliveries of other types are ignored.
    public var subscribes: [EventType]

    /// Creates a configuration. Repeated types are kept once, in first-seen order.
    public init(name: ChannelName, publishes: [EventType], subscribes: [EventType]) {
        self.name = name
        self.publishes = Self.unique(publishes)
        self.subscribes = Self.unique(subscribes)
    }

    private static func unique(_ types: [EventType]) -> [EventType] {
        var seen = Set<EventType>()
        return types.filter { seen.insert($0).inserted }
    }
}

/// What the `channels` command shows about one channel.
public struct ChannelSummary: Sendable, Equatable {
    /// The channel name.
    public var name: ChannelName
    /// Types published (`Publishing Event Type`).
    public var publishes: [EventType]
    /// Types subscribed (`Subscribing to Event Type`).
    public var subscribes: [EventType]
    /// Local subscriptions open on the channel (the device-state service's own included).
    public var subscribers: Int
    /// Events this node published on the channel.
    public var published: Int
    /// Events delivered on the channel with a subscribed type (before filters).
    public var delivered: Int
    /// Events delivered on the channel with a type this node does not subscribe, ignored.
    public var ignored: Int
    /// Retained events of the channel this node holds.
    public var retained: Int
    /// What they are counted for against `max_retained_bytes` (`RetentionSummary.bytes`).
    public var retainedBytes: Int

    /// Creates a summary.
    public init(name: ChannelName, publishes: [EventType], subscribes: [EventType], subscribers: Int, published: Int,
                delivered: Int, ignored: Int, retained: Int, retainedBytes: Int = 0) {
        self.name = name
        self.publishes = publishes
        self.subscribes = subscribes
        self.subscribers = subscribers
        self.published = published
        self.delivered = delivered
        self.ignored = ignored
        self.retained = retained
        self.retainedBytes = retainedBytes
    }
}

/// What this node's retained events hold, its caps, and what the caps dropped.
public struct RetentionSummary: Sendable, Equatable {
    /// Retained events held.
    public var events: Int
    /// Their bytes as counted: payload, attribute keys and values, and fixed overheads
    /// (`EventLimits.retainedEventOverheadBytes`, `retainedAttributeOverheadBytes`).
    public var bytes: Int
    /// The cap in events (`EventLimits.retainedEvents`).
    public var maximumEvents: Int
    /// The cap in bytes (`[options] max_retained_bytes`).
    public var maximumBytes: Int
    /// Events dropped before their expiry because the cap in events was reached (oldest first).
    public var droppedAtEventCap: Int
    /// Events dropped before their expiry because the cap in bytes was reached (oldest first).
    public var droppedAtByteCap: Int
}
