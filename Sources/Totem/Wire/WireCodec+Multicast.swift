// The MCAST body (spec §2.2, type 1): `ringid, seq u32, originator u32, delivery u8,
// payload_len u32, payload`, 25 + len bytes. With flag ENCAPSULATED the payload is a complete
// old-ring MCAST datagram (header and body, no authentication trailer), decoded recursively.

extension WireCodec {
    /// Body size of `message`, including an encapsulated inner datagram.
    static func multicastBodySize(of message: DataMessage) -> Int {
        switch message.content {
        case .frame(let frame):
            multicastFixedBytes + frame.count
        case .encapsulated(let inner):
            multicastFixedBytes + WireLimits.headerBytes + multicastBodySize(of: inner)
        }
    }

    /// Writes header and body of `message`, and for an encapsulated message the inner datagram.
    func encodeMulticast(_ message: DataMessage, into writer: inout WireWriter) {
        switch message.content {
        case .frame(let frame):
            // Spec §2.2: a non-encapsulated MCAST is sent by its originator.
            precondition(message.originator == message.sender, "originator \(message.originator) is not sender \(message.sender)")
            writeHeader(type: .multicast, flags: 0, sender: message.sender, into: &writer)
            writeMulticastFields(message, payloadBytes: frame.count, into: &writer)
            writer.write(contentsOf: frame)
        case .encapsulated(let inner):
            guard case .frame = inner.content else {
                preconditionFailure("nested encapsulation: the inner message of \(message.sender) is itself encapsulated")
            }
            writeHeader(type: .multicast, flags: Self.encapsulatedFlag, sender: message.sender, into: &writer)
            writeMulticastFields(
                message, payloadBytes: WireLimits.headerBytes + Self.multicastBodySize(of: inner), into: &writer)
            encodeMulticast(inner, into: &writer)
        }
    }

    private func writeMulticastFields(_ message: DataMessage, payloadBytes: Int, into writer: inout WireWriter) {
        Self.write(message.ringID, into: &writer)
        writer.write(message.sequence.rawValue)
        writer.write(message.originator.rawValue)
        writer.write(message.delivery.rawValue)
        // `encode` checked the whole datagram against maxDatagramBytes, so this cannot trap.
        writer.write(UInt32(payloadBytes))
    }

    /// Reads an MCAST body. Spec §2.3: `payload_len` must account for exactly the remaining
    /// bytes, a plain message's originator is its sender, and an encapsulated inner message is
    /// validated like a received one.
    func decodeMulticast(_ reader: inout WireReader, header: Header) throws(WireError) -> DataMessage {
        let ringID = try Self.readRingID(&reader, field: "ring representative")
        let sequence = SequenceNumber(try reader.readUInt32())
        let originator = try Self.readNodeID(&reader, field: "originator")
        let rawDelivery = try reader.readUInt8()
        guard let delivery = DeliveryMode(rawValue: rawDelivery) else { throw .invalidDeliveryMode(rawDelivery) }
        let payloadLength = try reader.readUInt32()
        // Compared in UInt64 so that a hostile 0xFFFFFFFF cannot overflow: offset and length are
        // each below 2^32.
        guard UInt64(payloadLength) == UInt64(reader.remaining), let payloadBytes = Int(exactly: payloadLength) else {
            let expected = Int(exactly: UInt64(reader.offset) + UInt64(payloadLength)) ?? Int.max
            throw .lengthMismatch(expected: expected, actual: reader.count)
        }

        let content: DataContent
        if header.flags & Self.encapsulatedFlag != 0 {
            content = .encapsulated(try decodeEncapsulated(try reader.readSlice(count: payloadBytes)))
        } else {
            guard originator == header.sender else {
                throw .originatorMismatch(originator: originator.rawValue, sender: header.sender.rawValue)
            }
            content = .frame(try reader.readBytes(count: payloadBytes))
        }
        return DataMessage(
            sender: header.sender, ringID: ringID, sequence: sequence, originator: originator,
            delivery: delivery, content: content)
    }

    /// Decodes the inner datagram of an encapsulated MCAST: same magic, version, cluster and
    /// link, type MCAST, not itself encapsulated.
    private func decodeEncapsulated(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> DataMessage {
        var reader = WireReader(bytes)
        let header: Header
        do throws(WireError) {
            header = try readHeader(&reader)
        } catch {
            throw .invalidInnerMessage(error)
        }
        guard header.type == .multicast else { throw .innerNotMulticast(type: header.type.rawValue) }
        guard header.flags & Self.encapsulatedFlag == 0 else { throw .nestedEncapsulation }
        do throws(WireError) {
            return try decodeMulticast(&reader, header: header)
        } catch {
            throw .invalidInnerMessage(error)
        }
    }
}
