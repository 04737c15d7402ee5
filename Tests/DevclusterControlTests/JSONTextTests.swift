// JSONText: the vectorised scans of JSON strings agree with byte-at-a-time definitions.

import DevclusterControl
import Testing
import Totem

@Suite("JSON text scans")
struct JSONTextTests {
    @Test func jsonSpecialBytesAreFoundAtEveryPosition() {
        for special: UInt8 in [0x00, 0x0A, 0x1F, 0x22, 0x5C, 0x7F] {
            for position in 0...39 {
                var bytes = Array(repeating: UInt8(ascii: "a"), count: 40)
                bytes[position] = special
                let plain = bytes.withUnsafeBufferPointer { JSONText.firstSpecialByte(in: $0, from: 0) }
                let forEncoding = bytes.withUnsafeBufferPointer { JSONText.firstSpecialByte(in: $0, from: 0, delete: true) }
                #expect(forEncoding == position, "byte \(special) at \(position)")
                #expect(plain == (special == 0x7F ? 40 : position), "byte \(special) at \(position)")
                let after = bytes.withUnsafeBufferPointer { JSONText.firstSpecialByte(in: $0, from: position + 1, delete: true) }
                #expect(after == 40)
            }
        }
        // Bytes of 0x80 and above (UTF-8) and 0x20 are ordinary.
        let ordinary = Array("é €x  yz  0123456789".utf8)
        #expect(ordinary.withUnsafeBufferPointer { JSONText.firstSpecialByte(in: $0, from: 0, delete: true) } == ordinary.count)
    }

    @Test func plainJSONTextIsPrintableASCIIWithoutQuoteOrBackslash() {
        for byte in UInt8.min...UInt8.max {
            let expected = (0x20...0x7E).contains(byte) && byte != 0x22 && byte != 0x5C
            // Positions in the four-vector loop, the one-vector loop and the byte loop of 150 bytes.
            for position in [0, 15, 16, 31, 47, 63, 64, 127, 128, 143, 144, 149] {
                var bytes = Array(repeating: UInt8(ascii: "x"), count: 150)
                bytes[position] = byte
                #expect(bytes.withUnsafeBufferPointer { JSONText.isPlain($0) } == expected, "byte \(byte) at \(position)")
            }
        }
        #expect([UInt8]().withUnsafeBufferPointer { JSONText.isPlain($0) })
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
            let found = bytes.withUnsafeBufferPointer { JSONText.firstSpecialByte(in: $0, from: start, delete: delete) }
            #expect(found == expected, "seed \(seed): \(bytes) from \(start), delete \(delete)")
            let plain = bytes.withUnsafeBufferPointer { JSONText.isPlain($0) }
            #expect(plain == bytes.allSatisfy { (0x20..<0x7F).contains($0) && $0 != 0x22 && $0 != 0x5C }, "seed \(seed): \(bytes)")
        }
    }
}
