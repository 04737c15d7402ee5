// The receiver side of the packing layer (spec §5.3): splits each delivered SRP frame into its
// chunks and joins fragments into application messages, one assembly per sender. It sees frames
// only in agreed order, after the ordering protocol; it never reorders or waits.

/// Rebuilds application messages from the frames the ordering protocol delivers (spec §5.3).
///
/// Each sender has at most one message in assembly. A frame's first chunk continues it when the
/// frame's `continuation` matches the fragment id the sender's previous frame announced; any other
/// chunk starts a new message, dropping an unfinished one. A continuation whose start was never
/// seen (the sender's earlier frames were delivered before this node joined, or were dropped as
/// malformed) is discarded to its end, but the complete chunks after it in the same frame are
/// delivered: every member delivers those (unlike corosync's `totempg_deliver_fn`, which drops the
/// whole frame). Frames arrive in the same agreed order at every member, so every member completes
/// or discards the same messages.
///
/// Per-sender state lives in a short array (at most one entry per ring member with a message in
/// assembly) that is only ever searched by sender, so its order cannot leak into the output. An
/// array, not a dictionary: with messages spanning frames nearly every frame takes its sender's
/// assembly out and puts it back, and a dictionary would hash twice per frame.
public struct FragmentReassembler: Sendable {
    /// The longest message delivered. A message growing beyond it is discarded, at every member
    /// alike, instead of growing without bound; the core refuses to send such messages anyway.
    public let maxMessageBytes: Int

    /// A sender's message in assembly. Stored only while it awaits a continuation.
    private struct Assembly {
        /// The node that originated the message.
        var sender: NodeID
        /// The bytes received so far; empty while discarding.
        var buffer: [UInt8] = []
        /// The fragment id the next frame must continue (0 when nothing is awaited).
        var expectedFragment: UInt8 = 0
        /// The message's start was not seen, or it grew too long: its remaining chunks are dropped.
        var isDiscarding = false
    }

    private var assemblies: [Assembly] = []

    /// Creates a reassembler with no assemblies.
    /// - Parameter maxMessageBytes: the longest message delivered; must not be negative.
    public init(maxMessageBytes: Int = 1 << 20) {
        precondition(maxMessageBytes >= 0, "maximum message size \(maxMessageBytes) is negative")
        self.maxMessageBytes = maxMessageBytes
    }

    /// Number of senders with a message in assembly, awaiting a continuation.
    public var incompleteAssemblyCount: Int { assemblies.count }

    /// Takes one frame delivered by the ordering protocol, in agreed order, originated by `sender`.
    ///
    /// This is `deliverPacket` of spec §5.3.
    /// - Parameters:
    ///   - frame: the frame's bytes, untrusted.
    ///   - sender: the node that originated the frame (for recovered messages, the original one).
    /// - Returns: the application messages this frame completes, in order; possibly none.
    /// - Throws: `FrameError` when the frame is malformed. It is then dropped whole and every
    ///   assembly is left as it was.
    public mutating func receive(_ frame: [UInt8], from sender: NodeID) throws(FrameError) -> [[UInt8]] {
        var completed: [[UInt8]] = []
        try receive(frame, from: sender, into: &completed)
        return completed
    }

    /// `receive(_:from:)` appending the completed messages to `completed`, so that a caller
    /// delivering frame after frame reuses one array. On a throw nothing is appended.
    public mutating func receive(_ frame: [UInt8], from sender: NodeID, into completed: inout [[UInt8]]) throws(FrameError) {
        let layout = try FrameLayout(parsing: frame)
        let header = layout.header
        // Moved out of the array (not copied) so that appending to its buffer does not copy it.
        var assembly: Assembly
        if let slot = assemblies.firstIndex(where: { $0.sender == sender }) {
            assemblies.swapAt(slot, assemblies.count - 1)
            assembly = assemblies.removeLast()
        } else {
            assembly = Assembly(sender: sender)
        }
        let lastIndex = header.chunkCount - 1
        for (index, range) in layout.chunkRanges(in: frame).enumerated() {
            let chunk = frame[range]
            let continues = index == lastIndex && header.fragmented != 0
            if index == 0 && header.continuation != 0 {
                if assembly.expectedFragment == header.continuation {
                    append(chunk, to: &assembly, continues: continues, frameBytes: frame.count)
                } else {
                    // Spec §5.3: an orphan, its start was not seen.
                    assembly.buffer = []
                    assembly.isDiscarding = true
                }
            } else {
                // Spec §5.3: this chunk starts a new message; an unfinished one is dropped.
                assembly.buffer = []
                assembly.isDiscarding = false
                append(chunk, to: &assembly, continues: continues, frameBytes: frame.count)
            }
            if continues {
                assembly.expectedFragment = header.fragmented
            } else {
                if !assembly.isDiscarding { completed.append(assembly.buffer) }
                assembly = Assembly(sender: sender)
            }
        }
        if assembly.expectedFragment != 0 {
            precondition(assembly.buffer.count <= maxMessageBytes,
                         "assembly of \(assembly.buffer.count) bytes beyond \(maxMessageBytes)")
            precondition(!assembly.isDiscarding || assembly.buffer.isEmpty, "a discarded assembly holds bytes")
            assemblies.append(assembly)
        }
    }

    /// Drops every incomplete assembly, whoever its sender.
    ///
    /// Call when a REGULAR configuration is installed, after the transitional deliveries (spec §5.3
    /// "ours"): senders frame such messages again, whole, in the new ring.
    public mutating func discardIncomplete() {
        assemblies.removeAll()
    }

    /// Drops the assemblies of the given senders, for instance nodes that left the ring: their
    /// fragmented messages can never complete (spec §5.3).
    public mutating func discard(senders: some Sequence<NodeID>) {
        let gone = Set(senders)
        assemblies.removeAll { gone.contains($0.sender) }
    }

    /// Appends a chunk to an assembly, or discards the assembly when it would exceed `maxMessageBytes`.
    ///
    /// A message starting with a chunk that `continues` in the next frame gets room for about one
    /// more frame at once (`frameBytes`, this frame's size), so that the usual continuation does
    /// not reallocate; longer messages grow as arrays do (doubling).
    private func append(_ chunk: ArraySlice<UInt8>, to assembly: inout Assembly, continues: Bool, frameBytes: Int) {
        guard !assembly.isDiscarding else { return }
        guard chunk.count <= maxMessageBytes - assembly.buffer.count else {
            assembly.buffer = []
            assembly.isDiscarding = true
            return
        }
        guard assembly.buffer.isEmpty else {
            assembly.buffer.append(contentsOf: chunk)
            return
        }
        if continues {
            assembly.buffer.reserveCapacity(min(maxMessageBytes, chunk.count + frameBytes))
            assembly.buffer.append(contentsOf: chunk)
        } else {
            assembly.buffer = Array(chunk)
        }
    }
}
