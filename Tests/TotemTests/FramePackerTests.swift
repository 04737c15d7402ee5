// The sender side of the packing layer against spec §5.1 (layout) and §5.2 (packing rules, lazy
// framing), and restartPartialMessage against spec §5.3 "ours". Also holds the shared fixtures.
import Testing
@testable import Totem

/// Helpers shared by the packing tests.
enum PackingFixtures {
    static let sender = NodeID(7)

    /// A frame taken apart: its header fields and its chunks.
    struct DecodedFrame: Equatable {
        var fragmented: UInt8
        var continuation: UInt8
        var chunks: [[UInt8]]
    }

    /// A message of `size` bytes whose content depends on `salt` and on each byte's position (period
    /// 2^24), so a misplaced, repeated or missing chunk shows.
    static func message(size: Int, salt: Int = 0) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 ^ ($0 >> 8) &* 7 ^ ($0 >> 16) &* 13 &+ salt &* 101) }
    }

    /// Builds a frame by hand with the production header encoder.
    static func makeFrame(fragmented: UInt8 = 0, continuation: UInt8 = 0, chunks: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        FrameHeader(fragmented: fragmented, continuation: continuation, chunkCount: chunks.count)
            .encode(chunkLengths: chunks.map(\.count), into: &bytes)
        for chunk in chunks { bytes.append(contentsOf: chunk) }
        return bytes
    }

    /// Decodes a frame the packer built; records an issue if it is malformed or too large.
    static func decode(_ frame: Frame, capacity: Int, sourceLocation: SourceLocation = #_sourceLocation) -> DecodedFrame? {
        #expect(frame.bytes.count <= capacity, "frame of \(frame.bytes.count) bytes exceeds \(capacity)",
                sourceLocation: sourceLocation)
        do {
            let layout = try FrameLayout(parsing: frame.bytes)
            #expect(layout.header.chunkCount >= 1, sourceLocation: sourceLocation)
            return DecodedFrame(
                fragmented: layout.header.fragmented, continuation: layout.header.continuation,
                chunks: layout.chunkRanges(in: frame.bytes).map { Array(frame.bytes[$0]) })
        } catch {
            Issue.record("packer built a malformed frame: \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// Takes the next frame and checks its size and layout.
    static func next(_ packer: inout FramePacker, sourceLocation: SourceLocation = #_sourceLocation) -> Frame? {
        guard let frame = packer.nextFrame() else { return nil }
        _ = decode(frame, capacity: packer.frameCapacityBytes, sourceLocation: sourceLocation)
        return frame
    }

    /// Takes every frame until the packer is empty, checking each one.
    static func drain(_ packer: inout FramePacker, sourceLocation: SourceLocation = #_sourceLocation) -> [Frame] {
        var frames: [Frame] = []
        while let frame = next(&packer, sourceLocation: sourceLocation) { frames.append(frame) }
        #expect(packer.isEmpty && packer.pendingBytes == 0 && packer.estimatedFrameCount == 0,
                sourceLocation: sourceLocation)
        return frames
    }

    /// Feeds frames to a fresh reassembler and returns every message completed.
    static func reassemble(_ frames: [Frame], sourceLocation: SourceLocation = #_sourceLocation) -> [[UInt8]] {
        var reassembler = FragmentReassembler()
        var messages: [[UInt8]] = []
        for frame in frames {
            do {
                messages += try reassembler.receive(frame.bytes, from: sender)
            } catch {
                Issue.record("reassembler rejected a packed frame: \(error)", sourceLocation: sourceLocation)
            }
        }
        #expect(reassembler.incompleteAssemblyCount == 0, sourceLocation: sourceLocation)
        return messages
    }
}

@Suite("Packing (spec §5.1, §5.2)")
struct FramePackerTests {
    typealias F = PackingFixtures

