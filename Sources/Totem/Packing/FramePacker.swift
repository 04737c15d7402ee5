// The sender side of the packing layer (spec §5.2, framed lazily): a FIFO of whole application
// messages, cut into SRP frames one at a time when the ordering protocol may send one. It enforces
// no size or queue limits (the core does) and does no I/O.

/// One SRP frame ready to be sequenced: the packing layer's payload of one data message.
public struct Frame: Sendable, Equatable {
    /// The frame in the layout of `FrameFormat` (spec §5.1).
    public var bytes: [UInt8]
    /// The delivery service of every message whose chunks the frame carries.
    public var delivery: DeliveryMode

    /// Creates a frame from its encoded bytes and delivery service.
    public init(bytes: [UInt8], delivery: DeliveryMode) {
        self.bytes = bytes
        self.delivery = delivery
    }
}

/// Turns application messages of any size into SRP frames of at most `frameCapacityBytes`: small
/// messages are packed several to a frame, large ones fragmented across frames (spec §5.1, §5.2).
///
/// Departure from corosync (see `Totem`): there is no staging buffer. Messages stay whole in a FIFO
/// until the core holds the token and may originate one more message; it then calls `nextFrame()`
/// and sequences the frame at once. Packing therefore adds no latency, and the spec's "flush the
/// staging buffer on token" step does not exist. A message stays here until its last chunk is
/// framed, so a message straddling a configuration change can be framed again whole
/// (`restartPartialMessage()`, spec §5.3 "ours").
///
/// Packing rules, in the order `nextFrame()` applies them:
/// - A frame carries messages of one `DeliveryMode`; a message of the other mode closes it.
/// - Every message starts a new chunk; two messages never share one (corosync issue #319).
/// - Whole messages are appended while they fit. A message that does not fit is split, its first
///   part ending the frame as a fragment, if at least `minimumFragmentBytes` of it fit; otherwise
///   the frame is closed and the message starts the next one.
/// - Each frame ending in a fragment gets the next fragment id (1...255, cycling, never 0) in its
///   `fragmented` field; the following frame repeats it as `continuation`.
public struct FramePacker: Sendable {
    /// Smallest frame capacity accepted (a frame must hold the header plus a useful chunk).
    public static let minimumFrameCapacityBytes = 64

    /// Fewest bytes of a message worth starting at the end of a partly filled frame. With less room
    /// left, the frame is closed instead: a tiny fragment would save at most this many bytes of the
    /// frame but cost a fragment id and one more message that can straddle a configuration change.
    /// A message shorter than this is therefore never split when it would fit whole in a new frame.
    /// A frame's first chunk always gets at least `frameCapacityBytes - 10` bytes, more than this.
    public static let minimumFragmentBytes = 16

    /// The largest frame built, including the 8-byte header.
    public let frameCapacityBytes: Int

    /// Application bytes queued and not yet framed (of a partly framed message, only the rest).
    public private(set) var pendingBytes = 0

    /// A queued application message.
    private struct PendingMessage {
        var bytes: [UInt8]
        var delivery: DeliveryMode
    }

    /// The FIFO: `queue[head...]` are pending. Consumed entries before `head` are emptied at once
    /// and compacted away in bulk, so taking from the front is O(1) amortised.
    private var queue: [PendingMessage] = []
    private var head = 0
    /// Bytes of `queue[head]` already framed in its current attempt; 0 when it is not started.
    private var headFramedBytes = 0
    /// The fragment id the last frame announced, which the next frame continues; 0 when the last
    /// frame ended with a complete message. Non-zero exactly when `headFramedBytes > 0`.
    private var openFragmentID: UInt8 = 0
    /// The fragment id the next fragmented frame gets (1...255).
    private var nextFragmentID: UInt8 = 1
    /// Number of adjacent pending messages with different delivery modes (for the estimate).
    private var deliveryChangeCount = 0

