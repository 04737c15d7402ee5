// The ChaCha20 block function and stream cipher of RFC 8439 §2.1-§2.4 (96-bit nonce, 32-bit counter).
// It authenticates nothing: only ChaCha20Poly1305 uses it, and callers never should directly.

/// The ChaCha20 stream cipher (RFC 8439 §2.4) for one key and one nonce.
///
/// Encryption and decryption are the same operation: XOR with the keystream, which is the
/// concatenation of the 64-byte blocks `block(counter)`, `block(counter + 1)`, … (§2.3).
/// Internal building block of `ChaCha20Poly1305`; a key and nonce pair must never encrypt two
/// different messages, which that type's callers guarantee by never repeating a nonce.
struct ChaCha20: Sendable {
    static let keyBytes = 32
    static let nonceBytes = 12
    static let blockBytes = 64

    /// A 256-bit key as the eight little-endian words that fill state words 4...11 (§2.3).
    struct Key: Sendable {
        let k0, k1, k2, k3, k4, k5, k6, k7: UInt32

        /// Reads the key words.
        ///
        /// - Precondition: `bytes.count == ChaCha20.keyBytes`; public entry points validate
        ///   lengths of keys from files before they get here.
        init(_ bytes: UnsafeRawBufferPointer) {
            precondition(bytes.count == ChaCha20.keyBytes, "ChaCha20 key has \(bytes.count) bytes, expected 32")
            k0 = ChaCha20.littleEndianWord(bytes, at: 0)
            k1 = ChaCha20.littleEndianWord(bytes, at: 4)
            k2 = ChaCha20.littleEndianWord(bytes, at: 8)
            k3 = ChaCha20.littleEndianWord(bytes, at: 12)
            k4 = ChaCha20.littleEndianWord(bytes, at: 16)
            k5 = ChaCha20.littleEndianWord(bytes, at: 20)
            k6 = ChaCha20.littleEndianWord(bytes, at: 24)
            k7 = ChaCha20.littleEndianWord(bytes, at: 28)
        }
    }

    /// One keystream block as sixteen words, already in little-endian byte order so that the
    /// tuple's memory is the serialized block (§2.3: "sequencing the words one-by-one in
    /// little-endian order").
    typealias Block = (
        UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32,
        UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32
    )

    private let key: Key
    /// The nonce as state words 13, 14 and 15.
    private let n0, n1, n2: UInt32

    /// A cipher for `key` and `nonce`.
    ///
    /// - Precondition: `nonce.count == ChaCha20.nonceBytes`; `ChaCha20Poly1305` checks nonces
    ///   from the network and throws before calling this.
    init(key: Key, nonce: UnsafeRawBufferPointer) {
        precondition(nonce.count == Self.nonceBytes, "ChaCha20 nonce has \(nonce.count) bytes, expected 12")
        self.key = key
        n0 = Self.littleEndianWord(nonce, at: 0)
        n1 = Self.littleEndianWord(nonce, at: 4)
        n2 = Self.littleEndianWord(nonce, at: 8)
    }

