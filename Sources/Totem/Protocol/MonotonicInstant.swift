// Time as the core sees it: an instant on a monotonic clock, always passed in by the caller.

/// A point on a monotonic clock, in nanoseconds since an arbitrary origin.
///
/// The core never reads a clock: every input carries `now`, and timers go out as `armTimer`
/// effects with a deadline. The runtime supplies `CLOCK_MONOTONIC`; the simulator a virtual clock.
public struct MonotonicInstant: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static let zero = MonotonicInstant(nanoseconds: 0)

    public static func milliseconds(_ value: Int64) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: value * 1_000_000)
    }

    public static func < (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    public static func + (lhs: MonotonicInstant, rhs: Duration) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: lhs.nanoseconds + rhs.totalNanoseconds)
    }

    public static func - (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Duration {
        .nanoseconds(lhs.nanoseconds - rhs.nanoseconds)
    }

    /// Whole milliseconds since the origin, for traces.
    public var milliseconds: Int64 { nanoseconds / 1_000_000 }

    public var description: String { "\(milliseconds)ms" }
}

extension Duration {
    /// The duration in nanoseconds (saturating far outside any timer the protocol uses).
    public var totalNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// The duration in whole milliseconds.
    public var totalMilliseconds: Int64 { totalNanoseconds / 1_000_000 }
}