    /// Creates an empty packer.
    /// - Parameter frameCapacityBytes: the largest frame, including the 8-byte frame header;
    ///   `minimumFrameCapacityBytes ... FrameFormat.maximumFrameBytes`. Traps outside that range:
    ///   settings are validated before a packer is built.
    public init(frameCapacityBytes: Int) {
        precondition(
            (Self.minimumFrameCapacityBytes...FrameFormat.maximumFrameBytes).contains(frameCapacityBytes),
            "frame capacity \(frameCapacityBytes) outside \(Self.minimumFrameCapacityBytes)...\(FrameFormat.maximumFrameBytes)")
        self.frameCapacityBytes = frameCapacityBytes
    }

    /// Queues an application message behind every message queued earlier.
    /// - Parameters:
    ///   - message: the message, 0 bytes or more; the core enforces size and queue limits.
    ///   - delivery: the delivery service of the message.
    public mutating func enqueue(_ message: [UInt8], delivery: DeliveryMode) {
        if let last = queue.last, head < queue.count, last.delivery != delivery {
            deliveryChangeCount += 1
        }
        queue.append(PendingMessage(bytes: message, delivery: delivery))
        pendingBytes += message.count
    }

    /// Whether no message is pending (not even the rest of a partly framed one).
    public var isEmpty: Bool { head == queue.count }

    /// Number of messages whose last chunk is not framed yet, including a partly framed one.
    public var pendingMessageCount: Int { queue.count - head }

    /// About how many frames everything pending needs, for the token's backlog field (spec §3.4).
    /// O(1). Zero exactly when the packer is empty. It counts one chunk length per message and one
    /// frame per change of delivery mode, but not the room left unused at the end of frames nor the
    /// extra chunk lengths of fragments, so it is approximate in both directions.
    public var estimatedFrameCount: Int {
        guard !isEmpty else { return 0 }
        let payloadBytesPerFrame = frameCapacityBytes - FrameFormat.headerByteCount
        let bytesNeeded = pendingBytes + FrameFormat.chunkLengthByteCount * pendingMessageCount
        let packedFrames = (bytesNeeded + payloadBytesPerFrame - 1) / payloadBytesPerFrame
        return max(1, packedFrames) + deliveryChangeCount
    }

    /// Builds the next frame from the front of the queue, or returns `nil` when nothing is pending.
    ///
    /// Call once per message the protocol may originate, and sequence the frame at once: a message
    /// leaves the packer when its last chunk is framed.
    public mutating func nextFrame() -> Frame? {
        guard !isEmpty else { return nil }
        defer { checkInvariants() }
        let delivery = queue[head].delivery
        let plan = planFrame(delivery: delivery)
        precondition(!plan.chunkLengths.isEmpty, "a frame carries at least one chunk")
        precondition(plan.frameBytes <= frameCapacityBytes, "frame of \(plan.frameBytes) bytes exceeds \(frameCapacityBytes)")

        let header = FrameHeader(
            fragmented: plan.endsInFragment ? takeFragmentID() : 0,
            continuation: openFragmentID,
            chunkCount: plan.chunkLengths.count)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(plan.frameBytes)
        header.encode(chunkLengths: plan.chunkLengths, into: &bytes)
        for length in plan.chunkLengths {
            let start = headFramedBytes
            bytes.append(contentsOf: queue[head].bytes[start..<start + length])
            headFramedBytes += length
            pendingBytes -= length
            if headFramedBytes == queue[head].bytes.count { removeHead() }
        }
        precondition(bytes.count == plan.frameBytes, "built \(bytes.count) bytes, planned \(plan.frameBytes)")
        // Only a fragment leaves the head message partly framed, and then the next frame continues it.
        openFragmentID = header.fragmented
        return Frame(bytes: bytes, delivery: delivery)
    }

