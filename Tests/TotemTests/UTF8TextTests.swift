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

    @Test func jsonSpecialBytesAreFoundAtEveryPosition() {
        for special: UInt8 in [0x00, 0x0A, 0x1F, 0x22, 0x5C, 0x7F] {
            for position in 0...39 {
                var bytes = Array(repeating: UInt8(ascii: "a"), count: 40)
                bytes[position] = special
                let plain = bytes.withUnsafeBufferPointer { UTF8Text.firstJSONSpecialByte(in: $0, from: 0) }
                let forEncoding = bytes.withUnsafeBufferPointer { UTF8Text.firstJSONSpecialByte(in: $0, from: 0, delete: true) }
                #expect(forEncoding == position, "byte \(special) at \(position)")
                #expect(plain == (special == 0x7F ? 40 : position), "byte \(special) at \(position)")
                let after = bytes.withUnsafeBufferPointer { UTF8Text.firstJSONSpecialByte(in: $0, from: position + 1, delete: true) }
                #expect(after == 40)
            }
        }
        // Bytes of 0x80 and above (UTF-8) and 0x20 are ordinary.
        let ordinary = Array("é €x  yz  0123456789".utf8)
        #expect(ordinary.withUnsafeBufferPointer { UTF8Text.firstJSONSpecialByte(in: $0, from: 0, delete: true) } == ordinary.count)
    }

    @Test func plainJSONTextIsPrintableASCIIWithoutQuoteOrBackslash() {
        for byte in UInt8.min...UInt8.max {
            let expected = (0x20...0x7E).contains(byte) && byte != 0x22 && byte != 0x5C
            // Positions in the four-vector loop, the one-vector loop and the byte loop of 150 bytes.
            for position in [0, 15, 16, 31, 47, 63, 64, 127, 128, 143, 144, 149] {
                var bytes = Array(repeating: UInt8(ascii: "x"), count: 150)
                bytes[position] = byte
                #expect(bytes.withUnsafeBufferPointer { UTF8Text.isPlainJSONText($0) } == expected, "byte \(byte) at \(position)")
            }
        }
        #expect([UInt8]().withUnsafeBufferPointer { UTF8Text.isPlainJSONText($0) })
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

    /// The vector loops against a byte-at-a-time reference, on random bytes (mostly ordinary
    /// ones, so the vector path runs) of random lengths from random start offsets.
    @Test func vectorScansAgreeWithAByteByByteReference() {
        let seed = UInt64.random(in: 1...UInt64.max)
        var generator = SplitMix64(seed: seed)
        for _ in 0..<3_000 {
            let length = Int(generator.next() % 300)
            // Dense or sparse special bytes, so that long ordinary runs reach the wide loops too.
            let oneIn = generator.next() % 2 == 0 ? 8 : 256 as UInt64
            let bytes = (0..<length).map { _ -> UInt8 in
                let roll = generator.next()
                return roll % oneIn == 0 ? UInt8(truncatingIfNeeded: roll >> 8) : UInt8(ascii: "x")
            }
            let start = length == 0 ? 0 : Int(generator.next() % UInt64(length + 1))
            let delete = generator.next() % 2 == 0
            let expected = bytes.indices.dropFirst(start).first { byte in
                bytes[byte] < 0x20 || bytes[byte] == 0x22 || bytes[byte] == 0x5C || (delete && bytes[byte] == 0x7F)
            } ?? length
            let found = bytes.withUnsafeBufferPointer { UTF8Text.firstJSONSpecialByte(in: $0, from: start, delete: delete) }
            #expect(found == expected, "seed \(seed): \(bytes) from \(start), delete \(delete)")
            let ascii = bytes.withUnsafeBufferPointer { UTF8Text.isASCII($0) }
            #expect(ascii == bytes.allSatisfy { $0 < 0x80 }, "seed \(seed): \(bytes)")
            let plain = bytes.withUnsafeBufferPointer { UTF8Text.isPlainJSONText($0) }
            #expect(plain == bytes.allSatisfy { (0x20..<0x7F).contains($0) && $0 != 0x22 && $0 != 0x5C }, "seed \(seed): \(bytes)")
        }
    }
}
