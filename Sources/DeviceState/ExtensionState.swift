// Extension states (`enum ast_extension_states`) and the device-to-extension mapping.

/// The state of an extension with a hint, with Asterisk's bit values (reference §3).
public enum ExtensionState: Int, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    /// `AST_EXTENSION_NOT_INUSE`: "Idle".
    case idle = 0
    /// `AST_EXTENSION_INUSE`: "InUse".
    case inUse = 1
    /// `AST_EXTENSION_BUSY`: "Busy".
    case busy = 2
    /// `AST_EXTENSION_UNAVAILABLE`: "Unavailable".
    case unavailable = 4
    /// `AST_EXTENSION_RINGING`: "Ringing".
    case ringing = 8
    /// `AST_EXTENSION_INUSE | AST_EXTENSION_RINGING`: "InUse&Ringing".
    case inUseRinging = 9
    /// `AST_EXTENSION_ONHOLD`: "Hold".
    case onHold = 16
    /// `AST_EXTENSION_INUSE | AST_EXTENSION_ONHOLD`: "InUse&Hold" (named, but no device state
    /// maps to it).
    case inUseOnHold = 17

    /// The name `core show hints` and AMI print (`ast_extension_state2str`).
    public var name: String {
        switch self {
        case .idle: "Idle"
        case .inUse: "InUse"
        case .busy: "Busy"
        case .unavailable: "Unavailable"
        case .ringing: "Ringing"
        case .inUseRinging: "InUse&Ringing"
        case .onHold: "Hold"
        case .inUseOnHold: "InUse&Hold"
        }
    }

    /// `ast_devstate_to_extenstate`: UNKNOWN and NOT_INUSE are Idle; INVALID and UNAVAILABLE
    /// are Unavailable; RINGINUSE is InUse&Ringing; ONHOLD is Hold.
    public init(_ deviceState: DeviceStateValue) {
        switch deviceState {
        case .notInUse, .unknown: self = .idle
        case .inUse: self = .inUse
        case .busy: self = .busy
        case .unavailable, .invalid: self = .unavailable
        case .ringing: self = .ringing
        case .ringInUse: self = .inUseRinging
        case .onHold: self = .onHold
        }
    }

    /// The extension state of a hint whose devices are in `states`: their device aggregate,
    /// mapped (reference §3: extension states are never aggregated directly).
    public static func of(_ states: some Sequence<DeviceStateValue>) -> ExtensionState {
        ExtensionState(DeviceStateAggregate.of(states))
    }

    /// The name, e.g. `InUse&Ringing`.
    public var description: String { name }
}
