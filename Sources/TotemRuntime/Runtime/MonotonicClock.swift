// The runtime's only clock: CLOCK_MONOTONIC as a MonotonicInstant. The core never reads it; the
// runtime passes `now` with every input.

import Glibc
import Totem

/// Reads `CLOCK_MONOTONIC`, which never jumps with wall-clock changes (NTP, an operator's
/// `date`), so timer deadlines stay meaningful.
public enum MonotonicClock {
    /// The current instant.
    public static func now() -> MonotonicInstant {
        var time = timespec()
        // CLOCK_MONOTONIC cannot fail on Linux with a valid pointer.
        _ = clock_gettime(CLOCK_MONOTONIC, &time)
        return MonotonicInstant(nanoseconds: Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec))
    }
}
