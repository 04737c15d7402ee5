// Wraps encoded datagrams for the wire and unwraps received ones: none, HMAC-SHA-256 or
// ChaCha20-Poly1305. Owns the trailer layouts and the nonce counter; does not decode packets
// (WireCodec does, after a datagram is accepted) or read key files.


/// Authenticates, and optionally encrypts, every datagram (spec §2.2, §6.5).
///
/// Layouts, after the 16-byte Totem header (`H`) and the encoded body (`B`):
///
/// ```
/// none               H | B
/// hmac-sha256        H | B | code(32)          code = HMAC-SHA-256(H | B)
/// chacha20-poly1305  H | nonce(12) | C | tag(16)
///                    C = ChaCha20(B), tag over (aad = H, C), RFC 8439 §2.8
///                    nonce = sender node id (u32, big-endian) | counter (u64, big-endian)
/// ```
///
/// The header stays in clear in every mode so that the cluster id, type and sender can be read
/// for logging, and it is always authenticated (covered by the code, or the AEAD's associated
/// data). The nonce's node id separates the nodes' nonce spaces; its counter starts from a random
/// 64-bit value (the runtime reads it from /dev/urandom once) and increases by one per datagram,
/// so a restarted node does not reuse the nonces of its previous life. Nonces are never checked
/// for freshness: replays are filtered by the protocol itself (ring ids, sequence numbers, token
/// sequence), as in corosync.
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

    /// The outcome of `open`.
    public enum Verdict<Bytes> {
        /// The datagram is authentic; `Bytes` is the plain datagram (header and body) to decode.
        case accepted(Bytes)
        /// The datagram must be dropped.
        case rejected(Rejection)
    }

    static let headerBytes = WireLimits.headerBytes
    static let nonceBytes = ChaCha20Poly1305.nonceBytes
    static let tagBytes = ChaCha20Poly1305.tagBytes
    static let codeBytes = HMACSHA256.codeBytes
    /// Appended to make room for a trailer without a temporary array.
    private static let zeros = [UInt8](repeating: 0, count: 64)

    /// Bytes each mode adds to a datagram: 0, 32 (code), 28 (nonce and tag).
    public static func overheadBytes(for mode: Mode) -> Int {
        switch mode {
        case .none: 0
        case .hmacSHA256: codeBytes
        case .chaCha20Poly1305: nonceBytes + tagBytes
        }
    }

    /// The mode in use.
    public let mode: Mode
    private let hmac: HMACSHA256?
    private let cipher: ChaCha20Poly1305?
    private let nodeID: UInt32
    private var nonceCounter: UInt64

    /// An authenticator that neither protects nor checks anything.
    public static func unprotected() -> PacketAuthenticator {
        PacketAuthenticator(mode: .none, hmac: nil, cipher: nil, nodeID: 0, nonceCounter: 0)
    }

    /// Prepares to seal and open datagrams of `clusterName` under `key`.
    ///
    /// - Parameters:
    ///   - mode: the protection; with `.none` the key is ignored.
    ///   - key: the cluster key; each mode derives its own 32-byte key from it.
    ///   - clusterName: bound into the derived keys, so another cluster's datagrams fail
    ///     verification even under the same key file.
    ///   - nodeID: this node, the first four bytes of every nonce it uses.
    ///   - nonceCounterStart: a random value (from /dev/urandom) the nonce counter starts at.
    public init(mode: Mode, key: ClusterKey, clusterName: String, nodeID: NodeID, nonceCounterStart: UInt64) {
        var hmac: HMACSHA256?
        var cipher: ChaCha20Poly1305?
        switch mode {
        case .none:
            break
        case .hmacSHA256:
            hmac = HMACSHA256(key: key.derivedKey(purpose: "devcluster totem v1 hmac-sha256", clusterName: clusterName))
        case .chaCha20Poly1305:
            let derived = key.derivedKey(purpose: "devcluster totem v1 chacha20-poly1305", clusterName: clusterName)
            do {
                cipher = try ChaCha20Poly1305(key: derived)
            } catch {
                preconditionFailure("derived key of \(derived.count) bytes rejected: \(error)")
            }
        }
        self.init(mode: mode, hmac: hmac, cipher: cipher, nodeID: nodeID.rawValue, nonceCounter: nonceCounterStart)
    }

    private init(mode: Mode, hmac: HMACSHA256?, cipher: ChaCha20Poly1305?, nodeID: UInt32, nonceCounter: UInt64) {
        self.mode = mode
        self.hmac = hmac
        self.cipher = cipher
        self.nodeID = nodeID
        self.nonceCounter = nonceCounter
    }

    /// Bytes this authenticator adds to every datagram.
    public var overheadBytes: Int { Self.overheadBytes(for: mode) }

    /// The shortest datagram `open` considers: a header plus this mode's trailer.
    public var minimumDatagramBytes: Int { Self.headerBytes + overheadBytes }

    // MARK: Sending

    /// Protects an encoded datagram in place, growing it by `overheadBytes`.
    ///
    /// Allocates nothing when `datagram` has capacity for the trailer.
    /// - Precondition: `datagram` holds at least a header (it comes from our encoder).
    public mutating func seal(_ datagram: inout [UInt8]) {
        let plainCount = datagram.count
        precondition(plainCount >= Self.headerBytes, "datagram of \(plainCount) bytes has no header")
        switch mode {
        case .none:
            return
        case .hmacSHA256:
            guard let hmac else { preconditionFailure("hmac mode without a key") }
            datagram.append(contentsOf: Self.zeros[0..<Self.codeBytes])
            datagram.withUnsafeMutableBytes { raw in
                hmac.authenticationCode(
                    for: UnsafeRawBufferPointer(rebasing: raw[0..<plainCount]),
                    into: UnsafeMutableRawBufferPointer(rebasing: raw[plainCount..<plainCount + Self.codeBytes]))
            }
        case .chaCha20Poly1305:
            guard let cipher else { preconditionFailure("chacha20-poly1305 mode without a key") }
            let counter = nonceCounter
            nonceCounter &+= 1
            let nodeID = nodeID
            datagram.append(contentsOf: Self.zeros[0..<(Self.nonceBytes + Self.tagBytes)])
            datagram.withUnsafeMutableBytes { raw in
                let header = Self.headerBytes
                let bodyCount = plainCount - header
                let bodyStart = header + Self.nonceBytes
                // Slide the body right to make room for the nonce (regions overlap: memmove).
                if bodyCount > 0 {
                    (raw.baseAddress! + bodyStart).copyMemory(from: raw.baseAddress! + header, byteCount: bodyCount)
                }
                raw.storeBytes(of: nodeID.bigEndian, toByteOffset: header, as: UInt32.self)
                raw.storeBytes(of: counter.bigEndian, toByteOffset: header + 4, as: UInt64.self)
                do {
                    try cipher.seal(
                        inPlace: UnsafeMutableRawBufferPointer(rebasing: raw[bodyStart..<bodyStart + bodyCount]),
                        nonce: UnsafeRawBufferPointer(rebasing: raw[header..<bodyStart]),
                        authenticating: UnsafeRawBufferPointer(rebasing: raw[0..<header]),
                        tag: UnsafeMutableRawBufferPointer(rebasing: raw[(bodyStart + bodyCount)...]))
                } catch {
                    preconditionFailure("sealing with a \(Self.nonceBytes)-byte nonce failed: \(error)")
                }
            }
        }
    }

    // MARK: Receiving

    /// Verifies (and decrypts) a received datagram in place.
    ///
    /// - Returns: `.accepted` with the plain datagram, a region of `datagram` (for
    ///   ChaCha20-Poly1305 the header is moved next to the decrypted body), or `.rejected`.
    ///   On rejection the datagram's contents are unspecified.
    public func open(_ datagram: UnsafeMutableRawBufferPointer) -> Verdict<UnsafeRawBufferPointer> {
        let count = datagram.count
        guard count >= minimumDatagramBytes else {
            return .rejected(.tooShort(length: count, minimum: minimumDatagramBytes))
        }
        switch mode {
        case .none:
            return .accepted(UnsafeRawBufferPointer(datagram))
        case .hmacSHA256:
            guard let hmac else { preconditionFailure("hmac mode without a key") }
            let plainCount = count - Self.codeBytes
            let plain = UnsafeRawBufferPointer(rebasing: datagram[0..<plainCount])
            let code = UnsafeRawBufferPointer(rebasing: datagram[plainCount...])
            guard hmac.isValid(code, for: plain) else { return .rejected(.badAuthenticationCode) }
            return .accepted(plain)
        case .chaCha20Poly1305:
            guard let cipher else { preconditionFailure("chacha20-poly1305 mode without a key") }
            let header = Self.headerBytes
            let bodyStart = header + Self.nonceBytes
            let tagStart = count - Self.tagBytes
            do {
                try cipher.open(
                    inPlace: UnsafeMutableRawBufferPointer(rebasing: datagram[bodyStart..<tagStart]),
                    tag: UnsafeRawBufferPointer(rebasing: datagram[tagStart...]),
                    nonce: UnsafeRawBufferPointer(rebasing: datagram[header..<bodyStart]),
                    authenticating: UnsafeRawBufferPointer(rebasing: datagram[0..<header]))
            } catch {
                return .rejected(.badTag)
            }
            // Move the header over the nonce so header and body are contiguous again.
            let base = datagram.baseAddress!
            (base + Self.nonceBytes).copyMemory(from: base, byteCount: header)
            return .accepted(UnsafeRawBufferPointer(rebasing: datagram[Self.nonceBytes..<tagStart]))
        }
    }

    /// Verifies (and decrypts) a received datagram held in an array.
    ///
    /// - Returns: `.accepted` with a copy of the plain datagram, or `.rejected`.
    public func open(_ datagram: [UInt8]) -> Verdict<[UInt8]> {
        var copy = datagram
        return copy.withUnsafeMutableBytes { raw in
            switch open(raw) {
            case .accepted(let plain): .accepted(Array(plain))
            case .rejected(let reason): .rejected(reason)
            }
        }
    }
}

extension PacketAuthenticator.Verdict: Sendable where Bytes: Sendable {}
extension PacketAuthenticator.Verdict: Equatable where Bytes: Equatable {}
