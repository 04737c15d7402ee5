// The receiver side of the packing layer against spec §5.3 (deliverPacket), one rejection test per
// malformed-frame rule, and the receiver's view of restartPartialMessage (the seeded fuzz test is in
// PackingDifferentialTests).
import Testing
@testable import Totem

@Suite("Reassembly (spec §5.3)")
struct FragmentReassemblerTests {
    typealias F = PackingFixtures
    let one = NodeID(1), two = NodeID(2), three = NodeID(3)
    let a: [UInt8] = [1, 1, 1], b: [UInt8] = [2, 2], c: [UInt8] = [3], d: [UInt8] = [4, 4, 4, 4]

    @Test("Complete chunks are delivered in order, one message each")
    func completeChunks() throws {
        var reassembler = FragmentReassembler()
        let frame = F.makeFrame(chunks: [a, [], b])
        #expect(try reassembler.receive(frame, from: one) == [a, [], b])
        #expect(reassembler.incompleteAssemblyCount == 0)
    }

    @Test("Fragments joined across frames, including a 0-byte fragment")
    func fragmentsJoin() throws {
        var reassembler = FragmentReassembler()
        #expect(try reassembler.receive(F.makeFrame(fragmented: 5, chunks: [a, b]), from: one) == [a])
        #expect(reassembler.incompleteAssemblyCount == 1)
        #expect(try reassembler.receive(F.makeFrame(fragmented: 6, continuation: 5, chunks: [[]]), from: one) == [])
        #expect(try reassembler.receive(F.makeFrame(continuation: 6, chunks: [c, d]), from: one) == [b + c, d])
        #expect(reassembler.incompleteAssemblyCount == 0)
    }

    @Test("Spec §5.3: an orphan continuation is discarded, later complete chunks of its frame delivered")
    func orphanContinuation() throws {
        var reassembler = FragmentReassembler()
        // The sender's earlier frames were delivered before we joined.
        #expect(try reassembler.receive(F.makeFrame(continuation: 9, chunks: [a, b, c]), from: one) == [b, c])
        #expect(reassembler.incompleteAssemblyCount == 0)
    }

    @Test("Spec §5.3: an orphan stays discarded to its last fragment")
    func orphanChain() throws {
        var reassembler = FragmentReassembler()
        #expect(try reassembler.receive(F.makeFrame(fragmented: 10, continuation: 9, chunks: [a]), from: one) == [])
        #expect(reassembler.incompleteAssemblyCount == 1)
        #expect(try reassembler.receive(F.makeFrame(continuation: 10, chunks: [b, c]), from: one) == [c])
        #expect(reassembler.incompleteAssemblyCount == 0)
    }

    @Test("Spec §5.3: a continuation with the wrong fragment id is an orphan, the pending message is lost")
    func continuationMismatch() throws {
        var reassembler = FragmentReassembler()
        #expect(try reassembler.receive(F.makeFrame(fragmented: 4, chunks: [a]), from: one) == [])
        #expect(try reassembler.receive(F.makeFrame(continuation: 5, chunks: [b, c]), from: one) == [c])
        // The lost id 4 is no longer awaited either.
        #expect(try reassembler.receive(F.makeFrame(continuation: 4, chunks: [d]), from: one) == [])
    }

    @Test("Spec §5.3: a chunk starting a new message drops an unfinished one")
    func newMessageDropsPending() throws {
        var reassembler = FragmentReassembler()
        #expect(try reassembler.receive(F.makeFrame(fragmented: 1, chunks: [a, b]), from: one) == [a])
        #expect(try reassembler.receive(F.makeFrame(chunks: [c]), from: one) == [c])
        #expect(reassembler.incompleteAssemblyCount == 0)
        #expect(try reassembler.receive(F.makeFrame(continuation: 1, chunks: [d]), from: one) == [])
    }

    @Test("Assemblies are per sender: interleaved frames of two senders both complete")
    func perSenderIndependence() throws {
        var reassembler = FragmentReassembler()
        #expect(try reassembler.receive(F.makeFrame(fragmented: 1, chunks: [a]), from: one) == [])
        #expect(try reassembler.receive(F.makeFrame(fragmented: 1, chunks: [b]), from: two) == [])
        #expect(try reassembler.receive(F.makeFrame(fragmented: 2, continuation: 1, chunks: [c]), from: two) == [])
        #expect(reassembler.incompleteAssemblyCount == 2)
        #expect(try reassembler.receive(F.makeFrame(continuation: 1, chunks: [d, a]), from: one) == [a + d, a])
        #expect(try reassembler.receive(F.makeFrame(continuation: 2, chunks: [d]), from: two) == [b + c + d])
        #expect(reassembler.incompleteAssemblyCount == 0)
    }

