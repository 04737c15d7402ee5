// The ORF token body (spec §2.2, type 0):
// `ringid, token_seq u32, seq u32, aru u32, aru_addr u32, fcc u32, backlog u32, retrans_flg u8,
//  rtr_count u8, rtr[rtr_count]{ringid, seq u32}`, 38 + 16·r bytes.

extension WireCodec {
    /// Writes header and body of `token`. `aruSetter == nil` is written as node id 0.
    func encodeToken(_ token: Token, into writer: inout WireWriter) {
        precondition(
            token.retransmitRequests.count <= WireLimits.maxRetransmitRequests,
            "\(token.retransmitRequests.count) retransmit requests exceed \(WireLimits.maxRetransmitRequests)")
        writeHeader(type: .token, flags: 0, sender: token.sender, into: &writer)
        Self.write(token.ringID, into: &writer)
        writer.write(token.tokenSequence)
        writer.write(token.sequence.rawValue)
        writer.write(token.aru.rawValue)
        writer.write(token.aruSetter?.rawValue ?? 0)
        writer.write(token.flowControlCount)
        writer.write(token.backlog)
        writer.write(token.retransmitFlag)
        writer.write(UInt8(token.retransmitRequests.count))
        for request in token.retransmitRequests {
            Self.write(request.ringID, into: &writer)
            writer.write(request.sequence.rawValue)
        }
    }

    /// Reads a token body. Spec §2.3: `rtr_count ≤ 30` and the length must be exact.
    func decodeToken(_ reader: inout WireReader, sender: NodeID) throws(WireError) -> Token {
        let ringID = try Self.readRingID(&reader, field: "ring representative")
        let tokenSequence = try reader.readUInt32()
        let sequence = SequenceNumber(try reader.readUInt32())
        let aru = SequenceNumber(try reader.readUInt32())
        // Node id 0 is reserved, so it is free to mean "nobody lowered the aru".
        let aruSetter = NodeID(rawValue: try reader.readUInt32())
        let flowControlCount = try reader.readUInt32()
        let backlog = try reader.readUInt32()
        let retransmitFlag = try reader.readBoolean(field: "retransmit flag")
        let requestCount = try reader.readCount(
            as: UInt8.self, field: "retransmit requests", limit: WireLimits.maxRetransmitRequests)
        try reader.requireRemaining(exactly: Self.retransmitRequestBytes * requestCount)

        var requests: [RetransmitRequest] = []
        requests.reserveCapacity(requestCount)
        for _ in 0..<requestCount {
            let requestRing = try Self.readRingID(&reader, field: "retransmit request ring representative")
            let requestSequence = SequenceNumber(try reader.readUInt32())
            requests.append(RetransmitRequest(ringID: requestRing, sequence: requestSequence))
        }
        return Token(
            sender: sender, ringID: ringID, tokenSequence: tokenSequence, sequence: sequence, aru: aru,
            aruSetter: aruSetter, flowControlCount: flowControlCount, backlog: backlog,
            retransmitFlag: retransmitFlag, retransmitRequests: requests)
    }
}
