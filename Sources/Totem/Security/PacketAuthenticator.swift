// Wraps encoded datagrams for the wire and unwraps received ones: none, HMAC-SHA-256 or
// ChaCha20-Poly1305. Owns the trailer layouts and the nonce counter; does not decode packets
// (WireCodec does, after a datagram is accepted) or read key files.


/// Authenticates, and optionally encrypts, every datagram (spec §2.2, §6.5), and stamps it with
/// what a receiver needs to refuse a replay (docs/wire-format.md).
///
/// Layouts, after the 16-byte Totem header (`H`) and the encoded body (`B`):
///
/// ```
/// none               H | B
/// hmac-sha256        H | F | B | code(32)      code = HMAC-SHA-256(H | F | B)
/// chacha20-poly1305  H | F | C | tag(16)       C = ChaCha20(B), tag over (aad = H | F, C), RFC 8439 §2.8
///                                              nonce = sealer (u32) | counter (u64)
/// F (20 bytes)       sealer (u32) | destination (u32, 0 = every node) | epoch (u32) | counter (u64), big-endian
/// ```
///
/// The header stays in clear in every mode so that the cluster id, type and sender can be read
/// for logging, and it is always authenticated (covered by the code, or the AEAD's associated
/// data), and so is `F`:
/// - `sealer` is the node that sealed the datagram: itself for what it builds, but a
///   retransmitted MCAST keeps its originator as the header's sender while the retransmitting
///   node seals it, so epoch and counter belong to the sealer, not to the header's sender;
/// - `epoch` is drawn at random when the node starts: datagrams of an earlier life of the node
///   carry another one;
/// - `counter` starts at a random value and increases by one per datagram sealed (it is the
///   AEAD nonce's counter too, so a nonce is never used twice under the key);
/// - `destination` is the node a unicast was sealed for, so a token recorded on its way to one
///   node cannot be replayed to another.
/// Checking them is `ReplayGuard`'s job; this type only writes and reads them.
///
/// Verification happens before any decoding, compares in constant time, and reports failures as
/// values (`Verdict.rejected`): the caller counts them and logs, rate-limited, with the source
/// address.
public struct PacketAuthenticator: Sendable {
    /// How datagrams are protected.
    public enum Mode: String, Sendable, CaseIterable {
        /// No protection. The daemon warns loudly at start.
        case none
        /// A 32-byte HMAC-SHA-256 code over the whole datagram.
        case hmacSHA256 = "hmac-sha256"
        /// ChaCha20-Poly1305: body encrypted, header authenticated as associated data.
        case chaCha20Poly1305 = "chacha20-poly1305"
    }

    /// Why a received datagram was refused.
    public enum Rejection: Error, Sendable, Equatable, CustomStringConvertible {
        /// Shorter than the header plus the trailer of this mode.
        case tooShort(length: Int, minimum: Int)
        /// The HMAC code does not match: forged, corrupted, or sent under another key or cluster.
        case badAuthenticationCode
        /// The AEAD tag does not match: forged, corrupted, or sealed under another key or cluster.
        case badTag

        public var description: String {
            switch self {
            case .tooShort(let length, let minimum): "datagram of \(length) bytes, shorter than \(minimum)"
            case .badAuthenticationCode: "authentication code does not match"
            case .badTag: "authentication tag does not match"
            }
        }
    }

    /// The authenticated freshness fields of a datagram (`F` above).
    public struct Stamp: Sendable, Equatable {
        /// The node that sealed the datagram (its epoch and counter follow).
        public var sealer: UInt32
        /// The node the datagram was sealed for; 0 for every node (a multicast).
        public var destination: UInt32
        /// The sealer's boot epoch.
        public var epoch: UInt32
        /// The sealer's datagram counter in that epoch.
        public var counter: UInt64

        public init(sealer: UInt32, destination: UInt32, epoch: UInt32, counter: UInt64) {
            self.sealer = sealer
            self.destination = destination
            self.epoch = epoch
            self.counter = counter
        }
    }

    /// The outcome of `open`.
    public enum Verdict<Bytes> {
        /// The datagram is authentic; `Bytes` is the plain datagram (header and body) to decode,
        /// with its stamp (`nil` in mode `none`, which has none).
        case accepted(Bytes, Stamp?)
        /// The datagram must be dropped.
        case rejected(Rejection)
    }

    static let headerBytes = WireLimits.headerBytes
    static let nonceBytes = ChaCha20Poly1305.nonceBytes
    static let tagBytes = ChaCha20Poly1305.tagBytes
    static let codeBytes = HMACSHA256.codeBytes
    /// `F`: sealer, destination, epoch, counter.
    public static let stampBytes = 20
    /// Appended to make room for a trailer without a temporary array.
    private static let zeros = [UInt8](repeating: 0, count: 64)

