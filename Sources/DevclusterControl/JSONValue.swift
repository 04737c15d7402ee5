// The JSON value type of the control protocol and its encoder: one compact line of UTF-8 per value,
// object keys in insertion order. Parsing lives in JSONParser.swift; no Foundation here.

import Totem

/// A JSON value (RFC 8259), as sent and received on the control socket.
///
/// Numbers keep the distinction the protocol needs: whole numbers that fit 64 bits are
/// `integer`, everything else `double`. Objects keep their keys in order, so output is stable
/// and tests can compare text.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// An integer value from any fixed-width integer that fits 64 bits; larger ones become
    /// `double` (counters never get there).
    public static func number<Integer: BinaryInteger>(_ value: Integer) -> JSONValue {
        if let exact = Int64(exactly: value) { return .integer(exact) }
        return .double(Double(value))
    }

    /// The string, when this is a string.
    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// The integer, when this is an integer.
    public var integerValue: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The number as a `Double`, when this is a number.
    public var doubleValue: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }

    /// The Boolean, when this is one.
    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The elements, when this is an array.
    public var arrayValue: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// The object, when this is one.
    public var objectValue: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }

    /// The member `key` of an object; `nil` for a missing key or a value that is not an object.
    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }

    /// The name of the value's type, for error messages ("expected a string, got an array").
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a Boolean"
        case .integer, .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// A JSON object: members in the order they were added or read.
///
/// Lookups scan linearly; protocol objects have a handful of members. The parser rejects
/// duplicate keys, and `set` replaces, so a key appears at most once.
public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public private(set) var members: [(key: String, value: JSONValue)] = []

    public init() {}

    /// A literal's keys are distinct (as a Dictionary literal's must be; checked in debug builds).
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        members = elements.map { (key: $0.0, value: $0.1) }
        assert(Set(members.map(\.key)).count == members.count, "duplicate key in a JSON object literal")
    }

    /// Members in order; `keys` may not repeat (the parser guarantees it).
    public init(uniqueMembers: [(key: String, value: JSONValue)]) {
        members = uniqueMembers
    }

    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }
    public var keys: [String] { members.map(\.key) }

    public subscript(key: String) -> JSONValue? {
        for member in members where member.key == key { return member.value }
        return nil
    }

    /// Sets `key` to `value`, keeping its position if it exists and appending it otherwise.
    public mutating func set(_ key: String, _ value: JSONValue) {
        if let index = members.firstIndex(where: { $0.key == key }) {
            members[index].value = value
        } else {
            members.append((key, value))
        }
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.count == rhs.members.count
            && zip(lhs.members, rhs.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var object = JSONObject()
        for (key, value) in elements { object.set(key, value) }
        self = .object(object)
    }
}

// MARK: - Encoding

extension JSONValue {
    /// The value as compact JSON text (no spaces, no newline).
    public var encoded: String {
        var bytes: [UInt8] = []
        encode(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the value as compact JSON (UTF-8, no newline) to `output`.
    ///
    /// Non-finite doubles have no JSON form and are written as `null`. Strings escape `"`, `\`
    /// and every control character; other characters are written as UTF-8.
    public func encode(into output: inout [UInt8]) {
        switch self {
        case .null:
            output.append(contentsOf: Self.nullBytes)
        case .bool(let value):
            output.append(contentsOf: value ? Self.trueBytes : Self.falseBytes)
        case .integer(let value):
            Self.appendInteger(value, to: &output)
        case .double(let value):
            if value.isFinite {
                // Swift prints the shortest text that reads back as the same double: "0.1",
                // "1e-05", "1.0". A whole number keeps its ".0" so it stays a double on reading.
                output.append(contentsOf: value.description.utf8)
            } else {
                output.append(contentsOf: Self.nullBytes)
            }
        case .string(let text):
            Self.appendString(text, to: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                element.encode(into: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let object):
            output.append(UInt8(ascii: "{"))
            for (index, member) in object.members.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.appendString(member.key, to: &output)
                output.append(UInt8(ascii: ":"))
                member.value.encode(into: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    private static let nullBytes = Array("null".utf8)
    private static let trueBytes = Array("true".utf8)
    private static let falseBytes = Array("false".utf8)
    private static let hexDigits = Array("0123456789abcdef".utf8)

    public static func appendInteger(_ value: Int64, to output: inout [UInt8]) {
        // Int64.min has no positive counterpart; work with the magnitude.
        if value < 0 { output.append(UInt8(ascii: "-")) }
        appendUnsigned(value.magnitude, to: &output)
    }

    /// Appends the decimal digits of `value`.
    public static func appendUnsigned(_ value: UInt64, to output: inout [UInt8]) {
        guard value >= 10 else {
            output.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        var magnitude = value
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            while magnitude > 0 {
                buffer[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            }
        }
        withUnsafeBytes(of: &digits) { buffer in
            for index in stride(from: count - 1, through: 0, by: -1) { output.append(buffer[index]) }
        }
    }

    /// Appends `text` as a JSON string. Runs of bytes that need no escape are copied at once.
    public static func appendString(_ text: String, to output: inout [UInt8]) {
        var text = text
        text.withUTF8 { appendString(utf8: $0, to: &output) }
    }

    /// `appendString` for text given as UTF-8 bytes, which must be valid UTF-8
    /// (`UTF8Text.isValid`): the output is then valid JSON.
    public static func appendString(utf8 bytes: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        var runStart = 0
        while runStart <= bytes.count {
            let index = JSONText.firstSpecialByte(in: bytes, from: runStart, delete: true)
            output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
            guard index < bytes.count else { break }
            appendEscaped(bytes[index], to: &output)
            runStart = index + 1
        }
        output.append(UInt8(ascii: "\""))
    }

    private static func appendEscaped(_ byte: UInt8, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\\"))
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): output.append(byte)
        case 0x0A: output.append(UInt8(ascii: "n"))
        case 0x0D: output.append(UInt8(ascii: "r"))
        case 0x09: output.append(UInt8(ascii: "t"))
        default:
            output.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                       hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0x0F)]])
        }
    }
}
