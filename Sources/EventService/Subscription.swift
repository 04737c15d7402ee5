// Local subscriptions and their attribute filters.

/// Identifies one local subscription; ids ascend in creation order and are never reused.
public struct SubscriptionID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The id's number, from 1.
    public let rawValue: UInt64

    /// Wraps a number (ids are handed out by `EventChannelService.subscribe`).
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static func < (lhs: SubscriptionID, rhs: SubscriptionID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "#\(rawValue)" }
}

/// A condition on one attribute. An event without the attribute never matches.
///
/// Comparison is on UTF-8 bytes: `exact` needs identical bytes, `prefix` needs the value's bytes
/// to start with the prefix's bytes (the empty prefix matches any present value).
public struct SubscriptionFilter: Sendable, Equatable, CustomStringConvertible {
    /// How the attribute's value is compared.
    public enum Match: Sendable, Equatable {
        /// The value equals this text.
        case exact(String)
        /// The value starts with this text.
        case prefix(String)
    }

    /// The attribute key (non-empty).
    public var attribute: String
    /// The comparison.
    public var match: Match

    /// Creates a filter.
    public init(attribute: String, match: Match) {
        self.attribute = attribute
        self.match = match
    }

    /// Whether `attributes` satisfy the filter.
    public func matches(_ attributes: [String: String]) -> Bool {
        guard let value = attributes[attribute] else { return false }
        switch match {
        case .exact(let expected): return value.utf8.elementsEqual(expected.utf8)
        case .prefix(let prefix): return value.utf8.starts(with: prefix.utf8)
        }
    }

    /// `key=value` or `key=prefix*`.
    public var description: String {
        switch match {
        case .exact(let value): "\(attribute)=\(value)"
        case .prefix(let prefix): "\(attribute)=\(prefix)*"
        }
    }
}

/// What a local subscriber wants: a channel, optionally some of its types, and filters that must
/// all match.
public struct Subscription: Sendable, Equatable {
    /// The channel.
    public var channel: ChannelName
    /// The types wanted; empty means every type the channel's configuration subscribes.
    public var types: [EventType]
    /// Filters; an event is delivered only if every one matches (no filter: every event).
    public var filters: [SubscriptionFilter]

    /// Creates a subscription.
    public init(channel: ChannelName, types: [EventType] = [], filters: [SubscriptionFilter] = []) {
        self.channel = channel
        self.types = types
        self.filters = filters
    }

    /// Whether the subscription takes every event of its channel (no types, no filters).
    public var takesEveryEvent: Bool { types.isEmpty && filters.isEmpty }

    /// Whether `event` is for this subscription: its channel, a wanted type, every filter.
    public func matches(_ event: DeliveredEvent) -> Bool {
        event.channel == channel && (types.isEmpty || types.contains(event.type))
            && filters.allSatisfy { $0.matches(event.attributes) }
    }
}
