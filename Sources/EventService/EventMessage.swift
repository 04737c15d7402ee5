// The event service's wire message: the model and its binary format. Owns encoding and the
// bounds-checked decoding; what to do with a message is EventChannelService's.

import Membership
import Totem

/// One event-service message on the ring: an original publication or a re-publication.
///
/// Binary format (big-endian; the whole ring payload, envelope byte included):
///
/// ```
/// size  field
///   1   service id = 2 (ServiceID.event)
///   1   format version = 1
///   1   kind: 1 = published, 2 = republished
///   4   publisher node id (non-zero; for kind 1 it must equal the Totem sender)
///   6   publisher entity id
///   8   publisher incarnation
///   8   counter (non-zero)
///   1   channel name length C, 1...64;  C bytes: printable ASCII, no spaces
///   1   event type length T, 1...32;    T bytes: [a-z][a-z0-9_]*
///   4   retention in milliseconds (0 = not retained; kind 2: the remaining retention, > 0)
///  (kind 2 only) 8 original ring sequence, 8 original index
///   1   attribute count A, 0...32; A times:
///         1 key length K, 1...64; K bytes UTF-8
///         2 value length V, 0...1024; V bytes UTF-8
///       keys strictly ascending by their UTF-8 bytes (so encoding is deterministic)
///   4   payload length P, 0...65536; P bytes
/// ```
/// Nothing may follow the payload. Decoding rejects every violation with a `ServiceWireError`;
/// it never traps.
public struct EventMessage: Sendable, Equatable {
    /// The format version this build writes and reads.
    public static let version: UInt8 = 1

    /// Original publication, or re-publication after a join.
    public enum Kind: Sendable, Equatable {
        /// The publisher's original publication.
        case published
        /// A re-publication of a retained event, carrying its original ring position.
        case republished(originalPosition: RingPosition)

        var code: UInt8 {
            switch self {
            case .published: 1
            case .republished: 2
            }
        }
    }

    /// Original or re-publication.
    public var kind: Kind
    /// The event id.
    public var id: EventID
    /// The publisher's entity id.
    public var publisherEntity: EntityID
    /// The channel.
    public var channel: ChannelName
    /// The event type.
    public var type: EventType
    /// Retention in milliseconds; 0 means not retained.
    public var retentionMilliseconds: UInt32
    /// Attributes (validated against `EventLimits`).
    public var attributes: [String: String]
    /// Payload (at most `EventLimits.payloadBytes`).
    public var payload: [UInt8] {
        get { Array(payloadBytes) }
        set { payloadBytes = newValue[...] }
    }
    /// The payload as stored. A decoded message's payload is a slice of the ring message it
    /// arrived in, not a copy: a 1 KiB payload's copy was an allocation too large for glibc's
    /// per-thread cache, on every node for every event.
    public var payloadBytes: ArraySlice<UInt8>

    /// Creates a message. Attributes and payload must be within `EventLimits` (callers validate;
    /// a violation here is a bug) and a re-publication must be retained.
    public init(kind: Kind, id: EventID, publisherEntity: EntityID, channel: ChannelName, type: EventType,
                retentionMilliseconds: UInt32, attributes: [String: String], payload: [UInt8]) {
        self.init(kind: kind, id: id, publisherEntity: publisherEntity, channel: channel, type: type,
                  retentionMilliseconds: retentionMilliseconds, attributes: attributes, payloadBytes: payload[...])
    }

    /// `init(kind:...payload:)` with the payload as a slice.
    public init(kind: Kind, id: EventID, publisherEntity: EntityID, channel: ChannelName, type: EventType,
                retentionMilliseconds: UInt32, attributes: [String: String], payloadBytes payload: ArraySlice<UInt8>) {
        precondition(Self.attributesAreValid(attributes), "attributes outside EventLimits")
        precondition(payload.count <= EventLimits.payloadBytes, "payload of \(payload.count) bytes")
        if case .republished = kind { precondition(retentionMilliseconds > 0, "re-published event without retention") }
        self.kind = kind
        self.id = id
        self.publisherEntity = publisherEntity
        self.channel = channel
        self.type = type
        self.retentionMilliseconds = retentionMilliseconds
        self.attributes = attributes
        self.payloadBytes = payload
    }

    /// Whether attributes are within the limits the decoder enforces.
    static func attributesAreValid(_ attributes: [String: String]) -> Bool {
        attributes.count <= EventLimits.attributes && attributes.allSatisfy { key, value in
            (1...EventLimits.attributeKeyBytes).contains(key.utf8.count) && value.utf8.count <= EventLimits.attributeValueBytes
        }
    }

