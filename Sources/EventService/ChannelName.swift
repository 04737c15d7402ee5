// Names of channels and event types: validated once, at the edge.

/// The name of an event channel: 1 to 64 printable ASCII characters without spaces (the rule of
/// the daemon's configuration for section names).
public struct ChannelName: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The name.
    public let rawValue: String

    /// Validates `rawValue`; `nil` if it breaks the rule.
    public init?(_ rawValue: String) {
        guard Self.isValid(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    /// Validates a name given as its bytes (received ones); `nil` if they break the rule.
    public init?(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        guard Self.isValid(utf8: bytes) else { return nil }
        rawValue = String(decoding: bytes, as: UTF8.self)
    }

    /// Whether `text` is a valid channel name.
    public static func isValid(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { isValid(utf8: $0) }
    }

    /// Whether `bytes` are a valid channel name.
    public static func isValid(utf8 bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        (1...EventLimits.channelNameBytes).contains(bytes.count) && bytes.allSatisfy { (0x21...0x7E).contains($0) }
    }

    public static func < (lhs: ChannelName, rhs: ChannelName) -> Bool { lhs.rawValue.utf8.lexicographicallyPrecedes(rhs.rawValue.utf8) }

    public var description: String { rawValue }
}

/// The type of an event (`device_state`, `mwi`): what channel configuration permits.
///
/// 1 to 32 characters from `a-z`, `0-9`, `_`, starting with a letter. `init(parsing:)` accepts
/// upper case too (configuration types are matched case-insensitively, as in `ais.conf`).
public struct EventType: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The canonical, lower-case name.
    public let rawValue: String

    /// Device state changes, the `device_state` type of `ais.conf`.
    public static let deviceState = EventType(known: "device_state")
    /// Message-waiting indication, the `mwi` type of `ais.conf`.
    public static let mwi = EventType(known: "mwi")

    /// Validates a canonical name; `nil` if it breaks the rule.
    public init?(_ rawValue: String) {
        guard Self.isValid(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    /// Parses a name case-insensitively; `nil` if it breaks the rule.
    public init?(parsing text: String) {
        self.init(String(decoding: text.utf8.map { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 }, as: UTF8.self))
    }

    private init(known: String) {
        precondition(Self.isValid(known), "invalid built-in event type \(known)")
        rawValue = known
    }

    /// Validates a canonical name given as its bytes (received ones); `nil` if they break the rule.
    public init?(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        guard Self.isValid(utf8: bytes) else { return nil }
        rawValue = String(decoding: bytes, as: UTF8.self)
    }

    /// Whether `text` is a valid canonical event type.
    public static func isValid(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { isValid(utf8: $0) }
    }

    /// Whether `bytes` are a valid canonical event type.
    public static func isValid(utf8 bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard (1...EventLimits.eventTypeBytes).contains(bytes.count), (0x61...0x7A).contains(bytes[0]) else { return false }
        return bytes.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }
    }

    public static func < (lhs: EventType, rhs: EventType) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { rawValue }
}
