// Message sequence numbers of one ring and their wrap-around (serial) arithmetic.

/// A message sequence number within one ring (spec §1.3), compared with serial-number arithmetic.
///
/// `a < b` is `Int32(bitPattern: a &- b) < 0`, which is correct as long as the two values are
/// less than 2^31 apart. Totem never has more than `SortQueue.capacity` (16384) messages
/// outstanding, so every comparison the protocol makes is well inside that bound. This is not a
/// total order over all of `UInt32` (it is not transitive across half the space), which is why
/// the protocol only compares numbers that belong to one window.
///
/// The special value `SequenceNumber.nothingReceived` (`0 &- 1`) is the aru of a fresh token.
public struct SequenceNumber: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32

    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    /// Seq 0: nothing sequenced yet in this ring. The first message of a ring gets 1.
    public static let zero = SequenceNumber(0)
    /// `0 &- 1`, serially just below zero: the aru of a freshly created token (spec §4.9).
    public static let nothingReceived = SequenceNumber(0 &- 1)

    public static func < (lhs: SequenceNumber, rhs: SequenceNumber) -> Bool {
        Int32(bitPattern: lhs.rawValue &- rhs.rawValue) < 0
    }

    /// The number `count` after this one, wrapping.
    public func advanced(by count: UInt32) -> SequenceNumber { SequenceNumber(rawValue &+ count) }

    /// The next sequence number, wrapping.
    public var next: SequenceNumber { advanced(by: 1) }

    /// How far `other` is ahead of `self`, as a signed serial distance.
    public func distance(to other: SequenceNumber) -> Int32 { Int32(bitPattern: other.rawValue &- rawValue) }

    /// The serially smaller of two numbers.
    public static func serialMin(_ a: SequenceNumber, _ b: SequenceNumber) -> SequenceNumber { a < b ? a : b }

    public var description: String { String(rawValue) }
}
