// HMAC-SHA-256 (RFC 2104 with SHA-256; test vectors in RFC 4231): computing and checking codes.
// It does not read key files or decide what a packet's code covers; PacketAuthenticator does.

/// HMAC with SHA-256 (RFC 2104): a 32-byte code authenticating a message under a shared key.
///
/// RFC 2104 §2 defines `H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ message))`, where `K` is the key padded
/// with zeros to one SHA-256 block (64 bytes), `ipad` is 0x36 repeated and `opad` is 0x5c
/// repeated. Both padded-key blocks are hashed once, in `init`; each code then costs the
/// message's blocks plus two compressions, and allocates only the returned array (or nothing,
/// with `authenticationCode(for:into:)`).
public struct HMACSHA256: Sendable {
    /// The length of an authentication code in bytes.
    public static let codeBytes = SHA256.digestBytes

    /// SHA-256 after absorbing `K ⊕ ipad`, copied for every message.
    private let innerStart: SHA256
    /// SHA-256 after absorbing `K ⊕ opad`, copied for every message.
    private let outerStart: SHA256

    /// Prepares to authenticate with `key`, which may have any length.
    ///
    /// Keys longer than a SHA-256 block (64 bytes) are first hashed to 32 bytes, as RFC 2104 §2
    /// requires. RFC 2104 §3 recommends at least 32 bytes of key for SHA-256; enforcing a
    /// minimum is the key file loader's job, not this type's.
    public init(key: [UInt8]) {
        let blockBytes = SHA256.blockBytes
        let shortKey = key.count > blockBytes ? SHA256.hash(key) : key
        precondition(shortKey.count <= blockBytes, "padded key of \(shortKey.count) bytes exceeds a block")
        let paddedKey = shortKey + [UInt8](repeating: 0, count: blockBytes - shortKey.count)

        var inner = SHA256()
        inner.update(paddedKey.map { $0 ^ 0x36 })
        var outer = SHA256()
        outer.update(paddedKey.map { $0 ^ 0x5c })
        innerStart = inner
        outerStart = outer
    }

    /// The 32-byte authentication code of `message`.
    public func authenticationCode(for message: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Self.codeBytes) { buffer, initializedCount in
            authenticationCode(for: message, into: UnsafeMutableRawBufferPointer(buffer))
            initializedCount = Self.codeBytes
        }
    }

    /// The 32-byte authentication code of `message`.
    public func authenticationCode(for message: [UInt8]) -> [UInt8] {
        message.withUnsafeBytes { authenticationCode(for: $0) }
    }

    /// Writes the authentication code of `message` into `code`, allocating nothing: for packet
    /// encoders that place the code directly into the outgoing datagram.
    ///
    /// - Precondition: `code.count == HMACSHA256.codeBytes`. The buffer is the caller's own,
    ///   laid out by our encoder, so a wrong size is a programming error.
    public func authenticationCode(for message: UnsafeRawBufferPointer, into code: UnsafeMutableRawBufferPointer) {
        precondition(code.count == Self.codeBytes, "code buffer has \(code.count) bytes, expected \(Self.codeBytes)")
        var inner = innerStart
        inner.update(message)
        withUnsafeTemporaryAllocation(byteCount: SHA256.digestBytes, alignment: 8) { innerDigest in
            inner.finalize(into: innerDigest)
            var outer = outerStart
            outer.update(UnsafeRawBufferPointer(innerDigest))
            outer.finalize(into: code)
        }
    }

    /// Whether `code` is the authentication code of `message`, compared in constant time.
    ///
    /// A code of the wrong length (for example a truncated datagram) is simply invalid: this
    /// never traps on network input.
    public func isValid(_ code: some Collection<UInt8>, for message: UnsafeRawBufferPointer) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: Self.codeBytes, alignment: 8) { expected in
            authenticationCode(for: message, into: expected)
            return constantTimeEquals(UnsafeRawBufferPointer(expected), code)
        }
    }

    /// Whether `code` is the authentication code of `message`, compared in constant time.
    public func isValid(_ code: some Collection<UInt8>, for message: [UInt8]) -> Bool {
        message.withUnsafeBytes { isValid(code, for: $0) }
    }
}