    /// Makes a partly framed message start again from its first byte (spec §5.3 "ours").
    ///
    /// Call when a REGULAR configuration is installed. If the first pending message had some but
    /// not all of its chunks framed (sequenced in the old ring), its next frame starts it anew with
    /// `continuation = 0` and a fresh fragment id, still ahead of every later message. Receivers
    /// drop the old partial assembly: they discard incomplete assemblies at the same configuration
    /// change, and a chunk starting a new message replaces an unfinished one anyway. Fully framed
    /// messages are no longer here and are not repeated. Does nothing when no message is partly framed.
    public mutating func restartPartialMessage() {
        defer { checkInvariants() }
        guard headFramedBytes > 0 else { return }
        pendingBytes += headFramedBytes
        headFramedBytes = 0
        openFragmentID = 0
    }

    // MARK: Internals

    /// The chunks of the next frame, decided before any byte is copied.
    private struct FramePlan {
        var chunkLengths: [Int] = []
        var frameBytes = FrameFormat.headerByteCount
        var endsInFragment = false
    }

    /// Applies the packing rules to the queue front without changing anything.
    private func planFrame(delivery: DeliveryMode) -> FramePlan {
        var plan = FramePlan()
        var index = head
        var framedBytes = headFramedBytes
        while index < queue.count && queue[index].delivery == delivery {
            // Room for this chunk's data once its length entry is in the table.
            let room = frameCapacityBytes - plan.frameBytes - FrameFormat.chunkLengthByteCount
            guard room >= 0 else { break }
            let remaining = queue[index].bytes.count - framedBytes
            if remaining <= room {
                plan.chunkLengths.append(remaining)
                plan.frameBytes += FrameFormat.chunkLengthByteCount + remaining
                index += 1
                framedBytes = 0
                continue
            }
            if room >= Self.minimumFragmentBytes {
                plan.chunkLengths.append(room)
                plan.frameBytes += FrameFormat.chunkLengthByteCount + room
                plan.endsInFragment = true
            }
            break
        }
        return plan
    }

    /// Hands out the next fragment id: 1...255, cycling, never 0 (spec §5.1).
    private mutating func takeFragmentID() -> UInt8 {
        let id = nextFragmentID
        nextFragmentID = id == UInt8.max ? 1 : id + 1
        return id
    }

    /// Drops the fully framed front message.
    private mutating func removeHead() {
        let removedDelivery = queue[head].delivery
        queue[head].bytes = []  // Release the message now, not at the next compaction.
        head += 1
        headFramedBytes = 0
        if head < queue.count && queue[head].delivery != removedDelivery {
            deliveryChangeCount -= 1
        }
        if head == queue.count {
            // Keep a modest buffer for the next burst, but give back a large one.
            queue.removeAll(keepingCapacity: queue.count <= 4_096)
            head = 0
        } else if head >= 1_024 && head * 2 >= queue.count {
            queue.removeFirst(head)
            head = 0
        }
    }

    /// Checked after every mutation. A failure here is a bug in this file.
    private func checkInvariants() {
        precondition(head <= queue.count, "head \(head) beyond queue of \(queue.count)")
        precondition(pendingBytes >= 0, "pending bytes \(pendingBytes) negative")
        precondition(deliveryChangeCount >= 0 && deliveryChangeCount < max(1, pendingMessageCount),
                     "\(deliveryChangeCount) mode changes among \(pendingMessageCount) messages")
        precondition((headFramedBytes > 0) == (openFragmentID != 0),
                     "head framed bytes \(headFramedBytes) but open fragment id \(openFragmentID)")
        precondition(nextFragmentID != 0, "fragment id 0 is reserved")
        if isEmpty {
            precondition(pendingBytes == 0, "empty packer holds \(pendingBytes) bytes")
            precondition(headFramedBytes == 0, "empty packer has a partly framed message")
        } else {
            precondition(headFramedBytes < queue[head].bytes.count || queue[head].bytes.isEmpty,
                         "head message fully framed but still queued")
        }
    }
}