    /// Bytes each mode adds to a datagram: 0, 52 (stamp and code), 36 (stamp and tag).
    public static func overheadBytes(for mode: Mode) -> Int {
        switch mode {
        case .none: 0
        case .hmacSHA256: stampBytes + codeBytes
        case .chaCha20Poly1305: stampBytes + tagBytes
        }
    }

    /// The mode in use.
    public let mode: Mode
    private let hmac: HMACSHA256?
    private let cipher: ChaCha20Poly1305?
    private let nodeID: UInt32
    /// This node's boot epoch, written into every datagram.
    public let epoch: UInt32
    private var counter: UInt64

    /// An authenticator that neither protects nor checks anything.
    public static func unprotected() -> PacketAuthenticator {
        PacketAuthenticator(mode: .none, hmac: nil, cipher: nil, nodeID: 0, epoch: 0, counter: 0)
    }

    /// Prepares to seal and open datagrams of `clusterName` under `key`.
    ///
    /// - Parameters:
    ///   - mode: the protection; with `.none` the key is ignored.
    ///   - key: the cluster key; each mode derives its own 32-byte key from it.
    ///   - clusterName: bound into the derived keys, so another cluster's datagrams fail
    ///     verification even under the same key file.
    ///   - nodeID: this node, the first four bytes of every nonce it uses.
    ///   - epoch: a random value (from /dev/urandom), new each time the node starts.
    ///   - counterStart: a random value (from /dev/urandom) the datagram counter starts at.
    public init(mode: Mode, key: ClusterKey, clusterName: String, nodeID: NodeID, epoch: UInt32, counterStart: UInt64) {
        var hmac: HMACSHA256?
        var cipher: ChaCha20Poly1305?
        switch mode {
        case .none:
            break
        case .hmacSHA256:
            hmac = HMACSHA256(key: key.derivedKey(purpose: "devcluster totem v2 hmac-sha256", clusterName: clusterName))
        case .chaCha20Poly1305:
            let derived = key.derivedKey(purpose: "devcluster totem v2 chacha20-poly1305", clusterName: clusterName)
            do {
                cipher = try ChaCha20Poly1305(key: derived)
            } catch {
                preconditionFailure("derived key of \(derived.count) bytes rejected: \(error)")
            }
        }
        self.init(mode: mode, hmac: hmac, cipher: cipher, nodeID: nodeID.rawValue, epoch: epoch, counter: counterStart)
    }

    private init(mode: Mode, hmac: HMACSHA256?, cipher: ChaCha20Poly1305?, nodeID: UInt32, epoch: UInt32, counter: UInt64) {
        self.mode = mode
        self.hmac = hmac
        self.cipher = cipher
        self.nodeID = nodeID
        self.epoch = epoch
        self.counter = counter
    }

    /// Bytes this authenticator adds to every datagram.
    public var overheadBytes: Int { Self.overheadBytes(for: mode) }

    /// The shortest datagram `open` considers: a header plus this mode's trailer.
    public var minimumDatagramBytes: Int { Self.headerBytes + overheadBytes }

    // MARK: Sending

    /// Protects an encoded datagram in place, growing it by `overheadBytes`.
    ///
    /// - Parameter destination: the node a unicast is for, or 0 for a datagram to every node.
    /// Allocates nothing when `datagram` has capacity for the stamp and trailer.
    /// - Precondition: `datagram` holds at least a header (it comes from our encoder).
    public mutating func seal(_ datagram: inout [UInt8], destination: UInt32 = 0) {
        let plainCount = datagram.count
        precondition(plainCount >= Self.headerBytes, "datagram of \(plainCount) bytes has no header")
        guard mode != .none else { return }
        let counter = counter
        self.counter &+= 1
        let header = Self.headerBytes
        let bodyCount = plainCount - header
        let bodyStart = header + Self.stampBytes
        datagram.append(contentsOf: Self.zeros[0..<overheadBytes])
        let (epoch, nodeID, hmac, cipher) = (epoch, nodeID, hmac, cipher)
        datagram.withUnsafeMutableBytes { raw in
            // Slide the body right to make room for the stamp (regions overlap: memmove).
            if bodyCount > 0 {
                (raw.baseAddress! + bodyStart).copyMemory(from: raw.baseAddress! + header, byteCount: bodyCount)
            }
            raw.storeBytes(of: nodeID.bigEndian, toByteOffset: header, as: UInt32.self)
            raw.storeBytes(of: destination.bigEndian, toByteOffset: header + 4, as: UInt32.self)
            raw.storeBytes(of: epoch.bigEndian, toByteOffset: header + 8, as: UInt32.self)
            raw.storeBytes(of: counter.bigEndian, toByteOffset: header + 12, as: UInt64.self)
            let bodyEnd = bodyStart + bodyCount
            if let hmac {
                hmac.authenticationCode(
                    for: UnsafeRawBufferPointer(rebasing: raw[0..<bodyEnd]),
                    into: UnsafeMutableRawBufferPointer(rebasing: raw[bodyEnd..<bodyEnd + Self.codeBytes]))
            } else if let cipher {
                Self.withNonce(sender: nodeID.bigEndian, counter: counter) { nonce in
                    do {
                        try cipher.seal(
                            inPlace: UnsafeMutableRawBufferPointer(rebasing: raw[bodyStart..<bodyEnd]),
                            nonce: nonce,
                            authenticating: UnsafeRawBufferPointer(rebasing: raw[0..<bodyStart]),
                            tag: UnsafeMutableRawBufferPointer(rebasing: raw[bodyEnd...]))
                    } catch {
                        preconditionFailure("sealing with a \(Self.nonceBytes)-byte nonce failed: \(error)")
                    }
                }
            } else {
                preconditionFailure("\(mode) without a key")
            }
        }
    }

