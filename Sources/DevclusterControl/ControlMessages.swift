// Typed requests and pushed events of the control protocol (docs/control-protocol.md, "Commands"):
// what clients send, built in one place, and what the daemon pushes, decoded in one place.

/// A request a client can send: a command name and its arguments.
public protocol ControlCommand: Sendable {
    /// The `cmd` of the request line.
    var command: String { get }
    /// The `args` of the request line (empty: none).
    var arguments: JSONObject { get }
}

extension ControlRequest {
    /// The request line's value for `command` with `id`.
    public init(id: JSONValue, _ command: some ControlCommand) {
        self.init(id: id, command: command.command, arguments: command.arguments)
    }
}

/// The typed requests of the commands clients send most.
public enum ControlCommands {
    /// A command without arguments: `hello`, `status`, `members`, `devstate_list`, `mwi_list`,
    /// `hints`, `snapshot`, `unsubscribe`, `ping`, `settings`, `channels`.
    public struct Plain: ControlCommand {
        public var command: String
        public var arguments: JSONObject { JSONObject() }
        public init(_ command: String) { self.command = command }
    }

    public static let hello = Plain("hello")
    public static let status = Plain("status")
    public static let members = Plain("members")
    public static let devstateList = Plain("devstate_list")
    public static let mwiList = Plain("mwi_list")

    /// `devstate_set`: this server's state of a device.
    public struct DevstateSet: ControlCommand {
        public var device: String
        public var state: String
        public init(device: String, state: String) {
            self.device = device
            self.state = state
        }
        public var command: String { "devstate_set" }
        public var arguments: JSONObject { ["device": .string(device), "state": .string(state)] }
    }

    /// `devstate_get` or `devstate_clear` of one device.
    public struct Device: ControlCommand {
        public var command: String
        public var device: String
        public static func get(_ device: String) -> Device { Device(command: "devstate_get", device: device) }
        public static func clear(_ device: String) -> Device { Device(command: "devstate_clear", device: device) }
        public var arguments: JSONObject { ["device": .string(device)] }
    }

    /// `mwi_set`: a mailbox's message counts (`MAILBOX[@CONTEXT]`).
    public struct MWISet: ControlCommand {
        public var mailbox: String
        public var newMessages: UInt32
        public var oldMessages: UInt32
        public init(mailbox: String, new newMessages: UInt32, old oldMessages: UInt32) {
            self.mailbox = mailbox
            self.newMessages = newMessages
            self.oldMessages = oldMessages
        }
        public var command: String { "mwi_set" }
        public var arguments: JSONObject {
            ["mailbox": .string(mailbox), "new": .number(newMessages), "old": .number(oldMessages)]
        }
    }

    /// `mwi_get` of one mailbox.
    public struct MWIGet: ControlCommand {
        public var mailbox: String
        public init(mailbox: String) { self.mailbox = mailbox }
        public var command: String { "mwi_get" }
        public var arguments: JSONObject { ["mailbox": .string(mailbox)] }
    }

    /// `watch` (or its other name `subscribe`) for `topics` (nil: the daemon's default).
    public struct Watch: ControlCommand {
        public var topics: [String]?
        public var snapshot: Bool
        public init(topics: [String]? = nil, snapshot: Bool = false) {
            self.topics = topics
            self.snapshot = snapshot
        }
        public var command: String { "subscribe" }
        public var arguments: JSONObject {
            var object = JSONObject()
            if let topics { object.set("topics", .array(topics.map(JSONValue.string))) }
            if snapshot { object.set("snapshot", .bool(true)) }
            return object
        }
    }

    /// `event_publish` on a channel: text goes as `payload`, bytes as `payload_base64`.
    public struct EventPublish: ControlCommand {
        /// What an event carries.
        public enum Payload: Sendable, Equatable {
            case text(String)
            case bytes([UInt8])
        }

        public var channel: String
        public var type: String
        public var attributes: [(key: String, value: String)]
        public var payload: Payload
        public var retentionMilliseconds: UInt32?
        public init(channel: String, type: String, attributes: [(key: String, value: String)] = [], payload: Payload,
                    retentionMilliseconds: UInt32? = nil) {
            self.channel = channel
            self.type = type
            self.attributes = attributes
            self.payload = payload
            self.retentionMilliseconds = retentionMilliseconds
        }
        public init(channel: String, type: String, attributes: [(key: String, value: String)] = [], payload: String,
                    retentionMilliseconds: UInt32? = nil) {
            self.init(channel: channel, type: type, attributes: attributes, payload: .text(payload),
                      retentionMilliseconds: retentionMilliseconds)
        }
        public var command: String { "event_publish" }
        public var arguments: JSONObject {
            var object: JSONObject = ["channel": .string(channel), "type": .string(type)]
            if !attributes.isEmpty {
                object.set("attributes", .object(JSONObject(uniqueMembers: attributes.map { ($0.key, JSONValue.string($0.value)) })))
            }
            switch payload {
            case .text(let text): object.set("payload", .string(text))
            case .bytes(let bytes): object.set("payload_base64", .string(Base64.encode(bytes)))
            }
            if let retentionMilliseconds { object.set("retention_ms", .number(retentionMilliseconds)) }
            return object
        }
    }

