// UTF8Text: the ASCII fast path agrees with the standard library's strict decoding.

import Testing
@testable import Totem

struct UTF8TextTests {
    private func decode(_ bytes: [UInt8]) -> String? {
        bytes.withUnsafeBufferPointer { UTF8Text.string(validating: $0) }
    }

    @Test func asciiOfEveryLengthAroundTheVectorStrides() {
        for length in 0...72 {
            let text = String(repeating: "a", count: length)
            #expect(decode(Array(text.utf8)) == text)
        }
    }

    @Test func nonASCIIIsValidatedWhereverItSits() {
        for position in 0...36 {
            var bytes = Array(repeating: UInt8(ascii: "x"), count: 37)
            bytes.replaceSubrange(position..<position + 1, with: Array("é".utf8))
            #expect(decode(bytes) == String(decoding: bytes, as: UTF8.self))
            var broken = Array(repeating: UInt8(ascii: "x"), count: 37)
            broken[position] = 0xC3  // a lead byte without its continuation
            #expect(decode(broken) == nil, "invalid byte at \(position) accepted")
        }
        #expect(decode([0xED, 0xA0, 0x80]) == nil)  // an encoded surrogate
        #expect(UTF8Text.string(validating: Array("añb".utf8)[...]) == "añb")
    }

    @Test func isValidAgreesWithTheStandardLibrary() {
        let cases: [[UInt8]] = [
            [], Array("plain ascii text, long enough for the stride".utf8), Array("caf\u{e9} \u{20ac} \u{1F600}".utf8),
            [0xC3], [0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
            Array("ascii then ".utf8) + [0xFF],
        ]
        for bytes in cases {
            let expected = String(validating: bytes, as: UTF8.self) != nil
            #expect(bytes.withUnsafeBufferPointer { UTF8Text.isValid($0) } == expected, "\(bytes)")
        }
    }

    /// The ASCII scan against a byte-at-a-time reference, on random bytes of random lengths.
    @Test func asciiScanAgreesWithAByteByByteReference() {
        let seed = UInt64.random(in: 1...UInt64.max)
        var generator = SplitMix64(seed: seed)
        for _ in 0..<3_000 {
            let length = Int(generator.next() % 300)
            let oneIn = generator.next() % 2 == 0 ? 8 : 256 as UInt64
            let bytes = (0..<length).map { _ -> UInt8 in
                let roll = generator.next()
                return roll % oneIn == 0 ? UInt8(truncatingIfNeeded: roll >> 8) : UInt8(ascii: "x")
            }
            let ascii = bytes.withUnsafeBufferPointer { UTF8Text.isASCII($0) }
            #expect(ascii == bytes.allSatisfy { $0 < 0x80 }, "seed \(seed): \(bytes)")
        }
    }
}
