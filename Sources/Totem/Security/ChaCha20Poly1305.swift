// The AEAD_CHACHA20_POLY1305 construction of RFC 8439 §2.8 (seal and open), and CryptoError.
// It does not choose nonces or lay out packets; callers must never reuse a nonce under one key.

/// Why a cryptographic operation refused its input. Every case is an operating error (a bad key
/// file, a malformed or forged datagram): count it and drop the input, never crash.
public enum CryptoError: Error, Sendable, Equatable {
    /// A key had `length` bytes where the algorithm needs `expected`.
    case invalidKeyLength(Int, expected: Int)
    /// A nonce had `length` bytes where the algorithm needs `expected`.
    case invalidNonceLength(Int, expected: Int)
    /// The tag does not match the ciphertext, nonce and associated data (or has the wrong
    /// length): the message was forged, corrupted, or sealed under another key.
    case authenticationFailed
}

/// ChaCha20-Poly1305 authenticated encryption with associated data (RFC 8439 §2.8).
///
/// `seal` encrypts a plaintext and returns a 16-byte tag that authenticates the ciphertext
/// together with the associated data (AAD, for example a packet header sent in clear); `open`
/// checks the tag in constant time and only then decrypts.
///
/// The nonce (12 bytes) must be unique for every message sealed under one key; repeating one
/// reveals the XOR of two plaintexts and lets an attacker forge tags. A per-sender prefix plus
/// a counter is the usual scheme (RFC 8439 §2.3).
///
/// The array-based methods allocate their results; the in-place methods work directly on a
/// datagram buffer and allocate nothing.
public struct ChaCha20Poly1305: Sendable {
    /// The key length in bytes (256 bits).
    public static let keyBytes = 32
    /// The nonce length in bytes (96 bits).
    public static let nonceBytes = 12
    /// The tag length in bytes (128 bits).
    public static let tagBytes = 16

    /// The largest message one nonce can encrypt: 2^32 - 1 ChaCha20 blocks, since block 0
    /// makes the Poly1305 key (§2.8, P_MAX).
    public static let maximumMessageBytes = ((1 << 32) - 1) * 64

    private let key: ChaCha20.Key

    /// Prepares to seal and open under `key`.
    ///
    /// - Throws: `CryptoError.invalidKeyLength` unless `key` has exactly 32 bytes.
    public init(key: [UInt8]) throws(CryptoError) {
        guard key.count == Self.keyBytes else {
            throw .invalidKeyLength(key.count, expected: Self.keyBytes)
        }
        self.key = key.withUnsafeBytes { ChaCha20.Key($0) }
    }

    /// Encrypts `plaintext` and authenticates it together with `aad`.
    ///
    /// - Returns: the ciphertext (as long as the plaintext) and the 16-byte tag.
    /// - Throws: `CryptoError.invalidNonceLength` unless `nonce` has 12 bytes.
    /// - Precondition: `plaintext.count <= maximumMessageBytes`.
    public func seal(
        _ plaintext: [UInt8], nonce: [UInt8], authenticating aad: [UInt8]
    ) throws(CryptoError) -> (ciphertext: [UInt8], tag: [UInt8]) {
        try Self.checkNonce(nonce.count)
        var ciphertext = plaintext
        var tag = [UInt8](repeating: 0, count: Self.tagBytes)
        ciphertext.withUnsafeMutableBytes { message in
            tag.withUnsafeMutableBytes { tagBuffer in
                nonce.withUnsafeBytes { nonceBuffer in
                    aad.withUnsafeBytes { aadBuffer in
                        sealChecked(message, nonce: nonceBuffer, aad: aadBuffer, tag: tagBuffer)
                    }
                }
            }
        }
        return (ciphertext, tag)
    }

    /// Checks `tag` against `ciphertext` and `aad`, then decrypts.
    ///
    /// - Returns: the plaintext.
    /// - Throws: `CryptoError.invalidNonceLength` unless `nonce` has 12 bytes;
    ///   `CryptoError.authenticationFailed` if the tag is wrong or not 16 bytes long.
    public func open(
        _ ciphertext: [UInt8], tag: [UInt8], nonce: [UInt8], authenticating aad: [UInt8]
    ) throws(CryptoError) -> [UInt8] {
        try Self.checkNonce(nonce.count)
        var plaintext = ciphertext
        let isAuthentic = plaintext.withUnsafeMutableBytes { message in
            tag.withUnsafeBytes { tagBuffer in
                nonce.withUnsafeBytes { nonceBuffer in
                    aad.withUnsafeBytes { aadBuffer in
                        openChecked(message, tag: tagBuffer, nonce: nonceBuffer, aad: aadBuffer)
                    }
                }
            }
        }
        guard isAuthentic else { throw .authenticationFailed }
        return plaintext
    }

