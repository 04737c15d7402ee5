// The wire codec against spec §2.2 (layout, byte for byte) and §2.3 (one test per rejection).

import Testing
@testable import Totem

/// Packets and helpers shared by the codec and fuzz tests. Cluster "a" hashes to 0xE40C292C
/// (a published FNV-1a test vector), which the hand-written header bytes below spell out.
enum WireFixtures {
    static let codec = WireCodec(clusterName: "a")

    static func node(_ raw: UInt32) -> NodeID { NodeID(raw) }
    static func ring(_ representative: UInt32, _ sequence: UInt64) -> RingID {
        RingID(representative: NodeID(representative), sequence: sequence)
    }

    static func token(requests: Int, aruSetter: NodeID? = NodeID(3), sequence: UInt32 = 10) -> Token {
        Token(
            sender: node(2), ringID: ring(1, 0x0102_0304_0506_0708), tokenSequence: 9, sequence: SequenceNumber(sequence),
            aru: SequenceNumber(sequence &- 1), aruSetter: aruSetter, flowControlCount: 12, backlog: 13,
            retransmitFlag: requests % 2 == 0,
            retransmitRequests: (0..<requests).map {
                RetransmitRequest(ringID: ring(1, 4), sequence: SequenceNumber(sequence &- UInt32($0)))
            })
    }

    static func frame(_ payload: [UInt8], sender: UInt32 = 5, sequence: UInt32 = 7, delivery: DeliveryMode = .agreed) -> DataMessage {
        DataMessage(
            sender: node(sender), ringID: ring(1, 8), sequence: SequenceNumber(sequence), originator: node(sender),
            delivery: delivery, content: .frame(payload))
    }

    static func encapsulated(_ inner: DataMessage, sender: UInt32 = 3) -> DataMessage {
        DataMessage(
            sender: node(sender), ringID: ring(3, 12), sequence: SequenceNumber(1), originator: node(sender),
            delivery: .safe, content: .encapsulated(inner))
    }

    static func commit(memberCount: Int, memberIndex: Int) -> CommitToken {
        let members = (1...UInt32(memberCount)).map { node($0 * 3) }
        let entries = members.enumerated().map { index, member in
            index < memberIndex
                ? CommitTokenEntry(
                    oldRingID: ring(member.rawValue, 40), aru: SequenceNumber(UInt32(index)),
                    highDelivered: SequenceNumber(0xFFFF_FFF0), receivedFlag: index % 2 == 0)
                : .empty
        }
        return CommitToken(sender: node(3), ringID: ring(3, 44), tokenSequence: 5, memberIndex: memberIndex, members: members, entries: entries)
    }

    /// Every packet type with typical and extreme values.
    static let packets: [Packet] = [
        .token(token(requests: 0)),
        .token(token(requests: 1, aruSetter: nil)),
        .token(token(requests: WireLimits.maxRetransmitRequests, sequence: UInt32.max)),
        .token(token(requests: 3, sequence: 1)),
        .token(Token(
            sender: node(.max), ringID: ring(.max, .max), tokenSequence: .max, sequence: SequenceNumber(.max),
            aru: .nothingReceived, aruSetter: node(.max), flowControlCount: .max, backlog: .max,
            retransmitFlag: true, retransmitRequests: [RetransmitRequest(ringID: ring(.max, .max), sequence: SequenceNumber(.max))])),
        .multicast(frame([])),
        .multicast(frame([0x42], sequence: .max - 1, delivery: .safe)),
        .multicast(frame((0..<1400).map { UInt8(truncatingIfNeeded: $0) })),
        .multicast(frame([UInt8](repeating: 0xA5, count: WireLimits.maxDatagramBytes - WireCodec.multicastOverheadBytes))),
        .multicast(encapsulated(frame([]))),
        .multicast(encapsulated(frame([1, 2, 3], sender: 9, sequence: .max, delivery: .safe))),
        .multicast(DataMessage(
            sender: node(4), ringID: ring(4, 16), sequence: SequenceNumber(2), originator: node(6), delivery: .agreed,
            content: .encapsulated(frame([7, 7, 7], sender: 6)))),
        .multicast(encapsulated(frame([UInt8](
            repeating: 0x5A, count: WireLimits.maxDatagramBytes - 2 * WireCodec.multicastOverheadBytes)))),
        .mergeDetect(MergeDetect(sender: node(1), ringID: ring(1, 16))),
        .mergeDetect(MergeDetect(sender: node(.max), ringID: ring(.max, .max))),
        .tokenHoldCancel(TokenHoldCancel(sender: node(2), ringID: ring(1, 0))),
        .join(JoinMessage(sender: node(2), ringSequence: 0, processors: [node(2)], failed: [])),
        .join(JoinMessage(sender: node(2), ringSequence: 32, processors: [node(3), node(2), node(1)], failed: [node(3)])),
        .join(JoinMessage(
            sender: node(32), ringSequence: .max, processors: (1...32).map { node($0) },
            failed: (1...32).map { node(UInt32.max - $0) })),
        .join(JoinMessage(sender: node(4), ringSequence: 36, processors: [node(1), node(2)], failed: [node(4)], isLeave: true)),
        .join(JoinMessage(sender: node(4), ringSequence: 36, processors: [], failed: [node(4)], isLeave: true)),
        .commitToken(commit(memberCount: 1, memberIndex: 0)),
        .commitToken(commit(memberCount: 1, memberIndex: 1)),
        .commitToken(commit(memberCount: 5, memberIndex: 2)),
        .commitToken(commit(memberCount: WireLimits.maxNodes, memberIndex: WireLimits.maxNodes)),
        // Ours, appended so the indices above stay put.
        .livenessProbe(LivenessProbe(sender: node(1), nonce: 0)),
        .livenessProbe(LivenessProbe(sender: node(.max), nonce: .max)),
        .livenessReply(LivenessProbe(sender: node(3), nonce: 0x0123_4567_89AB_CDEF)),
    ]