    @Test("Spec §5.3 \"ours\": discardIncomplete drops every sender's assembly")
    func discardIncomplete() throws {
        var reassembler = FragmentReassembler()
        _ = try reassembler.receive(F.makeFrame(fragmented: 1, chunks: [a]), from: one)
        _ = try reassembler.receive(F.makeFrame(fragmented: 3, chunks: [b]), from: two)
        reassembler.discardIncomplete()
        #expect(reassembler.incompleteAssemblyCount == 0)
        #expect(try reassembler.receive(F.makeFrame(continuation: 1, chunks: [c, d]), from: one) == [d])
        #expect(try reassembler.receive(F.makeFrame(continuation: 3, chunks: [c]), from: two) == [])
    }

    @Test("Spec §5.3: discard(senders:) drops only the assemblies of those senders")
    func discardSenders() throws {
        var reassembler = FragmentReassembler()
        for sender in [one, two, three] {
            _ = try reassembler.receive(F.makeFrame(fragmented: 1, chunks: [a]), from: sender)
        }
        reassembler.discard(senders: [one, three])
        #expect(reassembler.incompleteAssemblyCount == 1)
        #expect(try reassembler.receive(F.makeFrame(continuation: 1, chunks: [b]), from: one) == [])
        #expect(try reassembler.receive(F.makeFrame(continuation: 1, chunks: [b]), from: two) == [a + b])
        #expect(try reassembler.receive(F.makeFrame(continuation: 1, chunks: [b]), from: three) == [])
    }

    @Test("A message longer than maxMessageBytes is discarded, not grown; the next one is delivered")
    func oversizedMessageDiscarded() throws {
        var reassembler = FragmentReassembler(maxMessageBytes: 100)
        let exact = F.message(size: 100, salt: 1), long = F.message(size: 101, salt: 2)
        for (message, expected) in [(exact, [exact]), (long, []), (exact, [exact])] {
            var packer = FramePacker(frameCapacityBytes: 64)
            packer.enqueue(message, delivery: .agreed)
            var delivered: [[UInt8]] = []
            for frame in F.drain(&packer) { delivered += try reassembler.receive(frame.bytes, from: one) }
            #expect(delivered == expected)
            #expect(reassembler.incompleteAssemblyCount == 0)
        }
        // A single complete chunk longer than the limit is dropped too; its neighbours are not.
        let frame = F.makeFrame(chunks: [a, long, b])
        #expect(try reassembler.receive(frame, from: one) == [a, b])
    }

    @Test("An oversized assembly stays discarded to its end and holds no bytes")
    func oversizedAssemblyStaysDiscarded() throws {
        var reassembler = FragmentReassembler(maxMessageBytes: 4)
        #expect(try reassembler.receive(F.makeFrame(fragmented: 1, chunks: [a]), from: one) == [])
        #expect(try reassembler.receive(F.makeFrame(fragmented: 2, continuation: 1, chunks: [b]), from: one) == [])
        #expect(reassembler.incompleteAssemblyCount == 1)
        #expect(try reassembler.receive(F.makeFrame(continuation: 2, chunks: [[], c]), from: one) == [c])
    }

    // MARK: Rejections (spec §5.3: drop P), one per rule

