// A node's network address as the directory shows it. Owns the value and its text form; sockets
// and parsing of configuration text are the daemon's.

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address, without port or zone.
public struct NodeAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address in network byte order: 4 or 16 bytes.
    public let bytes: [UInt8]

    /// Creates an address from 4 or 16 bytes, or `nil` for another count.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Whether this is an IPv4 address.
    public var isIPv4: Bool { bytes.count == 4 }

    /// Dotted quad for IPv4; RFC 5952 text for IPv6 (lower case, longest zero run as `::`).
    public var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        let groups = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
        // The longest run of at least two zero groups, the first one on a tie (RFC 5952 §4.2).
        var best: (start: Int, length: Int) = (0, 0)
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else { index += 1; continue }
            var end = index
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - index > best.length { best = (index, end - index) }
            index = end
        }
        let text = { (range: Range<Int>) in range.map { String(groups[$0], radix: 16) }.joined(separator: ":") }
        guard best.length >= 2 else { return text(0..<8) }
        return text(0..<best.start) + "::" + text((best.start + best.length)..<8)
    }
}
