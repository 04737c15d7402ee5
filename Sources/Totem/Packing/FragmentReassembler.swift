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
/// Per-sender state lives in a dictionary that is only ever looked up by key, so its iteration
/// order cannot leak into the output.
public struct FragmentReassembler: Sendable {
    /// The longest message delivered. A message growing beyond it is discarded, at every member
    /// alike, instead of growing without bound; the core refuses to send such messages anyway.
    public let maxMessageBytes: Int

    /// A sender's message in assembly. Stored only while it awaits a continuation.
    private struct Assembly {
        /// The bytes received so far; empty while discarding.
        var buffer: [UInt8] = []
        /// The fragment id the next frame must continue (0 when nothing is awaited).
        var expectedFragment: UInt8 = 0
        /// The message's start was not seen, or it grew too long: its remaining chunks are dropped.
        var isDiscarding = false
    }

    private var assemblies: [NodeID: Assembly] = [:]

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
        let layout = try FrameLayout(parsing: frame)
        let header = layout.header
        // Taken out of the dictionary so that appending to its buffer does not copy it.
        var assembly = assemblies.removeValue(forKey: sender) ?? Assembly()
        var completed: [[UInt8]] = []
        let lastIndex = layout.chunkRanges.count - 1
        for (index, range) in layout.chunkRanges.enumerated() {
            let chunk = frame[range]
            if index == 0 && header.continuation != 0 {
                if assembly.expectedFragment == header.continuation {
                    append(chunk, to: &assembly)
                } else {
                    // Spec §5.3: an orphan, its start was not seen.
                    assembly.buffer = []
                    assembly.isDiscarding = true
                }
            } else {
                // Spec §5.3: this chunk starts a new message; an unfinished one is dropped.
                assembly.buffer = []
                assembly.isDiscarding = false
                append(chunk, to: &assembly)
            }
            if index == lastIndex && header.fragmented != 0 {
                assembly.expectedFragment = header.fragmented
            } else {
                if !assembly.isDiscarding { completed.append(assembly.buffer) }
                assembly = Assembly()
            }
        }
        if assembly.expectedFragment != 0 {
            precondition(assembly.buffer.count <= maxMessageBytes,
                         "assembly of \(assembly.buffer.count) bytes beyond \(maxMessageBytes)")
            precondition(!assembly.isDiscarding || assembly.buffer.isEmpty, "a discarded assembly holds bytes")
            assemblies[sender] = assembly
        }
        return completed
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
        for sender in senders { assemblies[sender] = nil }
    }

    /// Appends a chunk to an assembly, or discards the assembly when it would exceed `maxMessageBytes`.
    private func append(_ chunk: ArraySlice<UInt8>, to assembly: inout Assembly) {
        guard !assembly.isDiscarding else { return }
        guard chunk.count <= maxMessageBytes - assembly.buffer.count else {
            assembly.buffer = []
            assembly.isDiscarding = true
            return
        }
        if assembly.buffer.isEmpty {
            assembly.buffer = Array(chunk)
        } else {
            assembly.buffer.append(contentsOf: chunk)
        }
    }
}
