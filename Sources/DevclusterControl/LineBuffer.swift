// A byte buffer for building one pushed line at a time, kept between lines.

/// Bytes written through a pointer into memory this buffer owns, reused from line to line.
///
/// A `channel_event` line is some twenty small pieces around the payload; appending them to an
/// `[UInt8]` cost a uniqueness check and a generic call each (about a hundred instructions per
/// piece, more than the piece's bytes), which a receiving daemon pays for every event.
/// Not copyable: it owns its memory.
public struct LineBuffer: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Bytes written since the last `removeAll`.
    public private(set) var count = 0

    /// A buffer with room for `capacity` bytes before it first grows.
    public init(capacity: Int) {
        precondition(capacity > 0, "line buffer capacity \(capacity)")
        base = .allocate(capacity: capacity)
        self.capacity = capacity
    }

    deinit { base.deallocate() }

    /// Forgets the bytes, keeping the memory. A buffer grown beyond `keepAtMost` (a burst of
    /// large lines) shrinks back to it.
    public mutating func removeAll(keepAtMost limit: Int) {
        count = 0
        if capacity > limit {
            base.deallocate()
            base = .allocate(capacity: limit)
            capacity = limit
        }
    }

    /// Makes room for `extra` more bytes.
    public mutating func reserve(_ extra: Int) {
        guard extra > capacity - count else { return }
        let grown = max(count + extra, capacity * 2)
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: grown)
        moved.initialize(from: base, count: count)
        base.deallocate()
        base = moved
        capacity = grown
    }

    public mutating func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    public mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(bytes.count)
        (base + count).initialize(from: source, count: bytes.count)
        count += bytes.count
    }

    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { append($0) }
    }

    /// Appends a constant, such as a key with its punctuation (`,"type":"`).
    public mutating func append(_ text: StaticString) {
        append(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Appends the decimal digits of `value`.
    public mutating func appendDecimal(_ value: UInt64) {
        reserve(20)
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        var remaining = value
        for index in stride(from: count + digits - 1, through: count, by: -1) {
            base[index] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
        }
        count += digits
    }

    /// The bytes written.
    public func withBytes<Result>(_ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        body(UnsafeBufferPointer(start: base, count: count))
    }
}
