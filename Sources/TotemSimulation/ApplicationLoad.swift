// The simulated application: the envelope that makes every payload identifiable and checkable,
// and the random submission schedule of one node. It does not talk to the core itself.

import Totem

/// The 12-byte envelope in front of every payload the simulator submits: sender node,
/// incarnation and message index, big-endian. The rest is the body (deterministic filler for
/// generated load, the caller's bytes for scripted submissions). The trace records the size
/// and FNV-1a digest of the whole payload at submission, so the checker can tell that a
/// delivered message was sent and arrived unaltered (E1).
public enum MessageEnvelope {
    public static let headerBytes = 12

    /// The payload for message `id` with `body` after the envelope.
    public static func make(_ id: MessageID, body: [UInt8]) -> [UInt8] {
        var payload: [UInt8] = []
        payload.reserveCapacity(headerBytes + body.count)
        append(id.node.rawValue, to: &payload)
        append(id.incarnation, to: &payload)
        append(id.index, to: &payload)
        payload.append(contentsOf: body)
        return payload
    }

    /// The payload of generated message `id` with a deterministic filler body of `bodyBytes`.
    public static func makeGenerated(_ id: MessageID, bodyBytes: Int) -> [UInt8] {
        var payload: [UInt8] = []
        payload.reserveCapacity(headerBytes + bodyBytes)
        append(id.node.rawValue, to: &payload)
        append(id.incarnation, to: &payload)
        append(id.index, to: &payload)
        var state = UInt64(id.node.rawValue) << 40 ^ UInt64(id.incarnation) << 32 ^ UInt64(id.index)
        var remaining = bodyBytes
        while remaining > 0 {
            // A cheap xorshift stream: content only has to differ between messages.
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            var word = state
            for _ in 0..<min(8, remaining) {
                payload.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
            remaining -= 8
        }
        return payload
    }

    /// The message id in `payload`'s envelope, `nil` if the payload is too short or names node 0.
    public static func id(of payload: [UInt8]) -> MessageID? {
        guard payload.count >= headerBytes else { return nil }
        let node = read(payload, at: 0)
        guard let nodeID = NodeID(rawValue: node) else { return nil }
        return MessageID(node: nodeID, incarnation: read(payload, at: 4), index: read(payload, at: 8))
    }

    /// The caller's part of a payload (everything after the envelope).
    public static func body(of payload: [UInt8]) -> ArraySlice<UInt8> {
        payload.dropFirst(headerBytes)
    }

    /// 64-bit FNV-1a of `bytes`.
    public static func digest(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        bytes.withUnsafeBufferPointer { buffer in
            for byte in buffer {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01B3
            }
        }
        return hash
    }

    private static func append(_ value: UInt32, to payload: inout [UInt8]) {
        payload.append(UInt8(truncatingIfNeeded: value >> 24))
        payload.append(UInt8(truncatingIfNeeded: value >> 16))
        payload.append(UInt8(truncatingIfNeeded: value >> 8))
        payload.append(UInt8(truncatingIfNeeded: value))
    }

    private static func read(_ payload: [UInt8], at offset: Int) -> UInt32 {
        UInt32(payload[offset]) << 24 | UInt32(payload[offset + 1]) << 16
            | UInt32(payload[offset + 2]) << 8 | UInt32(payload[offset + 3])
    }
}

/// The parameters of the generated application load.
public struct LoadProfile: Sendable, Equatable {
    /// Messages per second per node (0: no load).
    public var rate: Double
    /// Largest payload in bytes; sizes are uniform in `headerBytes ... maxSize` (at least the envelope).
    public var maxSize: Int
    /// Fraction of messages submitted with safe delivery.
    public var safeFraction: Double

    public init(rate: Double = 50, maxSize: Int = 300, safeFraction: Double = 0) {
        self.rate = rate
        self.maxSize = maxSize
        self.safeFraction = safeFraction
    }
}

/// The submission schedule of one node's application: when it next submits and what.
///
/// Interarrival times are uniform in `[0.5, 1.5] / rate`. A message refused with `tryAgain`
/// stays pending and is offered again at the next tick; it gets its id only when accepted.
struct ApplicationLoad {
    private var random: SeededGenerator
    let profile: LoadProfile
    /// The next submission time (nanoseconds), `nil` when the load is off.
    private(set) var nextTick: Int64?
    /// Body size and delivery mode of the message waiting to be accepted.
    private var pending: (bodyBytes: Int, delivery: DeliveryMode)?

    init(profile: LoadProfile, random: SeededGenerator, start: Int64) {
        self.profile = profile
        self.random = random
        nextTick = nil
        if profile.rate > 0 { nextTick = start + interarrival() }
    }

    private mutating func interarrival() -> Int64 {
        let mean = 1e9 / profile.rate
        return max(1, Int64(mean * (0.5 + random.nextUnit())))
    }

    /// The message to offer now (generated on first use and kept until accepted).
    mutating func currentMessage() -> (bodyBytes: Int, delivery: DeliveryMode) {
        if let pending { return pending }
        let largestBody = max(0, profile.maxSize - MessageEnvelope.headerBytes)
        let bodyBytes = Int(random.integer(in: 0...Int64(largestBody)))
        let delivery: DeliveryMode = random.chance(profile.safeFraction) ? .safe : .agreed
        pending = (bodyBytes, delivery)
        return (bodyBytes, delivery)
    }

    /// The pending message was accepted.
    mutating func accepted() { pending = nil }

    /// Moves the schedule to the next tick.
    mutating func advance() {
        guard let tick = nextTick else { return }
        nextTick = tick + interarrival()
    }

    /// Stops submitting.
    mutating func stop() { nextTick = nil }
}
