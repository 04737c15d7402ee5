// The nine device states of Asterisk (`enum ast_device_state`), their names, texts and parsing.

/// A device state, with Asterisk's numbering (reference §1; the numbers travel on the wire and
/// must never change).
public enum DeviceStateValue: UInt8, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    /// `AST_DEVICE_UNKNOWN`: "Unknown".
    case unknown = 0
    /// `AST_DEVICE_NOT_INUSE`: "Not in use".
    case notInUse = 1
    /// `AST_DEVICE_INUSE`: "In use".
    case inUse = 2
    /// `AST_DEVICE_BUSY`: "Busy".
    case busy = 3
    /// `AST_DEVICE_INVALID`: "Invalid". Also the state of a device nobody reports.
    case invalid = 4
    /// `AST_DEVICE_UNAVAILABLE`: "Unavailable".
    case unavailable = 5
    /// `AST_DEVICE_RINGING`: "Ringing".
    case ringing = 6
    /// `AST_DEVICE_RINGINUSE`: "Ring+Inuse".
    case ringInUse = 7
    /// `AST_DEVICE_ONHOLD`: "On Hold".
    case onHold = 8

    /// The `DEVICE_STATE()` spelling (`ast_devstate_str`): `NOT_INUSE`, `RINGINUSE`, ...
    public var name: String {
        switch self {
        case .unknown: "UNKNOWN"
        case .notInUse: "NOT_INUSE"
        case .inUse: "INUSE"
        case .busy: "BUSY"
        case .invalid: "INVALID"
        case .unavailable: "UNAVAILABLE"
        case .ringing: "RINGING"
        case .ringInUse: "RINGINUSE"
        case .onHold: "ONHOLD"
        }
    }

    /// The human text (`ast_devstate2str`): `Not in use`, `Ring+Inuse`, ...
    public var text: String {
        switch self {
        case .unknown: "Unknown"
        case .notInUse: "Not in use"
        case .inUse: "In use"
        case .busy: "Busy"
        case .invalid: "Invalid"
        case .unavailable: "Unavailable"
        case .ringing: "Ringing"
        case .ringInUse: "Ring+Inuse"
        case .onHold: "On Hold"
        }
    }

    /// The nine names in numeric order, as error messages list them.
    public static let validNames: [String] = allCases.map(\.name)

    /// Parses a state name, ignoring ASCII case (`onhold` is `ONHOLD`).
    ///
    /// Stricter than Asterisk on purpose: `ast_devstate_val` turns any unknown text into
    /// UNKNOWN; here unknown text is an error that lists the valid names. `UNKNOWN` and
    /// `INVALID` themselves parse. No trimming: ` INUSE` is an error.
    ///
    /// - Throws: `DeviceStateError.unknownStateName`.
    public init(parsing text: String) throws(DeviceStateError) {
        let upper = String(decoding: text.utf8.map { (0x61...0x7A).contains($0) ? $0 - 0x20 : $0 }, as: UTF8.self)
        guard let state = Self.allCases.first(where: { $0.name == upper }) else {
            throw .unknownStateName(text, valid: Self.validNames)
        }
        self = state
    }

    /// The rank used by aggregation (reference §2.1), low to high: INVALID 0 < UNKNOWN 1 <
    /// UNAVAILABLE 2 < NOT_INUSE 3 < ONHOLD 4 < RINGING 5 < INUSE 6 < BUSY 7 < RINGINUSE 8.
    public var aggregationRank: Int {
        switch self {
        case .invalid: 0
        case .unknown: 1
        case .unavailable: 2
        case .notInUse: 3
        case .onHold: 4
        case .ringing: 5
        case .inUse: 6
        case .busy: 7
        case .ringInUse: 8
        }
    }

    /// The name, e.g. `NOT_INUSE`.
    public var description: String { name }
}
