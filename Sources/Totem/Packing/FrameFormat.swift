// The byte layout of an SRP frame, the payload the packing layer hands to the ordering protocol
// (spec §5.1), and its validation. Knows nothing about packing policy or reassembly state.

/// Why a delivered frame was rejected. The frame is dropped whole; since every member delivers the
/// same frames, every member drops it alike.
public enum FrameError: Error, Sendable, Equatable {
    /// Fewer bytes than the header or the chunk-length table announces.
    case truncated(needed: Int, available: Int)
    /// The header's version is not 0, the only version defined (spec §5.1).
    case unsupportedVersion(Int16)
    /// The header's type is not 0, the only type defined (spec §5.1).
    case unsupportedType(Int16)
    /// The header announces no chunks; every frame carries at least one (spec §5.3).
    case emptyFrame
    /// The frame's size is not exactly header + chunk-length table + the sum of the chunk lengths.
    case lengthMismatch(expected: Int, actual: Int)
}

/// Constants of the frame layout (spec §5.1):
///
/// ```
/// header (8 bytes): version i16 (0), type i16 (0), fragmented u8, continuation u8, msg_count u16
/// chunk lengths:    msg_count × u16
/// data:             the chunks, concatenated
/// ```
///
/// All integers are big-endian. `fragmented != 0` says the last chunk is the beginning (or a middle
/// part) of a message continued in the sender's next frame; its value is a fragment id (1...255,
/// cycling, never 0). `continuation != 0` says the first chunk continues the message announced by
/// the sender's previous frame with that fragment id; 0 says the first chunk starts a new message.
public enum FrameFormat {
    /// Size of the fixed header.
    public static let headerByteCount = 8
    /// Size of one entry of the chunk-length table.
    public static let chunkLengthByteCount = 2
    /// The only version defined.
    public static let version: Int16 = 0
    /// The only frame type defined.
    public static let frameType: Int16 = 0
    /// The largest frame the packer builds (a frame travels in one UDP datagram). It also keeps
    /// every chunk length and the chunk count within 16 bits.
    public static let maximumFrameBytes = 65_535
}

/// The header of one frame, decoded. Internal: the packer writes it and the reassembler reads it.
struct FrameHeader: Equatable {
    /// Fragment id announced for the last chunk, or 0 if the last chunk ends its message.
    var fragmented: UInt8
    /// Fragment id the first chunk continues, or 0 if the first chunk starts a message.
    var continuation: UInt8
    /// Number of chunks (the spec's `msg_count`).
    var chunkCount: Int
}

/// A frame validated against spec §5.1 and §5.3: its header and where its chunks begin.
///
/// The chunk ranges are read from the frame's table on demand (`chunkRanges(in:)`) rather than
/// kept in an array: every delivered frame is parsed, and that array was an allocation per frame.
struct FrameLayout {
    var header: FrameHeader
    /// Where the first chunk begins: the end of the chunk-length table.
    var dataStart: Int

    /// Validates `frame` and locates its chunks. Never traps, whatever the bytes.
    /// - Throws: `FrameError` naming the first rule the frame breaks.
    init(parsing frame: [UInt8]) throws(FrameError) {
        let headerEnd = FrameFormat.headerByteCount
        guard frame.count >= headerEnd else { throw .truncated(needed: headerEnd, available: frame.count) }
        let version = Int16(bitPattern: Self.readUInt16(frame, at: 0))
        guard version == FrameFormat.version else { throw .unsupportedVersion(version) }
        let type = Int16(bitPattern: Self.readUInt16(frame, at: 2))
        guard type == FrameFormat.frameType else { throw .unsupportedType(type) }
        // A u16 count cannot overflow the arithmetic below: at most 8 + 2 × 65,535 + 65,535 × 65,535.
        let chunkCount = Int(Self.readUInt16(frame, at: 6))
        guard chunkCount > 0 else { throw .emptyFrame }
        let tableEnd = headerEnd + FrameFormat.chunkLengthByteCount * chunkCount
        guard frame.count >= tableEnd else { throw .truncated(needed: tableEnd, available: frame.count) }
        var chunkEnd = tableEnd
        for index in 0..<chunkCount {
            chunkEnd += Int(Self.readUInt16(frame, at: headerEnd + FrameFormat.chunkLengthByteCount * index))
        }
        guard chunkEnd == frame.count else { throw .lengthMismatch(expected: chunkEnd, actual: frame.count) }

        header = FrameHeader(fragmented: frame[4], continuation: frame[5], chunkCount: chunkCount)
        dataStart = tableEnd
    }

    /// The byte ranges of the chunks within `frame`, which must be the frame this layout was
    /// parsed from; in order, never empty.
    func chunkRanges(in frame: [UInt8]) -> ChunkRanges {
        ChunkRanges(frame: frame, count: header.chunkCount, start: dataStart)
    }

    /// The chunk ranges of a parsed frame, read one by one from its chunk-length table.
    struct ChunkRanges: Sequence, IteratorProtocol {
        fileprivate let frame: [UInt8]
        fileprivate let count: Int
        fileprivate var start: Int
        fileprivate var index = 0

        mutating func next() -> Range<Int>? {
            guard index < count else { return nil }
            let length = Int(FrameLayout.readUInt16(frame, at: FrameFormat.headerByteCount + FrameFormat.chunkLengthByteCount * index))
            index += 1
            defer { start += length }
            return start..<start + length
        }
    }

    /// Reads a big-endian u16; the caller has checked that both bytes exist.
    fileprivate static func readUInt16(_ bytes: [UInt8], at offset: Int) -> UInt16 {
        UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }
}

extension FrameHeader {
    /// Appends this header and the chunk-length table to `bytes`. The encoder asserts what
    /// `FrameLayout(parsing:)` validates.
    func encode(chunkLengths: [Int], into bytes: inout [UInt8]) {
        precondition(chunkCount == chunkLengths.count, "header says \(chunkCount) chunks, table has \(chunkLengths.count)")
        precondition(chunkCount > 0, "a frame carries at least one chunk")
        precondition(chunkCount <= Int(UInt16.max), "chunk count \(chunkCount) exceeds 16 bits")
        Self.appendUInt16(UInt16(bitPattern: FrameFormat.version), to: &bytes)
        Self.appendUInt16(UInt16(bitPattern: FrameFormat.frameType), to: &bytes)
        bytes.append(fragmented)
        bytes.append(continuation)
        Self.appendUInt16(UInt16(chunkCount), to: &bytes)
        for length in chunkLengths {
            precondition((0...Int(UInt16.max)).contains(length), "chunk length \(length) exceeds 16 bits")
            Self.appendUInt16(UInt16(length), to: &bytes)
        }
    }

    private static func appendUInt16(_ value: UInt16, to bytes: inout [UInt8]) {
        bytes.append(UInt8(value >> 8))
        bytes.append(UInt8(value & 0xFF))
    }
}
