// TEMPORARY minimal packer (one message per frame chain) until the packing layer lands.
public struct Frame: Sendable, Equatable {
    public var bytes: [UInt8]
    public var delivery: DeliveryMode
}

public struct FramePacker: Sendable {
    let capacity: Int
    var queue: [([UInt8], DeliveryMode)] = []
    var head = 0
    var offset = 0
    var nextFragment: UInt8 = 1
    var continuation: UInt8 = 0
    public private(set) var pendingBytes = 0

    public init(frameCapacityBytes: Int) { capacity = frameCapacityBytes }
    public mutating func enqueue(_ message: [UInt8], delivery: DeliveryMode) {
        queue.append((message, delivery)); pendingBytes += message.count
    }
    public var isEmpty: Bool { head == queue.count }
    public var pendingMessageCount: Int { queue.count - head }
    public var estimatedFrameCount: Int { pendingBytes / (capacity - 10) + pendingMessageCount }
    public mutating func nextFrame() -> Frame? {
        guard head < queue.count else { return nil }
        let (message, mode) = queue[head]
        let room = capacity - 10
        let part = min(room, message.count - offset)
        var bytes: [UInt8] = [0, 0, 0, 0]
        let done = offset + part == message.count
        var fragmented: UInt8 = 0
        if !done { fragmented = nextFragment; nextFragment = nextFragment == 255 ? 1 : nextFragment + 1 }
        bytes.append(fragmented); bytes.append(continuation)
        bytes.append(0); bytes.append(1)
        bytes.append(UInt8(part >> 8)); bytes.append(UInt8(part & 0xFF))
        bytes.append(contentsOf: message[offset..<offset + part])
        offset += part; pendingBytes -= part
        continuation = fragmented
        if done { head += 1; offset = 0 }
        if head == queue.count { queue.removeAll(); head = 0 }
        return Frame(bytes: bytes, delivery: mode)
    }
    public mutating func restartPartialMessage() {
        if offset > 0 { pendingBytes += offset; offset = 0; continuation = 0 }
    }
}
