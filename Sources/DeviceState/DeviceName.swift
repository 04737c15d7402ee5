// Device names, validated and normalized once so that equal devices compare equal everywhere.

import Membership

/// A device name such as `SIP/1000`, `PJSIP/alice` or `Custom:mystate`, normalized the way
/// Asterisk compares cache keys (reference §2.3):
///
/// - a name starting with `Custom:` in any case is written `Custom:` + the rest, compared exactly
///   (`func_devstate` publishes `Custom:%s`);
/// - otherwise, a name containing `/` has its technology part (before the first `/`)
///   upper-cased in ASCII (`ast_tech_to_upper`): `sip/1000` is `SIP/1000`, the rest is exact;
/// - any other name (`Provider:data`) is compared exactly.
///
/// Valid names (stricter than Asterisk, which accepts anything and reports INVALID later):
/// 1 to 255 bytes of UTF-8, no control, format or space characters (`InvisibleCharacter`: C0 and
/// C1 controls, bidirectional overrides such as U+202E, zero-width characters such as U+200B), no
/// `&` or `,` (hint syntax), and a non-empty part before and after the first `/` or `:`. The same
/// rule holds wherever a name enters: the control protocol, the configuration's hints, a remote
/// node's ring payload and the state file.
public struct DeviceName: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The longest name in bytes.
    public static let maxBytes = 255

    /// The normalized name.
    public let rawValue: String

    /// Validates and normalizes `text`.
    ///
    /// - Throws: `DeviceStateError.invisibleCharacter` naming the first refused code point, or
    ///   `invalidDeviceName` with the reason.
    public init(parsing text: String) throws(DeviceStateError) {
        let bytes = Array(text.utf8)
        guard (1...Self.maxBytes).contains(bytes.count) else {
            throw .invalidDeviceName(text, reason: "must be 1-\(Self.maxBytes) bytes")
        }
        if let character = InvisibleCharacter.first(in: text) {
            throw .invisibleCharacter(field: "device name", name: text, character)
        }
        for byte in bytes {
            guard byte > 0x20, byte != 0x7F, byte != UInt8(ascii: "&"), byte != UInt8(ascii: ",") else {
                throw .invalidDeviceName(text, reason: "no spaces, control characters, '&' or ','")
            }
        }
        guard let separator = bytes.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") }),
              separator > 0, separator < bytes.count - 1
        else {
            throw .invalidDeviceName(text, reason: "expected TECH/resource or Provider:name")
        }
        rawValue = Self.normalized(bytes)
    }

    private static let customPrefix = Array("custom:".utf8)

    private static func normalized(_ bytes: [UInt8]) -> String {
        let lower = { (byte: UInt8) in (0x41...0x5A).contains(byte) ? byte + 0x20 : byte }
        if bytes.count > customPrefix.count, zip(bytes, customPrefix).allSatisfy({ lower($0) == $1 }) {
            return "Custom:" + String(decoding: bytes[customPrefix.count...], as: UTF8.self)
        }
        guard let slash = bytes.firstIndex(of: UInt8(ascii: "/")) else { return String(decoding: bytes, as: UTF8.self) }
        var upper = bytes
        for index in 0..<slash where (0x61...0x7A).contains(upper[index]) { upper[index] -= 0x20 }
        return String(decoding: upper, as: UTF8.self)
    }

    /// Whether this is a `Custom:` device.
    public var isCustom: Bool { rawValue.hasPrefix("Custom:") }

    /// Ascending by the names' UTF-8 bytes (the state file's order).
    ///
    /// Compares the contiguous UTF-8 storage as raw bytes: `utf8.lexicographicallyPrecedes`
    /// gives the same order but runs unspecialized in debug builds (a witness call per byte),
    /// where sorting a few thousand names took most of a configuration change.
    public static func < (lhs: DeviceName, rhs: DeviceName) -> Bool {
        var left = lhs.rawValue
        var right = rhs.rawValue
        return left.withUTF8 { leftBytes in
            right.withUTF8 { rightBytes in Self.precedes(UnsafeRawBufferPointer(leftBytes), UnsafeRawBufferPointer(rightBytes)) }
        }
    }

    private static func precedes(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> Bool {
        let common = min(left.count, right.count)
        var index = 0
        while index < common {
            let (a, b) = (left[index], right[index])
            if a != b { return a < b }
            index += 1
        }
        return left.count < right.count
    }

    public var description: String { rawValue }
}

extension DeviceName {
    /// A name read from the ring or the state file: `invisibleCharacter` names the refused code
    /// point (for the log), any other violation is `invalidText`.
    init(checking text: String, field: String) throws(ServiceWireError) {
        do {
            try self.init(parsing: text)
        } catch {
            if case .invisibleCharacter(_, _, let character) = error { throw .invisibleCharacter(field: field, character) }
            throw .invalidText(field: field)
        }
    }
}

extension MailboxName {
    /// A mailbox read from the ring or the state file, as `DeviceName(checking:field:)`.
    init(checking mailbox: String, context: String) throws(ServiceWireError) {
        do {
            try self.init(mailbox: mailbox, context: context)
        } catch {
            if case .invisibleCharacter(let field, _, let character) = error { throw .invisibleCharacter(field: field, character) }
            throw .invalidText(field: "mailbox")
        }
    }
}