    /// The encodings of `packets`, for mutation.
    static let encodings: [[UInt8]] = packets.map { codec.encode($0) }

    /// Header of cluster "a", link 0, flags 0, for hand-built datagrams.
    static func header(type: UInt8, flags: UInt8 = 0, sender: UInt32) -> [UInt8] {
        [0x70, 0x73, 0x02, type, flags, 0x00, 0x00, 0x00, 0xE4, 0x0C, 0x29, 0x2C] + be32(sender)
    }

    static func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    static func be32(_ value: UInt32) -> [UInt8] { be16(UInt16(value >> 16)) + be16(UInt16(value & 0xFFFF)) }
    static func be64(_ value: UInt64) -> [UInt8] { be32(UInt32(value >> 32)) + be32(UInt32(value & 0xFFFF_FFFF)) }

    /// `bytes` with `replacement` written over it at `offset`.
    static func patch(_ bytes: [UInt8], at offset: Int, _ replacement: [UInt8]) -> [UInt8] {
        var result = bytes
        result.replaceSubrange(offset..<(offset + replacement.count), with: replacement)
        return result
    }
}

@Suite("Wire codec (spec §2.2, §2.3)")
struct WireCodecTests {
    let codec = WireFixtures.codec
    typealias F = WireFixtures

    func expectRejection(
        _ bytes: [UInt8], _ expected: WireError, codec: WireCodec = WireFixtures.codec,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do throws(WireError) {
            let packet = try codec.decode(bytes)
            Issue.record("expected \(expected), decoded \(packet)", sourceLocation: sourceLocation)
        } catch {
            #expect(error == expected, sourceLocation: sourceLocation)
        }
    }

    // MARK: Round trips

    // Indexed rather than passing the packets themselves, so that test names stay short (two
    // fixtures carry 64 KiB payloads).
    @Test("Every packet type round-trips, and its size is encodedSize", arguments: WireFixtures.packets.indices)
    func roundTrip(fixture: Int) throws {
        let packet = F.packets[fixture]
        let bytes = codec.encode(packet)
        #expect(bytes.count == WireCodec.encodedSize(of: packet))
        #expect(bytes.count <= WireLimits.maxDatagramBytes)
        let decoded = try codec.decode(bytes)
        #expect(decoded == packet)
        #expect(codec.encode(decoded) == bytes)
        let viaPointer = try bytes.withUnsafeBytes { buffer throws(WireError) in try codec.decode(buffer) }
        #expect(viaPointer == packet)
    }

