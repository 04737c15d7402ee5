// The JOIN body (spec §2.2, type 3; a LEAVE is a JOIN with flag LEAVE):
// `ring_seq u64, proc_count u16, fail_count u16, proc[proc_count] u32, fail[fail_count] u32`,
// 12 + 4·(p+f) bytes.

extension WireCodec {
    /// Writes header and body of `join`, setting flag LEAVE when `join.isLeave`.
    func encodeJoin(_ join: JoinMessage, into writer: inout WireWriter) {
        precondition(join.processors.count <= WireLimits.maxNodes, "\(join.processors.count) processors exceed \(WireLimits.maxNodes)")
        precondition(join.failed.count <= WireLimits.maxNodes, "\(join.failed.count) failed exceed \(WireLimits.maxNodes)")
        precondition(Self.firstDuplicate(in: join.processors) == nil, "duplicate in processors \(join.processors)")
        precondition(Self.firstDuplicate(in: join.failed) == nil, "duplicate in failed \(join.failed)")
        if join.isLeave {
            precondition(join.failed.contains(join.sender) && !join.processors.contains(join.sender), "inconsistent leave of \(join.sender)")
        } else {
            precondition(join.processors.contains(join.sender), "join sender \(join.sender) not in processors")
        }
        writeHeader(type: .join, flags: join.isLeave ? Self.leaveFlag : 0, sender: join.sender, into: &writer)
        writer.write(join.ringSequence)
        writer.write(UInt16(join.processors.count))
        writer.write(UInt16(join.failed.count))
        for node in join.processors { writer.write(node.rawValue) }
        for node in join.failed { writer.write(node.rawValue) }
    }

    /// Reads a JOIN body. Spec §2.3: both counts at most `maxNodes`, exact length, no zero or
    /// duplicate ids in a list, a JOIN's sender in `proc`, a LEAVE's sender in `fail` and not in
    /// `proc`.
    func decodeJoin(_ reader: inout WireReader, header: Header) throws(WireError) -> JoinMessage {
        let ringSequence = try reader.readUInt64()
        let processorCount = try reader.readCount(as: UInt16.self, field: "processors", limit: WireLimits.maxNodes)
        let failedCount = try reader.readCount(as: UInt16.self, field: "failed", limit: WireLimits.maxNodes)
        // Both counts are at most maxNodes here, so this sum cannot overflow (corosync 4082294f
        // overflowed exactly here, adding two unchecked 32-bit counts).
        try reader.requireRemaining(exactly: 4 * (processorCount + failedCount))
        let processors = try Self.readNodeList(&reader, count: processorCount, field: "processors")
        let failed = try Self.readNodeList(&reader, count: failedCount, field: "failed")

        let sender = header.sender
        let isLeave = header.flags & Self.leaveFlag != 0
        if isLeave {
            guard failed.contains(sender), !processors.contains(sender) else {
                throw .leaveSenderInvalid(sender.rawValue)
            }
        } else {
            guard processors.contains(sender) else { throw .joinSenderNotInProcessors(sender.rawValue) }
        }
        return JoinMessage(
            sender: sender, ringSequence: ringSequence, processors: processors, failed: failed, isLeave: isLeave)
    }

    /// Reads `count` node ids, rejecting 0 and duplicates. Lists hold at most `maxNodes`
    /// entries, so the quadratic duplicate check costs at most 496 comparisons and no allocation.
    private static func readNodeList(_ reader: inout WireReader, count: Int, field: String) throws(WireError) -> [NodeID] {
        var nodes: [NodeID] = []
        nodes.reserveCapacity(count)
        for _ in 0..<count {
            let node = try readNodeID(&reader, field: field)
            guard !nodes.contains(node) else { throw .duplicateNodeID(node.rawValue) }
            nodes.append(node)
        }
        return nodes
    }

    /// The first node id listed twice in `nodes`, for the encoder's assertions.
    private static func firstDuplicate(in nodes: [NodeID]) -> NodeID? {
        for (index, node) in nodes.enumerated() where nodes[..<index].contains(node) {
            return node
        }
        return nil
    }
}
