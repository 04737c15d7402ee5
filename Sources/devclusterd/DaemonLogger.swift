// The daemon's log: one line per event on standard error, `2026-11-27T10:00:00.123Z info  text`,
// or `<6>info  text` when standard error is the systemd journal (which stamps lines itself and reads
// the syslog priority from the prefix), with a level that can change while running (SIGHUP,
// `debug on`). Owns the format and the level; what to log is decided by the callers.

import Glibc
import Synchronization
import Totem
import TotemRuntime

/// Writes timestamped, levelled lines to a sink (standard error by default); usable from any thread.
final class DaemonLogger: Sendable {
    /// Receives finished lines, newline included.
    typealias Sink = @Sendable (String) -> Void

    /// How a line starts.
    enum Style: Sendable, Equatable {
        /// `2026-11-27T10:00:00.123Z info  text`: a terminal or a file.
        case timestamped
        /// `<6>info  text`: the journal, which adds its own timestamp and takes the priority
        /// from the `<N>` prefix (sd-daemon(3)).
        case journal
    }

    private let minimumLevel: Atomic<Int>
    private let sink: Sink
    private let clock: @Sendable () -> timespec
    /// How each line starts.
    let style: Style

    /// Creates a logger.
    ///
    /// - Parameters:
    ///   - level: lines below this level are dropped.
    ///   - sink: where lines go; standard error by default, each line in one `write`.
    ///   - clock: the wall clock (tests pass a fixed one).
    ///   - style: timestamped lines, or journal lines (`Style.standardError` tells which fits).
    init(level: LogLevel, sink: @escaping Sink = DaemonLogger.standardError,
         clock: @escaping @Sendable () -> timespec = DaemonLogger.realTime, style: Style = .timestamped) {
        minimumLevel = Atomic(level.rawValue)
        self.sink = sink
        self.clock = clock
        self.style = style
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
        switch style {
        case .timestamped: sink(Self.format(level: level, message: message(), time: clock()))
        case .journal: sink(Self.journalFormat(level: level, message: message()))
        }
    }

    /// `2026-11-27T10:00:00.123Z info  message\n`: UTC with milliseconds, the level padded to
    /// five characters, a space, the message.
    static func format(level: LogLevel, message: String, time: timespec) -> String {
        timestamp(time) + " " + levelAndMessage(level: level, message: message)
    }

    /// `<6>info  message\n`: the syslog priority the journal files the line under, then the
    /// line as `format` writes it without the timestamp (the journal stamps every line itself).
    static func journalFormat(level: LogLevel, message: String) -> String {
        "<\(level.syslogPriority)>" + levelAndMessage(level: level, message: message)
    }

    /// `info  message\n`.
    private static func levelAndMessage(level: LogLevel, message: String) -> String {
        var line = ""
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

extension DaemonLogger.Style {
    /// `.journal` when standard error is the systemd journal, else `.timestamped`.
    ///
    /// systemd sets `JOURNAL_STREAM=DEVICE:INODE` (decimal) for a service whose output it
    /// connects to the journal; the variable is inherited by children whose output goes
    /// elsewhere, so it counts only when it names the very file standard error is
    /// (systemd.exec(5)).
    static func standardError(environment value: String?) -> DaemonLogger.Style {
        guard let value else { return .timestamped }
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return .timestamped }
        var status = stat()
        guard fstat(STDERR_FILENO, &status) == 0 else { return .timestamped }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode ? .journal : .timestamped
    }

    /// How this process's standard error should be written, from its `JOURNAL_STREAM`.
    static var forStandardError: DaemonLogger.Style {
        standardError(environment: getenv("JOURNAL_STREAM").map { String(cString: $0) })
    }
}

extension LogLevel {
    /// The syslog priority (syslog(3)): error 3, warning 4, notice 5, info 6, debug 7.
    var syslogPriority: Int {
        switch self {
        case .error: 3
        case .warning: 4
        case .notice: 5
        case .info: 6
        case .debug: 7
        }
    }

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