    @Test("The largest encodings fill a datagram exactly")
    func largestEncodingsFillDatagram() {
        #expect(F.encodings[8].count == WireLimits.maxDatagramBytes)
        #expect(F.encodings[12].count == WireLimits.maxDatagramBytes)
        // 20 + 25·32 bytes of body, as WireLimits.maxNodes documents.
        let largestCommit = F.codec.encode(.commitToken(F.commit(memberCount: WireLimits.maxNodes, memberIndex: WireLimits.maxNodes)))
        #expect(largestCommit.count == 16 + 820)
        #expect(F.encodings.suffix(3).allSatisfy { $0.count == 16 + 8 })  // the liveness probes
    }

    @Test("encode(_:into:) appends after the buffer's contents")
    func encodeIntoAppends() throws {
        var buffer: [UInt8] = [0xAA, 0xBB]
        codec.encode(F.packets[0], into: &buffer)
        codec.encode(F.packets[5], into: &buffer)
        #expect(buffer == [0xAA, 0xBB] + F.encodings[0] + F.encodings[5])
    }

    @Test("Cluster id is 32-bit FNV-1a of the UTF-8 name (published test vectors)")
    func clusterIDIsFNV1a() {
        #expect(WireCodec.clusterID(named: "") == 0x811C_9DC5)
        #expect(WireCodec.clusterID(named: "a") == 0xE40C_292C)
        #expect(WireCodec.clusterID(named: "foobar") == 0xBF9C_F968)
        #expect(WireCodec(clusterName: "foobar", link: 3).clusterID == 0xBF9C_F968)
        #expect(WireCodec(clusterName: "foobar", link: 3).link == 3)
    }

    // MARK: Exact layout (spec §2.2 table, written out by hand)

    @Test("ORF token layout: header, ringid, token_seq, seq, aru, aru_addr, fcc, backlog, retrans_flg, rtr")
    func tokenLayout() throws {
        let token = Token(
            sender: F.node(2), ringID: F.ring(1, 0x0102_0304_0506_0708), tokenSequence: 9, sequence: SequenceNumber(10),
            aru: SequenceNumber(11), aruSetter: F.node(3), flowControlCount: 12, backlog: 13, retransmitFlag: true,
            retransmitRequests: [RetransmitRequest(ringID: F.ring(1, 4), sequence: SequenceNumber(0x0A0B_0C0D))])
        let expected: [UInt8] = [
            0x70, 0x73, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xE4, 0x0C, 0x29, 0x2C, 0x00, 0x00, 0x00, 0x02,  // header
            0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // ringid
            0x00, 0x00, 0x00, 0x09,  // token_seq
            0x00, 0x00, 0x00, 0x0A,  // seq
            0x00, 0x00, 0x00, 0x0B,  // aru
            0x00, 0x00, 0x00, 0x03,  // aru_addr
            0x00, 0x00, 0x00, 0x0C,  // fcc
            0x00, 0x00, 0x00, 0x0D,  // backlog
            0x01,  // retrans_flg
            0x01,  // rtr_count
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0A, 0x0B, 0x0C, 0x0D,  // rtr[0]
        ]
        #expect(expected.count == 16 + 38 + 16)
        #expect(codec.encode(.token(token)) == expected)
        #expect(try codec.decode(expected) == .token(token))

        var anonymous = token
        anonymous.aruSetter = nil
        anonymous.retransmitFlag = false
        anonymous.retransmitRequests = []
        // Same fixed part, with aru_addr 0 (no aru setter), retrans_flg 0 and rtr_count 0.
        let expectedAnonymous = F.patch(F.patch(Array(expected[0..<54]), at: 40, [0, 0, 0, 0]), at: 52, [0, 0])
        #expect(codec.encode(.token(anonymous)) == expectedAnonymous)
        #expect(try codec.decode(expectedAnonymous) == .token(anonymous))
    }

    @Test("MCAST layout: ringid, seq, originator, delivery, payload_len, payload")
    func multicastLayout() throws {
        let message = DataMessage(
            sender: F.node(5), ringID: F.ring(1, 8), sequence: SequenceNumber(0x1122_3344), originator: F.node(5),
            delivery: .safe, content: .frame([0xDE, 0xAD]))
        let expected: [UInt8] = [
            0x70, 0x73, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0xE4, 0x0C, 0x29, 0x2C, 0x00, 0x00, 0x00, 0x05,  // header
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08,  // ringid
            0x11, 0x22, 0x33, 0x44,  // seq
            0x00, 0x00, 0x00, 0x05,  // originator
            0x01,  // delivery: safe
            0x00, 0x00, 0x00, 0x02,  // payload_len
            0xDE, 0xAD,  // payload
        ]
        #expect(codec.encode(.multicast(message)) == expected)
        #expect(try codec.decode(expected) == .multicast(message))
    }

