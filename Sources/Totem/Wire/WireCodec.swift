// Turns `Packet` values into datagrams and back (spec §2.2), validating everything received (§2.3).
// Owns the header and the dispatch by type; the bodies live in WireCodec+<Type>.swift. Does not
// authenticate: the Security layer wraps and unwraps the datagram around this codec.

/// The Totem wire codec: encodes every `Packet` into the big-endian layout of spec §2.2 and
/// decodes received datagrams, rejecting anything malformed or foreign with a `WireError`.
///
/// Every datagram starts with a 16-byte header:
///
/// ```
/// offset size field
/// 0      2    magic       0x7073
/// 2      1    version     2 (1: before datagrams were stamped for freshness)
/// 3      1    type        PacketType raw value
/// 4      1    flags       bit0 ENCAPSULATED (multicast only), bit1 LEAVE (join only)
/// 5      1    link        must equal `link`
/// 6      2    reserved    0
/// 8      4    cluster_id  must equal `clusterID`
/// 12     4    sender      non-zero node id of the node that built the datagram
/// ```
///
/// Decoding is a single pass over the bytes; the only copy made is a multicast payload.
/// Encoding computes the exact size first and reserves it once. The encoder asserts (with
/// `precondition`) every rule the decoder checks, so a packet the core builds wrongly crashes its
/// builder instead of being silently dropped by every peer.
public struct WireCodec: Sendable {
    /// The first two bytes of every datagram ("ps"; deliberately not corosync's 0xC070).
    public static let magic: UInt16 = 0x7073
    /// The only wire version this codec reads and writes.
    public static let version: UInt8 = 2
    /// Bytes an MCAST adds around its payload: header plus fixed body. An encapsulated MCAST
    /// adds this twice, which is why the packing layer's MTU budget subtracts it twice (§6.4).
    public static let multicastOverheadBytes = WireLimits.headerBytes + 25

    /// Header flag bit 0: the MCAST payload is a whole old-ring MCAST (recovery, §4.8).
    static let encapsulatedFlag: UInt8 = 0b01
    /// Header flag bit 1: the JOIN is a LEAVE (§4.13).
    static let leaveFlag: UInt8 = 0b10

    /// The 32-bit FNV-1a hash of the cluster name; datagrams carrying another id are dropped.
    public let clusterID: UInt32
    /// The ring or interface number this codec serves; datagrams of other links are dropped.
    public let link: UInt8

    /// Creates a codec for one cluster and link.
    ///
    /// - Parameters:
    ///   - clusterName: The configured cluster name; its FNV-1a hash becomes `clusterID`.
    ///   - link: The link number written into and required from every datagram.
    public init(clusterName: String, link: UInt8 = 0) {
        self.clusterID = Self.clusterID(named: clusterName)
        self.link = link
    }

    /// The cluster id for `name`: 32-bit FNV-1a over its UTF-8 bytes.
    public static func clusterID(named name: String) -> UInt32 {
        var hash: UInt32 = 0x811C_9DC5
        for byte in name.utf8 {
            hash ^= UInt32(byte)
            hash &*= 0x0100_0193
        }
        return hash
    }

    /// The exact number of bytes `encode(_:)` produces for `packet`.
    public static func encodedSize(of packet: Packet) -> Int {
        let body: Int
        switch packet {
        case .token(let token):
            body = tokenFixedBytes + retransmitRequestBytes * token.retransmitRequests.count
        case .multicast(let message):
            body = multicastBodySize(of: message)
        case .mergeDetect, .tokenHoldCancel:
            body = ringIDBytes
        case .livenessProbe, .livenessReply:
            body = 8
        case .join(let join):
            body = joinFixedBytes + 4 * (join.processors.count + join.failed.count)
        case .commitToken(let commit):
            body = commitFixedBytes + commitMemberBytes * commit.members.count
        }
        return WireLimits.headerBytes + body
    }

    /// Encodes `packet` into a new datagram.
    ///
    /// The packet must satisfy every rule `decode` checks (limits, ascending members, LEAVE
    /// consistency, ...); violating one is a programmer error and traps.
    public func encode(_ packet: Packet) -> [UInt8] {
        var bytes: [UInt8] = []
        encode(packet, into: &bytes)
        return bytes
    }