    /// `event_subscribe` to a channel, optionally to some event types only.
    public struct EventSubscribe: ControlCommand {
        public var channel: String
        public var types: [String]?
        public init(channel: String, types: [String]? = nil) {
            self.channel = channel
            self.types = types
        }
        public var command: String { "event_subscribe" }
        public var arguments: JSONObject {
            var object: JSONObject = ["channel": .string(channel)]
            if let types { object.set("types", .array(types.map(JSONValue.string))) }
            return object
        }
    }

    /// `adapter_register`: a PBX adapter names the entity it aggregates for.
    public struct AdapterRegister: ControlCommand {
        public var entityID: String
        public var name: String
        public init(entityID: String, name: String) {
            self.entityID = entityID
            self.name = name
        }
        public var command: String { "adapter_register" }
        public var arguments: JSONObject { ["entity_id": .string(entityID), "name": .string(name)] }
    }
}

/// A line from the daemon: a response to a request, or an event pushed to a subscriber.
public enum ControlMessage: Sendable, Equatable {
    case response(id: JSONValue, outcome: Result<JSONValue, ControlError>)
    case event(ControlEvent)

    /// Reads a line from the daemon.
    ///
    /// - Throws: `ControlError(.parseError)` for a line that is neither.
    public static func decode(line: some Collection<UInt8>) throws(ControlError) -> ControlMessage {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line, limits: JSONParser.Limits(maximumBytes: Int.max, maximumDepth: 64))
        } catch {
            throw ControlError(.parseError, "the daemon sent a line that is not JSON: \(error)")
        }
        if let name = value["event"]?.stringValue, let data = value["data"] {
            return .event(ControlEvent(name: name, data: data))
        }
        let response = try ControlResponse.decode(value)
        return .response(id: response.id, outcome: response.outcome)
    }
}

/// An event pushed to a subscriber: `{"event":NAME,"data":DATA}`.
public struct ControlEvent: Sendable, Equatable {
    /// The event's name (`device`, `extension`, `mwi`, `membership`, `server_device`,
    /// `server_left`, `channel_event`).
    public var name: String
    public var data: JSONValue

    public init(name: String, data: JSONValue) {
        self.name = name
        self.data = data
    }

    /// The line's value (what the daemon sends).
    public var json: JSONValue { ControlResponse.event(name, data: data) }

    /// The event with its fields, when it is one this library knows and its data is complete.
    public var typed: Typed? {
        let data = self.data
        func text(_ key: String) -> String? { data[key]?.stringValue }
        switch name {
        case "device":
            guard let device = text("device"), let state = text("state"), let previous = text("previous") else { return nil }
            return .device(device: device, state: state, previous: previous)
        case "extension":
            guard let exten = text("exten"), let context = text("context"), let state = text("state"),
                  let previous = text("previous")
            else { return nil }
            return .extension(exten: exten, context: context, devices: text("devices") ?? "", state: state, previous: previous)
        case "mwi":
            guard let mailbox = text("mailbox"), let context = text("context"), let new = data["new"]?.integerValue,
                  let old = data["old"]?.integerValue
            else { return nil }
            return .mwi(mailbox: mailbox, context: context, new: new, old: old)
        case "membership":
            guard let change = text("change") else { return nil }
            return .membership(change: change, data: data)
        case "server_device":
            guard let device = text("device"), let entity = text("entity_id"), let node = data["nodeid"]?.integerValue else { return nil }
            return .serverDevice(device: device, entityID: entity, nodeID: node, state: text("state"))
        case "server_left":
            guard let entity = text("entity_id"), let node = data["nodeid"]?.integerValue else { return nil }
            return .serverLeft(entityID: entity, nodeID: node)
        case "channel_event":
            guard let subscription = data["subscription"]?.integerValue, let channel = text("channel"), let type = text("type")
            else { return nil }
            return .channel(subscription: subscription, channel: channel, type: type, payload: text("payload"),
                            replayed: data["replayed"]?.boolValue ?? false)
        default:
            return nil
        }
    }

    /// The pushed events' fields (the rest stay in `data`).
    public enum Typed: Sendable, Equatable {
        /// A device's cluster-wide state changed (topic `device`).
        case device(device: String, state: String, previous: String)
        /// A hint's extension state changed (topic `extension`).
        case `extension`(exten: String, context: String, devices: String, state: String, previous: String)
        /// A mailbox's counts changed (topic `mwi`).
        case mwi(mailbox: String, context: String, new: Int64, old: Int64)
        /// The ring, a member or the quorum changed (topic `membership`); `change` says which.
        case membership(change: String, data: JSONValue)
        /// One server's state of a device (topic `servers`; `state` nil: it no longer reports it).
        case serverDevice(device: String, entityID: String, nodeID: Int64, state: String?)
        /// A server left the ring (topic `servers`).
        case serverLeft(entityID: String, nodeID: Int64)
        /// An event of a channel subscription (`payload` nil when it came as `payload_base64`).
        case channel(subscription: Int64, channel: String, type: String, payload: String?, replayed: Bool)
    }
}
