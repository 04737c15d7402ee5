// The 16-byte header every datagram starts with, the ring id and node id fields shared by the
// bodies, and the fixed body sizes of spec §2.2.

extension WireCodec {
    /// The validated header fields a body decoder needs.
    struct Header {
        var type: PacketType
        var flags: UInt8
        var sender: NodeID
    }

    /// `rep u32, seq u64`.
    static let ringIDBytes = 12
    /// Token body without its retransmission requests.
    static let tokenFixedBytes = 38
    /// One retransmission request: `ringid, seq u32`.
    static let retransmitRequestBytes = 16
    /// MCAST body without its payload.
    static let multicastFixedBytes = 25
    /// JOIN body without its node lists.
    static let joinFixedBytes = 12
    /// Commit token body without its members.
    static let commitFixedBytes = 20
    /// One commit token member: `addr u32` plus `entry{ringid, aru u32, high_delivered u32, received_flg u8}`.
    static let commitMemberBytes = 25

    /// The flags allowed on a packet type: ENCAPSULATED on MCAST, LEAVE on JOIN, nothing else (§2.3).
    static func allowedFlags(for type: PacketType) -> UInt8 {
        switch type {
        case .multicast: encapsulatedFlag
        case .join: leaveFlag
        case .token, .mergeDetect, .commitToken, .tokenHoldCancel, .livenessProbe, .livenessReply: 0
        }
    }

    /// Reads and validates a header: magic and version first, then cluster, link, type, flags,
    /// reserved field and sender (spec §2.3).
    func readHeader(_ reader: inout WireReader) throws(WireError) -> Header {
        try reader.require(WireLimits.headerBytes)
        let magic = try reader.readUInt16()
        guard magic == Self.magic else { throw .badMagic(magic) }
        let version = try reader.readUInt8()
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let rawType = try reader.readUInt8()
        let flags = try reader.readUInt8()
        let link = try reader.readUInt8()
        let reserved = try reader.readUInt16()
        let clusterID = try reader.readUInt32()
        let rawSender = try reader.readUInt32()
        guard clusterID == self.clusterID else { throw .foreignCluster(clusterID) }
        guard link == self.link else { throw .wrongLink(link) }
        guard let type = PacketType(rawValue: rawType) else { throw .unknownType(rawType) }
        guard flags & ~Self.allowedFlags(for: type) == 0 else { throw .invalidFlags(flags, type: rawType) }
        guard reserved == 0 else { throw .reservedNotZero(reserved) }
        guard let sender = NodeID(rawValue: rawSender) else { throw .zeroNodeID(field: "header sender") }
        return Header(type: type, flags: flags, sender: sender)
    }

    /// Writes a header for this codec's cluster and link.
    func writeHeader(type: PacketType, flags: UInt8, sender: NodeID, into writer: inout WireWriter) {
        precondition(flags & ~Self.allowedFlags(for: type) == 0, "flags \(flags) not allowed on \(type)")
        writer.write(Self.magic)
        writer.write(Self.version)
        writer.write(type.rawValue)
        writer.write(flags)
        writer.write(link)
        writer.write(UInt16(0))
        writer.write(clusterID)
        writer.write(sender.rawValue)
    }

    /// Reads a non-zero node id; `field` names it in the error.
    static func readNodeID(_ reader: inout WireReader, field: String) throws(WireError) -> NodeID {
        guard let node = NodeID(rawValue: try reader.readUInt32()) else { throw .zeroNodeID(field: field) }
        return node
    }

    /// Reads a ring id, whose representative must be non-zero; `field` names it in the error.
    static func readRingID(_ reader: inout WireReader, field: String) throws(WireError) -> RingID {
        let representative = try readNodeID(&reader, field: field)
        let sequence = try reader.readUInt64()
        return RingID(representative: representative, sequence: sequence)
    }

    /// Writes `rep u32, seq u64`.
    static func write(_ ringID: RingID, into writer: inout WireWriter) {
        writer.write(ringID.representative.rawValue)
        writer.write(ringID.sequence)
    }
}
