// ChaCha20, Poly1305 and the AEAD against RFC 8439 vectors (§2.3.2, §2.4.2, §2.5.2, §2.6.2,
// §2.8.2, A.3, A.5), plus forgery rejection and length validation.

import Testing
@testable import Totem

@Suite("ChaCha20 (RFC 8439 §2.3, §2.4)")
struct ChaCha20Tests {
    static let sequentialKey = (0..<32).map { UInt8($0) }  // 00:01:...:1f

    @Test("§2.3.2 block function test vector")
    func blockFunction() {
        let cipher = makeCipher(key: Self.sequentialKey, nonce: hexBytes("00:00:00:09:00:00:00:4a:00:00:00:00"))
        #expect(cipher.keystreamBlock(counter: 1) == hexBytes("""
            10 f1 e7 e4 d1 3b 59 15 50 0f dd 1f a3 20 71 c4
            c7 d1 f4 c7 33 c0 68 03 04 22 aa 9a c3 d4 6c 4e
            d2 82 64 46 07 9f aa 09 14 c2 d7 05 d9 8b 02 a2
            b5 12 9c d1 de 16 4e b9 cb d0 83 e8 a2 50 3c 4e
            """))
    }

    @Test("§2.4.2 encryption test vector (two whole blocks and a 50-byte tail)")
    func encryption() {
        let cipher = makeCipher(key: Self.sequentialKey, nonce: hexBytes("00:00:00:00:00:00:00:4a:00:00:00:00"))
        var data = sunscreenPlaintext
        data.withUnsafeMutableBytes { cipher.apply(to: $0, initialCounter: 1) }
        #expect(data == hexBytes("""
            6e 2e 35 9a 25 68 f9 80 41 ba 07 28 dd 0d 69 81
            e9 7e 7a ec 1d 43 60 c2 0a 27 af cc fd 9f ae 0b
            f9 1b 65 c5 52 47 33 ab 8f 59 3d ab cd 62 b3 57
            16 39 d6 24 e6 51 52 ab 8f 53 0c 35 9f 08 61 d8
            07 ca 0d bf 50 0d 6a 61 56 a3 8e 08 8a 22 b6 5e
            52 bc 51 4d 16 cc f8 06 81 8c e9 1a b7 79 37 36
            5a f9 0b bf 74 a3 5b e6 b4 0b 8e ed f2 78 5e 42
            87 4d
            """))
        // Decryption is the same operation.
        data.withUnsafeMutableBytes { cipher.apply(to: $0, initialCounter: 1) }
        #expect(data == sunscreenPlaintext)
    }

    @Test("§2.6.2 Poly1305 key generation: the first 32 bytes of block 0")
    func oneTimeKeyGeneration() {
        let cipher = makeCipher(key: (0x80...0x9f).map { UInt8($0) }, nonce: hexBytes("00 00 00 00 00 01 02 03 04 05 06 07"))
        #expect(Array(cipher.keystreamBlock(counter: 0).prefix(32)) == hexBytes("""
            8a d5 a0 8b 90 5f 81 cc 81 50 40 27 4a b2 94 71
            a8 33 b6 37 e3 fd 0d a5 08 db b8 e2 fd d1 a6 46
            """))
    }

    @Test("encrypting in pieces on block boundaries equals encrypting at once")
    func keystreamContinuesAcrossCalls() {
        let cipher = makeCipher(key: Self.sequentialKey, nonce: [UInt8](repeating: 7, count: 12))
        let plaintext = (0..<300).map { UInt8(truncatingIfNeeded: $0) }
        var whole = plaintext
        whole.withUnsafeMutableBytes { cipher.apply(to: $0, initialCounter: 5) }
        var pieces = plaintext
        pieces.withUnsafeMutableBytes { bytes in
            cipher.apply(to: UnsafeMutableRawBufferPointer(rebasing: bytes[0..<128]), initialCounter: 5)
            cipher.apply(to: UnsafeMutableRawBufferPointer(rebasing: bytes[128...]), initialCounter: 7)
        }
        #expect(pieces == whole)
        #expect(whole != plaintext)
    }

    private func makeCipher(key: [UInt8], nonce: [UInt8]) -> ChaCha20 {
        let chachaKey = key.withUnsafeBytes { ChaCha20.Key($0) }
        return nonce.withUnsafeBytes { ChaCha20(key: chachaKey, nonce: $0) }
    }
}

@Suite("Poly1305 (RFC 8439 §2.5)")
struct Poly1305Tests {
    @Test("§2.5.2 test vector")
    func rfcExample() {
        let key = hexBytes("""
            85:d6:be:78:57:55:6d:33:7f:44:52:fe:42:d5:06:a8:01:03:80:8a:fb:0d:b2:fd:4a:bf:f6:af:41:49:f5:1b
            """)
        let message = Array("Cryptographic Forum Research Group".utf8)
        #expect(message == hexBytes("""
            43 72 79 70 74 6f 67 72 61 70 68 69 63 20 46 6f
            72 75 6d 20 52 65 73 65 61 72 63 68 20 47 72 6f
            75 70
            """))
        #expect(tag(message, key: key) == hexBytes("a8:06:1d:c1:30:51:36:c6:c2:2b:8b:af:0c:01:27:a9"))
    }

    struct EdgeCase: Sendable, CustomTestStringConvertible {
        let number: Int
        let r: String, s: String, data: String, tag: String
        var testDescription: String { "RFC 8439 A.3 test vector #\(number)" }
    }

    /// RFC 8439 A.3 #5-#11: reduction corner cases for limb-based implementations.
    static let edgeCases: [EdgeCase] = [
        // Partially reduced final result not fully reduced.
        EdgeCase(number: 5, r: "02" + zeros(15), s: zeros(16), data: ones(16), tag: "03" + zeros(15)),
        // Adding s overflows modulo 2^128.
        EdgeCase(number: 6, r: "02" + zeros(15), s: ones(16), data: "02" + zeros(15), tag: "03" + zeros(15)),
        // Data limb all ones with a carry from the lower limb.
        EdgeCase(number: 7, r: "01" + zeros(15), s: zeros(16),
                 data: ones(16) + "F0" + ones(15) + "11" + zeros(15), tag: "05" + zeros(15)),
        // Polynomial result exactly 2^130 - 5.
        EdgeCase(number: 8, r: "01" + zeros(15), s: zeros(16),
                 data: ones(16) + "FB" + String(repeating: "FE", count: 15) + String(repeating: "01", count: 16),
                 tag: zeros(16)),
        // Polynomial result exactly 2^130 - 6.
        EdgeCase(number: 9, r: "02" + zeros(15), s: zeros(16), data: "FD" + ones(15), tag: "FA" + ones(15)),
        // 5·H + L reduction producing a 131-bit intermediate result.
        EdgeCase(number: 10, r: "01 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00", s: zeros(16),
                 data: """
                    E3 35 94 D7 50 5E 43 B9 00 00 00 00 00 00 00 00
                    33 94 D7 50 5E 43 79 CD 01 00 00 00 00 00 00 00
                    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
                    01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
                    """,
                 tag: "14 00 00 00 00 00 00 00 55 00 00 00 00 00 00 00"),
        // 5·H + L reduction producing a 131-bit final result.
        EdgeCase(number: 11, r: "01 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00", s: zeros(16),
                 data: """
                    E3 35 94 D7 50 5E 43 B9 00 00 00 00 00 00 00 00
                    33 94 D7 50 5E 43 79 CD 01 00 00 00 00 00 00 00
                    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
                    """,
                 tag: "13 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"),
    ]

    @Test(arguments: edgeCases)
    func reductionCornerCases(_ edgeCase: EdgeCase) {
        let key = hexBytes(edgeCase.r) + hexBytes(edgeCase.s)
        #expect(tag(hexBytes(edgeCase.data), key: key) == hexBytes(edgeCase.tag))
    }

    @Test("feeding a message in pieces equals feeding it at once")
    func incrementalSplits() {
        let key = (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ 1) }
        let message = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let oneShot = tag(message, key: key)
        for split in 0...message.count {
            let pieces = key.withUnsafeBytes { keyBytes in
                message.withUnsafeBytes { bytes in
                    var authenticator = Poly1305(key: keyBytes)
                    authenticator.update(UnsafeRawBufferPointer(rebasing: bytes[..<split]))
                    authenticator.update(UnsafeRawBufferPointer(rebasing: bytes[split...]))
                    var result = [UInt8](repeating: 0, count: Poly1305.tagBytes)
                    result.withUnsafeMutableBytes { authenticator.finalize(into: $0) }
                    return result
                }
            }
            #expect(pieces == oneShot, "split at \(split)")
        }
    }

    private func tag(_ message: [UInt8], key: [UInt8]) -> [UInt8] {
        key.withUnsafeBytes { keyBytes in
            message.withUnsafeBytes { Poly1305.authenticationTag(for: $0, key: keyBytes) }
        }
    }

    private static func zeros(_ count: Int) -> String { String(repeating: "00", count: count) }
    private static func ones(_ count: Int) -> String { String(repeating: "FF", count: count) }
}

@Suite("ChaCha20-Poly1305 AEAD (RFC 8439 §2.8)")
struct ChaCha20Poly1305Tests {
    // §2.8.2 inputs: the nonce is the 32-bit fixed-common part 07:00:00:00, then the IV.
    static let key = (0x80...0x9f).map { UInt8($0) }
    static let nonce = hexBytes("07 00 00 00") + hexBytes("40 41 42 43 44 45 46 47")
    static let aad = hexBytes("50 51 52 53 c0 c1 c2 c3 c4 c5 c6 c7")
    static let ciphertext = hexBytes("""
        d3 1a 8d 34 64 8e 60 db 7b 86 af bc 53 ef 7e c2
        a4 ad ed 51 29 6e 08 fe a9 e2 b5 a7 36 ee 62 d6
        3d be a4 5e 8c a9 67 12 82 fa fb 69 da 92 72 8b
        1a 71 de 0a 9e 06 0b 29 05 d6 a5 b6 7e cd 3b 36
        92 dd bd 7f 2d 77 8b 8c 98 03 ae e3 28 09 1b 58
        fa b3 24 e4 fa d6 75 94 55 85 80 8b 48 31 d7 bc
        3f f4 de f0 8e 4b 7a 9d e5 76 d2 65 86 ce c6 4b
        61 16
        """)
    static let tag = hexBytes("1a:e1:0b:59:4f:09:e2:6a:7e:90:2e:cb:d0:60:06:91")

    @Test("§2.8.2 seal produces exactly the published ciphertext and tag")
    func sealTestVector() throws {
        let aead = try ChaCha20Poly1305(key: Self.key)
        let sealed = try aead.seal(sunscreenPlaintext, nonce: Self.nonce, authenticating: Self.aad)
        #expect(sealed.ciphertext == Self.ciphertext)
        #expect(sealed.tag == Self.tag)
    }

    @Test("§2.8.2 open recovers the plaintext")
    func openTestVector() throws {
        let aead = try ChaCha20Poly1305(key: Self.key)
        let plaintext = try aead.open(Self.ciphertext, tag: Self.tag, nonce: Self.nonce, authenticating: Self.aad)
        #expect(plaintext == sunscreenPlaintext)
    }

    @Test("A.5 decryption test vector (265 bytes, another key)")
    func appendixDecryption() throws {
        let aead = try ChaCha20Poly1305(key: hexBytes("""
            1c 92 40 a5 eb 55 d3 8a f3 33 88 86 04 f6 b5 f0
            47 39 17 c1 40 2b 80 09 9d ca 5c bc 20 70 75 c0
            """))
        let ciphertext = hexBytes("""
            64 a0 86 15 75 86 1a f4 60 f0 62 c7 9b e6 43 bd
            5e 80 5c fd 34 5c f3 89 f1 08 67 0a c7 6c 8c b2
            4c 6c fc 18 75 5d 43 ee a0 9e e9 4e 38 2d 26 b0
            bd b7 b7 3c 32 1b 01 00 d4 f0 3b 7f 35 58 94 cf
            33 2f 83 0e 71 0b 97 ce 98 c8 a8 4a bd 0b 94 81
            14 ad 17 6e 00 8d 33 bd 60 f9 82 b1 ff 37 c8 55
            97 97 a0 6e f4 f0 ef 61 c1 86 32 4e 2b 35 06 38
            36 06 90 7b 6a 7c 02 b0 f9 f6 15 7b 53 c8 67 e4
            b9 16 6c 76 7b 80 4d 46 a5 9b 52 16 cd e7 a4 e9
            90 40 c5 a4 04 33 22 5e e2 82 a1 b0 a0 6c 52 3e
            af 45 34 d7 f8 3f a1 15 5b 00 47 71 8c bc 54 6a
            0d 07 2b 04 b3 56 4e ea 1b 42 22 73 f5 48 27 1a
            0b b2 31 60 53 fa 76 99 19 55 eb d6 31 59 43 4e
            ce bb 4e 46 6d ae 5a 10 73 a6 72 76 27 09 7a 10
            49 e6 17 d9 1d 36 10 94 fa 68 f0 ff 77 98 71 30
            30 5b ea ba 2e da 04 df 99 7b 71 4d 6c 6f 2c 29
            a6 ad 5c b4 02 2b 02 70 9b
            """)
        let plaintext = try aead.open(
            ciphertext,
            tag: hexBytes("ee ad 9d 67 89 0c bb 22 39 23 36 fe a1 85 1f 38"),
            nonce: hexBytes("00 00 00 00 01 02 03 04 05 06 07 08"),
            authenticating: hexBytes("f3 33 88 86 00 00 00 00 00 00 4e 91"))
        let expected = "Internet-Drafts are draft documents valid for a maximum of six months and may be "
            + "updated, replaced, or obsoleted by other documents at any time. It is inappropriate to "
            + "use Internet-Drafts as reference material or to cite them other than as "
            + "/\u{201C}work in progress./\u{201D}"
        #expect(plaintext.count == 265)
        #expect(plaintext == Array(expected.utf8))
    }

    @Test("open fails with authenticationFailed when any single bit of ciphertext, tag, nonce or AAD flips")
    func rejectsEverySingleBitFlip() throws {
        let aead = try ChaCha20Poly1305(key: Self.key)
        func flipped(_ bytes: [UInt8], bit: Int) -> [UInt8] {
            var copy = bytes
            copy[bit / 8] ^= 1 << (bit % 8)
            return copy
        }
        for bit in 0..<(Self.ciphertext.count * 8) {
            #expect(throws: CryptoError.authenticationFailed, "ciphertext bit \(bit)") {
                try aead.open(flipped(Self.ciphertext, bit: bit), tag: Self.tag, nonce: Self.nonce, authenticating: Self.aad)
            }
        }
        for bit in 0..<(Self.tag.count * 8) {
            #expect(throws: CryptoError.authenticationFailed, "tag bit \(bit)") {
                try aead.open(Self.ciphertext, tag: flipped(Self.tag, bit: bit), nonce: Self.nonce, authenticating: Self.aad)
            }
        }
        for bit in 0..<(Self.nonce.count * 8) {
            #expect(throws: CryptoError.authenticationFailed, "nonce bit \(bit)") {
                try aead.open(Self.ciphertext, tag: Self.tag, nonce: flipped(Self.nonce, bit: bit), authenticating: Self.aad)
            }
        }
        for bit in 0..<(Self.aad.count * 8) {
            #expect(throws: CryptoError.authenticationFailed, "AAD bit \(bit)") {
                try aead.open(Self.ciphertext, tag: Self.tag, nonce: Self.nonce, authenticating: flipped(Self.aad, bit: bit))
            }
        }
    }

    @Test("open rejects truncated, extended or reordered input")
    func rejectsStructuralTampering() throws {
        let aead = try ChaCha20Poly1305(key: Self.key)
        let tampered: [(ciphertext: [UInt8], aad: [UInt8])] = [
            (Array(Self.ciphertext.dropLast()), Self.aad),
            (Self.ciphertext + [0], Self.aad),
            (Self.ciphertext, Array(Self.aad.dropLast())),
            (Self.ciphertext, Self.aad + [0]),
            (Self.ciphertext, []),
            // Moving bytes between AAD and ciphertext changes the encoded lengths.
            (Array(Self.aad.suffix(4)) + Self.ciphertext, Array(Self.aad.prefix(8))),
        ]
        for (index, input) in tampered.enumerated() {
            #expect(throws: CryptoError.authenticationFailed, "case \(index)") {
                try aead.open(input.ciphertext, tag: Self.tag, nonce: Self.nonce, authenticating: input.aad)
            }
        }
        #expect(throws: CryptoError.authenticationFailed) {
            try ChaCha20Poly1305(key: Self.key.reversed()).open(
                Self.ciphertext, tag: Self.tag, nonce: Self.nonce, authenticating: Self.aad)
        }
    }

    @Test("a tag of the wrong length fails authentication instead of trapping")
    func rejectsWrongTagLength() throws {
        let aead = try ChaCha20Poly1305(key: Self.key)
        for tag in [[], Array(Self.tag.prefix(15)), Self.tag + [0], Self.tag + Self.tag] {
            #expect(throws: CryptoError.authenticationFailed, "tag of \(tag.count) bytes") {
                try aead.open(Self.ciphertext, tag: tag, nonce: Self.nonce, authenticating: Self.aad)
            }
        }
    }

    @Test("keys other than 32 bytes throw invalidKeyLength", arguments: [0, 1, 16, 31, 33, 64])
    func rejectsKeyLength(_ length: Int) {
        #expect(throws: CryptoError.invalidKeyLength(length, expected: 32)) {
            try ChaCha20Poly1305(key: [UInt8](repeating: 1, count: length))
        }
    }

    @Test("nonces other than 12 bytes throw invalidNonceLength", arguments: [0, 8, 11, 13, 24])
    func rejectsNonceLength(_ length: Int) throws {
        let aead = try ChaCha20Poly1305(key: Self.key)
        let nonce = [UInt8](repeating: 0, count: length)
        let expectedError = CryptoError.invalidNonceLength(length, expected: 12)
        #expect(throws: expectedError) {
            try aead.seal(sunscreenPlaintext, nonce: nonce, authenticating: Self.aad)
        }
        #expect(throws: expectedError) {
            try aead.open(Self.ciphertext, tag: Self.tag, nonce: nonce, authenticating: Self.aad)
        }
        var buffer = Self.ciphertext
        var tag = Self.tag
        #expect(throws: expectedError) {
            try buffer.withUnsafeMutableBytes { message in
                try tag.withUnsafeMutableBytes { tagBytes in
                    try nonce.withUnsafeBytes { nonceBytes in
                        try Self.aad.withUnsafeBytes { aadBytes in
                            try aead.seal(inPlace: message, nonce: nonceBytes, authenticating: aadBytes, tag: tagBytes)
                        }
                    }
                }
            }
        }
        #expect(throws: expectedError) {
            try buffer.withUnsafeMutableBytes { message in
                try tag.withUnsafeBytes { tagBytes in
                    try nonce.withUnsafeBytes { nonceBytes in
                        try Self.aad.withUnsafeBytes { aadBytes in
                            try aead.open(inPlace: message, tag: tagBytes, nonce: nonceBytes, authenticating: aadBytes)
                        }
                    }
                }
            }
        }
        #expect(buffer == Self.ciphertext)
    }

    @Test("in-place seal and open match the array API; a failed open leaves the buffer untouched")
    func inPlaceVariants() throws {
        let aead = try ChaCha20Poly1305(key: Self.key)
        var buffer = sunscreenPlaintext
        var tag = [UInt8](repeating: 0, count: ChaCha20Poly1305.tagBytes)
        try buffer.withUnsafeMutableBytes { message in
            try tag.withUnsafeMutableBytes { tagBytes in
                try Self.nonce.withUnsafeBytes { nonceBytes in
                    try Self.aad.withUnsafeBytes { aadBytes in
                        try aead.seal(inPlace: message, nonce: nonceBytes, authenticating: aadBytes, tag: tagBytes)
                    }
                }
            }
        }
        #expect(buffer == Self.ciphertext)
        #expect(tag == Self.tag)

        var forgedTag = tag
        forgedTag[0] ^= 0x01
        #expect(throws: CryptoError.authenticationFailed) {
            try buffer.withUnsafeMutableBytes { message in
                try forgedTag.withUnsafeBytes { tagBytes in
                    try Self.nonce.withUnsafeBytes { nonceBytes in
                        try Self.aad.withUnsafeBytes { aadBytes in
                            try aead.open(inPlace: message, tag: tagBytes, nonce: nonceBytes, authenticating: aadBytes)
                        }
                    }
                }
            }
        }
        #expect(buffer == Self.ciphertext, "a rejected datagram must not be decrypted")

        try buffer.withUnsafeMutableBytes { message in
            try tag.withUnsafeBytes { tagBytes in
                try Self.nonce.withUnsafeBytes { nonceBytes in
                    try Self.aad.withUnsafeBytes { aadBytes in
                        try aead.open(inPlace: message, tag: tagBytes, nonce: nonceBytes, authenticating: aadBytes)
                    }
                }
            }
        }
        #expect(buffer == sunscreenPlaintext)
    }

    @Test("seal then open round-trips for message and AAD lengths around block boundaries")
    func roundTrips() throws {
        let aead = try ChaCha20Poly1305(key: Self.key)
        for aadLength in [0, 1, 15, 16, 17, 40] {
            let aad = [UInt8](repeating: 0xa5, count: aadLength)
            for length in [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1400] {
                let plaintext = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 11 &+ aadLength) }
                var nonce = [UInt8](repeating: 0, count: 12)
                nonce[0] = UInt8(aadLength)
                nonce[4] = UInt8(truncatingIfNeeded: length)
                let sealed = try aead.seal(plaintext, nonce: nonce, authenticating: aad)
                #expect(sealed.ciphertext.count == length)
                #expect(sealed.tag.count == ChaCha20Poly1305.tagBytes)
                if length >= 16 {
                    #expect(sealed.ciphertext != plaintext)
                }
                let opened = try aead.open(sealed.ciphertext, tag: sealed.tag, nonce: nonce, authenticating: aad)
                #expect(opened == plaintext, "AAD \(aadLength) B, message \(length) B")
            }
        }
    }
}

@Suite("constantTimeEquals")
struct ConstantTimeTests {
    @Test("truth table")
    func truthTable() {
        #expect(constantTimeEquals([UInt8](), [UInt8]()))
        #expect(constantTimeEquals([1, 2, 3] as [UInt8], [1, 2, 3] as [UInt8]))
        #expect(!constantTimeEquals([1, 2, 3] as [UInt8], [1, 2, 4] as [UInt8]))
        #expect(!constantTimeEquals([0, 2, 3] as [UInt8], [1, 2, 3] as [UInt8]))
        #expect(!constantTimeEquals([0x80] as [UInt8], [0x00] as [UInt8]))
        #expect(!constantTimeEquals([1, 2, 3] as [UInt8], [1, 2] as [UInt8]))
        #expect(!constantTimeEquals([1, 2] as [UInt8], [1, 2, 3] as [UInt8]))
        #expect(!constantTimeEquals([] as [UInt8], [0] as [UInt8]))
        // Mixed collection types.
        let bytes: [UInt8] = [9, 8, 7, 6]
        #expect(constantTimeEquals(bytes[1...], [8, 7, 6] as [UInt8]))
        bytes.withUnsafeBytes { raw in
            #expect(constantTimeEquals(raw, bytes))
            #expect(!constantTimeEquals(raw, bytes.reversed()))
        }
    }
}

/// The §2.4.2 and §2.8.2 plaintext, checked against its hex dump in the RFC.
private let sunscreenPlaintext: [UInt8] = {
    let text = Array(("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
        + "the future, sunscreen would be it.").utf8)
    precondition(text == hexBytes("""
        4c 61 64 69 65 73 20 61 6e 64 20 47 65 6e 74 6c
        65 6d 65 6e 20 6f 66 20 74 68 65 20 63 6c 61 73
        73 20 6f 66 20 27 39 39 3a 20 49 66 20 49 20 63
        6f 75 6c 64 20 6f 66 66 65 72 20 79 6f 75 20 6f
        6e 6c 79 20 6f 6e 65 20 74 69 70 20 66 6f 72 20
        74 68 65 20 66 75 74 75 72 65 2c 20 73 75 6e 73
        63 72 65 65 6e 20 77 6f 75 6c 64 20 62 65 20 69
        74 2e
        """), "sunscreen plaintext transcription differs from its hex dump")
    return text
}()

