// SHA-256 as specified in FIPS 180-4 (§4.1.2, §5.1.1, §5.3.3, §6.2), one-shot and incremental.
// It is the hash under HMACSHA256; it offers no other SHA-2 variant and no key handling.

/// The SHA-256 hash function (FIPS 180-4), fed incrementally.
///
/// Call `update` any number of times with consecutive pieces of the message, then `finalize()`
/// once. Splitting the message differently never changes the digest. The value holds no heap
/// storage: the partial block waiting for more input lives inline, so copying a `SHA256` (as
/// `HMACSHA256` does with its precomputed padded-key states) is cheap.
///
/// ```swift
/// var hasher = SHA256()
/// hasher.update(header)
/// hasher.update(payload)
/// let digest = hasher.finalize()   // 32 bytes
/// ```
public struct SHA256: Sendable {
    /// The length of a digest in bytes (256 bits).
    public static let digestBytes = 32
    /// The length of the blocks the compression function consumes (FIPS 180-4 §5.2.1: 512 bits).
    public static let blockBytes = 64

    /// The hash value H0...H7 carried from one block to the next (FIPS 180-4 §6.2.2 step 4).
    struct ChainingValue: Sendable {
        var h0, h1, h2, h3, h4, h5, h6, h7: UInt32

        /// Writes the value as the 32-byte big-endian digest (FIPS 180-4 §6.2.2, final step).
        func store(into output: UnsafeMutableRawBufferPointer) {
            precondition(output.count >= SHA256.digestBytes, "digest needs 32 bytes, buffer has \(output.count)")
            output.storeBytes(of: h0.bigEndian, toByteOffset: 0, as: UInt32.self)
            output.storeBytes(of: h1.bigEndian, toByteOffset: 4, as: UInt32.self)
            output.storeBytes(of: h2.bigEndian, toByteOffset: 8, as: UInt32.self)
            output.storeBytes(of: h3.bigEndian, toByteOffset: 12, as: UInt32.self)
            output.storeBytes(of: h4.bigEndian, toByteOffset: 16, as: UInt32.self)
            output.storeBytes(of: h5.bigEndian, toByteOffset: 20, as: UInt32.self)
            output.storeBytes(of: h6.bigEndian, toByteOffset: 24, as: UInt32.self)
            output.storeBytes(of: h7.bigEndian, toByteOffset: 28, as: UInt32.self)
        }
    }

    /// Sixty-four bytes of inline storage for the block being filled.
    typealias BlockStorage = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    private var chainingValue: ChainingValue
    /// Input not yet compressed: its first `pendingCount` bytes, always fewer than a block.
    private var pending: BlockStorage = (0, 0, 0, 0, 0, 0, 0, 0)
    private var pendingCount = 0
    /// Total bytes absorbed so far. FIPS 180-4 limits messages to 2^64 bits, far beyond any
    /// datagram, so wrapping arithmetic here can never matter in practice.
    private var messageBytes: UInt64 = 0

    /// Starts a hash with the initial hash value of FIPS 180-4 §5.3.3.
    public init() {
        chainingValue = ChainingValue(
            h0: 0x6a09_e667, h1: 0xbb67_ae85, h2: 0x3c6e_f372, h3: 0xa54f_f53a,
            h4: 0x510e_527f, h5: 0x9b05_688c, h6: 0x1f83_d9ab, h7: 0x5be0_cd19)
    }

    /// Absorbs the next piece of the message.
    ///
    /// Whole blocks are compressed straight from `bytes` without copying; only a partial block
    /// at either end goes through the inline buffer.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        messageBytes &+= UInt64(bytes.count)
        var input = bytes[...]
        var value = chainingValue

