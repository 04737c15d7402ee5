// Event channels for control clients (EVT-like): reading `event_publish` and `event_subscribe`
// arguments into typed requests. The subscriptions are the services' host's; the lines pushed
// for them are ChannelEventLines'.

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
