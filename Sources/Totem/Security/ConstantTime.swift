// Comparison of secret byte strings (authentication codes, tags) in time independent of content.
// It hides where two equal-length inputs differ, not their lengths, which are public.

/// Whether two byte sequences are equal, examining every byte whatever the content.
///
/// Use this, never `==`, to compare a received authentication code or tag with the expected
/// one: `==` returns at the first differing byte, so its running time tells an attacker how
/// long a prefix of a forged code was right, and lets them guess it byte by byte.
///
/// Lengths are not secret (the packet format fixes them), so a length mismatch returns
/// `false` at once. For equal lengths the loop visits every pair and only accumulates the
/// differences; the single branch on the result comes after the loop.
///
/// - Returns: `true` if `a` and `b` have the same length and the same bytes.
public func constantTimeEquals(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for (left, right) in zip(a, b) {
        difference |= left ^ right
    }
    return difference == 0
}
