// The sd_notify protocol spoken directly (no libsystemd): what systemd put in the environment
// (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID), and one datagram per notification to the notify
// socket. When to notify is SystemdSupervisor's business; this file only reads and sends.

import Glibc
import Totem
import TotemRuntime

/// What the service manager asked of this process through its environment (sd_notify(3),
/// sd_watchdog_enabled(3)).
struct SystemdEnvironment: Sendable, Equatable {
    /// Where notifications go; `nil` when NOTIFY_SOCKET is unset or empty (then nothing is sent,
    /// as sd_notify does, silently: not being run by systemd is not a problem).
    var notifySocket: NotifySocketAddress?
    /// How often to send `WATCHDOG=1` (half of WATCHDOG_USEC); `nil` without a watchdog, or when
    /// WATCHDOG_PID names another process.
    var watchdogInterval: Duration?
    /// What was wrong with the variables, each to be logged as a warning.
    var problems: [String] = []

    /// Reads the variables from `lookup` (name to value).
    init(lookup: (String) -> String?, processID: Int32) {
        if let value = lookup("NOTIFY_SOCKET"), !value.isEmpty {
            switch NotifySocketAddress.parse(value) {
            case .success(let address): notifySocket = address
            case .failure(let problem): problems.append(problem.description)
            }
        }
        guard let text = lookup("WATCHDOG_USEC"), !text.isEmpty else { return }
        guard let microseconds = UInt64(text), microseconds > 0, microseconds <= UInt64(Int64.max / 1_000) else {
            problems.append("WATCHDOG_USEC \"\(text)\" is not a positive number of microseconds; no watchdog notifications")
            return
        }
        if let owner = lookup("WATCHDOG_PID"), !owner.isEmpty {
            guard let pid = Int32(owner) else {
                problems.append("WATCHDOG_PID \"\(owner)\" is not a process id; no watchdog notifications")
                return
            }
            // The watchdog is another process's (a wrapper that exec'd us keeps its own): not ours.
            guard pid == processID else { return }
        }
        watchdogInterval = .microseconds(Int64(microseconds / 2))
    }

    /// Reads this process's variables and removes them from the environment (sd_notify's and
    /// sd_watchdog_enabled's `unset_environment`), so that no child inherits a socket or a
    /// watchdog meant for the daemon. Call before any thread is started (setenv and unsetenv
    /// are not thread-safe).
    static func takeFromProcess() -> SystemdEnvironment {
        let names = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]
        var values: [String: String] = [:]
        for name in names {
            if let value = getenv(name) { values[name] = String(cString: value) }
        }
        let environment = SystemdEnvironment(lookup: { values[$0] }, processID: getpid())
        for name in names { unsetenv(name) }
        return environment
    }
}

/// The address in NOTIFY_SOCKET: a file system path, or (`@name`) a socket in the abstract
/// namespace.
enum NotifySocketAddress: Sendable, Equatable, CustomStringConvertible {
    case path(String)
    case abstract(String)

    /// Why a NOTIFY_SOCKET value cannot be used.
    struct Problem: Error, Equatable, CustomStringConvertible {
        var description: String
    }

    /// `/run/systemd/notify` or `@name`; anything else (a relative path, `vsock:` addresses of
    /// virtual machines, a value too long for `sun_path`) is refused with the reason.
    static func parse(_ value: String) -> Result<NotifySocketAddress, Problem> {
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        let bytes = Array(value.utf8)
        guard !bytes.contains(0), bytes.count < capacity else {
            return .failure(Problem(description: "NOTIFY_SOCKET \"\(value)\" does not fit a Unix socket address "
                + "(at most \(capacity - 1) bytes); systemd will not hear from the daemon"))
        }
        if value.hasPrefix("/") { return .success(.path(value)) }
        if value.hasPrefix("@"), bytes.count > 1 { return .success(.abstract(String(value.dropFirst()))) }
        return .failure(Problem(description: "NOTIFY_SOCKET \"\(value)\" is neither an absolute path nor an abstract "
            + "socket (@name); systemd will not hear from the daemon"))
    }

    var description: String {
        switch self {
        case .path(let path): path
        case .abstract(let name): "@" + name
        }
    }

    /// Calls `body` with the address as a `sockaddr_un` and its length: a path ends with NUL, an
    /// abstract name starts with one and has none at the end.
    func withAddress<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes: [UInt8]
        switch self {
        case .path(let path): bytes = Array(path.utf8) + [0]
        case .abstract(let name): bytes = [0] + Array(name.utf8)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.prefix(buffer.count).enumerated() { buffer[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + min(bytes.count, MemoryLayout.size(ofValue: address.sun_path)))
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}

/// Sends notifications to the service manager, one datagram each, never blocking.
///
/// A socket that is missing or refuses (systemd gone, a wrong NOTIFY_SOCKET) costs a warning the
/// first time each error occurs and nothing else: the daemon runs on without the manager.
final class SystemdNotifier {
    let address: NotifySocketAddress
    private let descriptor: Int32
    private let logger: DaemonLogger
    /// The errno of the last failed send, so that a failure is logged when it starts.
    private var lastFailure: Int32 = 0

    /// Opens a datagram socket for `address`.
    ///
    /// - Throws: when no socket can be created (then nothing can be sent at all).
    init(address: NotifySocketAddress, logger: DaemonLogger) throws(SystemError) {
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard descriptor >= 0 else { throw SystemError("socket for NOTIFY_SOCKET \(address)", code: errno) }
        self.address = address
        self.descriptor = descriptor
        self.logger = logger
    }

    deinit {
        _ = close(descriptor)
    }

    /// Sends `fields` (`READY=1`, `STATUS=...`) as one datagram of newline-separated assignments.
    ///
    /// - Returns: whether the manager's socket took it.
    @discardableResult
    func send(_ fields: [String]) -> Bool {
        let message = Array(fields.map { DaemonLogger.singleLine($0) }.joined(separator: "\n").utf8)
        let sent = message.withUnsafeBytes { buffer in
            address.withAddress { sendto(descriptor, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), $0, $1) }
        }
        if sent == message.count {
            if lastFailure != 0 { logger.notice("systemd's notify socket \(address) takes notifications again") }
            lastFailure = 0
            return true
        }
        let code = sent < 0 ? errno : EMSGSIZE
        if code != lastFailure {
            logger.warning("cannot notify systemd through \(address): \(String(cString: strerror(code))) "
                + "(the daemon runs on; systemd may consider its start or watchdog failed)")
        }
        lastFailure = code
        return false
    }
}
