// A bounds-checked big-endian cursor over one received service message. Owns reading and the
// checks every field needs (length, count, UTF-8); knows nothing of any message layout.

import Totem

/// A cursor over a service message that cannot over-read (STYLE §4).
///
/// Every read checks `remaining` first and throws `ServiceWireError.truncated` when bytes are
/// missing. Lengths and counts are compared with their limits while still in their wire type, so
/// no unchecked wire value ever takes part in arithmetic. Shared by the three service codecs and
/// the persisted-state codec of this package; not API for other packages.
package struct ServiceWireReader {
    private let bytes: [UInt8]
    /// Bytes consumed so far.
    package private(set) var offset: Int

    /// Starts reading `bytes` at `offset` (0 unless the caller already checked a prefix).
    package init(_ bytes: [UInt8], offset: Int = 0) {
        precondition(offset >= 0 && offset <= bytes.count, "offset \(offset) outside 0...\(bytes.count)")
        self.bytes = bytes
        self.offset = offset
    }

    /// Bytes not yet read. Never negative.
    package var remaining: Int { bytes.count - offset }

    /// Throws unless at least `needed` more bytes are available.
    package func require(_ needed: Int) throws(ServiceWireError) {
        guard needed <= remaining else { throw .truncated(needed: needed, available: remaining) }
    }

    /// Throws `trailingBytes` unless every byte has been read.
    package func requireEnd() throws(ServiceWireError) {
        guard remaining == 0 else { throw .trailingBytes(remaining) }
    }

    /// Reads one byte.
    package mutating func readUInt8() throws(ServiceWireError) -> UInt8 {
        try require(1)
        defer { offset += 1 }
        return bytes[offset]
    }

    /// Reads a big-endian `UInt16`.
    package mutating func readUInt16() throws(ServiceWireError) -> UInt16 {
        UInt16(truncatingIfNeeded: try readBigEndian(byteCount: 2))
    }

    /// Reads a big-endian `UInt32`.
    package mutating func readUInt32() throws(ServiceWireError) -> UInt32 {
        UInt32(truncatingIfNeeded: try readBigEndian(byteCount: 4))
    }

    /// Reads a big-endian `UInt64`.
    package mutating func readUInt64() throws(ServiceWireError) -> UInt64 {
        try readBigEndian(byteCount: 8)
    }

    /// Reads a big-endian 48-bit value (an entity id's six octets) into the low bits.
    package mutating func readUInt48() throws(ServiceWireError) -> UInt64 {
        try readBigEndian(byteCount: 6)
    }

    /// Reads a big-endian unsigned integer of 1...8 bytes. Not generic: the generic version ran
    /// unspecialized from other modules, through witness tables and metadata lookups. Reads
    /// through a raw pointer once `require` has checked the bytes exist (an array subscript per
    /// byte checked the bounds again each time).
    private mutating func readBigEndian(byteCount size: Int) throws(ServiceWireError) -> UInt64 {
        try require(size)
        let start = offset
        offset += size
        return bytes.withUnsafeBytes { raw in
            if size == 8 { return UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: start, as: UInt64.self)) }
            var value: UInt64 = 0
            for index in start..<(start + size) {
                value = value << 8 | UInt64(raw[index])
            }
            return value
        }
    }

    /// Reads a length or count of `T`'s width and rejects it, before any arithmetic, when it is
    /// outside `minimum...limit`.
    ///
    /// - Parameters:
    ///   - type: The wire width (`UInt8.self`, `UInt16.self`, `UInt32.self`).
    ///   - field: Names the field in the error.
    ///   - minimum: The smallest acceptable value (0 or 1).
    ///   - limit: The largest acceptable value.
    /// - Returns: The value, within `minimum...limit`.
    /// - Throws: `truncated` if missing, `lengthOutOfRange` if outside the range.
    package mutating func readLength<T: FixedWidthInteger & UnsignedInteger>(
        as type: T.Type, field: String, minimum: Int = 0, limit: Int
    ) throws(ServiceWireError) -> Int {
        precondition(minimum >= 0 && minimum <= limit, "bad range \(minimum)...\(limit) for \(field)")
        // Compare in UInt64, which holds every width used here and every non-negative Int.
        let wide = try readBigEndian(byteCount: MemoryLayout<T>.size)
        guard wide >= UInt64(minimum), wide <= UInt64(limit), let length = Int(exactly: wide) else {
            throw .lengthOutOfRange(field: field, length: Int(exactly: wide) ?? Int.max, minimum: minimum, maximum: limit)
        }
        return length
    }

    /// Reads a count of `T`'s width and rejects it when above `limit`.
    package mutating func readCount<T: FixedWidthInteger & UnsignedInteger>(
        as type: T.Type, field: String, limit: Int
    ) throws(ServiceWireError) -> Int {
        precondition(limit >= 0, "negative limit \(limit) for \(field)")
        let wide = try readBigEndian(byteCount: MemoryLayout<T>.size)
        guard wide <= UInt64(limit), let count = Int(exactly: wide) else {
            throw .countOutOfRange(field: field, count: Int(exactly: wide) ?? Int.max, limit: limit)
        }
        return count
    }

    /// Copies the next `count` bytes.
    ///
    /// - Parameter count: A length already validated by the caller; must not be negative.
    package mutating func readBytes(count: Int) throws(ServiceWireError) -> [UInt8] {
        precondition(count >= 0, "negative read length \(count)")
        var copy: [UInt8] = []
        try withNextBytes(count: count) { copy = Array($0) }
        return copy
    }

    /// The next `count` bytes as a slice of the message (no copy; it keeps the message alive).
    ///
    /// - Parameter count: A length already validated by the caller; must not be negative.
    package mutating func readSlice(count: Int) throws(ServiceWireError) -> ArraySlice<UInt8> {
        precondition(count >= 0, "negative read length \(count)")
        try require(count)
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }

    /// Passes the next `count` bytes to `body` without copying them, and moves past them.
    /// Not generic (the caller keeps what it builds): a generic version ran unspecialized from
    /// the other modules, through metadata lookups costing more than the bytes' checks.
    ///
    /// - Parameter count: A length already validated by the caller; must not be negative.
    package mutating func withNextBytes(count: Int, _ body: (UnsafeBufferPointer<UInt8>) -> Void) throws(ServiceWireError) {
        precondition(count >= 0, "negative read length \(count)")
        try require(count)
        let start = offset
        offset += count
        bytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[start..<(start + count)])) }
    }

    /// Reads a length-prefixed UTF-8 string.
    ///
    /// - Parameters:
    ///   - lengthType: The wire width of the byte length.
    ///   - field: Names the field in errors.
    ///   - minimum: The fewest bytes accepted.
    ///   - limit: The most bytes accepted.
    /// - Throws: `truncated`, `lengthOutOfRange` or `invalidUTF8`.
    package mutating func readString<T: FixedWidthInteger & UnsignedInteger>(
        lengthAs lengthType: T.Type, field: String, minimum: Int = 0, limit: Int
    ) throws(ServiceWireError) -> String {
        let length = try readLength(as: T.self, field: field, minimum: minimum, limit: limit)
        try require(length)
        defer { offset += length }
        guard let text = UTF8Text.string(validating: bytes[offset..<(offset + length)]) else {
            throw .invalidUTF8(field: field)
        }
        return text
    }
}
