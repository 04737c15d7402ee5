// Differential checks of the packing layer (after raft's quorum/quick_test.go): the packer and the
// reassembler, driven by seeded random runs, against the trivial model "every message comes out
// once, whole, in the order it went in"; and a seeded fuzz test of the reassembler.
import Testing
@testable import Totem


@Suite("Packing, differential (spec §5)")
struct PackingDifferentialTests {
    typealias F = PackingFixtures

    /// A random message size: mostly small, often up to 5,000 bytes, rarely up to 100 KB.
    private static func messageSize(_ random: inout SplitMix64) -> Int {
        switch random.int(below: 100) {
        case 0..<60: random.int(below: 200)
        case 60..<98: random.int(below: 5_001)
        default: random.int(below: 100_001)
        }
    }

    /// One run: messages enqueued, frames taken and restarts made in a random interleaving; every
    /// frame goes to one receiver that saw everything, and the frames after the last restart also go
    /// to a receiver that joined then. Returns a description of the first disagreement, if any.
    private static func run(seed: UInt64) -> String? {
        var random = SplitMix64(seed: seed)
        let capacity = 64 + random.int(below: 1_500 - 64 + 1)
        let messageCount = 1 + random.int(below: 12)
        let messages = (0..<messageCount).map { F.message(size: messageSize(&random), salt: $0 &+ Int(seed)) }
        let modes = messages.map { _ in random.chance(percent: 30) ? DeliveryMode.safe : .agreed }
        // Restarts are bounded: each one undoes the head message's progress, so unbounded random
        // restarts would keep a long message from ever completing.
        var restartsLeft = random.chance(percent: 50) ? 1 + random.int(below: 3) : 0

        var packer = FramePacker(frameCapacityBytes: capacity)
        var receiver = FragmentReassembler(maxMessageBytes: 100_000)
        // A member that joined at the last restart: it must deliver every message completed since.
        var lateReceiver: FragmentReassembler? = nil
        var lateStart = 0
        var lateDelivered: [[UInt8]] = []
        var delivered: [[UInt8]] = []
        var deliveredModes: [DeliveryMode] = []
        var enqueued = 0
        var enqueuedBytes = 0, deliveredBytes = 0
        var partlyFramedBytes = 0  // The model's view of the head message's framed bytes.

        while enqueued < messageCount || !packer.isEmpty {
            let action = random.int(below: 100)
            if enqueued < messageCount && (packer.isEmpty || action < 30) {
                packer.enqueue(messages[enqueued], delivery: modes[enqueued])
                enqueuedBytes += messages[enqueued].count
                enqueued += 1
            } else if restartsLeft > 0 && action < 40 {
                // A REGULAR configuration: the sender restarts, every receiver drops assemblies.
                restartsLeft -= 1
                packer.restartPartialMessage()
                partlyFramedBytes = 0
                lateReceiver = FragmentReassembler(maxMessageBytes: 100_000)
                lateStart = delivered.count
                lateDelivered = []
                if random.chance(percent: 50) { receiver.discardIncomplete() }
            } else {
                guard let frame = packer.nextFrame() else { return "seed \(seed): nil frame from a non-empty packer" }
                guard frame.bytes.count <= capacity else {
                    return "seed \(seed): frame of \(frame.bytes.count) bytes, capacity \(capacity)"
                }
                guard let layout = try? FrameLayout(parsing: frame.bytes) else { return "seed \(seed): malformed frame" }
                let lastChunkBytes = Array(layout.chunkRanges(in: frame.bytes)).last?.count ?? 0
                if layout.header.fragmented == 0 {
                    partlyFramedBytes = 0  // The frame ends with a complete message.
                } else if layout.header.chunkCount == 1 && layout.header.continuation != 0 {
                    partlyFramedBytes += lastChunkBytes  // A middle part of the same message.
                } else {
                    partlyFramedBytes = lastChunkBytes  // The first part of a message.
                }
                let completed: [[UInt8]]
                do {
                    completed = try receiver.receive(frame.bytes, from: F.sender)
                } catch {
                    return "seed \(seed): receiver rejected a packed frame: \(error)"
                }
                do {
                    lateDelivered += try lateReceiver?.receive(frame.bytes, from: F.sender) ?? []
                } catch {
                    return "seed \(seed): late receiver rejected a packed frame: \(error)"
                }
                for message in completed {
                    delivered.append(message)
                    deliveredModes.append(frame.delivery)
                    deliveredBytes += message.count
                }
            }
            // The packer holds exactly the messages not delivered yet, minus what of the head is framed.
            guard packer.pendingMessageCount == enqueued - delivered.count else {
                return "seed \(seed): \(packer.pendingMessageCount) pending, model \(enqueued - delivered.count)"
            }
            let expectedPendingBytes = enqueuedBytes - deliveredBytes - partlyFramedBytes
            guard packer.pendingBytes == expectedPendingBytes else {
                return "seed \(seed): \(packer.pendingBytes) bytes pending, model \(expectedPendingBytes)"
            }
            guard (packer.estimatedFrameCount == 0) == packer.isEmpty else {
                return "seed \(seed): estimate \(packer.estimatedFrameCount) with \(packer.pendingMessageCount) pending"
            }
        }
        guard delivered == messages else {
            return "seed \(seed): delivered \(delivered.map(\.count)), expected \(messages.map(\.count))"
        }
        guard lateReceiver == nil || lateDelivered == Array(messages[lateStart...]) else {
            return "seed \(seed): a member joined at the restart delivered \(lateDelivered.map(\.count))"
        }
        guard deliveredModes == modes else { return "seed \(seed): a frame carried a message of another mode" }
        guard receiver.incompleteAssemblyCount == 0 else { return "seed \(seed): an assembly left over" }
        return nil
    }