    @Test("Encapsulated MCAST layout: flag bit0, payload is the whole inner datagram (§2.2, §4.8)")
    func encapsulatedLayout() throws {
        let inner = DataMessage(
            sender: F.node(5), ringID: F.ring(1, 8), sequence: SequenceNumber(7), originator: F.node(5),
            delivery: .agreed, content: .frame([0x42]))
        let outer = DataMessage(
            sender: F.node(3), ringID: F.ring(3, 12), sequence: SequenceNumber(1), originator: F.node(3),
            delivery: .agreed, content: .encapsulated(inner))
        let expected: [UInt8] = [
            0x70, 0x73, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00, 0xE4, 0x0C, 0x29, 0x2C, 0x00, 0x00, 0x00, 0x03,  // header, ENCAPSULATED
            0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C,  // new ringid
            0x00, 0x00, 0x00, 0x01,  // seq
            0x00, 0x00, 0x00, 0x03,  // originator
            0x00,  // delivery: agreed
            0x00, 0x00, 0x00, 0x2A,  // payload_len = 16 + 25 + 1
            0x70, 0x73, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0xE4, 0x0C, 0x29, 0x2C, 0x00, 0x00, 0x00, 0x05,  // inner header
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08,  // old ringid
            0x00, 0x00, 0x00, 0x07,  // inner seq
            0x00, 0x00, 0x00, 0x05,  // inner originator
            0x00,  // inner delivery
            0x00, 0x00, 0x00, 0x01,  // inner payload_len
            0x42,
        ]
        #expect(codec.encode(.multicast(outer)) == expected)
        #expect(try codec.decode(expected) == .multicast(outer))
    }

    @Test("MERGE_DETECT and TOKEN_HOLD_CANCEL layout: ringid only")
    func ringOnlyLayouts() throws {
        let body: [UInt8] = [0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10]
        let merge: [UInt8] = [0x70, 0x73, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0xE4, 0x0C, 0x29, 0x2C, 0x00, 0x00, 0x00, 0x01] + body
        let cancel: [UInt8] = [0x70, 0x73, 0x02, 0x05, 0x00, 0x00, 0x00, 0x00, 0xE4, 0x0C, 0x29, 0x2C, 0x00, 0x00, 0x00, 0x01] + body
        let mergePacket = Packet.mergeDetect(MergeDetect(sender: F.node(1), ringID: F.ring(1, 16)))
        let cancelPacket = Packet.tokenHoldCancel(TokenHoldCancel(sender: F.node(1), ringID: F.ring(1, 16)))
        #expect(codec.encode(mergePacket) == merge)
        #expect(codec.encode(cancelPacket) == cancel)
        #expect(try codec.decode(merge) == mergePacket)
        #expect(try codec.decode(cancel) == cancelPacket)
    }

    @Test("ours: liveness probe (type 6) and reply (type 7) layout: the 64-bit nonce, big-endian; a longer or shorter body is refused")
    func livenessLayout() throws {
        let header: (UInt8) -> [UInt8] = { [0x70, 0x73, 0x02, $0, 0x00, 0x00, 0x00, 0x00, 0xE4, 0x0C, 0x29, 0x2C, 0x00, 0x00, 0x00, 0x02] }
        let nonce: [UInt8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]
        let probe = Packet.livenessProbe(LivenessProbe(sender: F.node(2), nonce: 0x0123_4567_89AB_CDEF))
        let reply = Packet.livenessReply(LivenessProbe(sender: F.node(2), nonce: 0x0123_4567_89AB_CDEF))
        #expect(codec.encode(probe) == header(0x06) + nonce)
        #expect(codec.encode(reply) == header(0x07) + nonce)
        #expect(try codec.decode(header(0x06) + nonce) == probe)
        #expect(try codec.decode(header(0x07) + nonce) == reply)
        #expect(throws: WireError.self) { try codec.decode(header(0x06) + nonce.dropLast()) }
        #expect(throws: WireError.self) { try codec.decode(header(0x07) + nonce + [0]) }
        var flagged = header(0x06) + nonce
        flagged[4] = 0x01
        #expect(throws: WireError.self) { try codec.decode(flagged) }
    }

