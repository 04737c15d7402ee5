// Splits a byte stream into newline-terminated lines with a bound on line length. Owns only the
// partial line between reads; what a line means is the caller's business.

import Glibc

/// Cuts a stream into lines (without their `\n`), holding at most `maximumLineBytes` between reads.
///
/// A line longer than the limit is reported once, as `.tooLong`, and its bytes are discarded up to
/// and including the next newline; the lines after it come through normally. Blank lines (only
/// spaces, tabs and carriage returns) are skipped.
public struct LineFramer {
    /// What the framer found.
    public enum Item {
        /// A complete line, valid until the callback returns.
        case line(UnsafeBufferPointer<UInt8>)
        /// A line exceeded the limit and is being skipped.
        case tooLong
    }

    public let maximumLineBytes: Int
    private var partial: [UInt8] = []
    private var isSkippingLongLine = false

    public init(maximumLineBytes: Int) {
        precondition(maximumLineBytes > 0, "line limit \(maximumLineBytes) must be positive")
        self.maximumLineBytes = maximumLineBytes
    }

    /// Bytes of an unfinished line held since the last newline.
    public var bufferedBytes: Int { partial.count }

    /// Feeds bytes and calls `body` for each line or overlong line they complete.
    public mutating func append(_ bytes: UnsafeRawBufferPointer, _ body: (Item) -> Void) {
        let input = bytes.bindMemory(to: UInt8.self)
        var start = 0
        while start < input.count {
            let end = Self.newlineIndex(in: input, from: start)
            let foundNewline = end < input.count
            let piece = UnsafeBufferPointer(rebasing: input[start..<end])
            if isSkippingLongLine {
                if foundNewline { isSkippingLongLine = false }
            } else if partial.count + piece.count > maximumLineBytes {
                partial.removeAll(keepingCapacity: false)
                isSkippingLongLine = !foundNewline
                body(.tooLong)
            } else if foundNewline {
                if partial.isEmpty {
                    if !Self.isBlank(piece) { body(.line(piece)) }
                } else {
                    partial.append(contentsOf: piece)
                    partial.withUnsafeBufferPointer { line in
                        if !Self.isBlank(line) { body(.line(line)) }
                    }
                    partial.removeAll(keepingCapacity: true)
                }
            } else {
                partial.append(contentsOf: piece)
            }
            start = foundNewline ? end + 1 : end
        }
    }

    /// The index of the first newline at or after `start`, or `input.count` (memchr).
    private static func newlineIndex(in input: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        guard let base = input.baseAddress, start < input.count else { return input.count }
        guard let found = memchr(base + start, 0x0A, input.count - start) else { return input.count }
        return UnsafeRawPointer(found) - UnsafeRawPointer(base)
    }

    /// At end of input: the unfinished last line, if there is one (a client that closes without
    /// a final newline still gets its last request answered).
    public mutating func finish(_ body: (Item) -> Void) {
        defer {
            partial.removeAll()
            isSkippingLongLine = false
        }
        guard !isSkippingLongLine, !partial.isEmpty else { return }
        partial.withUnsafeBufferPointer { line in
            if !Self.isBlank(line) { body(.line(line)) }
        }
    }

    private static func isBlank(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }
}