    /// The ring payload, envelope byte included. Deterministic: attributes are written in
    /// ascending byte order of their keys.
    public func encoded() -> [UInt8] {
        var writer = ServiceWireWriter(capacity: 64 + channel.rawValue.utf8.count + payloadBytes.count + 32 * attributes.count)
        writer.write(ServiceID.event.rawValue)
        writer.write(Self.version)
        writer.write(kind.code)
        writer.write(id.publisher.rawValue)
        writer.write(publisherEntity)
        writer.write(id.incarnation)
        writer.write(id.counter)
        writer.writeString(channel.rawValue, lengthAs: UInt8.self)
        writer.writeString(type.rawValue, lengthAs: UInt8.self)
        writer.write(retentionMilliseconds)
        if case .republished(let position) = kind {
            writer.write(position.ringSequence)
            writer.write(position.index)
        }
        writer.writeLength(attributes.count, as: UInt8.self)
        if attributes.count == 1, let (key, value) = attributes.first {
            writer.writeString(key, lengthAs: UInt8.self)
            writer.writeString(value, lengthAs: UInt16.self)
        } else {
            for key in attributes.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                writer.writeString(key, lengthAs: UInt8.self)
                writer.writeString(attributes[key] ?? "", lengthAs: UInt16.self)
            }
        }
        writer.writeLength(payloadBytes.count, as: UInt32.self)
        writer.write(contentsOf: payloadBytes)
        return writer.bytes
    }

    /// Decodes a ring payload, envelope byte included.
    ///
    /// - Throws: `ServiceWireError` for a wrong service, version or kind; a zero node id or
    ///   counter; a bad channel, type, attribute or length; unsorted or duplicate keys; a
    ///   re-publication without retention; missing or trailing bytes.
    public init(decoding payload: [UInt8]) throws(ServiceWireError) {
        var names = EventNameCache()
        try self.init(decoding: payload, names: &names)
    }

    /// `init(decoding:)` reusing the channel and type of the message decoded before with the
    /// same `names` when the bytes are the same, instead of checking them and building two
    /// strings again.
    public init(decoding payload: [UInt8], names: inout EventNameCache) throws(ServiceWireError) {
        var reader = try ServiceEnvelope.open(payload, expecting: .event)
        let version = try reader.readUInt8()
        guard version == Self.version else { throw .unsupportedVersion(version, format: "event") }
        let kindCode = try reader.readUInt8()
        guard kindCode == 1 || kindCode == 2 else { throw .unknownKind(kindCode, format: "event") }
        let rawPublisher = try reader.readUInt32()
        guard let publisher = NodeID(rawValue: rawPublisher) else { throw .zeroNodeID(field: "publisher") }
        guard let entity = EntityID(rawValue: try reader.readUInt48()) else {
            preconditionFailure("six bytes always make an entity id")
        }
        let incarnation = try reader.readUInt64()
        let counter = try reader.readUInt64()
        guard counter != 0 else { throw .invalidValue(field: "counter", value: 0) }
        let channel = try Self.readName(&reader, field: "channel", limit: EventLimits.channelNameBytes,
                                        last: &names.channel, ChannelName.init(utf8:))
        let type = try Self.readName(&reader, field: "type", limit: EventLimits.eventTypeBytes,
                                     last: &names.type, EventType.init(utf8:))
        let retention = try reader.readUInt32()
        let kind: Kind
        if kindCode == 2 {
            guard retention > 0 else { throw .invalidValue(field: "retention", value: 0) }
            let sequence = try reader.readUInt64()
            let index = try reader.readUInt64()
            kind = .republished(originalPosition: RingPosition(ringSequence: sequence, index: index))
        } else {
            kind = .published
        }
        let count = try reader.readCount(as: UInt8.self, field: "attributes", limit: EventLimits.attributes)
        var attributes: [String: String] = [:]
        // Most events have none: reserving zero would still allocate a table.
        if count > 0 { attributes.reserveCapacity(count) }
        var previousKey: String.UTF8View?
        for _ in 0..<count {
            let key = try reader.readString(lengthAs: UInt8.self, field: "attribute key", minimum: 1, limit: EventLimits.attributeKeyBytes)
            if let previousKey, !previousKey.lexicographicallyPrecedes(key.utf8) { throw .notAscending(field: "attribute keys") }
            previousKey = key.utf8
            let value = try reader.readString(lengthAs: UInt16.self, field: "attribute value", limit: EventLimits.attributeValueBytes)
            guard attributes.updateValue(value, forKey: key) == nil else { throw .duplicate(field: "attribute keys") }
        }
        let payloadLength = try reader.readLength(as: UInt32.self, field: "payload", limit: EventLimits.payloadBytes)
        let body = try reader.readSlice(count: payloadLength)
        try reader.requireEnd()
        self.init(kind: kind, id: EventID(publisher: publisher, incarnation: incarnation, counter: counter),
                  publisherEntity: entity, channel: channel, type: type, retentionMilliseconds: retention,
                  attributes: attributes, payloadBytes: body)
    }

    /// Whether `a` and `b` hold the same bytes (a plain loop: `elementsEqual` went through
    /// iterators at about 35 instructions a byte).
    private static func same(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        for index in 0..<a.count where a[index] != b[index] { return false }
        return true
    }

    /// Reads a length-prefixed channel name or event type, checked once over its bytes (not
    /// first as UTF-8 text, then again by the name's rule): `invalidUTF8` or `invalidText` as
    /// reading a string and then the name would report.
    /// `last` is the name read before and its bytes; the same bytes give the same name.
    private static func readName<Name>(_ reader: inout ServiceWireReader, field: String, limit: Int,
                                       last: inout (bytes: [UInt8], name: Name)?,
                                       _ make: (UnsafeBufferPointer<UInt8>) -> Name?) throws(ServiceWireError) -> Name {
        let length = try reader.readLength(as: UInt8.self, field: field, minimum: 1, limit: limit)
        var name: Name?
        var isUTF8 = true
        try reader.withNextBytes(count: length) { bytes in
            if let last, last.bytes.withUnsafeBufferPointer({ Self.same($0, bytes) }) {
                name = last.name
                return
            }
            name = make(bytes)
            if let name {
                last = (Array(bytes), name)
            } else {
                isUTF8 = UTF8Text.isValid(bytes)
            }
        }
        guard let name else { throw isUTF8 ? .invalidText(field: field) : .invalidUTF8(field: field) }
        return name
    }
}

/// The channel and event type of the last event message decoded with it, with their bytes. A
/// busy channel's messages share both, and comparing at most 96 bytes is cheaper than checking
/// them and building two strings per message.
public struct EventNameCache: Sendable {
    fileprivate var channel: (bytes: [UInt8], name: ChannelName)?
    fileprivate var type: (bytes: [UInt8], name: EventType)?

    /// An empty cache.
    public init() {}
}