    @Test("Spec §5.1: the frame layout, byte for byte")
    func frameLayoutByteForByte() throws {
        var packer = FramePacker(frameCapacityBytes: 64)
        packer.enqueue([0xAA, 0xBB], delivery: .agreed)
        packer.enqueue([], delivery: .agreed)
        packer.enqueue([0xCC], delivery: .agreed)
        let frame = try #require(F.next(&packer))
        #expect(frame.bytes == [
            0x00, 0x00, 0x00, 0x00,  // version 0, type 0
            0x00, 0x00,              // fragmented 0, continuation 0
            0x00, 0x03,              // msg_count 3
            0x00, 0x02, 0x00, 0x00, 0x00, 0x01,  // lens
            0xAA, 0xBB, 0xCC,        // chunks
        ])
        #expect(frame.delivery == .agreed)
        #expect(packer.nextFrame() == nil)
    }

    @Test("Spec §5.2: many tiny messages share one frame, one chunk each")
    func tinyMessagesShareAFrame() throws {
        var packer = FramePacker(frameCapacityBytes: 100)
        let messages = (0..<10).map { F.message(size: 3, salt: $0) }
        for message in messages { packer.enqueue(message, delivery: .safe) }
        #expect(packer.pendingMessageCount == 10)
        #expect(packer.pendingBytes == 30)
        #expect(packer.estimatedFrameCount == 1)
        let frames = F.drain(&packer)
        try #require(frames.count == 1)
        let decoded = try #require(F.decode(frames[0], capacity: 100))
        #expect(decoded == F.DecodedFrame(fragmented: 0, continuation: 0, chunks: messages))
        #expect(frames[0].delivery == .safe)
    }

    @Test("Spec §5.2: tiny messages fill frames to capacity, then spill into the next")
    func tinyMessagesFillFrames() throws {
        // 64-byte frames: 56 bytes after the header, so eleven 3-byte messages (5 bytes each) fit.
        var packer = FramePacker(frameCapacityBytes: 64)
        let messages = (0..<25).map { F.message(size: 3, salt: $0) }
        for message in messages { packer.enqueue(message, delivery: .agreed) }
        let frames = F.drain(&packer)
        let counts = frames.compactMap { F.decode($0, capacity: 64)?.chunks.count }
        #expect(counts == [11, 11, 3])
        #expect(F.reassemble(frames) == messages)
    }

    @Test("0-byte messages are chunks of length 0 and come out as empty messages")
    func zeroByteMessages() throws {
        var packer = FramePacker(frameCapacityBytes: 64)
        for _ in 0..<30 { packer.enqueue([], delivery: .agreed) }
        #expect(packer.pendingBytes == 0)
        #expect(!packer.isEmpty)
        #expect(packer.estimatedFrameCount == 2)
        let frames = F.drain(&packer)
        // 56 bytes after the header hold 28 length entries.
        #expect(frames.compactMap { F.decode($0, capacity: 64)?.chunks.count } == [28, 2])
        #expect(F.reassemble(frames) == Array(repeating: [], count: 30))
    }

    @Test("A message of exactly the room left fills the frame and is not fragmented")
    func messageOfExactlyTheRoomLeft() throws {
        var packer = FramePacker(frameCapacityBytes: 64)
        let first = F.message(size: 10, salt: 1)
        let exact = F.message(size: 64 - 8 - 2 - 10 - 2, salt: 2)  // 42 bytes
        let next = F.message(size: 5, salt: 3)
        packer.enqueue(first, delivery: .agreed)
        packer.enqueue(exact, delivery: .agreed)
        packer.enqueue(next, delivery: .agreed)
        let frames = F.drain(&packer)
        try #require(frames.count == 2)
        #expect(frames[0].bytes.count == 64)
        #expect(F.decode(frames[0], capacity: 64) == F.DecodedFrame(fragmented: 0, continuation: 0, chunks: [first, exact]))
        #expect(F.decode(frames[1], capacity: 64) == F.DecodedFrame(fragmented: 0, continuation: 0, chunks: [next]))
    }

    @Test("A message one byte longer than the room left is fragmented, the last byte continuing")
    func messageOneByteTooLong() throws {
        var packer = FramePacker(frameCapacityBytes: 64)
        let first = F.message(size: 10, salt: 1)
        let long = F.message(size: 43, salt: 2)
        packer.enqueue(first, delivery: .agreed)
        packer.enqueue(long, delivery: .agreed)
        let frames = F.drain(&packer)
        try #require(frames.count == 2)
        #expect(F.decode(frames[0], capacity: 64)
                == F.DecodedFrame(fragmented: 1, continuation: 0, chunks: [first, Array(long[..<42])]))
        #expect(F.decode(frames[1], capacity: 64)
                == F.DecodedFrame(fragmented: 0, continuation: 1, chunks: [Array(long[42...])]))
        #expect(F.reassemble(frames) == [first, long])
    }

    @Test("With less than minimumFragmentBytes left, the frame closes and the message starts the next")
    func noTinyFragments() throws {
        var packer = FramePacker(frameCapacityBytes: 64)
        let first = F.message(size: 40, salt: 1)  // leaves 64 - 8 - 42 - 2 = 12 bytes for the next chunk
        let second = F.message(size: 20, salt: 2)
        packer.enqueue(first, delivery: .agreed)
        packer.enqueue(second, delivery: .agreed)
        #expect(12 < FramePacker.minimumFragmentBytes)
        let frames = F.drain(&packer)
        #expect(frames.compactMap { F.decode($0, capacity: 64) } == [
            F.DecodedFrame(fragmented: 0, continuation: 0, chunks: [first]),
            F.DecodedFrame(fragmented: 0, continuation: 0, chunks: [second]),
        ])
    }

    @Test("Issue #319: a message after a fragment's tail starts its own chunk")
    func neverConcatenatesMessagesIntoOneChunk() throws {
        var packer = FramePacker(frameCapacityBytes: 64)
        let a = F.message(size: 60, salt: 1)   // 54 bytes, then a 6-byte tail
        let b = F.message(size: 100, salt: 2)  // 46 bytes after a's tail, then 54
        packer.enqueue(a, delivery: .agreed)
        packer.enqueue(b, delivery: .agreed)
        let frames = F.drain(&packer)
        #expect(frames.compactMap { F.decode($0, capacity: 64) } == [
            F.DecodedFrame(fragmented: 1, continuation: 0, chunks: [Array(a[..<54])]),
            F.DecodedFrame(fragmented: 2, continuation: 1, chunks: [Array(a[54...]), Array(b[..<46])]),
            F.DecodedFrame(fragmented: 0, continuation: 2, chunks: [Array(b[46...])]),
        ])
        #expect(F.reassemble(frames) == [a, b])
    }

    @Test("A 1 MiB message fragments into ceil(size / (capacity - 10)) frames and reassembles identically")
    func oneMebibyteMessage() throws {
        var packer = FramePacker(frameCapacityBytes: 1_300)
        let big = F.message(size: 1 << 20, salt: 9)
        let after = F.message(size: 100, salt: 10)
        packer.enqueue(big, delivery: .agreed)
        packer.enqueue(after, delivery: .agreed)
        let estimate = packer.estimatedFrameCount
        let frames = F.drain(&packer)
        let decoded = frames.compactMap { F.decode($0, capacity: 1_300) }
        // 1,290 data bytes per frame: 813 frames, the last holding 1,096 bytes and the next message.
        #expect(frames.count == 813)
        #expect(abs(estimate - frames.count) <= 2, "estimate \(estimate), actual \(frames.count)")
        #expect(decoded.dropLast().allSatisfy { $0.chunks.count == 1 && $0.fragmented != 0 })
        #expect(decoded.last?.chunks.map(\.count) == [(1 << 20) - 812 * 1_290, 100])
        for (previous, current) in zip(decoded, decoded.dropFirst()) {
            #expect(current.continuation == previous.fragmented)
        }
        #expect(decoded.first?.continuation == 0)
        #expect(F.reassemble(frames) == [big, after])
    }

    @Test("Agreed and safe messages never share a frame")
    func mixedDeliveryModesNeverShareAFrame() throws {
        var packer = FramePacker(frameCapacityBytes: 200)
        let modes: [DeliveryMode] = [.agreed, .agreed, .safe, .safe, .agreed, .safe]
        let messages = modes.indices.map { F.message(size: 5, salt: $0) }
        for (message, mode) in zip(messages, modes) { packer.enqueue(message, delivery: mode) }
        #expect(packer.estimatedFrameCount == 4)
        let frames = F.drain(&packer)
        #expect(frames.map(\.delivery) == [.agreed, .safe, .agreed, .safe])
        #expect(frames.compactMap { F.decode($0, capacity: 200)?.chunks.count } == [2, 2, 1, 1])
        #expect(F.reassemble(frames) == messages)
    }

    @Test("A fragmented message of one mode is finished before a message of the other starts")
    func fragmentThenModeChange() throws {
        var packer = FramePacker(frameCapacityBytes: 64)
        let long = F.message(size: 70, salt: 1)
        let safe = F.message(size: 4, salt: 2)
        packer.enqueue(long, delivery: .agreed)
        packer.enqueue(safe, delivery: .safe)
        let frames = F.drain(&packer)
        #expect(frames.map(\.delivery) == [.agreed, .agreed, .safe])
        #expect(frames.compactMap { F.decode($0, capacity: 64)?.chunks.count } == [1, 1, 1])
        #expect(F.reassemble(frames) == [long, safe])
    }

    @Test("Spec §5.1: fragment ids cycle 1...255 and skip 0")
    func fragmentIDsCycle() throws {
        var packer = FramePacker(frameCapacityBytes: 64)
        // Each 60-byte message is one fragment of 54 bytes, then a tail of 6 beside the next start.
        let messages = (0..<600).map { F.message(size: 60, salt: $0) }
        for message in messages { packer.enqueue(message, delivery: .agreed) }
        let frames = F.drain(&packer)
        let decoded = frames.compactMap { F.decode($0, capacity: 64) }
        let ids = decoded.map(\.fragmented).filter { $0 != 0 }
        #expect(ids.count > 255)
        #expect(ids == ids.indices.map { UInt8($0 % 255 + 1) })
        for (previous, current) in zip(decoded, decoded.dropFirst()) {
            #expect(current.continuation == previous.fragmented)
        }
        #expect(F.reassemble(frames) == messages)
    }

    @Test("Counters follow framing: pending messages, pending bytes, estimate, emptiness")
    func countersFollowFraming() throws {
        var packer = FramePacker(frameCapacityBytes: 64)
        #expect(packer.isEmpty && packer.pendingMessageCount == 0 && packer.estimatedFrameCount == 0)
        #expect(packer.nextFrame() == nil)
        packer.enqueue(F.message(size: 100), delivery: .agreed)
        packer.enqueue(F.message(size: 4), delivery: .agreed)
        #expect(packer.pendingMessageCount == 2 && packer.pendingBytes == 104)
        #expect(packer.estimatedFrameCount == 2)  // 108 bytes with length entries, 56 a frame
        _ = try #require(F.next(&packer))
        #expect(packer.pendingMessageCount == 2 && packer.pendingBytes == 50)
        _ = try #require(F.next(&packer))
        #expect(packer.pendingMessageCount == 0 && packer.pendingBytes == 0 && packer.isEmpty)
        #expect(packer.estimatedFrameCount == 0)
    }

    @Test("A long queue keeps FIFO order and its counters while taken from the front and refilled")
    func longQueueOrder() throws {
        var packer = FramePacker(frameCapacityBytes: 64)
        var messages: [[UInt8]] = []
        var frames: [Frame] = []
        for batch in 0..<3 {
            for index in 0..<5_000 {
                let message = F.message(size: index % 7, salt: batch * 5_000 + index)
                messages.append(message)
                packer.enqueue(message, delivery: index % 1_000 == 999 ? .safe : .agreed)
            }
            // Take about three quarters of what is queued, so the queue front moves far and refills.
            for _ in 0..<(packer.estimatedFrameCount * 3 / 4) {
                frames.append(try #require(F.next(&packer)))
            }
            #expect(packer.pendingMessageCount == messages.count - F.reassemble(frames).count)
        }
        frames += F.drain(&packer)
        #expect(F.reassemble(frames) == messages)
    }

    @Test("Framing is lazy: messages enqueued between frames join the next frame")
    func lazyFraming() throws {
        var packer = FramePacker(frameCapacityBytes: 64)
        let a = F.message(size: 3, salt: 1), b = F.message(size: 3, salt: 2), c = F.message(size: 3, salt: 3)
        packer.enqueue(a, delivery: .agreed)
        let first = try #require(F.next(&packer))
        packer.enqueue(b, delivery: .agreed)
        packer.enqueue(c, delivery: .agreed)
        let second = try #require(F.next(&packer))
        #expect(F.decode(first, capacity: 64)?.chunks == [a])
        #expect(F.decode(second, capacity: 64)?.chunks == [b, c])
    }
}

