// Log levels, the log handler type the runtime reports through, and the rate limiter that keeps
// a flood of bad datagrams from flooding the log. Owns no log destination policy.

import Glibc
import Totem

/// How important a log line is.
public enum LogLevel: Int, Sendable, Comparable, CustomStringConvertible {
    case debug
    case info
    case notice
    case warning
    case error

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String {
        switch self {
        case .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warning: "warning"
        case .error: "error"
        }
    }
}

/// Receives the runtime's log lines, on the event-loop thread.
public typealias LogHandler = @Sendable (LogLevel, String) -> Void

/// Ready-made log handlers.
public enum RuntimeLog {
    /// Writes `level: message` lines to standard error.
    public static let standardError: LogHandler = { level, message in
        let line = Array("\(level): \(message)\n".utf8)
        line.withUnsafeBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    /// Discards everything.
    public static let discard: LogHandler = { _, _ in }
}

/// Allows one line per key per interval and counts the lines it held back, so a stream of
/// forged or foreign datagrams costs one log line a second, not one per datagram.
struct LogRateLimiter {
    private struct Entry {
        var lastLogged: MonotonicInstant
        var suppressed: Int
    }

    let interval: Duration
    private var entries: [String: Entry] = [:]
    /// Keys are chosen by the runtime from a small fixed set (reason kinds), but a bound keeps a
    /// mistake from growing the table without limit.
    private static let maximumKeys = 256

    init(interval: Duration) {
        self.interval = interval
    }

    /// Whether a line with `key` may be logged now; if so, also how many were held back since
    /// the last one.
    mutating func admit(_ key: String, now: MonotonicInstant) -> (allowed: Bool, suppressed: Int) {
        if var entry = entries[key] {
            guard now - entry.lastLogged >= interval else {
                entry.suppressed += 1
                entries[key] = entry
                return (false, 0)
            }
            let suppressed = entry.suppressed
            entries[key] = Entry(lastLogged: now, suppressed: 0)
            return (true, suppressed)
        }
        if entries.count >= Self.maximumKeys { entries.removeAll(keepingCapacity: true) }
        entries[key] = Entry(lastLogged: now, suppressed: 0)
        return (true, 0)
    }
}