    /// Calls `body` with the 12-byte AEAD nonce: the sealer's node id (already big-endian),
    /// then `counter` big-endian.
    private static func withNonce<Result>(
        sender bigEndianSender: UInt32, counter: UInt64, _ body: (UnsafeRawBufferPointer) -> Result
    ) -> Result {
        var storage: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &storage) { raw in
            raw.storeBytes(of: bigEndianSender, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: counter.bigEndian, toByteOffset: 4, as: UInt64.self)
            return body(UnsafeRawBufferPointer(rebasing: raw[0..<nonceBytes]))
        }
    }

    // MARK: Receiving

    /// Verifies (and decrypts) a received datagram in place.
    ///
    /// - Returns: `.accepted` with the plain datagram, a region of `datagram` (the header is
    ///   moved next to the body, over the stamp), and the stamp; or `.rejected`. On rejection the
    ///   datagram's contents are unspecified.
    public func open(_ datagram: UnsafeMutableRawBufferPointer) -> Verdict<UnsafeRawBufferPointer> {
        let count = datagram.count
        guard count >= minimumDatagramBytes else {
            return .rejected(.tooShort(length: count, minimum: minimumDatagramBytes))
        }
        if mode == .none { return .accepted(UnsafeRawBufferPointer(datagram), nil) }
        let header = Self.headerBytes
        let bodyStart = header + Self.stampBytes
        let base = datagram.baseAddress!
        let stamp = Stamp(
            sealer: UInt32(bigEndian: base.loadUnaligned(fromByteOffset: header, as: UInt32.self)),
            destination: UInt32(bigEndian: base.loadUnaligned(fromByteOffset: header + 4, as: UInt32.self)),
            epoch: UInt32(bigEndian: base.loadUnaligned(fromByteOffset: header + 8, as: UInt32.self)),
            counter: UInt64(bigEndian: base.loadUnaligned(fromByteOffset: header + 12, as: UInt64.self)))
        let bodyEnd: Int
        if let hmac {
            bodyEnd = count - Self.codeBytes
            let signed = UnsafeRawBufferPointer(rebasing: datagram[0..<bodyEnd])
            let code = UnsafeRawBufferPointer(rebasing: datagram[bodyEnd...])
            guard hmac.isValid(code, for: signed) else { return .rejected(.badAuthenticationCode) }
        } else if let cipher {
            bodyEnd = count - Self.tagBytes
            let opened = Self.withNonce(sender: stamp.sealer.bigEndian, counter: stamp.counter) { nonce in
                do {
                    try cipher.open(
                        inPlace: UnsafeMutableRawBufferPointer(rebasing: datagram[bodyStart..<bodyEnd]),
                        tag: UnsafeRawBufferPointer(rebasing: datagram[bodyEnd...]),
                        nonce: nonce,
                        authenticating: UnsafeRawBufferPointer(rebasing: datagram[0..<bodyStart]))
                    return true
                } catch {
                    return false
                }
            }
            guard opened else { return .rejected(.badTag) }
        } else {
            preconditionFailure("\(mode) without a key")
        }
        // Move the header over the stamp so header and body are contiguous again.
        (base + Self.stampBytes).copyMemory(from: base, byteCount: header)
        return .accepted(UnsafeRawBufferPointer(rebasing: datagram[Self.stampBytes..<bodyEnd]), stamp)
    }

    /// Verifies (and decrypts) a received datagram held in an array.
    ///
    /// - Returns: `.accepted` with a copy of the plain datagram, or `.rejected`.
    public func open(_ datagram: [UInt8]) -> Verdict<[UInt8]> {
        var copy = datagram
        return copy.withUnsafeMutableBytes { raw in
            switch open(raw) {
            case .accepted(let plain, let stamp): .accepted(Array(plain), stamp)
            case .rejected(let reason): .rejected(reason)
            }
        }
    }
}

extension PacketAuthenticator.Verdict: Sendable where Bytes: Sendable {}
extension PacketAuthenticator.Verdict: Equatable where Bytes: Equatable {}