@Suite("Restarting a partly framed message (spec §5.3 \"ours\")")
struct RestartPartialMessageTests {
    typealias F = PackingFixtures

    /// A 150-byte message takes three 64-byte frames (54 + 54 + 42 bytes); a 5-byte one follows.
    let long = PackingFixtures.message(size: 150, salt: 1)
    let later = PackingFixtures.message(size: 5, salt: 2)

    func loadedPacker() -> FramePacker {
        var packer = FramePacker(frameCapacityBytes: 64)
        packer.enqueue(long, delivery: .agreed)
        packer.enqueue(later, delivery: .agreed)
        return packer
    }

    @Test("After two of three frames, a restart frames the message again from its first byte")
    func restartAfterTwoOfThreeFrames() throws {
        var packer = loadedPacker()
        let old = [try #require(F.next(&packer)), try #require(F.next(&packer))]
        #expect(old.compactMap { F.decode($0, capacity: 64)?.fragmented } == [1, 2])
        #expect(packer.pendingBytes == 150 + 5 - 108)
        packer.restartPartialMessage()
        #expect(packer.pendingBytes == 155)
        #expect(packer.pendingMessageCount == 2)
        let frames = F.drain(&packer)
        let decoded = frames.compactMap { F.decode($0, capacity: 64) }
        #expect(decoded == [
            F.DecodedFrame(fragmented: 3, continuation: 0, chunks: [Array(long[..<54])]),
            F.DecodedFrame(fragmented: 4, continuation: 3, chunks: [Array(long[54..<108])]),
            F.DecodedFrame(fragmented: 0, continuation: 4, chunks: [Array(long[108...]), later]),
        ])
        #expect(F.reassemble(frames) == [long, later])
    }

    @Test("Without a partly framed message, a restart changes nothing")
    func restartWithoutPartialMessage() throws {
        var restarted = FramePacker(frameCapacityBytes: 64)
        var untouched = FramePacker(frameCapacityBytes: 64)
        let messages = [F.message(size: 54, salt: 1), F.message(size: 80, salt: 2)]
        for message in messages {
            restarted.enqueue(message, delivery: .agreed)
            untouched.enqueue(message, delivery: .agreed)
        }
        restarted.restartPartialMessage()  // Nothing framed yet.
        #expect(F.next(&restarted) == F.next(&untouched))  // The first message, whole.
        restarted.restartPartialMessage()  // The last frame ended with a complete message.
        #expect(F.drain(&restarted) == F.drain(&untouched))
    }

    @Test("Messages behind a restarted one keep FIFO order, also across delivery modes")
    func restartKeepsFifoOrder() throws {
        var packer = FramePacker(frameCapacityBytes: 64)
        let messages = [
            F.message(size: 200, salt: 1), F.message(size: 3, salt: 2), F.message(size: 70, salt: 3),
            F.message(size: 0, salt: 4),
        ]
        let modes: [DeliveryMode] = [.safe, .safe, .agreed, .agreed]
        for (message, mode) in zip(messages, modes) { packer.enqueue(message, delivery: mode) }
        _ = try #require(F.next(&packer))
        packer.restartPartialMessage()
        let frames = F.drain(&packer)
        #expect(frames.map(\.delivery) == [.safe, .safe, .safe, .safe, .agreed, .agreed])
        #expect(F.decode(frames[0], capacity: 64)?.continuation == 0)
        #expect(F.reassemble(frames) == messages)
    }
}