    @Test("JOIN and LEAVE layout: ring_seq, proc_count, fail_count, proc[], fail[]; LEAVE is flag bit1")
    func joinLayout() throws {
        let join = JoinMessage(sender: F.node(2), ringSequence: 0x20, processors: [F.node(2), F.node(1), F.node(3)], failed: [F.node(4)])
        let expected: [UInt8] = [
            0x70, 0x73, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0xE4, 0x0C, 0x29, 0x2C, 0x00, 0x00, 0x00, 0x02,  // header
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20,  // ring_seq
            0x00, 0x03, 0x00, 0x01,  // proc_count, fail_count
            0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03,  // proc[] in the given order
            0x00, 0x00, 0x00, 0x04,  // fail[]
        ]
        #expect(codec.encode(.join(join)) == expected)
        #expect(try codec.decode(expected) == .join(join))

        let leave = JoinMessage(sender: F.node(4), ringSequence: 0x20, processors: [F.node(1)], failed: [F.node(4)], isLeave: true)
        let expectedLeave: [UInt8] = [
            0x70, 0x73, 0x02, 0x03, 0x02, 0x00, 0x00, 0x00, 0xE4, 0x0C, 0x29, 0x2C, 0x00, 0x00, 0x00, 0x04,  // header, LEAVE
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20,
            0x00, 0x01, 0x00, 0x01,
            0x00, 0x00, 0x00, 0x01,
            0x00, 0x00, 0x00, 0x04,
        ]
        #expect(codec.encode(.join(leave)) == expectedLeave)
        #expect(try codec.decode(expectedLeave) == .join(leave))
    }

    @Test("Commit token layout: ringid, token_seq, memb_index, n, addr[n], entry[n]")
    func commitTokenLayout() throws {
        let commit = CommitToken(
            sender: F.node(1), ringID: F.ring(1, 0x24), tokenSequence: 2, memberIndex: 1, members: [F.node(1), F.node(7)],
            entries: [
                CommitTokenEntry(oldRingID: F.ring(1, 0x20), aru: SequenceNumber(5), highDelivered: SequenceNumber(4), receivedFlag: true),
                .empty,
            ])
        let expected: [UInt8] = [
            0x70, 0x73, 0x02, 0x04, 0x00, 0x00, 0x00, 0x00, 0xE4, 0x0C, 0x29, 0x2C, 0x00, 0x00, 0x00, 0x01,  // header
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x24,  // new ringid
            0x00, 0x00, 0x00, 0x02,  // token_seq
            0x00, 0x01,  // memb_index
            0x00, 0x02,  // n
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07,  // addr[]
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20,  // entry[0].old ringid
            0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x04, 0x01,  // aru, high_delivered, received_flg
            0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // entry[1] (empty)
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ]
        #expect(expected.count == 16 + 20 + 25 * 2)
        #expect(codec.encode(.commitToken(commit)) == expected)
        #expect(try codec.decode(expected) == .commitToken(commit))
    }

    @Test("The header carries the codec's link number")
    func linkIsWritten() throws {
        let linkSeven = WireCodec(clusterName: "a", link: 7)
        let bytes = linkSeven.encode(F.packets[13])
        #expect(bytes[5] == 7)
        #expect(try linkSeven.decode(bytes) == F.packets[13])
    }

    @Test("peekHeader reads type, sender and cluster without validating")
    func peekHeader() {
        let foreign = WireCodec(clusterName: "foobar").encode(F.packets[16])
        let peeked = foreign.withUnsafeBytes { WireCodec.peekHeader($0) }
        #expect(peeked?.type == 3)
        #expect(peeked?.sender == 2)
        #expect(peeked?.clusterID == 0xBF9C_F968)
        #expect(Array(foreign[0..<15]).withUnsafeBytes { WireCodec.peekHeader($0) } == nil)
        #expect(F.patch(foreign, at: 0, [0xC0, 0x70]).withUnsafeBytes { WireCodec.peekHeader($0) } == nil)
    }

    // The encoder's preconditions (STYLE §7: it asserts what the decoder validates) are tested
    // in child processes by EncoderTrapTests; the decoder's side of each rule is tested below.

    // MARK: Rejections (spec §2.3), one per WireError case

