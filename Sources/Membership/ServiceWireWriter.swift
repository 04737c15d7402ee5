// Big-endian encoding for the service codecs. Owns byte order and length prefixes; the layouts
// belong to each codec, which asserts the bounds its decoder will check (STYLE §7, paired checks).

/// An append-only big-endian byte buffer.
///
/// Writers assert (with `precondition`) that lengths fit their prefixes: values reaching a writer
/// were validated when they were constructed, so a failure here is a bug, not bad input.
package struct ServiceWireWriter {
    /// The bytes written so far.
    package private(set) var bytes: [UInt8]

    /// Starts an empty buffer with room for `capacity` bytes.
    package init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Appends one byte.
    package mutating func write(_ value: UInt8) {
        bytes.append(value)
    }

    /// Appends a big-endian `UInt16`.
    package mutating func write(_ value: UInt16) { writeInteger(value) }

    /// Appends a big-endian `UInt32`.
    package mutating func write(_ value: UInt32) { writeInteger(value) }

    /// Appends a big-endian `UInt64`.
    package mutating func write(_ value: UInt64) { writeInteger(value) }

    private mutating func writeInteger<T: FixedWidthInteger & UnsignedInteger>(_ value: T) {
        writeBigEndian(UInt64(truncatingIfNeeded: value), byteCount: MemoryLayout<T>.size)
    }

    /// Appends the low `size` bytes of `value`, most significant first. Not generic: see
    /// `ServiceWireReader.readBigEndian`.
    private mutating func writeBigEndian(_ value: UInt64, byteCount size: Int) {
        var shift = (size - 1) * 8
        while shift >= 0 {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
            shift -= 8
        }
    }

    // Raw bytes come as an array or a slice, in two concrete overloads: one generic over
    // `Sequence` was not specialized across modules and copied every publication's payload
    // through the runtime's generic witnesses.

    /// Appends raw bytes without a length prefix.
    package mutating func write(contentsOf other: [UInt8]) {
        bytes.append(contentsOf: other)
    }

    /// Appends raw bytes without a length prefix.
    package mutating func write(contentsOf other: ArraySlice<UInt8>) {
        bytes.append(contentsOf: other)
    }

    /// Appends an entity id's six octets, most significant first (no array made for them).
    package mutating func write(_ entity: EntityID) {
        writeBigEndian(entity.rawValue, byteCount: 6)
    }

    /// Appends a length of `T`'s width; traps if it does not fit (a bug: values are validated).
    package mutating func writeLength<T: FixedWidthInteger & UnsignedInteger>(_ length: Int, as type: T.Type) {
        let size = MemoryLayout<T>.size
        guard length >= 0, size >= 8 || length < 1 << (8 * size) else {
            preconditionFailure("length \(length) does not fit \(T.self)")
        }
        writeBigEndian(UInt64(length), byteCount: size)
    }

    /// Appends `text` as UTF-8 after a length prefix of `T`'s width.
    package mutating func writeString<T: FixedWidthInteger & UnsignedInteger>(_ text: String, lengthAs type: T.Type) {
        let utf8 = text.utf8
        writeLength(utf8.count, as: T.self)
        bytes.append(contentsOf: utf8)
    }
}