    @Test("2,000 random runs with interleaved enqueues and restarts deliver every message once, in order")
    func randomRunsMatchTheModel() {
        var failures: [String] = []
        for seed in 0..<2_000 as Range<UInt64> {
            if let failure = Self.run(seed: seed) { failures.append(failure) }
            if failures.count >= 5 { break }
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test("The frame estimate stays within a factor of two of the frames actually built")
    func estimateIsClose() {
        var random = SplitMix64(seed: 0xE571_3A7E)
        for _ in 0..<300 {
            let capacity = 64 + random.int(below: 1_500 - 64 + 1)
            var packer = FramePacker(frameCapacityBytes: capacity)
            for _ in 0..<(1 + random.int(below: 20)) {
                let size = random.chance(percent: 80) ? random.int(below: 100) : random.int(below: 3_000)
                packer.enqueue([UInt8](repeating: 0, count: size), delivery: random.chance(percent: 20) ? .safe : .agreed)
            }
            let estimate = packer.estimatedFrameCount
            var actual = 0
            while packer.nextFrame() != nil { actual += 1 }
            #expect(estimate <= 2 * actual && actual <= 2 * estimate, "estimate \(estimate), actual \(actual), capacity \(capacity)")
        }
    }

    @Test("Seeded fuzz: truncated, bit-flipped and random frames are delivered or rejected, never trap")
    func fuzzNeverTraps() {
        var random = SplitMix64(seed: 0x5EED_F00D)
        var reassembler = FragmentReassembler(maxMessageBytes: 300)
        var packer = FramePacker(frameCapacityBytes: 64)
        var accepted = 0, rejected = 0
        for round in 0..<3_000 {
            if packer.isEmpty {
                for _ in 0..<8 { packer.enqueue(F.message(size: random.int(below: 200), salt: round), delivery: .agreed) }
            }
            guard var frame = packer.nextFrame()?.bytes else { continue }
            switch random.int(below: 4) {
            case 0: frame = Array(frame.prefix(random.int(below: frame.count + 1)))
            case 1:
                let bit = random.int(below: frame.count * 8)
                frame[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            case 2: frame = (0..<random.int(below: 40)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            default: break
            }
            do {
                let messages = try reassembler.receive(frame, from: NodeID(UInt32(1 + random.int(below: 3))))
                #expect(messages.allSatisfy { $0.count <= 300 })
                accepted += 1
            } catch {
                rejected += 1
            }
        }
        #expect(accepted > 0 && rejected > 0)
    }
}
