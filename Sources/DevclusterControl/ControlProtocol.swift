// The control protocol's messages (docs/control-protocol.md): requests, responses, pushed events and
// error codes, as values with their JSON forms. No sockets here (ControlClient; the daemon's ControlServer).

import EventService

/// Constants and encodings of the line-oriented control protocol.
///
/// Every message is one JSON object on one line (UTF-8, ending in `\n`):
///
/// ```
/// → {"id":1,"cmd":"members"}
/// ← {"id":1,"ok":true,"result":{"ring":"1.12","members":[...]}}
/// → {"id":2,"cmd":"nope"}
/// ← {"id":2,"ok":false,"error":{"code":"unknown_command","message":"..."}}
/// ← {"event":"...","data":{...}}            (pushed to subscribers: ControlEvent)
/// ```
public enum ControlProtocol {
    /// Bumped when a change is not backwards compatible; reported by `hello`.
    public static let version = 1
    /// Longest request line (`ControlLineLimits`).
    public static let maximumLineBytes = ControlLineLimits.maximumLineBytes

    /// The `line_too_long` message.
    public static var lineTooLongMessage: String {
        "a request line is longer than \(maximumLineBytes) bytes (room for an event_publish of the largest payload, "
            + "\(EventLimits.payloadBytes) bytes, as payload_base64, with its attributes); it was skipped up to the next newline"
    }
}

/// A request as read from a client line.
public struct ControlRequest: Sendable, Equatable {
    /// The client's id, echoed in the response: a number, a string or `null` (absent).
    public var id: JSONValue
    /// The command name (`members`, `status`, ...).
    public var command: String
    /// The command's arguments (the `args` object; empty when absent).
    public var arguments: JSONObject

    public init(id: JSONValue = .null, command: String, arguments: JSONObject = JSONObject()) {
        self.id = id
        self.command = command
        self.arguments = arguments
    }

    /// The request as a JSON line's object (what a client sends).
    public var json: JSONValue {
        var object: JSONObject = ["id": id, "cmd": .string(command)]
        if !arguments.isEmpty { object.set("args", .object(arguments)) }
        return .object(object)
    }

    /// Reads a request from one line.
    ///
    /// - Throws: a `ControlError` (`parse_error` or `invalid_request`) carrying the request's
    ///   id when it could be read, so the error response can still be matched.
    public static func decode(line: some Collection<UInt8>) throws(ControlRequestError) -> ControlRequest {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line)
        } catch {
            throw ControlRequestError(id: .null, error: ControlError(.parseError, "the line is not valid JSON: \(error)"))
        }
        guard let object = value.objectValue else {
            throw ControlRequestError(id: .null, error: ControlError(.invalidRequest, "a request must be a JSON object, got \(value.typeName)"))
        }
        let id = object["id"] ?? .null
        switch id {
        case .null, .integer, .double, .string: break
        default:
            throw ControlRequestError(id: .null, error: ControlError(.invalidRequest, "\"id\" must be a number or a string, got \(id.typeName)"))
        }
        func fail(_ message: String) -> ControlRequestError {
            ControlRequestError(id: id, error: ControlError(.invalidRequest, message))
        }
        for (key, _) in object.members where key != "id" && key != "cmd" && key != "args" {
            throw fail("unknown member \"\(key)\"; a request has \"id\", \"cmd\" and \"args\"")
        }
        guard let commandValue = object["cmd"] else { throw fail("missing \"cmd\" (the command name)") }
        guard let command = commandValue.stringValue else { throw fail("\"cmd\" must be a string, got \(commandValue.typeName)") }
        var arguments = JSONObject()
        if let argumentsValue = object["args"] {
            switch argumentsValue {
            case .object(let value): arguments = value
            case .null: break
            default: throw fail("\"args\" must be an object, got \(argumentsValue.typeName)")
            }
        }
        return ControlRequest(id: id, command: command, arguments: arguments)
    }
}

