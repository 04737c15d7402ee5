// How long the token takes to come round, measured at one node: the time between two successive
// tokens this node accepts in the same operational ring, kept as a last value and a histogram
// with fixed bounds. Values only; RingNode records, status and metrics read.

import Totem

/// Token rotation times seen at this node.
///
/// A rotation is the time from one accepted token to the next in the same ring, while
/// operational; the first token of a new ring starts a new series (a re-formation is not a
/// rotation). On an idle ring the token rests at the representative (it is held), so rotations
/// there include that rest and stay near the hold time; a busy ring's rotations are the token's
/// real round trip plus the work each node does on it.
public struct TokenRotationStatistics: Sendable, Equatable {
    /// Upper bounds of the histogram buckets, in seconds, ascending (the last bucket, above them
    /// all, is implicit: `+Inf`).
    public static let bucketBoundsSeconds: [Double] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
    ]
    /// The same bounds in nanoseconds, for recording without floating point.
    private static let bucketBoundsNanoseconds: [Int64] = bucketBoundsSeconds.map { Int64(($0 * 1e9).rounded()) }

    /// Rotations per bucket (not cumulative): `bucketCounts[i]` counts rotations above bound
    /// `i - 1` and at most bound `i`; the last entry counts those above every bound.
    public private(set) var bucketCounts = [Int](repeating: 0, count: TokenRotationStatistics.bucketBoundsSeconds.count + 1)
    /// Rotations measured.
    public private(set) var count = 0
    /// Their sum, in nanoseconds.
    public private(set) var sumNanoseconds: Int64 = 0
    /// The last rotation, or `nil` before the first.
    public private(set) var last: Duration?

    public init() {}

    /// Counts one rotation. Negative durations (a clock that went backwards, which the monotonic
    /// clock does not) count as zero.
    public mutating func record(_ rotation: Duration) {
        let nanoseconds = max(0, rotation.totalNanoseconds)
        var bucket = Self.bucketBoundsNanoseconds.count
        for (index, bound) in Self.bucketBoundsNanoseconds.enumerated() where nanoseconds <= bound {
            bucket = index
            break
        }
        bucketCounts[bucket] += 1
        count += 1
        // Saturates instead of trapping (292 years of rotations).
        let (sum, overflow) = sumNanoseconds.addingReportingOverflow(nanoseconds)
        sumNanoseconds = overflow ? Int64.max : sum
        last = rotation
    }
}
