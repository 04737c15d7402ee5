// The commit token body (spec §2.2, type 4): `ringid (new ring), token_seq u32, memb_index u16,
// n u16, addr[n] u32 (ascending), entry[n]{old ringid, aru u32, high_delivered u32,
// received_flg u8}`, 20 + 25·n bytes.

extension WireCodec {
    /// Writes header and body of `commit`.
    func encodeCommitToken(_ commit: CommitToken, into writer: inout WireWriter) {
        let count = commit.members.count
        precondition((1...WireLimits.maxNodes).contains(count), "\(count) members outside 1...\(WireLimits.maxNodes)")
        precondition(commit.entries.count == count, "\(commit.entries.count) entries for \(count) members")
        precondition((0...count).contains(commit.memberIndex), "member index \(commit.memberIndex) outside 0...\(count)")
        for index in 1..<count {
            precondition(commit.members[index - 1] < commit.members[index], "members not ascending: \(commit.members)")
        }
        writeHeader(type: .commitToken, flags: 0, sender: commit.sender, into: &writer)
        Self.write(commit.ringID, into: &writer)
        writer.write(commit.tokenSequence)
        writer.write(UInt16(commit.memberIndex))
        writer.write(UInt16(count))
        for member in commit.members { writer.write(member.rawValue) }
        for entry in commit.entries {
            Self.write(entry.oldRingID, into: &writer)
            writer.write(entry.aru.rawValue)
            writer.write(entry.highDelivered.rawValue)
            writer.write(entry.receivedFlag)
        }
    }

    /// Reads a commit token body. Spec §2.3: `1 ≤ n ≤ maxNodes`, members non-zero and strictly
    /// ascending, `0 ≤ memb_index ≤ n`, exact length.
    func decodeCommitToken(_ reader: inout WireReader, sender: NodeID) throws(WireError) -> CommitToken {
        let ringID = try Self.readRingID(&reader, field: "ring representative")
        let tokenSequence = try reader.readUInt32()
        let rawMemberIndex = try reader.readUInt16()
        let count = try reader.readCount(as: UInt16.self, field: "members", limit: WireLimits.maxNodes)
        guard count >= 1 else { throw .noMembers }
        guard let memberIndex = Int(exactly: rawMemberIndex), memberIndex <= count else {
            throw .memberIndexOutOfRange(Int(exactly: rawMemberIndex) ?? Int.max, count: count)
        }
        try reader.requireRemaining(exactly: Self.commitMemberBytes * count)

        var members: [NodeID] = []
        members.reserveCapacity(count)
        for _ in 0..<count {
            let member = try Self.readNodeID(&reader, field: "members")
            if let previous = members.last, previous >= member {
                throw .membersNotAscending(previous: previous.rawValue, next: member.rawValue)
            }
            members.append(member)
        }
        var entries: [CommitTokenEntry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let oldRingID = try Self.readRingID(&reader, field: "old ring representative")
            let aru = SequenceNumber(try reader.readUInt32())
            let highDelivered = SequenceNumber(try reader.readUInt32())
            let receivedFlag = try reader.readBoolean(field: "received flag")
            entries.append(
                CommitTokenEntry(oldRingID: oldRingID, aru: aru, highDelivered: highDelivered, receivedFlag: receivedFlag))
        }
        return CommitToken(
            sender: sender, ringID: ringID, tokenSequence: tokenSequence, memberIndex: memberIndex,
            members: members, entries: entries)
    }
}
