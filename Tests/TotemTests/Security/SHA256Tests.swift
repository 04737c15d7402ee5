// SHA-256 against the FIPS 180-4 / NIST example vectors, and incremental hashing against one-shot.

import Testing
import Totem

@Suite("SHA-256 (FIPS 180-4)")
struct SHA256Tests {
    @Test("FIPS 180-4 example: \"abc\" (one block)")
    func oneBlockMessage() {
        #expect(SHA256.hash(Array("abc".utf8)) == hexBytes("ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad"))
    }

    @Test("the empty message (padding only)")
    func emptyMessage() {
        #expect(SHA256.hash([]) == hexBytes("e3b0c442 98fc1c14 9afbf4c8 996fb924 27ae41e4 649b934c a495991b 7852b855"))
    }

    @Test("FIPS 180-4 example: the 448-bit message (the length spills into a second block)")
    func twoBlockMessage() {
        let message = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(message.count * 8 == 448)
        #expect(SHA256.hash(message) == hexBytes("248d6a61 d20638b8 e5c02693 0c3e6039 a33ce459 64ff2167 f6ecedd4 19db06c1"))
    }

    @Test("NIST example: one million repetitions of \"a\"")
    func millionA() {
        let expected = hexBytes("cdc76e5c 9914fb92 81a1c7e2 84d73e67 f1809a48 a497200e 046d39cc c7112cd0")
        #expect(SHA256.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)) == expected)

        // The same message fed in uneven pieces.
        var hasher = SHA256()
        let piece = [UInt8](repeating: UInt8(ascii: "a"), count: 999)
        var fed = 0
        while fed + piece.count <= 1_000_000 {
            hasher.update(piece)
            fed += piece.count
        }
        hasher.update([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000 - fed))
        #expect(hasher.finalize() == expected)
    }

    @Test("splitting a 200-byte message at any offset 0...130 gives the one-shot digest")
    func incrementalSplits() {
        let message = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let oneShot = SHA256.hash(message)
        for split in 0...130 {
            var hasher = SHA256()
            hasher.update(Array(message[..<split]))
            hasher.update(Array(message[split...]))
            #expect(hasher.finalize() == oneShot, "split at \(split)")
        }
        // Three pieces, through the raw-buffer entry point.
        for first in stride(from: 0, through: 130, by: 13) {
            for second in stride(from: first, through: 200, by: 17) {
                var hasher = SHA256()
                message.withUnsafeBytes { bytes in
                    hasher.update(UnsafeRawBufferPointer(rebasing: bytes[..<first]))
                    hasher.update(UnsafeRawBufferPointer(rebasing: bytes[first..<second]))
                    hasher.update(UnsafeRawBufferPointer(rebasing: bytes[second...]))
                }
                #expect(hasher.finalize() == oneShot, "split at \(first) and \(second)")
            }
        }
    }

    @Test("digests of every length around the padding boundaries (55, 56, 63, 64, 119, 120 bytes)")
    func paddingBoundaries() {
        // Values from coreutils sha256sum over the bytes 0, 1, 2, ... (mod 256).
        let expected: [Int: String] = [
            55: "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59",
            56: "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562",
            63: "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488",
            64: "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108",
            119: "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6",
            120: "f52b23db1fbb6ded89ef42a23ce0c8922c45f25c50b568a93bf1c075420bbb7c",
        ]
        for (length, digest) in expected.sorted(by: { $0.key < $1.key }) {
            let message = (0..<length).map { UInt8(truncatingIfNeeded: $0) }
            #expect(SHA256.hash(message) == hexBytes(digest), "length \(length)")
        }
    }
}

