// Which repeated log lines to write: at most one per key and interval, counting the ones held
// back. The keys are a fixed, small set (a cap reached, a payload rejected, ...).

import Totem

/// The state of rate-limited log lines.
struct RateLimitedLog: Sendable {
    /// The least time between two lines of one key.
    let interval: Duration
    /// When each key last logged, and how many lines were held back since.
    private var entries: [String: (lastLogged: MonotonicInstant, heldBack: Int)] = [:]

    init(interval: Duration) {
        self.interval = interval
    }

    /// Whether a line of `key` may be written at `now`.
    ///
    /// - Returns: `nil` to hold it back (counted); else how many were held back since the last
    ///   line of `key`, to say so in this one.
    mutating func admit(_ key: String, now: MonotonicInstant) -> Int? {
        if let entry = entries[key], now - entry.lastLogged < interval {
            entries[key] = (entry.lastLogged, entry.heldBack + 1)
            return nil
        }
        let heldBack = entries[key]?.heldBack ?? 0
        entries[key] = (now, 0)
        return heldBack
    }
}