    @Test("Rejects a datagram shorter than the header, and a body cut short")
    func rejectsTruncated() {
        expectRejection(Array(F.encodings[0][0..<10]), .truncated(needed: 16, available: 10))
        expectRejection([], .truncated(needed: 16, available: 0))
        // A token cut inside aru: 16 + 12 + 4 + 4 bytes present, aru needs 4 more.
        expectRejection(Array(F.encodings[0][0..<38]), .truncated(needed: 4, available: 2))
    }

    @Test("Rejects a bad magic (corosync's 0xC070, for one)")
    func rejectsBadMagic() {
        expectRejection(F.patch(F.encodings[13], at: 0, [0xC0, 0x70]), .badMagic(0xC070))
    }

    @Test("Rejects another version, older or newer, saying which side to upgrade")
    func rejectsUnsupportedVersion() {
        expectRejection(F.patch(F.encodings[13], at: 2, [1]), .unsupportedVersion(1))
        expectRejection(F.patch(F.encodings[13], at: 2, [3]), .unsupportedVersion(3))
        #expect(WireError.unsupportedVersion(1).description.contains("every node must run a release that speaks version 2"))
        #expect(WireError.unsupportedVersion(3).description.contains("upgrade this node"))
    }

    @Test("Rejects an unknown type")
    func rejectsUnknownType() {
        expectRejection(F.patch(F.encodings[13], at: 3, [8]), .unknownType(8))
        expectRejection(F.patch(F.encodings[13], at: 3, [0xFF]), .unknownType(0xFF))
    }

    @Test("Rejects a datagram of another cluster")
    func rejectsForeignCluster() {
        let foreign = WireCodec(clusterName: "foobar").encode(F.packets[13])
        expectRejection(foreign, .foreignCluster(0xBF9C_F968))
    }

    @Test("Rejects a datagram of another link")
    func rejectsWrongLink() {
        let otherLink = WireCodec(clusterName: "a", link: 1).encode(F.packets[13])
        expectRejection(otherLink, .wrongLink(1))
    }

    @Test("Rejects flags not allowed on the type: ENCAPSULATED only on MCAST, LEAVE only on JOIN")
    func rejectsInvalidFlags() {
        expectRejection(F.patch(F.encodings[0], at: 4, [0x01]), .invalidFlags(0x01, type: 0))
        expectRejection(F.patch(F.encodings[5], at: 4, [0x02]), .invalidFlags(0x02, type: 1))
        expectRejection(F.patch(F.encodings[16], at: 4, [0x01]), .invalidFlags(0x01, type: 3))
        expectRejection(F.patch(F.encodings[13], at: 4, [0x80]), .invalidFlags(0x80, type: 2))
        expectRejection(F.patch(F.encodings[21], at: 4, [0x02]), .invalidFlags(0x02, type: 4))
        expectRejection(F.patch(F.encodings[15], at: 4, [0x01]), .invalidFlags(0x01, type: 5))
    }

    @Test("Rejects a non-zero reserved field")
    func rejectsReservedNotZero() {
        expectRejection(F.patch(F.encodings[13], at: 6, [0x00, 0x01]), .reservedNotZero(1))
    }

    @Test("Rejects counts above their limits: rtr_count > 30, proc/fail > 32, n > 32")
    func rejectsCountOutOfRange() {
        // Token: rtr_count is the byte at 16 + 37.
        expectRejection(
            F.patch(F.encodings[0], at: 53, [31]), .countOutOfRange(field: "retransmit requests", count: 31, limit: 30))
        // JOIN: proc_count at 24, fail_count at 26.
        expectRejection(F.patch(F.encodings[16], at: 24, [0x00, 33]), .countOutOfRange(field: "processors", count: 33, limit: 32))
        expectRejection(F.patch(F.encodings[16], at: 26, [0x00, 33]), .countOutOfRange(field: "failed", count: 33, limit: 32))
        // Commit token: n at 34.
        expectRejection(F.patch(F.encodings[21], at: 34, [0x00, 33]), .countOutOfRange(field: "members", count: 33, limit: 32))
    }

    @Test("Rejects a commit token without members")
    func rejectsNoMembers() {
        let bytes = F.header(type: 4, sender: 1) + F.be32(1) + F.be64(4) + F.be32(0) + F.be16(0) + F.be16(0)
        expectRejection(bytes, .noMembers)
    }

