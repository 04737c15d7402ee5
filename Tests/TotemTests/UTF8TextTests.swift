// UTF8Text: the ASCII fast path agrees with the standard library's strict decoding.

import Testing
@testable import Totem

struct UTF8TextTests {
    private func decode(_ bytes: [UInt8]) -> String? {
        bytes.withUnsafeBufferPointer { UTF8Text.string(validating: $0) }
    }

    @Test func asciiOfEveryLengthAroundTheEightByteStride() {
        for length in 0...20 {
            let text = String(repeating: "a", count: length)
            #expect(decode(Array(text.utf8)) == text)
        }
    }

    @Test func nonASCIIIsValidatedWhereverItSits() {
        for position in 0...16 {
            var bytes = Array(repeating: UInt8(ascii: "x"), count: 17)
            bytes.replaceSubrange(position..<position + 1, with: Array("é".utf8))
            #expect(decode(bytes) == String(decoding: bytes, as: UTF8.self))
            var broken = Array(repeating: UInt8(ascii: "x"), count: 17)
            broken[position] = 0xC3  // a lead byte without its continuation
            #expect(decode(broken) == nil, "invalid byte at \(position) accepted")
        }
        #expect(decode([0xED, 0xA0, 0x80]) == nil)  // an encoded surrogate
        #expect(UTF8Text.string(validating: Array("añb".utf8)[...]) == "añb")
    }
}
