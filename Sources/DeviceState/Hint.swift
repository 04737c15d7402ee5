// Hints: an extension whose state follows some devices (`exten => 1234,hint,DEV1&DEV2`), and
// the `core show hints` row.

import Membership

/// A hint's key, `EXTEN@CONTEXT`: 1 to 80 printable ASCII characters each, without `@` or spaces.
public struct HintKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The extension.
    public let exten: String
    /// The dialplan context.
    public let context: String

    /// Creates a key from its parts.
    ///
    /// - Throws: `DeviceStateError.invisibleCharacter` naming the first control, format or space
    ///   character of a part, else `invalidHint` when a part breaks the rule.
    public init(exten: String, context: String) throws(DeviceStateError) {
        if let character = InvisibleCharacter.first(in: exten) {
            throw .invisibleCharacter(field: "hint extension", name: exten, character)
        }
        if let character = InvisibleCharacter.first(in: context) {
            throw .invisibleCharacter(field: "hint context", name: context, character)
        }
        guard Self.isValidPart(exten), Self.isValidPart(context) else {
            throw .invalidHint("\(exten)@\(context)", reason: "EXTEN and CONTEXT must be 1-80 printable characters without '@' or spaces")
        }
        self.exten = exten
        self.context = context
    }

    /// Parses `EXTEN@CONTEXT`.
    ///
    /// - Throws: `DeviceStateError.invalidHint`.
    public init(parsing text: String) throws(DeviceStateError) {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw .invalidHint(text, reason: "expected EXTEN@CONTEXT") }
        try self.init(exten: String(parts[0]), context: String(parts[1]))
    }

    private static func isValidPart(_ text: String) -> Bool {
        (1...80).contains(text.utf8.count) && text.utf8.allSatisfy { (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "@") }
    }

    public static func < (lhs: HintKey, rhs: HintKey) -> Bool { (lhs.exten, lhs.context) < (rhs.exten, rhs.context) }

    /// `EXTEN@CONTEXT`
    public var description: String { "\(exten)@\(context)" }
}

/// A hint: an extension whose state is the extension state of its devices' aggregate.
public struct Hint: Sendable, Equatable {
    /// `EXTEN@CONTEXT`.
    public var key: HintKey
    /// The devices, in the order given (at least one).
    public var devices: [DeviceName]

    /// Creates a hint.
    ///
    /// - Throws: `DeviceStateError.invalidHint` for an empty device list.
    public init(key: HintKey, devices: [DeviceName]) throws(DeviceStateError) {
        guard !devices.isEmpty else { throw .invalidHint(key.description, reason: "no devices") }
        self.key = key
        self.devices = devices
    }

    /// Parses `EXTEN@CONTEXT` and `DEV1&DEV2...` (as written in the configuration's `[hints]`).
    ///
    /// - Throws: `DeviceStateError.invalidHint` or `invalidDeviceName`.
    public init(parsingKey key: String, devices list: String) throws(DeviceStateError) {
        let parsedKey = try HintKey(parsing: key)
        var devices: [DeviceName] = []
        for part in list.split(separator: "&", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw .invalidHint(key, reason: "empty device in \"\(list)\"") }
            devices.append(try DeviceName(parsing: String(part)))
        }
        try self.init(key: parsedKey, devices: devices)
    }

    /// `DEV1&DEV2`
    public var deviceList: String { devices.map(\.rawValue).joined(separator: "&") }
}

/// One row of `hints` (Asterisk's `core show hints`).
public struct HintRow: Sendable, Equatable, CustomStringConvertible {
    /// The hint's key.
    public var key: HintKey
    /// `DEV1&DEV2`.
    public var devices: String
    /// The current extension state (Asterisk's `laststate`).
    public var state: ExtensionState
    /// Local watchers of the hint.
    public var watchers: Int

    /// Creates a row.
    public init(key: HintKey, devices: String, state: ExtensionState, watchers: Int) {
        self.key = key
        self.devices = devices
        self.state = state
        self.watchers = watchers
    }

    /// The row in the 1.6/1.8 layout of the seed's `core show hints`:
    /// three spaces, the exten right-aligned in 20, `@`, the context left-aligned in 20, `: `,
    /// the devices left-aligned in 20, two spaces, `State:` and the state left-aligned in 15,
    /// ` Watchers ` and the count right-aligned in 2. Fields longer than their width are cut,
    /// except the exten (`%20s`).
    ///
    /// `                   1234@devstate_test       : Custom:mystate        State:InUse           Watchers  0`
    public var description: String {
        "   " + Self.pad(key.exten, 20, left: false) + "@" + Self.cut(key.context, 20) + ": " + Self.cut(devices, 20)
            + "  State:" + Self.cut(state.name, 15) + " Watchers " + Self.pad(String(watchers), 2, left: false)
    }

    /// The header line of the listing.
    public static let header = "    -= Registered Asterisk Dial Plan Hints =-"

    private static func pad(_ text: String, _ width: Int, left: Bool) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return left ? text + padding : padding + text
    }

    private static func cut(_ text: String, _ width: Int) -> String {
        pad(String(text.prefix(width)), width, left: true)
    }
}

/// A change of a hint's extension state.
public struct ExtensionStateChange: Sendable, Equatable {
    /// The hint.
    public var hint: HintKey
    /// The state before.
    public var old: ExtensionState
    /// The state now.
    public var new: ExtensionState
    /// Local watchers registered on the hint (the daemon tells them).
    public var watchers: Int

    /// Creates a change.
    public init(hint: HintKey, old: ExtensionState, new: ExtensionState, watchers: Int) {
        precondition(old != new, "no change for \(hint): \(old)")
        self.hint = hint
        self.old = old
        self.new = new
        self.watchers = watchers
    }
}