    @Test("Rejects lengths that differ from what the counts imply, in both directions")
    func rejectsLengthMismatch() {
        expectRejection(F.encodings[0] + [0], .lengthMismatch(expected: 54, actual: 55))
        expectRejection(F.encodings[13] + [0], .lengthMismatch(expected: 28, actual: 29))
        expectRejection(F.encodings[15] + [0], .lengthMismatch(expected: 28, actual: 29))
        expectRejection(F.encodings[16] + [0, 0, 0, 9], .lengthMismatch(expected: 32, actual: 36))
        expectRejection(Array(F.encodings[17].dropLast()), .lengthMismatch(expected: 44, actual: 43))
        expectRejection(Array(F.encodings[21].dropLast()), .lengthMismatch(expected: 61, actual: 60))
        // MCAST: payload_len (at 37) claims 3 bytes where 1 follows, then 0 where 1 follows.
        expectRejection(F.patch(F.encodings[6], at: 37, F.be32(3)), .lengthMismatch(expected: 44, actual: 42))
        expectRejection(F.patch(F.encodings[6], at: 37, F.be32(0)), .lengthMismatch(expected: 41, actual: 42))
    }

    @Test("Rejects node id 0 as sender, ring representative, originator, list entry or member")
    func rejectsZeroNodeID() {
        expectRejection(F.patch(F.encodings[13], at: 12, F.be32(0)), .zeroNodeID(field: "header sender"))
        expectRejection(F.patch(F.encodings[13], at: 16, F.be32(0)), .zeroNodeID(field: "ring representative"))
        expectRejection(
            F.patch(F.encodings[1], at: 54, F.be32(0)), .zeroNodeID(field: "retransmit request ring representative"))
        expectRejection(F.patch(F.encodings[6], at: 32, F.be32(0)), .zeroNodeID(field: "originator"))
        expectRejection(F.patch(F.encodings[17], at: 28, F.be32(0)), .zeroNodeID(field: "processors"))
        expectRejection(F.patch(F.encodings[17], at: 40, F.be32(0)), .zeroNodeID(field: "failed"))
        expectRejection(F.patch(F.encodings[21], at: 36, F.be32(0)), .zeroNodeID(field: "members"))
        expectRejection(F.patch(F.encodings[21], at: 40, F.be32(0)), .zeroNodeID(field: "old ring representative"))
    }

    @Test("Rejects a node listed twice in one JOIN list")
    func rejectsDuplicateNodeID() {
        // processors [3, 2, 1] -> [3, 2, 3]
        expectRejection(F.patch(F.encodings[17], at: 36, F.be32(3)), .duplicateNodeID(3))
        let failedTwice = F.header(type: 3, sender: 2) + F.be64(1) + F.be16(1) + F.be16(2) + F.be32(2) + F.be32(5) + F.be32(5)
        expectRejection(failedTwice, .duplicateNodeID(5))
    }

    @Test("Rejects commit token members that are not strictly ascending")
    func rejectsMembersNotAscending() {
        // members of commit(5, 2) are 3, 6, 9, 12, 15 at offsets 36, 40, ...
        expectRejection(F.patch(F.encodings[23], at: 40, F.be32(3)), .membersNotAscending(previous: 3, next: 3))
        expectRejection(F.patch(F.encodings[23], at: 44, F.be32(4)), .membersNotAscending(previous: 6, next: 4))
    }

    @Test("Rejects a member index beyond the member count")
    func rejectsMemberIndexOutOfRange() {
        expectRejection(F.patch(F.encodings[23], at: 32, F.be16(6)), .memberIndexOutOfRange(6, count: 5))
        expectRejection(F.patch(F.encodings[23], at: 32, F.be16(0xFFFF)), .memberIndexOutOfRange(0xFFFF, count: 5))
    }

    @Test("Rejects a plain MCAST whose originator is not its sender")
    func rejectsOriginatorMismatch() {
        expectRejection(F.patch(F.encodings[6], at: 32, F.be32(6)), .originatorMismatch(originator: 6, sender: 5))
    }

    @Test("Rejects a JOIN whose sender is not in its processor list")
    func rejectsJoinSenderNotInProcessors() {
        expectRejection(F.patch(F.encodings[16], at: 12, F.be32(7)), .joinSenderNotInProcessors(7))
    }

