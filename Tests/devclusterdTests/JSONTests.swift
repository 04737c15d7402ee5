// Tests of the control protocol's JSON: encoding, strict parsing, every rejection, the limits, and
// a seeded fuzz (random bytes and mutations of valid texts) that must never trap.

import Testing
import Totem
@testable import devclusterd

private func parse(_ text: String, limits: JSONParser.Limits = .control) throws(JSONParseError) -> JSONValue {
    try JSONParser.parse(text, limits: limits)
}

private func rejection(_ text: String, limits: JSONParser.Limits = .control) -> JSONParseError? {
    do {
        let value = try parse(text, limits: limits)
        Issue.record("\(text.debugDescription) parsed as \(value)")
        return nil
    } catch {
        return error
    }
}


@Suite("JSON")
struct JSONTests {
    @Test func encodesCompactlyInOrder() {
        let value: JSONValue = ["id": 1, "ok": true, "result": ["list": [1, "two", .null, 2.5, false]], "z": .object(JSONObject())]
        #expect(value.encoded == #"{"id":1,"ok":true,"result":{"list":[1,"two",null,2.5,false]},"z":{}}"#)
    }

    @Test func encodesIntegersAtTheEdges() {
        #expect(JSONValue.integer(0).encoded == "0")
        #expect(JSONValue.integer(-7).encoded == "-7")
        #expect(JSONValue.integer(.max).encoded == "9223372036854775807")
        #expect(JSONValue.integer(.min).encoded == "-9223372036854775808")
        #expect(JSONValue.number(UInt64.max).encoded == "1.8446744073709552e+19")
    }

    @Test func encodesDoublesSoTheyReadBack() throws {
        for value in [0.1, 1.0, -2.5e-7, 1e300, 123456.789] {
            #expect(try parse(JSONValue.double(value).encoded) == .double(value))
        }
        #expect(JSONValue.double(.infinity).encoded == "null")
        #expect(JSONValue.double(.nan).encoded == "null")
    }

    @Test func escapesStrings() {
        #expect(JSONValue.string("a\"b\\c\nd\re\tf\u{01}\u{7F}").encoded == #""a\"b\\c\nd\re\tf\u0001\u007f""#)
        #expect(JSONValue.string("Grüße 📞").encoded == "\"Grüße 📞\"")
        // Straight from UTF-8 bytes (channel_event payloads): the same output as from a String.
        for text in ["a\"b\\c\nd\re\tf\u{01}\u{7F}", "Grüße 📞", "", String(repeating: "0123456789\"", count: 40)] {
            var fromBytes: [UInt8] = []
            Array(text.utf8).withUnsafeBufferPointer { JSONValue.appendString(utf8: $0, to: &fromBytes) }
            #expect(String(decoding: fromBytes, as: UTF8.self) == JSONValue.string(text).encoded)
        }
    }

    @Test func roundTripsValues() throws {
        let values: [JSONValue] = [
            .null, true, false, 0, -1, .integer(.max), .integer(.min), .double(0.5), "", "x\u{0}y", "日本語 \u{1F600}",
            [], [[[]]], ["a": ["b": ["c": 1]]], ["k": "v", "n": .null, "l": [1, 2, 3]],
        ]
        for value in values {
            #expect(try parse(value.encoded) == value, "\(value)")
        }
    }

    @Test func readsWhitespaceEscapesAndUnicode() throws {
        #expect(try parse(" \t\r\n{ \"a\" : [ 1 , 2 ] }\n") == ["a": [1, 2]])
        #expect(try parse(#""\u00e9\u20AC\ud83d\ude00\/\b\f""#) == .string("é€😀/\u{08}\u{0C}"))
        #expect(try parse("\"é\"") == .string("é"))
    }

    @Test func readsNumbers() throws {
        #expect(try parse("0") == 0)
        #expect(try parse("-0") == 0)
        #expect(try parse("42") == 42)
        #expect(try parse("-9223372036854775808") == .integer(.min))
        #expect(try parse("9223372036854775808") == .double(9223372036854775808.0))
        #expect(try parse("1.5") == .double(1.5))
        #expect(try parse("1e3") == .double(1000))
        #expect(try parse("-2.5E-2") == .double(-0.025))
        #expect(try parse("1e-400") == .double(0))
    }

    @Test func rejectsMalformedNumbers() {
        for text in ["01", "-", "1.", ".5", "1e", "1e+", "+1", "--1", "0x10", "1.e5", "NaN", "Infinity"] {
            let error = rejection(text)
            #expect(error != nil, "\(text)")
        }
        #expect(rejection("01")?.kind == .invalidNumber)
        #expect(rejection("1e999")?.kind == .numberOutOfRange)
        #expect(rejection(String(repeating: "1", count: 500))?.kind == .invalidNumber)
    }

    @Test func rejectsBadStrings() {
        #expect(rejection("\"abc")?.kind == .unexpectedEnd)
        #expect(rejection("\"a\u{01}b\"")?.kind == .controlCharacterInString)
        #expect(rejection("\"a\nb\"")?.kind == .controlCharacterInString)
        #expect(rejection(#""\x""#)?.kind == .invalidEscape)
        #expect(rejection(#""\u12g4""#)?.kind == .invalidUnicodeEscape)
        #expect(rejection(#""\ud800""#)?.kind == .loneSurrogate)
        #expect(rejection(#""\udc00""#)?.kind == .loneSurrogate)
        #expect(rejection(#""\ud800\u0041""#)?.kind == .loneSurrogate)
        let invalidUTF8: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        #expect(throws: JSONParseError(kind: .invalidUTF8, offset: 1)) { try JSONParser.parse(invalidUTF8) }
        let overlong: [UInt8] = [0x22, 0xC0, 0xAF, 0x22]
        #expect(throws: JSONParseError.self) { try JSONParser.parse(overlong) }
    }

