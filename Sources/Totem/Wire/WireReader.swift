// A bounds-checked big-endian cursor over received bytes. Owns reading; knows nothing of packet
// layouts (WireCodec does) and never copies except in `readBytes`.

/// A cursor over a received datagram that cannot over-read (spec §2.3, STYLE §4).
///
/// Every read first checks `remaining` and throws `WireError.truncated` when bytes are missing, so
/// no input can make it load outside the buffer. Counts are checked against their limit before
/// they become an `Int`, so nobody does arithmetic with an unchecked wire value.
///
/// The reader borrows the buffer: it must not outlive the `withUnsafeBytes` (or equivalent) scope
/// that produced the pointer. It is internal to the codec for that reason.
struct WireReader {
    private let bytes: UnsafeRawBufferPointer
    /// Bytes consumed so far.
    private(set) var offset = 0

    /// Starts reading at the first byte of `bytes`.
    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Bytes not yet read. Never negative.
    var remaining: Int { bytes.count - offset }

    /// Total size of the buffer being read.
    var count: Int { bytes.count }

    /// Throws unless at least `needed` more bytes are available.
    func require(_ needed: Int) throws(WireError) {
        guard needed <= remaining else { throw .truncated(needed: needed, available: remaining) }
    }

    /// Throws `lengthMismatch` unless exactly `count` bytes remain. Used once a body's counts
    /// are known, so that a datagram with bytes missing or bytes left over is rejected whole.
    func requireRemaining(exactly count: Int) throws(WireError) {
        guard remaining == count else {
            throw .lengthMismatch(expected: offset + count, actual: bytes.count)
        }
    }

    /// Throws `lengthMismatch` unless every byte has been read.
    func requireEnd() throws(WireError) {
        try requireRemaining(exactly: 0)
    }

    /// Reads one byte.
    mutating func readUInt8() throws(WireError) -> UInt8 {
        try readInteger(as: UInt8.self)
    }

    /// Reads a big-endian `UInt16`.
    mutating func readUInt16() throws(WireError) -> UInt16 {
        try readInteger(as: UInt16.self)
    }

    /// Reads a big-endian `UInt32`.
    mutating func readUInt32() throws(WireError) -> UInt32 {
        try readInteger(as: UInt32.self)
    }

    /// Reads a big-endian `UInt64`.
    mutating func readUInt64() throws(WireError) -> UInt64 {
        try readInteger(as: UInt64.self)
    }

    /// Reads a big-endian unsigned integer of `T`'s width.
    @inline(__always)
    private mutating func readInteger<T: FixedWidthInteger & UnsignedInteger & BitwiseCopyable>(
        as type: T.Type
    ) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        try require(size)
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(bigEndian: value)
    }

    /// Reads a byte that must be 0 (false) or 1 (true). `field` names it in the error.
    mutating func readBoolean(field: String) throws(WireError) -> Bool {
        let value = try readUInt8()
        switch value {
        case 0: return false
        case 1: return true
        default: throw .invalidBoolean(value, field: field)
        }
    }

    /// Reads a count of `T`'s width and rejects it, before any arithmetic, when above `limit`.
    ///
    /// - Parameters:
    ///   - type: The wire width of the count (`UInt8.self`, `UInt16.self`, ...).
    ///   - field: Names the counted list in the error.
    ///   - limit: The largest acceptable count; must not be negative.
    /// - Returns: The count, `0...limit`.
    /// - Throws: `truncated` if the count is missing, `countOutOfRange` if above `limit`.
    mutating func readCount<T: FixedWidthInteger & UnsignedInteger & BitwiseCopyable>(
        as type: T.Type, field: String, limit: Int
    ) throws(WireError) -> Int {
        precondition(limit >= 0, "negative limit \(limit) for \(field)")
        let raw = try readInteger(as: T.self)
        // Compare in UInt64, which holds every count width we use and every non-negative Int.
        guard let wide = UInt64(exactly: raw), wide <= UInt64(limit), let count = Int(exactly: wide) else {
            throw .countOutOfRange(field: field, count: Int(exactly: raw) ?? Int.max, limit: limit)
        }
        return count
    }

    /// Copies the next `count` bytes into a new array.
    ///
    /// - Parameter count: A length already validated by the caller; must not be negative.
    mutating func readBytes(count: Int) throws(WireError) -> [UInt8] {
        let slice = try readSlice(count: count)
        return Array(slice)
    }

    /// Returns the next `count` bytes without copying; the result borrows the same buffer.
    ///
    /// - Parameter count: A length already validated by the caller; must not be negative.
    mutating func readSlice(count: Int) throws(WireError) -> UnsafeRawBufferPointer {
        precondition(count >= 0, "negative read length \(count)")
        try require(count)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        offset += count
        return slice
    }
}