    /// Appends the encoding of `packet` to `buffer`, reserving the exact size once.
    ///
    /// - Parameters:
    ///   - packet: A packet satisfying every rule `decode` checks; violations trap.
    ///   - buffer: Receives the datagram after its current contents.
    public func encode(_ packet: Packet, into buffer: inout [UInt8]) {
        let size = Self.encodedSize(of: packet)
        precondition(size <= WireLimits.maxDatagramBytes, "encoded size \(size) exceeds \(WireLimits.maxDatagramBytes)")
        let start = buffer.count
        var writer = WireWriter(appendingTo: &buffer, reservingCapacity: size)
        switch packet {
        case .token(let token):
            encodeToken(token, into: &writer)
        case .multicast(let message):
            encodeMulticast(message, into: &writer)
        case .mergeDetect(let merge):
            writeHeader(type: .mergeDetect, flags: 0, sender: merge.sender, into: &writer)
            Self.write(merge.ringID, into: &writer)
        case .join(let join):
            encodeJoin(join, into: &writer)
        case .commitToken(let commit):
            encodeCommitToken(commit, into: &writer)
        case .tokenHoldCancel(let cancel):
            writeHeader(type: .tokenHoldCancel, flags: 0, sender: cancel.sender, into: &writer)
            Self.write(cancel.ringID, into: &writer)
        case .livenessProbe(let probe):
            writeHeader(type: .livenessProbe, flags: 0, sender: probe.sender, into: &writer)
            writer.write(probe.nonce)
        case .livenessReply(let reply):
            writeHeader(type: .livenessReply, flags: 0, sender: reply.sender, into: &writer)
            writer.write(reply.nonce)
        }
        writer.finish(into: &buffer)
        precondition(buffer.count - start == size, "wrote \(buffer.count - start) bytes, computed \(size)")
    }

    /// Decodes and validates one received datagram (authentication already removed).
    ///
    /// - Parameter bytes: The whole datagram, exactly as received.
    /// - Returns: The packet, satisfying every rule of spec §2.3.
    /// - Throws: The first `WireError` found; the datagram must then be dropped.
    public func decode(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> Packet {
        var reader = WireReader(bytes)
        let header = try readHeader(&reader)
        guard bytes.count <= WireLimits.maxDatagramBytes else { throw .oversized(bytes.count) }
        switch header.type {
        case .token:
            return .token(try decodeToken(&reader, sender: header.sender))
        case .multicast:
            return .multicast(try decodeMulticast(&reader, header: header))
        case .mergeDetect:
            let ringID = try Self.readRingID(&reader, field: "ring representative")
            try reader.requireEnd()
            return .mergeDetect(MergeDetect(sender: header.sender, ringID: ringID))
        case .join:
            return .join(try decodeJoin(&reader, header: header))
        case .commitToken:
            return .commitToken(try decodeCommitToken(&reader, sender: header.sender))
        case .tokenHoldCancel:
            let ringID = try Self.readRingID(&reader, field: "ring representative")
            try reader.requireEnd()
            return .tokenHoldCancel(TokenHoldCancel(sender: header.sender, ringID: ringID))
        case .livenessProbe, .livenessReply:
            let nonce = try reader.readUInt64()
            try reader.requireEnd()
            let probe = LivenessProbe(sender: header.sender, nonce: nonce)
            return header.type == .livenessProbe ? .livenessProbe(probe) : .livenessReply(probe)
        }
    }

    /// Decodes and validates one received datagram held in an array.
    ///
    /// - Parameter bytes: The whole datagram, exactly as received.
    /// - Returns: The packet, satisfying every rule of spec §2.3.
    /// - Throws: The first `WireError` found; the datagram must then be dropped.
    public func decode(_ bytes: [UInt8]) throws(WireError) -> Packet {
        // `Array.withUnsafeBytes` is `rethrows`, which erases the error type; carry it in a Result.
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(WireError) -> Packet in try decode(buffer) }
        }
        return try result.get()
    }

    /// Reads the type, sender and cluster id of a datagram without validating it, for logging
    /// why it was dropped.
    ///
    /// - Returns: `nil` when `bytes` is shorter than a header or does not start with `magic`.
    public static func peekHeader(_ bytes: UnsafeRawBufferPointer) -> (type: UInt8, sender: UInt32, clusterID: UInt32, version: UInt8)? {
        var reader = WireReader(bytes)
        do throws(WireError) {
            try reader.require(WireLimits.headerBytes)
            guard try reader.readUInt16() == magic else { return nil }
            let version = try reader.readUInt8()
            let type = try reader.readUInt8()
            _ = try reader.readUInt32()  // flags, link, reserved
            let clusterID = try reader.readUInt32()
            let sender = try reader.readUInt32()
            return (type, sender, clusterID, version)
        } catch {
            return nil
        }
    }
}