        if pendingCount > 0 {
            let taken = min(Self.blockBytes - pendingCount, input.count)
            let offset = pendingCount
            withUnsafeMutableBytes(of: &pending) { block in
                UnsafeMutableRawBufferPointer(rebasing: block[offset..<offset + taken])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: input.prefix(taken)))
                if offset + taken == Self.blockBytes {
                    Self.compress(&value, blocks: UnsafeRawBufferPointer(block))
                }
            }
            input = input.dropFirst(taken)
            pendingCount = (offset + taken) % Self.blockBytes
        }

        let wholeBlockBytes = input.count - input.count % Self.blockBytes
        if wholeBlockBytes > 0 {
            Self.compress(&value, blocks: UnsafeRawBufferPointer(rebasing: input.prefix(wholeBlockBytes)))
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
        chainingValue = value
    }

    /// Absorbs the next piece of the message.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Pads the message, compresses the last block(s) and returns the 32-byte digest.
    public consuming func finalize() -> [UInt8] {
        let digest = padAndCompressFinalBlocks()
        return [UInt8](unsafeUninitializedCapacity: Self.digestBytes) { buffer, initializedCount in
            digest.store(into: UnsafeMutableRawBufferPointer(buffer))
            initializedCount = Self.digestBytes
        }
    }

    /// Pads the message and writes the 32-byte digest into `output`, allocating nothing.
    ///
    /// - Precondition: `output` holds at least `digestBytes` bytes (a caller's own buffer).
    consuming func finalize(into output: UnsafeMutableRawBufferPointer) {
        padAndCompressFinalBlocks().store(into: output)
    }

    /// The digest of `bytes`, in one call.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// Appends the padding of FIPS 180-4 §5.1.1 (a one bit, zeros, the 64-bit message length in
    /// bits) and compresses what remains. Leaves `self` spent.
    private mutating func padAndCompressFinalBlocks() -> ChainingValue {
        let lengthOffset = Self.blockBytes - 8
        let messageBits = messageBytes &<< 3
        var value = chainingValue
        let used = pendingCount
        withUnsafeMutableBytes(of: &pending) { block in
            block[used] = 0x80
            if used + 1 > lengthOffset {
                // No room for the length: this block ends with zeros and the length goes alone
                // into one more block.
                UnsafeMutableRawBufferPointer(rebasing: block[(used + 1)...]).initializeMemory(as: UInt8.self, repeating: 0)
                Self.compress(&value, blocks: UnsafeRawBufferPointer(block))
                UnsafeMutableRawBufferPointer(rebasing: block[..<lengthOffset]).initializeMemory(as: UInt8.self, repeating: 0)
            } else {
                UnsafeMutableRawBufferPointer(rebasing: block[(used + 1)..<lengthOffset])
                    .initializeMemory(as: UInt8.self, repeating: 0)
            }
            block.storeBytes(of: messageBits.bigEndian, toByteOffset: lengthOffset, as: UInt64.self)
            Self.compress(&value, blocks: UnsafeRawBufferPointer(block))
        }
        pendingCount = 0
        return value
    }

    /// The SHA-256 compression function (FIPS 180-4 §6.2.2) applied to consecutive 64-byte blocks.
    ///
    /// - Precondition: `blocks.count` is a multiple of 64.
    static func compress(_ value: inout ChainingValue, blocks: UnsafeRawBufferPointer) {
        precondition(blocks.count % blockBytes == 0, "compressing \(blocks.count) bytes, not whole blocks")
        guard let base = blocks.baseAddress else { return }
        let blockCount = blocks.count / blockBytes
        roundConstants.withUnsafeBufferPointer { k in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { schedule in
                for blockIndex in 0..<blockCount {
                    let block = base + blockIndex * blockBytes
                    // Step 1: the message schedule W0...W63.
                    for t in 0..<16 {
                        schedule[t] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: t * 4, as: UInt32.self))
                    }
                    for t in 16..<64 {
                        schedule[t] = smallSigma1(schedule[t - 2]) &+ schedule[t - 7]
                            &+ smallSigma0(schedule[t - 15]) &+ schedule[t - 16]
                    }
                    // Steps 2 and 3: the eight working variables and the 64 rounds.
                    var a = value.h0, b = value.h1, c = value.h2, d = value.h3
                    var e = value.h4, f = value.h5, g = value.h6, h = value.h7
                    for t in 0..<64 {
                        let t1 = h &+ bigSigma1(e) &+ choose(e, f, g) &+ k[t] &+ schedule[t]
                        let t2 = bigSigma0(a) &+ majority(a, b, c)
                        h = g
                        g = f
                        f = e
                        e = d &+ t1
                        d = c
                        c = b
                        b = a
                        a = t1 &+ t2
                    }
                    // Step 4: the intermediate hash value.
                    value.h0 &+= a
                    value.h1 &+= b
                    value.h2 &+= c
                    value.h3 &+= d
                    value.h4 &+= e
                    value.h5 &+= f
                    value.h6 &+= g
                    value.h7 &+= h
                }
            }
        }
    }

    // The logical functions of FIPS 180-4 §4.1.2.

    @inline(__always) private static func rotateRight(_ x: UInt32, _ count: UInt32) -> UInt32 {
        (x &>> count) | (x &<< (32 &- count))
    }

    @inline(__always) private static func choose(_ x: UInt32, _ y: UInt32, _ z: UInt32) -> UInt32 {
        (x & y) ^ (~x & z)
    }

    @inline(__always) private static func majority(_ x: UInt32, _ y: UInt32, _ z: UInt32) -> UInt32 {
        (x & y) ^ (x & z) ^ (y & z)
    }

    @inline(__always) private static func bigSigma0(_ x: UInt32) -> UInt32 {
        rotateRight(x, 2) ^ rotateRight(x, 13) ^ rotateRight(x, 22)
    }

    @inline(__always) private static func bigSigma1(_ x: UInt32) -> UInt32 {
        rotateRight(x, 6) ^ rotateRight(x, 11) ^ rotateRight(x, 25)
    }

    @inline(__always) private static func smallSigma0(_ x: UInt32) -> UInt32 {
        rotateRight(x, 7) ^ rotateRight(x, 18) ^ (x &>> 3)
    }

    @inline(__always) private static func smallSigma1(_ x: UInt32) -> UInt32 {
        rotateRight(x, 17) ^ rotateRight(x, 19) ^ (x &>> 10)
    }

    /// K0...K63 (FIPS 180-4 §4.2.2): the first 32 bits of the fractional parts of the cube roots
    /// of the first 64 primes.
    private static let roundConstants: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]
}
