// HMAC-SHA-256 against RFC 4231 test cases 1-7, a naive RFC 2104 composition, and isValid's rejections.

import Testing
import Totem

@Suite("HMAC-SHA-256 (RFC 2104, RFC 4231)")
struct HMACSHA256Tests {
    struct Case: Sendable, CustomTestStringConvertible {
        let number: Int
        let key: [UInt8]
        let data: [UInt8]
        /// The published code; case 5 publishes only its first 128 bits.
        let code: [UInt8]
        var testDescription: String { "RFC 4231 test case \(number)" }
    }

    static let rfc4231Cases: [Case] = [
        // §4.2
        Case(number: 1, key: [UInt8](repeating: 0x0b, count: 20), data: hexBytes("4869205468657265"),
             code: hexBytes("b0344c61d8db38535ca8afceaf0bf12b 881dc200c9833da726e9376c2e32cff7")),
        // §4.3: a key shorter than the code.
        Case(number: 2, key: hexBytes("4a656665"),
             data: hexBytes("7768617420646f2079612077616e7420 666f72206e6f7468696e673f"),
             code: hexBytes("5bdcc146bf60754e6a042426089575c7 5a003f089d2739839dec58b964ec3843")),
        // §4.4: key and data together longer than a block.
        Case(number: 3, key: [UInt8](repeating: 0xaa, count: 20), data: [UInt8](repeating: 0xdd, count: 50),
             code: hexBytes("773ea91e36800e46854db8ebd09181a7 2959098b3ef8c122d9635514ced565fe")),
        // §4.5
        Case(number: 4, key: hexBytes("0102030405060708090a0b0c0d0e0f10 111213141516171819"),
             data: [UInt8](repeating: 0xcd, count: 50),
             code: hexBytes("82558a389a443c0ea4cc819899f2083a 85f0faa3e578f8077a2e3ff46729665b")),
        // §4.6: output truncated to 128 bits.
        Case(number: 5, key: [UInt8](repeating: 0x0c, count: 20),
             data: hexBytes("546573742057697468205472756e6361 74696f6e"),
             code: hexBytes("a3b6167473100ee06e0c796c2955552b")),
        // §4.7: a key longer than a block, hashed first.
        Case(number: 6, key: [UInt8](repeating: 0xaa, count: 131),
             data: hexBytes("""
                54657374205573696e67204c61726765 72205468616e20426c6f636b2d53697a
                65204b6579202d2048617368204b6579 204669727374
                """),
             code: hexBytes("60e431591ee0b67f0d8a26aacbf5b77f 8e0bc6213728c5140546040f0ee37f54")),
        // §4.8: key and data both longer than a block.
        Case(number: 7, key: [UInt8](repeating: 0xaa, count: 131),
             data: hexBytes("""
                54686973206973206120746573742075 73696e672061206c6172676572207468
                616e20626c6f636b2d73697a65206b65 7920616e642061206c61726765722074
                68616e20626c6f636b2d73697a652064 6174612e20546865206b6579206e6565
                647320746f2062652068617368656420 6265666f7265206265696e6720757365
                642062792074686520484d414320616c 676f726974686d2e
                """),
             code: hexBytes("9b09ffa71b942fcb27635fbcd5b0e944 bfdc63644f0713938a7f51535c3a35e2")),
    ]

    @Test(arguments: rfc4231Cases)
    func rfc4231(_ testCase: Case) {
        let hmac = HMACSHA256(key: testCase.key)
        let code = hmac.authenticationCode(for: testCase.data)
        #expect(code.count == HMACSHA256.codeBytes)
        // Case 5 is truncated to 128 bits: compare the prefix.
        #expect(Array(code.prefix(testCase.code.count)) == testCase.code)
        if testCase.code.count == HMACSHA256.codeBytes {
            #expect(hmac.isValid(testCase.code, for: testCase.data))
        }
    }

    @Test("RFC 4231 data transcriptions match their ASCII captions")
    func rfc4231DataIsTheQuotedText() {
        #expect(Self.rfc4231Cases[1].data == Array("what do ya want for nothing?".utf8))
        #expect(Self.rfc4231Cases[4].data == Array("Test With Truncation".utf8))
        #expect(Self.rfc4231Cases[5].data == Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
        #expect(Self.rfc4231Cases[6].data == Array(("This is a test using a larger than block-size key and a larger than "
            + "block-size data. The key needs to be hashed before being used by the HMAC algorithm.").utf8))
    }

    @Test("equals the naive RFC 2104 composition for key lengths around the block size")
    func matchesNaiveComposition() {
        for keyLength in [0, 1, 31, 32, 63, 64, 65, 131] {
            let key = (0..<keyLength).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
            let hmac = HMACSHA256(key: key)
            var block = keyLength > 64 ? SHA256.hash(key) : key
            block += [UInt8](repeating: 0, count: 64 - block.count)
            for messageLength in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 200, 1400] {
                let message = (0..<messageLength).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ keyLength) }
                let innerHash = SHA256.hash(block.map { $0 ^ 0x36 } + message)
                let expected = SHA256.hash(block.map { $0 ^ 0x5c } + innerHash)
                #expect(hmac.authenticationCode(for: message) == expected, "key \(keyLength) B, message \(messageLength) B")
            }
        }
    }

    @Test("the allocation-free variant writes the same code")
    func writesIntoBuffer() {
        let hmac = HMACSHA256(key: Array("devcluster test key".utf8))
        let message = [UInt8](repeating: 0x42, count: 1400)
        var code = [UInt8](repeating: 0, count: HMACSHA256.codeBytes)
        message.withUnsafeBytes { messageBytes in
            code.withUnsafeMutableBytes { hmac.authenticationCode(for: messageBytes, into: $0) }
        }
        #expect(code == hmac.authenticationCode(for: message))
    }

    @Test("isValid rejects every single flipped bit of the code")
    func rejectsFlippedBits() {
        let testCase = Self.rfc4231Cases[0]
        let hmac = HMACSHA256(key: testCase.key)
        #expect(hmac.isValid(testCase.code, for: testCase.data))
        for bit in 0..<(testCase.code.count * 8) {
            var forged = testCase.code
            forged[bit / 8] ^= 1 << (bit % 8)
            #expect(!hmac.isValid(forged, for: testCase.data), "bit \(bit)")
        }
    }

    @Test("isValid rejects a code of the wrong length, including a valid prefix")
    func rejectsWrongLength() {
        let testCase = Self.rfc4231Cases[0]
        let hmac = HMACSHA256(key: testCase.key)
        #expect(!hmac.isValid([], for: testCase.data))
        #expect(!hmac.isValid(testCase.code.prefix(16), for: testCase.data))
        #expect(!hmac.isValid(testCase.code.dropLast(), for: testCase.data))
        #expect(!hmac.isValid(testCase.code + [0], for: testCase.data))
    }

    @Test("isValid rejects the code of a different message or under a different key")
    func rejectsOtherMessageOrKey() {
        let testCase = Self.rfc4231Cases[0]
        let hmac = HMACSHA256(key: testCase.key)
        #expect(!hmac.isValid(testCase.code, for: testCase.data + [0]))
        #expect(!HMACSHA256(key: testCase.key + [0x0b]).isValid(testCase.code, for: testCase.data))
    }
}

