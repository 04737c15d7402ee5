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

    /// Creates a summary.
    public init(name: ChannelName, publishes: [EventType], subscribes: [EventType], subscribers: Int, published: Int,
                delivered: Int, ignored: Int, retained: Int) {
        self.name = name
        self.publishes = publishes
        self.subscribes = subscribes
        self.subscribers = subscribers
        self.published = published
        self.delivered = delivered
        self.ignored = ignored
        self.retained = retained
    }
}