    /// The ChaCha20 block function (§2.3): 20 rounds over the initial state, plus that state.
    @inline(__always)
    func block(counter: UInt32) -> Block {
        // §2.3: the constants "expand 32-byte k", the key, the block counter, the nonce.
        var x0: UInt32 = 0x6170_7865, x1: UInt32 = 0x3320_646e, x2: UInt32 = 0x7962_2d32, x3: UInt32 = 0x6b20_6574
        var x4 = key.k0, x5 = key.k1, x6 = key.k2, x7 = key.k3
        var x8 = key.k4, x9 = key.k5, x10 = key.k6, x11 = key.k7
        var x12 = counter, x13 = n0, x14 = n1, x15 = n2
        for _ in 0..<10 {
            // A column round, then a diagonal round (§2.3, inner_block in §2.3.1).
            Self.quarterRound(&x0, &x4, &x8, &x12)
            Self.quarterRound(&x1, &x5, &x9, &x13)
            Self.quarterRound(&x2, &x6, &x10, &x14)
            Self.quarterRound(&x3, &x7, &x11, &x15)
            Self.quarterRound(&x0, &x5, &x10, &x15)
            Self.quarterRound(&x1, &x6, &x11, &x12)
            Self.quarterRound(&x2, &x7, &x8, &x13)
            Self.quarterRound(&x3, &x4, &x9, &x14)
        }
        return (
            (x0 &+ 0x6170_7865).littleEndian, (x1 &+ 0x3320_646e).littleEndian,
            (x2 &+ 0x7962_2d32).littleEndian, (x3 &+ 0x6b20_6574).littleEndian,
            (x4 &+ key.k0).littleEndian, (x5 &+ key.k1).littleEndian,
            (x6 &+ key.k2).littleEndian, (x7 &+ key.k3).littleEndian,
            (x8 &+ key.k4).littleEndian, (x9 &+ key.k5).littleEndian,
            (x10 &+ key.k6).littleEndian, (x11 &+ key.k7).littleEndian,
            (x12 &+ counter).littleEndian, (x13 &+ n0).littleEndian,
            (x14 &+ n1).littleEndian, (x15 &+ n2).littleEndian
        )
    }

    /// The serialized keystream block for `counter`, as 64 bytes (§2.3.2).
    func keystreamBlock(counter: UInt32) -> [UInt8] {
        var words = block(counter: counter)
        return withUnsafeBytes(of: &words) { [UInt8]($0) }
    }

    /// Encrypts or decrypts `data` in place: XORs it with the keystream starting at block
    /// `initialCounter` (§2.4.1).
    ///
    /// - Precondition: the keystream does not run past block 2^32 - 1 (§2.8: 256 GB per
    ///   nonce). No datagram comes near it.
    func apply(to data: UnsafeMutableRawBufferPointer, initialCounter: UInt32) {
        guard let base = data.baseAddress else { return }
        let wholeBlocks = data.count / Self.blockBytes
        let tailBytes = data.count % Self.blockBytes
        let blocksNeeded = UInt64(wholeBlocks) + (tailBytes > 0 ? 1 : 0)
        precondition(
            blocksNeeded <= UInt64(UInt32.max) - UInt64(initialCounter) + 1,
            "\(data.count) bytes from block \(initialCounter) overflow the 32-bit block counter")

        var counter = initialCounter
        for blockIndex in 0..<wholeBlocks {
            let target = base + blockIndex * Self.blockBytes
            var keystream = block(counter: counter)
            withUnsafeBytes(of: &keystream) { keystreamBytes in
                for offset in stride(from: 0, to: Self.blockBytes, by: 8) {
                    let plain = target.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                    let pad = keystreamBytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                    target.storeBytes(of: plain ^ pad, toByteOffset: offset, as: UInt64.self)
                }
            }
            counter &+= 1
        }
        if tailBytes > 0 {
            // §2.4: the unused end of the last keystream block is discarded.
            let target = base + wholeBlocks * Self.blockBytes
            var keystream = block(counter: counter)
            withUnsafeBytes(of: &keystream) { keystreamBytes in
                for offset in 0..<tailBytes {
                    let plain = target.load(fromByteOffset: offset, as: UInt8.self)
                    target.storeBytes(of: plain ^ keystreamBytes[offset], toByteOffset: offset, as: UInt8.self)
                }
            }
        }
    }

    /// The ChaCha quarter round (§2.1).
    @inline(__always)
    private static func quarterRound(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32, _ d: inout UInt32) {
        a &+= b; d ^= a; d = rotateLeft(d, 16)
        c &+= d; b ^= c; b = rotateLeft(b, 12)
        a &+= b; d ^= a; d = rotateLeft(d, 8)
        c &+= d; b ^= c; b = rotateLeft(b, 7)
    }

    @inline(__always)
    private static func rotateLeft(_ x: UInt32, _ count: UInt32) -> UInt32 {
        (x &<< count) | (x &>> (32 &- count))
    }

    /// The little-endian 32-bit word at `offset`.
    @inline(__always)
    static func littleEndianWord(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}
