// The Poly1305 one-time authenticator of RFC 8439 §2.5, fed incrementally, with the zero padding
// the AEAD needs (§2.8). It does not derive its one-time key; ChaCha20Poly1305 does (§2.6).

/// Poly1305 (RFC 8439 §2.5): a 16-byte tag over a message under a 32-byte one-time key.
///
/// The key is split into `r` (clamped, §2.5) and `s`. Each 16-byte block, read as a
/// little-endian number with one extra bit set above its last byte, is added to an accumulator,
/// which is then multiplied by `r` modulo the prime p = 2^130 - 5. The tag is the accumulator
/// plus `s`, modulo 2^128.
///
/// Numbers below 2^131 are held as five 26-bit limbs in `UInt64`s: `h = h0 + h1·2^26 + … +
/// h4·2^104`. Limb products stay below 2^56 and sums of five below 2^59, so nothing overflows;
/// a product term that lands at or above 2^130 folds back in multiplied by 5, since
/// 2^130 ≡ 5 (mod p). The code has no branches or table lookups on secret data.
///
/// A key must authenticate one message only: two tags under the same key reveal `r`.
struct Poly1305: Sendable {
    static let keyBytes = 32
    static let tagBytes = 16
    static let blockBytes = 16

    /// A number modulo p in five 26-bit limbs, least significant first.
    struct Limbs: Sendable {
        var l0, l1, l2, l3, l4: UInt64
    }

    private static let limbMask: UInt64 = 0x3ff_ffff
    /// 2^128 in limb 4 (bit 128 = 4·26 + 24): the "one bit beyond the number of octets" of a
    /// whole block (§2.5).
    private static let wholeBlockBit: UInt64 = 1 << 24

    /// The clamped `r`.
    private let r: Limbs
    /// 5·r1 ... 5·r4 in l1...l4 (l0 unused): the folded multipliers of product terms above 2^130.
    private let rTimes5: Limbs
    /// `s`, the second half of the key, as four little-endian words.
    private let s0, s1, s2, s3: UInt32
    /// The accumulator (§2.5), partially reduced: below 2^131 between blocks.
    private var accumulator = Limbs(l0: 0, l1: 0, l2: 0, l3: 0, l4: 0)
    /// Input not yet absorbed: the first `pendingCount` bytes, always fewer than a block.
    private var pending: (UInt64, UInt64) = (0, 0)
    private var pendingCount = 0

    /// A Poly1305 computation under the one-time `key`.
    ///
    /// - Precondition: `key.count == Poly1305.keyBytes`. The key comes from ChaCha20, never the
    ///   network.
    init(key: UnsafeRawBufferPointer) {
        precondition(key.count == Self.keyBytes, "Poly1305 key has \(key.count) bytes, expected 32")
        // §2.5 clamp: r &= 0x0ffffffc0ffffffc0ffffffc0fffffff (as a little-endian number).
        let t0 = UInt64(ChaCha20.littleEndianWord(key, at: 0) & 0x0fff_ffff)
        let t1 = UInt64(ChaCha20.littleEndianWord(key, at: 4) & 0x0fff_fffc)
        let t2 = UInt64(ChaCha20.littleEndianWord(key, at: 8) & 0x0fff_fffc)
        let t3 = UInt64(ChaCha20.littleEndianWord(key, at: 12) & 0x0fff_fffc)
        r = Self.limbs(t0, t1, t2, t3, highBit: 0)
        rTimes5 = Limbs(l0: 0, l1: r.l1 * 5, l2: r.l2 * 5, l3: r.l3 * 5, l4: r.l4 * 5)
        s0 = ChaCha20.littleEndianWord(key, at: 16)
        s1 = ChaCha20.littleEndianWord(key, at: 20)
        s2 = ChaCha20.littleEndianWord(key, at: 24)
        s3 = ChaCha20.littleEndianWord(key, at: 28)
    }

    /// Absorbs the next piece of the message. Whole blocks are read straight from `bytes`.
    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        var input = bytes[...]
        var sum = accumulator

