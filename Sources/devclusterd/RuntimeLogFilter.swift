// Turns the Totem runtime's log lines into the daemon's: configuration changes and state entries
// are logged by the Daemon with node names (the runtime's raw lines drop to debug), dropped datagrams are limited to
// one line per source and kind every 10 s and name the likely cause. Decides nothing else.

import Synchronization
import Totem
import TotemRuntime

/// Rewrites and rate-limits the runtime's log lines before they reach the `DaemonLogger`.
///
/// The runtime already limits drop lines to one a second per kind; a node with the wrong key
/// still costs a line a second, so this allows one line per (source, kind) per `interval` and
/// says how many were held back. The totals appear in the Daemon's periodic summary.
final class RuntimeLogFilter: Sendable {
    private struct Entry {
        var lastLogged: MonotonicInstant
        var suppressed: Int
    }

    private let logger: DaemonLogger
    private let interval: Duration
    private let entries = Mutex<[String: Entry]>([:])
    /// Bounds the table when sources keep changing (spoofed addresses).
    private static let maximumEntries = 1_024

    init(logger: DaemonLogger, interval: Duration = .seconds(10)) {
        self.logger = logger
        self.interval = interval
    }

    /// The runtime's `LogHandler`: pass it in `NodeRuntimeConfiguration.log`.
    var handler: LogHandler {
        { [self] level, message in handle(level, message, now: MonotonicClock.now()) }
    }

    /// What to do with one runtime line (exposed for tests).
    func handle(_ level: LogLevel, _ message: String, now: MonotonicInstant) {
        if Self.isConfigurationReport(message) {
            logger.log(.debug, message)
        } else if message.hasPrefix("AUTHENTICATION IS OFF") {
            // The Daemon gives this warning at start with the remedy; no need to say it twice.
            logger.log(.debug, message)
        } else if let drop = DroppedDatagram(parsing: message) {
            logDrop(drop, level: level, now: now)
        } else {
            logger.log(level, message)
        }
    }

    /// `node 1: regular configuration 1.12: members [...]` and `node 1 entered operational (...)`:
    /// the Daemon's `ring 1.12 formed: server1, server2` says the same with names.
    private static func isConfigurationReport(_ message: String) -> Bool {
        guard message.hasPrefix("node ") else { return false }
        return message.contains(": transitional configuration ") || message.contains(": regular configuration ")
            || message.contains(" entered operational (")
    }

    private func logDrop(_ drop: DroppedDatagram, level: LogLevel, now: MonotonicInstant) {
        let key = drop.source + " " + drop.kind.rawValue
        let decision = entries.withLock { entries -> (allowed: Bool, suppressed: Int) in
            if var entry = entries[key] {
                guard now - entry.lastLogged >= interval else {
                    entry.suppressed += 1
                    entries[key] = entry
                    return (false, 0)
                }
                entries[key] = Entry(lastLogged: now, suppressed: 0)
                return (true, entry.suppressed)
            }
            if entries.count >= Self.maximumEntries { entries.removeAll(keepingCapacity: true) }
            entries[key] = Entry(lastLogged: now, suppressed: 0)
            return (true, 0)
        }
        guard decision.allowed else { return }
        var line = drop.rewritten
        if decision.suppressed > 0 {
            line += " (\(decision.suppressed) more such lines from this source held back)"
        }
        logger.log(level, line)
    }
}

/// A runtime line `dropped datagram from SOURCE[ (header)]: REASON[; N similar drops not logged]`.
struct DroppedDatagram: Equatable {
    enum Kind: String {
        case authentication
        case foreignCluster = "foreign-cluster"
        case other
    }

    var source: String
    var header: String
    var reason: String
    var kind: Kind

    private static let prefix = "dropped datagram from "

    init?(parsing message: String) {
        guard message.hasPrefix(Self.prefix) else { return nil }
        let rest = message.dropFirst(Self.prefix.count)
        guard let colon = rest.firstRange(of: ": ") else { return nil }
        let head = rest[..<colon.lowerBound]
        if let parenthesis = head.firstRange(of: " (") {
            source = String(head[..<parenthesis.lowerBound])
            header = String(head[parenthesis.lowerBound...].dropFirst())
        } else {
            source = String(head)
            header = ""
        }
        var reason = String(rest[colon.upperBound...])
        if let more = reason.ranges(of: "; ").last, reason[more.upperBound...].hasSuffix("similar drops not logged") {
            reason = String(reason[..<more.lowerBound])
        }
        self.reason = reason
        if reason.contains("authentication code does not match") || reason.contains("authentication tag does not match")
            || reason.hasPrefix("datagram of ") {
            kind = .authentication
        } else if reason.hasPrefix("foreign cluster") {
            kind = .foreignCluster
        } else {
            kind = .other
        }
    }

    /// The line as the daemon logs it, naming the likely cause.
    var rewritten: String {
        let about = header.isEmpty ? "" : " \(header)"
        switch kind {
        case .authentication:
            let cause = reason.hasPrefix("datagram of ")
                ? "the sender probably runs with another crypto setting (crypto = none, or another mode)"
                : "the sender probably uses a different cluster key (keyfile)"
            return "authentication failed for a datagram from \(source)\(about): \(reason); \(cause)"
        case .foreignCluster:
            return "ignored a datagram from \(source)\(about) of another cluster (\(reason)); "
                + "another cluster with a different cluster_name uses this address and port"
        case .other:
            return "dropped datagram from \(source)\(about): \(reason)"
        }
    }
}