    @Test func rejectsStructuralErrors() {
        #expect(rejection("")?.kind == .unexpectedEnd)
        #expect(rejection("   ")?.kind == .unexpectedEnd)
        #expect(rejection("[1,]")?.kind == .unexpectedByte(UInt8(ascii: "]")))
        #expect(rejection("[1 2]")?.kind == .unexpectedByte(UInt8(ascii: "2")))
        #expect(rejection("{\"a\" 1}")?.kind == .unexpectedByte(UInt8(ascii: "1")))
        #expect(rejection("{a:1}")?.kind == .unexpectedByte(UInt8(ascii: "a")))
        #expect(rejection("{\"a\":1,}")?.kind == .unexpectedByte(UInt8(ascii: "}")))
        #expect(rejection("{\"a\":1")?.kind == .unexpectedEnd)
        #expect(rejection("tru")?.kind == .unexpectedEnd)
        #expect(rejection("nul1")?.kind == .unexpectedByte(UInt8(ascii: "1")))
        #expect(rejection("{} {}")?.kind == .trailingContent)
        #expect(rejection("1 2")?.kind == .trailingContent)
        #expect(rejection("'a'")?.kind == .unexpectedByte(UInt8(ascii: "'")))
    }

    @Test func rejectsDuplicateKeysInSmallAndLargeObjects() {
        #expect(rejection(#"{"a":1,"a":2}"#)?.kind == .duplicateKey("a"))
        let many = (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(rejection("{\(many),\"k7\":0}")?.kind == .duplicateKey("k7"))
        #expect(rejection("{\(many),\"k39\":0}")?.kind == .duplicateKey("k39"))
    }

    @Test func limitsDepth() throws {
        let limits = JSONParser.Limits(maximumBytes: 1 << 20, maximumDepth: 32)
        let deepest = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        #expect(try parse(deepest, limits: limits) != .null)
        let tooDeep = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        #expect(rejection(tooDeep, limits: limits)?.kind == .tooDeep(limit: 32))
        // Far deeper than any stack could recurse: rejected at the limit, without recursing further.
        let hostile = String(repeating: "{\"a\":", count: 100_000)
        #expect(rejection(hostile, limits: limits)?.kind == .tooDeep(limit: 32))
    }

    @Test func limitsLength() {
        let limits = JSONParser.Limits(maximumBytes: 16, maximumDepth: 8)
        #expect(rejection("\"" + String(repeating: "x", count: 20) + "\"", limits: limits)?.kind == .tooLong(bytes: 22, limit: 16))
        #expect(rejection("\"" + String(repeating: "x", count: 200_000) + "\"")?.kind == .tooLong(bytes: 200_002, limit: 152_920))
    }

    @Test func errorsSayWhatAndWhere() {
        #expect(rejection("[1,]")?.description == "unexpected \"]\" at byte 3")
        #expect(rejection("{\"a\":1,\"a\":2}")?.description == "duplicate key \"a\" at byte 7")
        #expect(rejection("[\u{01}]")?.description == "unexpected byte 0x01 at byte 1")
    }

    @Test(arguments: 0..<8 as Range<UInt64>)
    func randomBytesNeverTrap(seed: UInt64) {
        var generator = SplitMix64(seed: seed)
        let alphabet = Array("{}[]\",:\\ tfnrue0123456789.-+Eu".utf8) + [0x00, 0x0A, 0x80, 0xC3, 0xFF]
        for _ in 0..<2_000 {
            let length = Int.random(in: 0...64, using: &generator)
            let bytes = (0..<length).map { _ -> UInt8 in
                Bool.random(using: &generator) ? alphabet.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator)
            }
            if let value = try? JSONParser.parse(bytes) {
                // Whatever parses must encode and parse back to the same value.
                #expect((try? JSONParser.parse(value.encoded)) == value, "seed \(seed): \(bytes)")
            }
        }
    }

    @Test(arguments: 0..<8 as Range<UInt64>)
    func mutatedValidTextsNeverTrap(seed: UInt64) {
        var generator = SplitMix64(seed: seed &+ 1_000)
        let samples: [JSONValue] = [
            ["id": 1, "cmd": "members", "args": ["enabled": true]],
            ["id": "x", "ok": false, "error": ["code": "unknown_command", "message": "no \"such\" command\n"]],
            [1.5, -2, "日本", ["nested": [[], [:], .null]]],
        ]
        for _ in 0..<2_000 {
            var bytes = Array(samples.randomElement(using: &generator)!.encoded.utf8)
            for _ in 0..<Int.random(in: 1...4, using: &generator) where !bytes.isEmpty {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<4, using: &generator) {
                case 0: bytes[index] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &generator)
                case 1: bytes.remove(at: index)
                case 2: bytes.insert(bytes[Int.random(in: 0..<bytes.count, using: &generator)], at: index)
                default: bytes = Array(bytes[..<index])
                }
            }
            if let value = try? JSONParser.parse(bytes) {
                #expect((try? JSONParser.parse(value.encoded)) == value, "seed \(seed): \(bytes)")
            }
            _ = try? ControlRequest.decode(line: bytes)
        }
    }
}
