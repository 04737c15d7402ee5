// The `channel_event` lines pushed to control clients for their event subscriptions: one event
// encoded once, whatever the number of its subscribers (only the subscription number, which
// comes first, differs). Which client gets which event is the services' host's decision.

import EventService
import Membership
import Totem

/// Encodes and sends `channel_event` lines. Loop thread only.
final class ChannelEventLines {
    /// The line's part after the subscription number, and the event (and replay flag) it is of.
    private struct Encoded: ~Copyable {
        var event: DeliveredEvent?
        var replayed: Bool
        var line: LineBuffer
    }

    /// The last line encoded, reused from event to event; it shrinks back to `lineBufferLimit`
    /// after a large line. Taken out while in use: a send from inside this one (a connection's
    /// close handlers run while sending) builds its line in a buffer of its own.
    private var kept: Encoded? = Encoded(event: nil, replayed: false, line: LineBuffer(capacity: lineBufferCapacity))
    private static let lineBufferCapacity = 4_096
    private static let lineBufferLimit = 1 << 17

    /// Sends `event` to `connection` for its subscription `subscription`. Consecutive sends of
    /// one event (its subscribers, in turn) encode it once.
    func send(_ event: DeliveredEvent, subscription: SubscriptionID, replayed: Bool, on connection: ControlConnection) {
        var encoded = kept.take() ?? Encoded(event: nil, replayed: false, line: LineBuffer(capacity: Self.lineBufferCapacity))
        if encoded.event.map({ !$0.sharesFields(with: event) }) ?? true || encoded.replayed != replayed {
            encode(event, replayed: replayed, into: &encoded.line)
            encoded.event = event
            encoded.replayed = replayed
        }
        connection.sendEncoded { output in
            output.append(contentsOf: Self.linePrefix)
            JSONValue.appendUnsigned(subscription.rawValue, to: &output)
            encoded.line.withBytes { output.append(contentsOf: $0) }
        }
        kept = consume encoded
    }

    /// `,"channel":...,"replayed":...}}`: everything after the subscription number.
    private func encode(_ event: DeliveredEvent, replayed: Bool, into line: inout LineBuffer) {
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
    }

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