    @Test("Rejects a LEAVE whose sender is still in proc or missing from fail")
    func rejectsLeaveSenderInvalid() {
        let inProcessors = F.header(type: 3, flags: 2, sender: 4) + F.be64(1) + F.be16(1) + F.be16(1) + F.be32(4) + F.be32(4)
        expectRejection(inProcessors, .leaveSenderInvalid(4))
        let notFailed = F.header(type: 3, flags: 2, sender: 4) + F.be64(1) + F.be16(1) + F.be16(1) + F.be32(1) + F.be32(2)
        expectRejection(notFailed, .leaveSenderInvalid(4))
    }

    @Test("Rejects an encapsulated message inside an encapsulated message")
    func rejectsNestedEncapsulation() {
        // Inner header starts at 41; its flags byte is at 45.
        expectRejection(F.patch(F.encodings[10], at: 45, [0x01]), .nestedEncapsulation)
    }

    @Test("Rejects an encapsulated datagram that is not an MCAST")
    func rejectsInnerNotMulticast() {
        let inner = F.encodings[13]
        let outer = F.header(type: 1, flags: 1, sender: 3) + F.be32(3) + F.be64(12) + F.be32(1) + F.be32(3) + [0]
            + F.be32(UInt32(inner.count)) + inner
        expectRejection(outer, .innerNotMulticast(type: 2))
    }

    @Test("Rejects an encapsulated datagram that fails validation, naming the inner reason")
    func rejectsInvalidInnerMessage() {
        // Inner sender (at 41 + 12) is 9 and its originator (at 41 + 32) is 9.
        expectRejection(
            F.patch(F.encodings[10], at: 73, F.be32(8)), .invalidInnerMessage(.originatorMismatch(originator: 8, sender: 9)))
        expectRejection(F.patch(F.encodings[10], at: 49, F.be32(1)), .invalidInnerMessage(.foreignCluster(1)))
        expectRejection(F.patch(F.encodings[10], at: 41, [0, 0]), .invalidInnerMessage(.badMagic(0)))
        expectRejection(F.patch(F.encodings[10], at: 78, F.be32(4)), .invalidInnerMessage(.lengthMismatch(expected: 45, actual: 44)))
        // The outer payload_len still matches, so a short inner datagram is the inner's problem.
        let shortInner = F.header(type: 1, flags: 1, sender: 3) + F.be32(3) + F.be64(12) + F.be32(1) + F.be32(3) + [0]
            + F.be32(4) + [0x70, 0x73, 0x02, 0x01]
        expectRejection(shortInner, .invalidInnerMessage(.truncated(needed: 16, available: 4)))
    }

    @Test("Rejects a delivery mode other than agreed (0) or safe (1)")
    func rejectsInvalidDeliveryMode() {
        expectRejection(F.patch(F.encodings[6], at: 36, [2]), .invalidDeliveryMode(2))
    }

    @Test("Rejects flag bytes other than 0 or 1")
    func rejectsInvalidBoolean() {
        expectRejection(F.patch(F.encodings[0], at: 52, [2]), .invalidBoolean(2, field: "retransmit flag"))
        // commit(1, 1): the entry's received_flg is the last byte.
        let commit = F.encodings[22]
        expectRejection(F.patch(commit, at: commit.count - 1, [0xFF]), .invalidBoolean(0xFF, field: "received flag"))
    }

    @Test("Rejects a datagram larger than maxDatagramBytes")
    func rejectsOversized() {
        let payload = WireLimits.maxDatagramBytes - WireCodec.multicastOverheadBytes + 1
        let bytes = F.header(type: 1, sender: 5) + F.be32(1) + F.be64(8) + F.be32(7) + F.be32(5) + [0]
            + F.be32(UInt32(payload)) + [UInt8](repeating: 0, count: payload)
        expectRejection(bytes, .oversized(WireLimits.maxDatagramBytes + 1))
    }

    @Test("Every rejection reason has a one-line description")
    func descriptions() {
        #expect(WireError.truncated(needed: 4, available: 2).description == "truncated: needed 4 bytes, 2 available")
        #expect(WireError.badMagic(0xC070).description == "bad magic 0xc070")
        #expect(
            WireError.invalidInnerMessage(.nestedEncapsulation).description
                == "invalid encapsulated message: encapsulated message inside an encapsulated message")
        #expect(!WireError.oversized(70_000).description.contains("\n"))
    }
}