    @Test("Rejects a frame shorter than its header", arguments: 0..<8)
    func rejectsTruncatedHeader(length: Int) {
        var reassembler = FragmentReassembler()
        let frame = Array(F.makeFrame(chunks: [a]).prefix(length))
        #expect(throws: FrameError.truncated(needed: 8, available: length)) {
            try reassembler.receive(frame, from: one)
        }
    }

    @Test("Rejects a frame announcing no chunks")
    func rejectsZeroChunkCount() {
        var reassembler = FragmentReassembler()
        #expect(throws: FrameError.emptyFrame) {
            try reassembler.receive([0, 0, 0, 0, 0, 0, 0, 0], from: one)
        }
    }

    @Test("Rejects a frame whose chunk-length table is cut short")
    func rejectsTruncatedLengthTable() {
        var reassembler = FragmentReassembler()
        // Announces 65,535 chunks: the table alone would need 131,078 bytes.
        #expect(throws: FrameError.truncated(needed: 8 + 2 * 65_535, available: 11)) {
            try reassembler.receive([0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 1, 9], from: one)
        }
    }

    @Test("Rejects a frame shorter or longer than its chunk lengths add up to")
    func rejectsLengthMismatch() {
        var reassembler = FragmentReassembler()
        let frame = F.makeFrame(chunks: [a, b])  // 8 + 4 + 5 = 17 bytes
        #expect(throws: FrameError.lengthMismatch(expected: 17, actual: 16)) {
            try reassembler.receive(Array(frame.dropLast()), from: one)
        }
        #expect(throws: FrameError.lengthMismatch(expected: 17, actual: 18)) {
            try reassembler.receive(frame + [0], from: one)
        }
        var huge = frame
        huge[8] = 0xFF
        huge[9] = 0xFF  // first chunk claims 65,535 bytes
        #expect(throws: FrameError.lengthMismatch(expected: 12 + 65_535 + 2, actual: 17)) {
            try reassembler.receive(huge, from: one)
        }
    }

    @Test("Rejects a frame of another version")
    func rejectsUnsupportedVersion() {
        var reassembler = FragmentReassembler()
        var frame = F.makeFrame(chunks: [a])
        frame[0] = 0xFF
        frame[1] = 0xFE
        #expect(throws: FrameError.unsupportedVersion(-2)) { try reassembler.receive(frame, from: one) }
    }

    @Test("Rejects a frame of another type")
    func rejectsUnsupportedType() {
        var reassembler = FragmentReassembler()
        var frame = F.makeFrame(chunks: [a])
        frame[3] = 1
        #expect(throws: FrameError.unsupportedType(1)) { try reassembler.receive(frame, from: one) }
    }

    @Test("A rejected frame leaves the sender's assembly as it was")
    func rejectionKeepsAssembly() throws {
        var reassembler = FragmentReassembler()
        _ = try reassembler.receive(F.makeFrame(fragmented: 1, chunks: [a]), from: one)
        #expect(throws: FrameError.self) {
            try reassembler.receive(Array(F.makeFrame(continuation: 1, chunks: [b]).dropLast()), from: one)
        }
        #expect(reassembler.incompleteAssemblyCount == 1)
        #expect(try reassembler.receive(F.makeFrame(continuation: 1, chunks: [b]), from: one) == [a + b])
    }
}

@Suite("Receiving a restarted message (spec §5.3 \"ours\")")
struct RestartReceiverTests {
    typealias F = PackingFixtures
    let long = PackingFixtures.message(size: 150, salt: 1)
    let later = PackingFixtures.message(size: 5, salt: 2)

    /// Frames 1-2 of a 3-frame message, then everything after a restart.
    func framesAroundRestart() throws -> (old: [Frame], new: [Frame]) {
        var packer = FramePacker(frameCapacityBytes: 64)
        packer.enqueue(long, delivery: .agreed)
        packer.enqueue(later, delivery: .agreed)
        let old = [try #require(F.next(&packer)), try #require(F.next(&packer))]
        packer.restartPartialMessage()
        return (old, F.drain(&packer))
    }

    @Test("A receiver that saw the old partial frames delivers the restarted message exactly once",
          arguments: [false, true])
    func deliversOnce(discardingAtConfigurationChange: Bool) throws {
        let (old, new) = try framesAroundRestart()
        var reassembler = FragmentReassembler()
        var delivered: [[UInt8]] = []
        for frame in old { delivered += try reassembler.receive(frame.bytes, from: F.sender) }
        #expect(delivered.isEmpty)
        #expect(reassembler.incompleteAssemblyCount == 1)
        if discardingAtConfigurationChange { reassembler.discardIncomplete() }
        for frame in new { delivered += try reassembler.receive(frame.bytes, from: F.sender) }
        #expect(delivered == [long, later])
        #expect(reassembler.incompleteAssemblyCount == 0)
    }

    @Test("A receiver that joined in the new ring sees only the new frames and delivers the same")
    func newMemberDeliversSame() throws {
        let (_, new) = try framesAroundRestart()
        #expect(F.reassemble(new) == [long, later])
    }
}