        if pendingCount > 0 {
            let taken = min(Self.blockBytes - pendingCount, input.count)
            let offset = pendingCount
            var blockStorage = pending
            withUnsafeMutableBytes(of: &blockStorage) { block in
                UnsafeMutableRawBufferPointer(rebasing: block[offset..<offset + taken])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: input.prefix(taken)))
                if offset + taken == Self.blockBytes {
                    absorb(&sum, blocks: UnsafeRawBufferPointer(block), highBit: Self.wholeBlockBit)
                }
            }
            pending = blockStorage
            input = input.dropFirst(taken)
            pendingCount = (offset + taken) % Self.blockBytes
        }

        let wholeBlockBytes = input.count - input.count % Self.blockBytes
        if wholeBlockBytes > 0 {
            absorb(&sum, blocks: UnsafeRawBufferPointer(rebasing: input.prefix(wholeBlockBytes)), highBit: Self.wholeBlockBit)
            input = input.dropFirst(wholeBlockBytes)
        }

        if !input.isEmpty {
            precondition(pendingCount == 0, "leftover input while \(pendingCount) bytes still pending")
            withUnsafeMutableBytes(of: &pending) { block in
                UnsafeMutableRawBufferPointer(rebasing: block[0..<input.count])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: input))
            }
            pendingCount = input.count
        }
        accumulator = sum
    }

    /// Completes a partial block with zero bytes, which become part of the message: the
    /// `pad16` of the AEAD construction (§2.8). Does nothing on a block boundary.
    mutating func padWithZerosToBlockBoundary() {
        guard pendingCount > 0 else { return }
        var sum = accumulator
        let used = pendingCount
        var blockStorage = pending
        withUnsafeMutableBytes(of: &blockStorage) { block in
            UnsafeMutableRawBufferPointer(rebasing: block[used...]).initializeMemory(as: UInt8.self, repeating: 0)
            absorb(&sum, blocks: UnsafeRawBufferPointer(block), highBit: Self.wholeBlockBit)
        }
        pendingCount = 0
        accumulator = sum
    }

    /// Absorbs a final partial block, reduces modulo p, adds `s` and writes the 16-byte tag.
    ///
    /// - Precondition: `tag.count == Poly1305.tagBytes` (the caller's own buffer).
    consuming func finalize(into tag: UnsafeMutableRawBufferPointer) {
        precondition(tag.count == Self.tagBytes, "tag buffer has \(tag.count) bytes, expected 16")
        var sum = accumulator
        if pendingCount > 0 {
            // §2.5: a short last block gets a 0x01 byte after its data (2^(8·length)), then zeros,
            // and no 2^128 bit.
            let used = pendingCount
            var blockStorage = pending
            withUnsafeMutableBytes(of: &blockStorage) { block in
                block[used] = 1
                UnsafeMutableRawBufferPointer(rebasing: block[(used + 1)...]).initializeMemory(as: UInt8.self, repeating: 0)
                absorb(&sum, blocks: UnsafeRawBufferPointer(block), highBit: 0)
            }
            pendingCount = 0
        }
        var (h0, h1, h2, h3, h4) = (sum.l0, sum.l1, sum.l2, sum.l3, sum.l4)
        let mask = Self.limbMask

        // Propagate carries twice. The first pass may leave h1 at exactly 2^26, but only when
        // it folded a carry out of h4, which leaves h2...h4 zero; the second pass then ends
        // with every limb below 2^26, so h < 2^130 < 2p.
        for _ in 0..<2 {
            var carry = h1 >> 26; h1 &= mask
            h2 += carry; carry = h2 >> 26; h2 &= mask
            h3 += carry; carry = h3 >> 26; h3 &= mask
            h4 += carry; carry = h4 >> 26; h4 &= mask
            h0 += carry * 5; carry = h0 >> 26; h0 &= mask
            h1 += carry
        }
        precondition(h1 <= mask, "Poly1305 accumulator not normalized: h1 = \(h1)")

        // g = h + 5 - 2^130 = h - p. If that does not borrow, h >= p and g is the reduced value.
        var g0 = h0 + 5, carry = g0 >> 26; g0 &= mask
        var g1 = h1 + carry; carry = g1 >> 26; g1 &= mask
        var g2 = h2 + carry; carry = g2 >> 26; g2 &= mask
        var g3 = h3 + carry; carry = g3 >> 26; g3 &= mask
        let g4 = (h4 + carry) &- (1 << 26)
        // All ones when g did not borrow (take g), zero when it did (keep h); no branch.
        let takeG = (g4 >> 63) &- 1
        h0 = (h0 & ~takeG) | (g0 & takeG)
        h1 = (h1 & ~takeG) | (g1 & takeG)
        h2 = (h2 & ~takeG) | (g2 & takeG)
        h3 = (h3 & ~takeG) | (g3 & takeG)
        h4 = (h4 & ~takeG) | (g4 & takeG)

        // h mod 2^128 as four 32-bit words, plus s with carries, modulo 2^128.
        let w0 = (h0 | (h1 << 26)) & 0xffff_ffff
        let w1 = ((h1 >> 6) | (h2 << 20)) & 0xffff_ffff
        let w2 = ((h2 >> 12) | (h3 << 14)) & 0xffff_ffff
        let w3 = ((h3 >> 18) | (h4 << 8)) & 0xffff_ffff
        var word = w0 + UInt64(s0)
        tag.storeBytes(of: UInt32(truncatingIfNeeded: word).littleEndian, toByteOffset: 0, as: UInt32.self)
        word = w1 + UInt64(s1) + (word >> 32)
        tag.storeBytes(of: UInt32(truncatingIfNeeded: word).littleEndian, toByteOffset: 4, as: UInt32.self)
        word = w2 + UInt64(s2) + (word >> 32)
        tag.storeBytes(of: UInt32(truncatingIfNeeded: word).littleEndian, toByteOffset: 8, as: UInt32.self)
        word = w3 + UInt64(s3) + (word >> 32)
        tag.storeBytes(of: UInt32(truncatingIfNeeded: word).littleEndian, toByteOffset: 12, as: UInt32.self)
    }

    /// The tag of `message` under `key`, in one call.
    static func authenticationTag(for message: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer) -> [UInt8] {
        var authenticator = Poly1305(key: key)
        authenticator.update(message)
        return [UInt8](unsafeUninitializedCapacity: tagBytes) { buffer, initializedCount in
            authenticator.finalize(into: UnsafeMutableRawBufferPointer(buffer))
            initializedCount = tagBytes
        }
    }

    /// Splits a 128-bit little-endian number, given as four words, into 26-bit limbs and adds
    /// `highBit` to limb 4.
    @inline(__always)
    private static func limbs(_ t0: UInt64, _ t1: UInt64, _ t2: UInt64, _ t3: UInt64, highBit: UInt64) -> Limbs {
        Limbs(
            l0: t0 & limbMask,
            l1: ((t0 >> 26) | (t1 << 6)) & limbMask,
            l2: ((t1 >> 20) | (t2 << 12)) & limbMask,
            l3: ((t2 >> 14) | (t3 << 18)) & limbMask,
            l4: (t3 >> 8) | highBit)
    }

    /// For each 16-byte block: h = (h + block + highBit·2^128) · r, partially reduced mod p.
    ///
    /// - Precondition: `blocks.count` is a multiple of 16.
    private func absorb(_ h: inout Limbs, blocks: UnsafeRawBufferPointer, highBit: UInt64) {
        precondition(blocks.count % Self.blockBytes == 0, "absorbing \(blocks.count) bytes, not whole blocks")
        guard let base = blocks.baseAddress else { return }
        let mask = Self.limbMask
        let (r0, r1, r2, r3, r4) = (r.l0, r.l1, r.l2, r.l3, r.l4)
        let (r1x5, r2x5, r3x5, r4x5) = (rTimes5.l1, rTimes5.l2, rTimes5.l3, rTimes5.l4)
        var (h0, h1, h2, h3, h4) = (h.l0, h.l1, h.l2, h.l3, h.l4)

        for blockIndex in 0..<(blocks.count / Self.blockBytes) {
            let block = base + blockIndex * Self.blockBytes
            let m = Self.limbs(
                UInt64(UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 0, as: UInt32.self))),
                UInt64(UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 4, as: UInt32.self))),
                UInt64(UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 8, as: UInt32.self))),
                UInt64(UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 12, as: UInt32.self))),
                highBit: highBit)
            // Wrapping operators below are for speed only; the bounds in the type's comment
            // keep every value far from 2^64. Each h_i < 2^27 after this addition.
            h0 &+= m.l0
            h1 &+= m.l1
            h2 &+= m.l2
            h3 &+= m.l3
            h4 &+= m.l4

            // Schoolbook product; the term h_i·r_j belongs to limb i + j, and terms with
            // i + j >= 5 fold into limb i + j - 5 times 5. Each sum is below 5 · 2^27 · 2^29.
            let d0 = h0 &* r0 &+ h1 &* r4x5 &+ h2 &* r3x5 &+ h3 &* r2x5 &+ h4 &* r1x5
            var d1 = h0 &* r1 &+ h1 &* r0 &+ h2 &* r4x5 &+ h3 &* r3x5 &+ h4 &* r2x5
            var d2 = h0 &* r2 &+ h1 &* r1 &+ h2 &* r0 &+ h3 &* r4x5 &+ h4 &* r3x5
            var d3 = h0 &* r3 &+ h1 &* r2 &+ h2 &* r1 &+ h3 &* r0 &+ h4 &* r4x5
            var d4 = h0 &* r4 &+ h1 &* r3 &+ h2 &* r2 &+ h3 &* r1 &+ h4 &* r0

            // Partial reduction: carry each limb into the next, the top one back into h0 times 5.
            // Afterwards h0, h2, h3, h4 < 2^26 and h1 < 2^26 + 2^11.
            var carry = d0 >> 26; h0 = d0 & mask
            d1 &+= carry; carry = d1 >> 26; h1 = d1 & mask
            d2 &+= carry; carry = d2 >> 26; h2 = d2 & mask
            d3 &+= carry; carry = d3 >> 26; h3 = d3 & mask
            d4 &+= carry; carry = d4 >> 26; h4 = d4 & mask
            h0 &+= carry &* 5; carry = h0 >> 26; h0 &= mask
            h1 &+= carry
        }
        h = Limbs(l0: h0, l1: h1, l2: h2, l3: h3, l4: h4)
    }
}
