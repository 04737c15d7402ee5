// What the event service asks of the daemon (or of the layer composing it), and its errors.

/// What the event service asks the caller to do, in the order returned.
public enum EventServiceEffect: Sendable, Equatable {
    /// Submit these bytes to the ring (they already carry the service envelope).
    case submit([UInt8])
    /// Deliver `event` to these local subscriptions (ascending ids), in ring order.
    case deliver(DeliveredEvent, to: [SubscriptionID])
    /// One of this process's own publications came back from the ring (whatever its type and
    /// this node's subscriptions): its ring position is now known.
    case confirmed(DeliveredEvent)
}

/// Why `EventChannelService.init` refused its channel configuration.
public enum ChannelConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Two channels have the same name.
    case duplicateChannel(ChannelName)

    public var description: String {
        switch self {
        case .duplicateChannel(let name): "channel \(name) is configured twice"
        }
    }
}

/// Why `publish` refused an event.
public enum PublishError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No channel of that name is configured on this node.
    case unknownChannel(ChannelName)
    /// The channel's configuration does not let this node publish the type.
    case typeNotPublished(EventType, channel: ChannelName, allowed: [EventType])
    /// More attributes than `EventLimits.attributes`.
    case tooManyAttributes(count: Int, limit: Int)
    /// An attribute key is empty or longer than `EventLimits.attributeKeyBytes`.
    case invalidAttributeKey(String)
    /// An attribute value is longer than `EventLimits.attributeValueBytes`.
    case attributeValueTooLong(key: String, bytes: Int, limit: Int)
    /// The payload is larger than `EventLimits.payloadBytes`.
    case payloadTooLarge(bytes: Int, limit: Int)
    /// The retention is negative or longer than `EventLimits.maxRetention`.
    case retentionOutOfRange(Duration)

    public var description: String {
        switch self {
        case .unknownChannel(let channel):
            "no channel \(channel) is configured"
        case .typeNotPublished(let type, let channel, let allowed):
            "channel \(channel) does not publish \(type) (publishes: \(allowed.isEmpty ? "nothing" : allowed.map(\.rawValue).joined(separator: ", ")))"
        case .tooManyAttributes(let count, let limit):
            "\(count) attributes, at most \(limit)"
        case .invalidAttributeKey(let key):
            "invalid attribute key \"\(key)\" (1-\(EventLimits.attributeKeyBytes) bytes)"
        case .attributeValueTooLong(let key, let bytes, let limit):
            "attribute \(key): value of \(bytes) bytes, at most \(limit)"
        case .payloadTooLarge(let bytes, let limit):
            "payload of \(bytes) bytes: an event's payload is at most \(limit) bytes"
        case .retentionOutOfRange(let retention):
            "retention \(retention) outside 0...\(EventLimits.maxRetention)"
        }
    }
}

/// Why `subscribe` refused a subscription.
public enum SubscribeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No channel of that name is configured on this node.
    case unknownChannel(ChannelName)
    /// The channel's configuration does not let this node take in the type.
    case typeNotSubscribed(EventType, channel: ChannelName, allowed: [EventType])
    /// A filter names an empty attribute key.
    case emptyFilterAttribute

    public var description: String {
        switch self {
        case .unknownChannel(let channel):
            "no channel \(channel) is configured"
        case .typeNotSubscribed(let type, let channel, let allowed):
            "channel \(channel) does not subscribe \(type) (subscribes: \(allowed.isEmpty ? "nothing" : allowed.map(\.rawValue).joined(separator: ", ")))"
        case .emptyFilterAttribute:
            "a filter names an empty attribute"
        }
    }
}

/// Counters of the event service, for `status` and debugging.
public struct EventStatistics: Sendable, Equatable {
    /// Events this node published.
    public var published = 0
    /// Event messages delivered by the ring and accepted (originals and new re-publications).
    public var delivered = 0
    /// Re-publications this node submitted after joins.
    public var republished = 0
    /// Re-publications dropped because the event was already known.
    public var duplicatesDropped = 0
    /// Delivered events on channels this node has not configured.
    public var unknownChannel = 0

    /// All zero.
    public init() {}
}
