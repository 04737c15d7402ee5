// Event channels for control clients (EVT-like): reading `event_publish` and `event_subscribe`
// arguments, the clients' subscriptions, and the `channel_event` lines pushed to them. The
// ClusterHub owns the service and calls in here; this file only translates.

import DeviceState
import EventService
import Membership
import Totem

/// An `event_publish` request, validated.
struct EventPublishRequest {
    var channel: ChannelName
    var type: EventType
    var attributes: [String: String]
    var payload: [UInt8]
    var retention: Duration?

    /// Reads `channel`, `type`, optional `attributes` (strings), `payload` (text) or
    /// `payload_base64`, and `retention_ms`.
    private static let argumentNames: Set<String> = ["channel", "type", "attributes", "payload", "payload_base64", "retention_ms"]

    init(_ arguments: CommandArguments) throws(ControlError) {
        try arguments.allow(Self.argumentNames)
        channel = try arguments.channel()
        let typeText = try arguments.string("type")
        guard let type = EventType(typeText) ?? EventType(parsing: typeText) else {
            throw ControlError(.invalidArgument, "invalid event type \(JSONValue.string(typeText).encoded.prefix(40)): "
                + "1-\(EventLimits.eventTypeBytes) characters a-z, 0-9, _, starting with a letter")
        }
        self.type = type
        attributes = try arguments.stringMap("attributes")
        let text = try arguments.optionalString("payload")
        let encoded = try arguments.optionalString("payload_base64")
        switch (text, encoded) {
        case (let text?, nil):
            payload = Array(text.utf8)
        case (nil, let encoded?):
            do {
                payload = try Base64.decode(encoded)
            } catch {
                throw ControlError(.invalidArgument, "\"payload_base64\": \(error)")
            }
        case (nil, nil):
            payload = []
        case (_?, _?):
            throw ControlError(.invalidArgument, "give \"payload\" or \"payload_base64\", not both")
        }
        if let milliseconds = try arguments.optionalInteger("retention_ms", in: 0...Int64(UInt32.max)) {
            retention = milliseconds == 0 ? nil : .milliseconds(milliseconds)
        }
    }
}

extension Subscription {
    /// Reads `channel`, optional `types` (names) and `filters`
    /// (`{"attribute":"a","equals":"v"}` or `{"attribute":"a","prefix":"v"}`).
    private static let argumentNames: Set<String> = ["channel", "types", "filters"]

    init(_ arguments: CommandArguments) throws(ControlError) {
        try arguments.allow(Self.argumentNames)
        let channel = try arguments.channel()
        var types: [EventType] = []
        if let value = arguments.request.arguments["types"] {
            guard let list = value.arrayValue else {
                throw ControlError(.invalidArgument, "\"types\" must be a list of event types, got \(value.typeName)")
            }
            for item in list {
                guard let text = item.stringValue, let type = EventType(parsing: text) else {
                    throw ControlError(.invalidArgument, "invalid event type \(item.encoded.prefix(40)) in \"types\"")
                }
                types.append(type)
            }
        }
        var filters: [SubscriptionFilter] = []
        if let value = arguments.request.arguments["filters"] {
            guard let list = value.arrayValue else {
                throw ControlError(.invalidArgument, "\"filters\" must be a list of filter objects, got \(value.typeName)")
            }
            for (index, item) in list.enumerated() {
                filters.append(try Self.filter(item, index: index))
            }
        }
        self.init(channel: channel, types: types, filters: filters)
    }

    private static func filter(_ item: JSONValue, index: Int) throws(ControlError) -> SubscriptionFilter {
        let shape = "{\"attribute\":NAME,\"equals\":VALUE} or {\"attribute\":NAME,\"prefix\":VALUE}"
        guard let object = item.objectValue, object.count == 2,
              let attribute = object["attribute"]?.stringValue, !attribute.isEmpty else {
            throw ControlError(.invalidArgument, "filter \(index + 1) must be \(shape)")
        }
        if let value = object["equals"]?.stringValue { return SubscriptionFilter(attribute: attribute, match: .exact(value)) }
        if let value = object["prefix"]?.stringValue { return SubscriptionFilter(attribute: attribute, match: .prefix(value)) }
        throw ControlError(.invalidArgument, "filter \(index + 1) must be \(shape)")
    }
}

