// A strict JSON reader (RFC 8259) for untrusted control-socket input: bounded length and nesting,
// valid UTF-8 only, no duplicate keys, no trailing garbage. Every rejection is a typed error with
// the byte offset; nothing here can trap on any input.

import Totem

/// Why a text is not acceptable JSON, and where (`offset` counts bytes from 0).
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The text is longer than the reader accepts.
        case tooLong(bytes: Int, limit: Int)
        /// Arrays and objects nest deeper than the reader accepts.
        case tooDeep(limit: Int)
        /// The text ends inside a value (or is empty).
        case unexpectedEnd
        /// A byte that cannot start or continue a value here.
        case unexpectedByte(UInt8)
        /// A number that does not follow the JSON grammar (leading zeros, a lone "-", "1.").
        case invalidNumber
        /// A number too large for a double (1e999).
        case numberOutOfRange
        /// An escape other than \" \\ \/ \b \f \n \r \t \uXXXX.
        case invalidEscape
        /// A \u escape without four hex digits.
        case invalidUnicodeEscape
        /// A UTF-16 surrogate escape without its partner.
        case loneSurrogate
        /// A control character (below U+0020) written into a string without escaping.
        case controlCharacterInString
        /// Bytes that are not UTF-8.
        case invalidUTF8
        /// An object with the same key twice.
        case duplicateKey(String)
        /// Something other than whitespace after the value.
        case trailingContent
    }

    public var kind: Kind
    public var offset: Int

    public init(kind: Kind, offset: Int) {
        self.kind = kind
        self.offset = offset
    }

    public var description: String {
        let what: String
        switch kind {
        case .tooLong(let bytes, let limit): what = "the text has \(bytes) bytes, more than the limit of \(limit)"
        case .tooDeep(let limit): what = "arrays and objects nest deeper than \(limit) levels"
        case .unexpectedEnd: what = "the text ends inside a value"
        case .unexpectedByte(let byte): what = "unexpected \(Self.describe(byte))"
        case .invalidNumber: what = "malformed number"
        case .numberOutOfRange: what = "number out of range"
        case .invalidEscape: what = "invalid escape sequence in a string"
        case .invalidUnicodeEscape: what = "\\u must be followed by four hex digits"
        case .loneSurrogate: what = "unpaired UTF-16 surrogate in a \\u escape"
        case .controlCharacterInString: what = "unescaped control character in a string"
        case .invalidUTF8: what = "invalid UTF-8"
        case .duplicateKey(let key): what = "duplicate key \"\(key)\""
        case .trailingContent: what = "unexpected text after the JSON value"
        }
        return "\(what) at byte \(offset)"
    }

    private static func describe(_ byte: UInt8) -> String {
        if byte >= 0x21 && byte < 0x7F { return "\"\(Character(Unicode.Scalar(byte)))\"" }
        return "byte 0x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
    }
}

/// Reads one JSON value from bytes.
public enum JSONParser {
    /// Limits applied to untrusted input.
    public struct Limits: Sendable, Equatable {
        /// Longest accepted text in bytes.
        public var maximumBytes: Int
        /// Deepest nesting of arrays and objects (the top-level value counts as depth 1).
        public var maximumDepth: Int

        /// The control protocol's limits: one line of at most 64 KiB, 32 levels.
        public init(maximumBytes: Int, maximumDepth: Int) {
            self.maximumBytes = maximumBytes
            self.maximumDepth = maximumDepth
        }

        /// The control protocol's limits: one request line (`ControlLineLimits`), 32 levels.
        public static let control = Limits(maximumBytes: ControlLineLimits.maximumLineBytes, maximumDepth: 32)
    }

    /// Parses `bytes` as exactly one JSON value, optionally surrounded by whitespace.
    ///
    /// - Throws: `JSONParseError` for anything that is not strict JSON within `limits`.
    public static func parse<Bytes: Collection<UInt8>>(_ bytes: Bytes, limits: Limits = .control) throws(JSONParseError) -> JSONValue {
        let result: Result<JSONValue, JSONParseError>? = bytes.withContiguousStorageIfAvailable { buffer in
            parseBuffer(buffer, limits: limits)
        }
        if let result { return try result.get() }
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { parseBuffer($0, limits: limits) }.get()
    }