    /// Encrypts `message` in place and writes its tag into `tag`: the allocation-free variant
    /// for building datagrams.
    ///
    /// - Parameters:
    ///   - message: the plaintext, replaced by the ciphertext.
    ///   - nonce: 12 bytes, never reused under this key.
    ///   - aad: associated data, authenticated but not encrypted. It must not overlap `message`.
    ///   - tag: receives the 16-byte tag. It must not overlap `message`.
    /// - Throws: `CryptoError.invalidNonceLength` unless `nonce` has 12 bytes.
    /// - Precondition: `tag.count == tagBytes` (the caller lays out its own buffer) and
    ///   `message.count <= maximumMessageBytes`.
    public func seal(
        inPlace message: UnsafeMutableRawBufferPointer, nonce: UnsafeRawBufferPointer,
        authenticating aad: UnsafeRawBufferPointer, tag: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        try Self.checkNonce(nonce.count)
        sealChecked(message, nonce: nonce, aad: aad, tag: tag)
    }

    /// Checks `tag` against `message` (a ciphertext) and `aad`, then decrypts `message` in
    /// place: the allocation-free variant for received datagrams.
    ///
    /// If authentication fails, `message` is left exactly as it was.
    ///
    /// - Throws: `CryptoError.invalidNonceLength` unless `nonce` has 12 bytes;
    ///   `CryptoError.authenticationFailed` if the tag is wrong or not 16 bytes long.
    public func open(
        inPlace message: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer, authenticating aad: UnsafeRawBufferPointer
    ) throws(CryptoError) {
        try Self.checkNonce(nonce.count)
        guard openChecked(message, tag: tag, nonce: nonce, aad: aad) else {
            throw .authenticationFailed
        }
    }

    private static func checkNonce(_ length: Int) throws(CryptoError) {
        guard length == nonceBytes else { throw .invalidNonceLength(length, expected: nonceBytes) }
    }

    /// §2.8: derive the one-time key, encrypt from block 1, authenticate the ciphertext.
    private func sealChecked(
        _ message: UnsafeMutableRawBufferPointer, nonce: UnsafeRawBufferPointer,
        aad: UnsafeRawBufferPointer, tag: UnsafeMutableRawBufferPointer
    ) {
        precondition(tag.count == Self.tagBytes, "tag buffer has \(tag.count) bytes, expected 16")
        precondition(message.count <= Self.maximumMessageBytes, "message of \(message.count) bytes is too long for one nonce")
        let cipher = ChaCha20(key: key, nonce: nonce)
        cipher.apply(to: message, initialCounter: 1)
        Self.computeTag(cipher: cipher, ciphertext: UnsafeRawBufferPointer(message), aad: aad, into: tag)
    }

    /// §2.8 decryption: recompute the tag over the ciphertext, compare in constant time, and
    /// decrypt only if it matches.
    private func openChecked(
        _ message: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer
    ) -> Bool {
        // A wrong-length tag cannot match; it comes from the network, so it is no precondition.
        guard tag.count == Self.tagBytes, message.count <= Self.maximumMessageBytes else { return false }
        let cipher = ChaCha20(key: key, nonce: nonce)
        let isAuthentic = withUnsafeTemporaryAllocation(byteCount: Self.tagBytes, alignment: 8) { expected in
            Self.computeTag(cipher: cipher, ciphertext: UnsafeRawBufferPointer(message), aad: aad, into: expected)
            return constantTimeEquals(UnsafeRawBufferPointer(expected), tag)
        }
        guard isAuthentic else { return false }
        cipher.apply(to: message, initialCounter: 1)
        return true
    }

    /// Poly1305 over `aad ‖ pad16 ‖ ciphertext ‖ pad16 ‖ le64(aad.count) ‖ le64(ciphertext.count)`
    /// under the one-time key from keystream block 0 (§2.6, §2.8).
    private static func computeTag(
        cipher: ChaCha20, ciphertext: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer,
        into tag: UnsafeMutableRawBufferPointer
    ) {
        var oneTimeKeyBlock = cipher.block(counter: 0)
        var authenticator = withUnsafeBytes(of: &oneTimeKeyBlock) { blockBytes in
            // §2.6: the first 32 bytes of block 0 are the key; the other 32 are discarded.
            Poly1305(key: UnsafeRawBufferPointer(rebasing: blockBytes[0..<Poly1305.keyBytes]))
        }
        authenticator.update(aad)
        authenticator.padWithZerosToBlockBoundary()
        authenticator.update(ciphertext)
        authenticator.padWithZerosToBlockBoundary()
        var lengths = (UInt64(aad.count).littleEndian, UInt64(ciphertext.count).littleEndian)
        withUnsafeBytes(of: &lengths) { authenticator.update($0) }
        authenticator.finalize(into: tag)
    }
}
