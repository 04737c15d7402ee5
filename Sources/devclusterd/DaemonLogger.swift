// The daemon's log: one line per event on standard error, `2026-11-27T10:00:00.123Z info  text`,
// with a level that can change while running (SIGHUP, `debug on`). Owns the format and the level;
// what to log is decided by the callers.

import Glibc
import Synchronization
import Totem

/// Writes timestamped, levelled lines to a sink (standard error by default); usable from any thread.
final class DaemonLogger: Sendable {
    /// Receives finished lines, newline included.
    typealias Sink = @Sendable (String) -> Void

    private let minimumLevel: Atomic<Int>
    private let sink: Sink
    private let clock: @Sendable () -> timespec

    /// Creates a logger.
    ///
    /// - Parameters:
    ///   - level: lines below this level are dropped.
    ///   - sink: where lines go; standard error by default, each line in one `write`.
    ///   - clock: the wall clock (tests pass a fixed one).
    init(level: LogLevel, sink: @escaping Sink = DaemonLogger.standardError,
         clock: @escaping @Sendable () -> timespec = DaemonLogger.realTime) {
        minimumLevel = Atomic(level.rawValue)
        self.sink = sink
        self.clock = clock
    }

    /// Lines below this level are dropped.
    var level: LogLevel {
        LogLevel(rawValue: minimumLevel.load(ordering: .relaxed)) ?? .info
    }

    /// Changes the level for every later line.
    func setLevel(_ level: LogLevel) {
        minimumLevel.store(level.rawValue, ordering: .relaxed)
    }

    /// Whether a line at `level` would be written.
    func isEnabled(_ level: LogLevel) -> Bool { level.rawValue >= minimumLevel.load(ordering: .relaxed) }

    func debug(_ message: @autoclosure () -> String) { log(.debug, message()) }
    func info(_ message: @autoclosure () -> String) { log(.info, message()) }
    func notice(_ message: @autoclosure () -> String) { log(.notice, message()) }
    func warning(_ message: @autoclosure () -> String) { log(.warning, message()) }
    func error(_ message: @autoclosure () -> String) { log(.error, message()) }

    /// Writes `message` at `level` if the level is enabled. Control characters in the message
    /// are escaped so that one call is always one line.
    func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard isEnabled(level) else { return }
        sink(Self.format(level: level, message: message(), time: clock()))
    }

    /// `2026-11-27T10:00:00.123Z info  message\n`: UTC with milliseconds, the level padded to
    /// five characters, a space, the message.
    static func format(level: LogLevel, message: String, time: timespec) -> String {
        var line = timestamp(time)
        line += " "
        let name = level.description
        line += name
        if name.count < 5 { line += String(repeating: " ", count: 5 - name.count) }
        line += " "
        line += singleLine(message)
        line += "\n"
        return line
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` of a wall-clock time.
    static func timestamp(_ time: timespec) -> String {
        var seconds = time_t(time.tv_sec)
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else { return "\(time.tv_sec)" }
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let milliseconds = Int(time.tv_nsec / 1_000_000)
        let millisecondText = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(millisecondText)Z"
    }

    /// The message with newlines, carriage returns and other control characters escaped.
    static func singleLine(_ message: String) -> String {
        guard message.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return message }
        var result = ""
        for scalar in message.unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                result += "\\x" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// Writes each line with one `write(2)` to standard error, so lines from two threads do not mix.
    static let standardError: Sink = { line in
        Console.write(line, to: STDERR_FILENO, attempts: 100)
    }

    /// `CLOCK_REALTIME`.
    static let realTime: @Sendable () -> timespec = {
        var time = timespec()
        _ = clock_gettime(CLOCK_REALTIME, &time)
        return time
    }
}

extension LogLevel {
    /// The runtime's level for a configured `log_level`.
    init(_ configured: DaemonConfiguration.LogLevel) {
        switch configured {
        case .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        }
    }
}
