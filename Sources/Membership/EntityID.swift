// A server's entity id (Asterisk's EID): the identity that tags its device states. Owns the
// value, its text form and parsing; where the id comes from (config, interface MAC) is the daemon's.

/// A six-octet server identity, written `01:23:45:67:89:ab` (Asterisk `struct ast_eid`).
///
/// Every device state a server publishes is tagged with its entity id, and each server keeps
/// one cache slot per (device, entity id). The octets are packed big-endian into the low 48 bits
/// of `rawValue`, so ids compare and hash as integers and order as their octets do.
public struct EntityID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The six octets, big-endian, in the low 48 bits; the high 16 bits are always zero.
    public let rawValue: UInt64

    /// Creates an id from a 48-bit value, or `nil` if any of the high 16 bits is set.
    public init?(rawValue: UInt64) {
        guard rawValue >> 48 == 0 else { return nil }
        self.rawValue = rawValue
    }

    /// Creates an id from exactly six octets, or `nil` for another count.
    public init?(octets: some Collection<UInt8>) {
        guard octets.count == 6 else { return nil }
        rawValue = octets.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// Parses six two-digit hex octets separated by `:` (either case), as `ast_str_to_eid` does;
    /// returns `nil` for anything else.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var value: UInt64 = 0
        for part in parts {
            guard part.utf8.count == 2, part.utf8.allSatisfy(Self.isHexDigit), let octet = UInt8(part, radix: 16) else {
                return nil
            }
            value = value << 8 | UInt64(octet)
        }
        rawValue = value
    }

    /// The six octets, most significant first.
    public var octets: [UInt8] {
        (0..<6).map { UInt8(truncatingIfNeeded: rawValue >> (40 - 8 * $0)) }
    }

    /// Whether every octet is zero (`ast_eid_is_empty`): no identity was configured or found.
    public var isZero: Bool { rawValue == 0 }

    /// Lower-case hex octets separated by `:`, as `ast_eid_to_str` prints them.
    public var description: String {
        octets.map { octet in
            let digits = String(octet, radix: 16)
            return octet < 16 ? "0" + digits : digits
        }.joined(separator: ":")
    }

    public static func < (lhs: EntityID, rhs: EntityID) -> Bool { lhs.rawValue < rhs.rawValue }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
    }
}
