// Appends big-endian integers and bytes to an outgoing datagram. Owns byte order only; the
// layouts live in WireCodec.

/// Builds an outgoing datagram by appending to a `[UInt8]` that the caller owns.
///
/// The writer takes the caller's buffer (by swapping, so the storage stays uniquely referenced
/// and is never copied), reserves the exact number of bytes the packet needs, and hands the
/// buffer back in `finish(into:)`. All integers are written big-endian (spec §2.2).
struct WireWriter {
    private var bytes: [UInt8] = []

    /// Takes over `buffer`, leaving it empty until `finish(into:)`, and reserves room for
    /// `capacity` more bytes after its current contents.
    init(appendingTo buffer: inout [UInt8], reservingCapacity capacity: Int) {
        precondition(capacity >= 0, "negative capacity \(capacity)")
        swap(&bytes, &buffer)
        bytes.reserveCapacity(bytes.count + capacity)
    }

    /// Bytes in the buffer, including what it held before this writer took it.
    var count: Int { bytes.count }

    /// Gives the buffer, with everything appended, back to `buffer`.
    mutating func finish(into buffer: inout [UInt8]) {
        swap(&bytes, &buffer)
    }

    /// Appends one byte.
    mutating func write(_ value: UInt8) {
        bytes.append(value)
    }

    /// Appends a `UInt16`, big-endian.
    mutating func write(_ value: UInt16) {
        writeInteger(value)
    }

    /// Appends a `UInt32`, big-endian.
    mutating func write(_ value: UInt32) {
        writeInteger(value)
    }

    /// Appends a `UInt64`, big-endian.
    mutating func write(_ value: UInt64) {
        writeInteger(value)
    }

    /// Appends a Boolean as one byte, 1 for true and 0 for false.
    mutating func write(_ value: Bool) {
        bytes.append(value ? 1 : 0)
    }

    /// Appends raw bytes unchanged.
    mutating func write(contentsOf data: [UInt8]) {
        bytes.append(contentsOf: data)
    }

    @inline(__always)
    private mutating func writeInteger<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }
}