/// A request that could not be read, with whatever id it had.
public struct ControlRequestError: Error, Sendable, Equatable {
    public var id: JSONValue
    public var error: ControlError

    public init(id: JSONValue, error: ControlError) {
        self.id = id
        self.error = error
    }
}

/// An error answer: a stable machine-readable code and a message for people.
public struct ControlError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The stable error codes (documented in docs/control-protocol.md).
    public enum Code: String, Sendable, Equatable, CaseIterable {
        /// The line is not JSON.
        case parseError = "parse_error"
        /// The line is JSON but not a request object.
        case invalidRequest = "invalid_request"
        /// The line is longer than `ControlProtocol.maximumLineBytes`.
        case lineTooLong = "line_too_long"
        /// No service answers this command.
        case unknownCommand = "unknown_command"
        /// An argument is missing, unknown or of the wrong type or value.
        case invalidArgument = "invalid_argument"
        /// The daemon cannot do it now (leaving, not yet in a ring, queue full).
        case unavailable
        /// Too many clients are connected (in all, or of the caller's user).
        case tooManyConnections = "too_many_connections"
        /// The caller may not use the control socket, or (read-only) may not change state.
        case permissionDenied = "permission_denied"
        /// The client sent nothing for `[control] idle_timeout` without a subscription.
        case idleTimeout = "idle_timeout"
        /// An adapter registered for another entity id than this server's.
        case entityMismatch = "entity_mismatch"
        /// A cap of the configuration is reached (`[options] max_devices`, `max_mailboxes`):
        /// a new device or mailbox is refused; known ones can still be set.
        case limitReached = "limit_reached"
        /// A bug in the daemon; the message says what.
        case `internal`
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var json: JSONValue {
        .object(["code": .string(code.rawValue), "message": .string(message)])
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// A response line's object.
public enum ControlResponse {
    /// `{"id":ID,"ok":true,"result":RESULT}`
    public static func success(id: JSONValue, result: JSONValue) -> JSONValue {
        .object(["id": id, "ok": .bool(true), "result": result])
    }

    /// `{"id":ID,"ok":false,"error":{"code":CODE,"message":MESSAGE}}`
    public static func failure(id: JSONValue, error: ControlError) -> JSONValue {
        .object(["id": id, "ok": .bool(false), "error": error.json])
    }

    /// `{"event":NAME,"data":DATA}`: pushed to subscribers, never an answer to a request.
    public static func event(_ name: String, data: JSONValue) -> JSONValue {
        .object(["event": .string(name), "data": data])
    }

    /// Reads a response line (the client's side).
    ///
    /// - Returns: the id and the result or error.
    /// - Throws: `ControlError(.parseError)` for a line that is not a response.
    public static func decode(line: some Collection<UInt8>) throws(ControlError) -> (id: JSONValue, outcome: Result<JSONValue, ControlError>) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line, limits: JSONParser.Limits(maximumBytes: Int.max, maximumDepth: 64))
        } catch {
            throw ControlError(.parseError, "the daemon sent a line that is not JSON: \(error)")
        }
        return try decode(value)
    }

    /// Reads a response from a line's value (the client's side).
    public static func decode(_ value: JSONValue) throws(ControlError) -> (id: JSONValue, outcome: Result<JSONValue, ControlError>) {
        guard let object = value.objectValue, let ok = object["ok"]?.boolValue else {
            throw ControlError(.parseError, "the daemon sent a line that is not a response: \(value.encoded.prefix(200))")
        }
        let id = object["id"] ?? .null
        if ok { return (id, .success(object["result"] ?? .null)) }
        guard let error = object["error"], let codeText = error["code"]?.stringValue, let message = error["message"]?.stringValue else {
            throw ControlError(.parseError, "the daemon sent an error response without code and message")
        }
        // An unknown code from a newer daemon is kept as its text in the message.
        guard let code = ControlError.Code(rawValue: codeText) else {
            return (id, .failure(ControlError(.internal, "\(codeText): \(message)")))
        }
        return (id, .failure(ControlError(code, message)))
    }
}