    /// Parses the UTF-8 of `text`.
    public static func parse(_ text: String, limits: Limits = .control) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), limits: limits)
    }

    private static func parseBuffer(_ buffer: UnsafeBufferPointer<UInt8>, limits: Limits) -> Result<JSONValue, JSONParseError> {
        guard buffer.count <= limits.maximumBytes else {
            return .failure(JSONParseError(kind: .tooLong(bytes: buffer.count, limit: limits.maximumBytes), offset: limits.maximumBytes))
        }
        var reader = Reader(bytes: buffer, maximumDepth: limits.maximumDepth)
        do throws(JSONParseError) {
            reader.skipWhitespace()
            let value = try reader.readValue(depth: 0)
            reader.skipWhitespace()
            guard reader.offset == buffer.count else { throw reader.error(.trailingContent) }
            return .success(value)
        } catch {
            return .failure(error)
        }
    }
}

/// The cursor over the input. Every read checks `offset < bytes.count` first.
private struct Reader {
    let bytes: UnsafeBufferPointer<UInt8>
    let maximumDepth: Int
    var offset = 0

    init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
    }

    /// Longest number text considered; longer ones are malformed for any purpose we have.
    static let maximumNumberBytes = 400
    /// Objects with more members than this use a set to find duplicate keys.
    static let linearKeyCheckLimit = 16

    func error(_ kind: JSONParseError.Kind) -> JSONParseError {
        JSONParseError(kind: kind, offset: offset)
    }

    var current: UInt8? { offset < bytes.count ? bytes[offset] : nil }

    mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x09, 0x0A, 0x0D: offset += 1
            default: return
            }
        }
    }

    mutating func readValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard let byte = current else { throw error(.unexpectedEnd) }
        switch byte {
        case UInt8(ascii: "{"): return try readObject(depth: depth + 1)
        case UInt8(ascii: "["): return try readArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try readString())
        case UInt8(ascii: "t"): try readLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try readLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try readLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try readNumber()
        default: throw error(.unexpectedByte(byte))
        }
    }

    mutating func readLiteral(_ literal: StaticString) throws(JSONParseError) {
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        for byte in expected {
            guard let actual = current else { throw error(.unexpectedEnd) }
            guard actual == byte else { throw error(.unexpectedByte(actual)) }
            offset += 1
        }
    }

    mutating func readArray(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maximumDepth else { throw error(.tooDeep(limit: maximumDepth)) }
        offset += 1  // "["
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            offset += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try readValue(depth: depth))
            skipWhitespace()
            guard let byte = current else { throw error(.unexpectedEnd) }
            offset += 1
            switch byte {
            case UInt8(ascii: ","): continue
            case UInt8(ascii: "]"): return .array(elements)
            default:
                offset -= 1
                throw error(.unexpectedByte(byte))
            }
        }
    }

    mutating func readObject(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maximumDepth else { throw error(.tooDeep(limit: maximumDepth)) }
        offset += 1  // "{"
        var members: [(key: String, value: JSONValue)] = []
        var seenKeys: Set<String> = []
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            offset += 1
            return .object(JSONObject(uniqueMembers: members))
        }
        while true {
            skipWhitespace()
            guard let quote = current else { throw error(.unexpectedEnd) }
            guard quote == UInt8(ascii: "\"") else { throw error(.unexpectedByte(quote)) }
            let keyOffset = offset
            let key = try readString()
            let isDuplicate: Bool
            if members.count < Self.linearKeyCheckLimit {
                isDuplicate = members.contains { $0.key == key }
            } else {
                if seenKeys.isEmpty { seenKeys = Set(members.map(\.key)) }
                isDuplicate = !seenKeys.insert(key).inserted
            }
            guard !isDuplicate else { throw JSONParseError(kind: .duplicateKey(key), offset: keyOffset) }
            skipWhitespace()
            guard let colon = current else { throw error(.unexpectedEnd) }
            guard colon == UInt8(ascii: ":") else { throw error(.unexpectedByte(colon)) }
            offset += 1
            skipWhitespace()
            let value = try readValue(depth: depth)
            members.append((key, value))
            if !seenKeys.isEmpty { seenKeys.insert(key) }
            skipWhitespace()
            guard let byte = current else { throw error(.unexpectedEnd) }
            offset += 1
            switch byte {
            case UInt8(ascii: ","): continue
            case UInt8(ascii: "}"): return .object(JSONObject(uniqueMembers: members))
            default:
                offset -= 1
                throw error(.unexpectedByte(byte))
            }
        }
    }

    /// Reads a string starting at its opening quote. Runs without escapes are validated and
    /// copied in one piece.
    mutating func readString() throws(JSONParseError) -> String {
        offset += 1  // opening quote
        var result = ""
        var runStart = offset
        while offset < bytes.count {
            // Skip ordinary bytes eight at a time; stop at a quote, backslash or control byte.
            offset = JSONText.firstSpecialByte(in: bytes, from: offset)
            guard offset < bytes.count else { break }
            let byte = bytes[offset]
            if byte == UInt8(ascii: "\"") {
                try appendRun(from: runStart, to: offset, into: &result)
                offset += 1
                return result
            }
            if byte == UInt8(ascii: "\\") {
                try appendRun(from: runStart, to: offset, into: &result)
                try readEscape(into: &result)
                runStart = offset
                continue
            }
            guard byte >= 0x20 else { throw error(.controlCharacterInString) }
            offset += 1
        }
        throw error(.unexpectedEnd)
    }

    private func appendRun(from start: Int, to end: Int, into result: inout String) throws(JSONParseError) {
        guard end > start else { return }
        let run = UnsafeBufferPointer(rebasing: bytes[start..<end])
        guard let text = UTF8Text.string(validating: run) else {
            throw JSONParseError(kind: .invalidUTF8, offset: start)
        }
        if result.isEmpty { result = text } else { result += text }
    }

    private mutating func readEscape(into result: inout String) throws(JSONParseError) {
        offset += 1  // backslash
        guard let byte = current else { throw error(.unexpectedEnd) }
        offset += 1
        switch byte {
        case UInt8(ascii: "\""): result.append("\"")
        case UInt8(ascii: "\\"): result.append("\\")
        case UInt8(ascii: "/"): result.append("/")
        case UInt8(ascii: "b"): result.append("\u{08}")
        case UInt8(ascii: "f"): result.append("\u{0C}")
        case UInt8(ascii: "n"): result.append("\n")
        case UInt8(ascii: "r"): result.append("\r")
        case UInt8(ascii: "t"): result.append("\t")
        case UInt8(ascii: "u"):
            let escapeStart = offset - 2
            let unit = try readHexQuad()
            let scalarValue: UInt32
            switch unit {
            case 0xD800...0xDBFF:
                // A high surrogate must be followed by an escaped low surrogate.
                guard offset + 1 < bytes.count, bytes[offset] == UInt8(ascii: "\\"), bytes[offset + 1] == UInt8(ascii: "u") else {
                    throw JSONParseError(kind: .loneSurrogate, offset: escapeStart)
                }
                offset += 2
                let low = try readHexQuad()
                guard (0xDC00...0xDFFF).contains(low) else { throw JSONParseError(kind: .loneSurrogate, offset: escapeStart) }
                scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
            case 0xDC00...0xDFFF:
                throw JSONParseError(kind: .loneSurrogate, offset: escapeStart)
            default:
                scalarValue = UInt32(unit)
            }
            guard let scalar = Unicode.Scalar(scalarValue) else { throw JSONParseError(kind: .loneSurrogate, offset: escapeStart) }
            result.unicodeScalars.append(scalar)
        default:
            offset -= 1
            throw error(.invalidEscape)
        }
    }

    private mutating func readHexQuad() throws(JSONParseError) -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            guard let byte = current else { throw error(.unexpectedEnd) }
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error(.invalidUnicodeEscape)
            }
            value = value << 4 | UInt16(digit)
            offset += 1
        }
        return value
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`: an integer when there is neither
    /// fraction nor exponent and it fits 64 bits, a double otherwise.
    mutating func readNumber() throws(JSONParseError) -> JSONValue {
        let start = offset
        if current == UInt8(ascii: "-") { offset += 1 }
        guard let first = current else { throw error(.unexpectedEnd) }
        guard Self.isDigit(first) else { throw JSONParseError(kind: .invalidNumber, offset: start) }
        offset += 1
        if first == UInt8(ascii: "0"), let next = current, Self.isDigit(next) {
            throw JSONParseError(kind: .invalidNumber, offset: start)
        }
        skipDigits()
        var isInteger = true
        if current == UInt8(ascii: ".") {
            isInteger = false
            offset += 1
            guard let digit = current, Self.isDigit(digit) else { throw JSONParseError(kind: .invalidNumber, offset: start) }
            skipDigits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            isInteger = false
            offset += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { offset += 1 }
            guard let digit = current, Self.isDigit(digit) else { throw JSONParseError(kind: .invalidNumber, offset: start) }
            skipDigits()
        }
        let length = offset - start
        guard length <= Self.maximumNumberBytes else { throw JSONParseError(kind: .invalidNumber, offset: start) }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
        if isInteger, let value = Int64(text) { return .integer(value) }
        guard let value = Double(text), value.isFinite else { throw JSONParseError(kind: .numberOutOfRange, offset: start) }
        return .double(value)
    }

    private mutating func skipDigits() {
        while let byte = current, Self.isDigit(byte) { offset += 1 }
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }
}