extension CommandArguments {
    /// The `channel` argument as a channel name.
    func channel() throws(ControlError) -> ChannelName {
        let text = try string("channel")
        guard let channel = ChannelName(text) else {
            throw ControlError(.invalidArgument, "invalid channel name \(JSONValue.string(text).encoded.prefix(80)): "
                + "1-\(EventLimits.channelNameBytes) printable ASCII characters without spaces")
        }
        return channel
    }

    func optionalString(_ name: String) throws(ControlError) -> String? {
        guard let value = request.arguments[name] else { return nil }
        guard let text = value.stringValue else {
            throw ControlError(.invalidArgument, "\"\(name)\" must be a string, got \(value.typeName)")
        }
        return text
    }

    func optionalInteger(_ name: String, in range: ClosedRange<Int64>) throws(ControlError) -> Int64? {
        guard let value = request.arguments[name] else { return nil }
        guard let number = value.integerValue, range.contains(number) else {
            throw ControlError(.invalidArgument, "\"\(name)\" must be a whole number \(range.lowerBound)...\(range.upperBound), got \(value.encoded.prefix(40))")
        }
        return number
    }

    /// An optional object whose members are all strings.
    func stringMap(_ name: String) throws(ControlError) -> [String: String] {
        guard let value = request.arguments[name] else { return [:] }
        guard let object = value.objectValue else {
            throw ControlError(.invalidArgument, "\"\(name)\" must be an object of strings, got \(value.typeName)")
        }
        var map: [String: String] = [:]
        for (key, member) in object.members {
            guard let text = member.stringValue else {
                throw ControlError(.invalidArgument, "\"\(name)\".\(key) must be a string, got \(member.typeName)")
            }
            map[key] = text
        }
        return map
    }
}

/// The event subscriptions control clients opened, and the lines pushed to them. Loop thread only.
final class EventSubscribers {
    // Strong references: a connection's close handler removes its subscriptions (`removeAll`).
    private var entries: [SubscriptionID: ControlConnection] = [:]
    private var byConnection: [ObjectIdentifier: [SubscriptionID]] = [:]
    /// The subscription pushed to last and its connection (one of `entries`, dropped with it): a
    /// busy channel's events mostly go to the same subscriber, without hashing its id each time.
    private var lastPushed: (id: SubscriptionID, connection: ControlConnection)?
    /// The most subscriptions one connection may hold.
    static let perConnectionLimit = 64
    /// How much of a replay is encoded at a time (retained bytes, as `max_retained_bytes`
    /// counts them; at least one event).
    static let replayStretchBytes = 64 << 10

    /// Subscriptions open.
    var count: Int { entries.count }

    func count(of connection: ControlConnection) -> Int { byConnection[ObjectIdentifier(connection)]?.count ?? 0 }

    /// Records `id` as `connection`'s; returns whether it is the connection's first.
    @discardableResult
    func add(_ id: SubscriptionID, for connection: ControlConnection) -> Bool {
        let owner = ObjectIdentifier(connection)
        entries[id] = connection
        byConnection[owner, default: []].append(id)
        return byConnection[owner]?.count == 1
    }

    /// Forgets `id` if `connection` owns it; returns whether it did.
    func remove(_ id: SubscriptionID, for connection: ControlConnection) -> Bool {
        guard let holder = entries[id], holder === connection else { return false }
        entries.removeValue(forKey: id)
        byConnection[ObjectIdentifier(connection)]?.removeAll { $0 == id }
        if lastPushed?.id == id { lastPushed = nil }
        return true
    }

    /// Forgets every subscription of the connection `owner`; returns them (to close in the service).
    func removeAll(of owner: ObjectIdentifier) -> [SubscriptionID] {
        let ids = byConnection.removeValue(forKey: owner) ?? []
        for id in ids { entries.removeValue(forKey: id) }
        if let last = lastPushed, ids.contains(last.id) { lastPushed = nil }
        return ids
    }

    /// Pushes `event` to each subscription's connection, in the order given. The line is
    /// encoded once; only the subscription number differs between subscribers (it comes first).
    func push(_ event: DeliveredEvent, to ids: [SubscriptionID], replayed: Bool) {
        // The kept buffer is taken out while in use: a push from inside this one (a connection's
        // close handlers run while sending) builds its line in a buffer of its own.
        var line = keptLine.take() ?? LineBuffer(capacity: Self.lineBufferCapacity)
        line.removeAll(keepAtMost: Self.lineBufferLimit)
        line.reserve(event.payloadBytes.count + 256)
        line.append(encodedNames(event.channel, event.type))
        line.append(#","event_id":""#)
        line.appendDecimal(UInt64(event.id.publisher.rawValue))
        line.append(UInt8(ascii: "."))
        line.appendDecimal(event.id.incarnation)
        line.append(UInt8(ascii: "."))
        line.appendDecimal(event.id.counter)
        line.append(#"","publisher":"#)
        line.appendDecimal(UInt64(event.id.publisher.rawValue))
        line.append(#","entity_id":"#)
        line.append(encodedEntity(event.publisherEntity))
        line.append(#","attributes":{"#)
        if !event.attributes.isEmpty {
            var text: [UInt8] = []
            for (index, name) in event.attributes.keys.sorted().enumerated() {
                if index > 0 { text.append(UInt8(ascii: ",")) }
                JSONValue.appendString(name, to: &text)
                text.append(UInt8(ascii: ":"))
                JSONValue.appendString(event.attributes[name] ?? "", to: &text)
            }
            line.append(text)
        }
        line.append(UInt8(ascii: "}"))
        // Plain text (the usual payload) is copied as it is; other text is escaped straight from
        // its bytes, without building a String; anything else goes as base64.
        event.payloadBytes.withUnsafeBufferPointer { payload in
            if JSONText.isPlain(payload) {
                line.append(#","payload":""#)
                line.append(payload)
                line.append(UInt8(ascii: "\""))
            } else if UTF8Text.isValid(payload) {
                line.append(#","payload":"#)
                var text: [UInt8] = []
                JSONValue.appendString(utf8: payload, to: &text)
                line.append(text)
            } else {
                line.append(#","payload_base64":"#)
                var text: [UInt8] = []
                JSONValue.appendString(Base64.encode(event.payload), to: &text)
                line.append(text)
            }
        }
        if let retention = event.retention {
            line.append(#","retention_ms":"#)
            var text: [UInt8] = []
            JSONValue.appendInteger(retention.totalMilliseconds, to: &text)
            line.append(text)
        }
        line.append(replayed ? #","replayed":true}}"# : #","replayed":false}}"#)
        for id in ids {
            let connection: ControlConnection
            if let last = lastPushed, last.id == id {
                connection = last.connection
            } else {
                guard let found = entries[id] else { continue }
                connection = found
                lastPushed = (id, found)
            }
            guard connection.isOpen else { continue }
            connection.sendEncoded { output in
                output.append(contentsOf: Self.linePrefix)
                JSONValue.appendUnsigned(id.rawValue, to: &output)
                line.withBytes { output.append(contentsOf: $0) }
            }
        }
        keptLine = consume line
    }

    /// Where `push` builds a line's part after the subscription number, reused from event to
    /// event; it shrinks back to `lineBufferLimit` after a large line.
    private var keptLine: LineBuffer? = LineBuffer(capacity: lineBufferCapacity)
    private static let lineBufferCapacity = 4_096
    private static let lineBufferLimit = 1 << 17

    /// `,"channel":"...","type":"..."` of the last event pushed: a busy channel's events mostly
    /// share both.
    private var lastNames: (channel: ChannelName, type: EventType, bytes: [UInt8])?

    private func encodedNames(_ channel: ChannelName, _ type: EventType) -> [UInt8] {
        if let lastNames, lastNames.channel == channel, lastNames.type == type { return lastNames.bytes }
        var bytes = Array(#","channel":"#.utf8)
        JSONValue.appendString(channel.rawValue, to: &bytes)
        bytes.append(contentsOf: #","type":"#.utf8)
        JSONValue.appendString(type.rawValue, to: &bytes)
        lastNames = (channel, type, bytes)
        return bytes
    }

    /// Entity ids as JSON strings: a handful of servers, each encoded once.
    private var entityStrings: [EntityID: [UInt8]] = [:]
    /// The last one looked up: a busy channel's events mostly come from one publisher.
    private var lastEntity: (id: EntityID, bytes: [UInt8])?

    private func encodedEntity(_ entity: EntityID) -> [UInt8] {
        if let lastEntity, lastEntity.id == entity { return lastEntity.bytes }
        if let bytes = entityStrings[entity] {
            lastEntity = (entity, bytes)
            return bytes
        }
        var bytes: [UInt8] = []
        JSONValue.appendString(entity.description, to: &bytes)
        if entityStrings.count < 1_024 { entityStrings[entity] = bytes }
        return bytes
    }

    private static let linePrefix = Array(#"{"event":"channel_event","data":{"subscription":"#.utf8)
}
