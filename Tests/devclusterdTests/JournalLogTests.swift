// Logs when standard error is the systemd journal ($JOURNAL_STREAM names the very file standard
// error is): `<N>` syslog priority prefixes and no timestamp of our own; otherwise the timestamped
// lines as before. log_level applies either way. Checked on the formatter and on a real daemon
// whose standard error is a file the test names in JOURNAL_STREAM.

import Foundation
import Glibc
import Synchronization
import Testing
import Totem
@testable import devclusterd

@Suite("Journal logs", .serialized)
struct JournalLogTests {
    /// `DEVICE:INODE` of `path`, as systemd writes JOURNAL_STREAM.
    private static func journalStream(of path: String) throws -> String {
        var status = stat()
        guard stat(path, &status) == 0 else { throw TestFailure("stat \(path): errno \(errno)") }
        return "\(status.st_dev):\(status.st_ino)"
    }

    /// `2026-...Z ` at the start of a line.
    private static func isTimestamped(_ line: Substring) -> Bool {
        line.count > 25 && line.hasPrefix("20") && line.dropFirst(23).hasPrefix("Z ")
    }

    @Test func journalLinesCarryThePriorityAndNoTimestamp() {
        let lines = LogCollector()
        let collected = Mutex<[String]>([])
        let logger = DaemonLogger(level: .info, sink: { line in collected.withLock { $0.append(line) } }, style: .journal)
        logger.debug("hidden")
        logger.info("ring 1.5 formed: server1")
        logger.notice("quorum regained")
        logger.warning("server2 failed")
        logger.error("not started:\nsecond line")
        #expect(collected.withLock { $0 } == [
            "<6>info  ring 1.5 formed: server1\n",
            "<5>notice quorum regained\n",
            "<4>warning server2 failed\n",
            "<3>error not started:\\nsecond line\n",
        ])
        // The level still applies, and changes live.
        logger.setLevel(.warning)
        logger.notice("dropped")
        logger.debug("dropped")
        #expect(collected.withLock { $0.count } == 4)
        logger.setLevel(.debug)
        logger.debug("shown")
        #expect(collected.withLock { $0.last } == "<7>debug shown\n")
        // The timestamped style is unchanged.
        let plain = lines.makeLogger(level: .info)
        plain.warning("server2 failed")
        #expect(lines.raw == ["2026-11-27T10:00:00.123Z warning server2 failed\n"])
    }

    @Test func theJournalIsRecognisedOnlyByTheFileStandardErrorIs() throws {
        var status = stat()
        try #require(fstat(STDERR_FILENO, &status) == 0)
        #expect(DaemonLogger.Style.standardError(environment: "\(status.st_dev):\(status.st_ino)") == .journal)
        #expect(DaemonLogger.Style.standardError(environment: "\(status.st_dev):\(status.st_ino &+ 1)") == .timestamped)
        #expect(DaemonLogger.Style.standardError(environment: "\(status.st_dev &+ 1):\(status.st_ino)") == .timestamped)
        for malformed in ["", ":", "12", "12:", ":34", "a:b", "1:2:3", "-1:5"] {
            #expect(DaemonLogger.Style.standardError(environment: malformed) == .timestamped, "\(malformed)")
        }
        #expect(DaemonLogger.Style.standardError(environment: nil) == .timestamped)
    }

    @Test func aDaemonWritingToTheJournal() async throws {
        try #require(daemonExecutable != nil, "devclusterd was not found next to the test binary; build it with swift build")
        let base = try makeTemporaryDirectory()
        let children = Children()
        defer {
            children.killAll()
            removeDirectory(base)
        }
        // log_level = notice: no info or debug lines either way.
        let node = try makeNode(1, of: 1, in: base, port: randomPort(), logLevel: "notice")
        let journal = base + "/journal"
        let output = base + "/stdout"
        _ = FileManager.default.createFile(atPath: journal, contents: nil)
        let stream = try Self.journalStream(of: journal)
        let daemon = try children.start(["--foreground", "--config", node.configuration], log: output, errorLog: journal,
                                        environment: ["JOURNAL_STREAM": stream])
        let up = await eventually(within: .seconds(20)) { formed([node], members: [1]) }
        try #require(up, "no ring; stderr:\n\((try? String(contentsOfFile: journal, encoding: .utf8)) ?? "")")
        kill(daemon.processIdentifier, SIGTERM)
        #expect(await children.waitForExit(daemon, timeout: .seconds(10)) == 0)
        let lines = try String(contentsOfFile: journal, encoding: .utf8).split(separator: "\n")
        #expect(lines.contains("<4>warning no cluster key: datagrams are neither authenticated nor encrypted, "
            + "so any host that can reach UDP port \(try Self.port(of: node)) can join or disrupt the ring; create a key with "
            + "\"devclusterd keygen\", copy it to every node and set crypto = hmac-sha256 (or chacha20-poly1305) and keyfile in [totem]"))
        #expect(lines.contains("<5>notice received SIGTERM: leaving the ring and stopping"), "\(lines)")
        for line in lines {
            #expect(line.hasPrefix("<3>") || line.hasPrefix("<4>") || line.hasPrefix("<5>"), "\(line)")
            #expect(!line.contains("Z info") && !line.contains(":00.") && !Self.isTimestamped(line.dropFirst(3)), "\(line)")
        }

        // The same daemon with JOURNAL_STREAM naming another file (inherited, not ours): timestamps.
        let other = base + "/other"
        _ = FileManager.default.createFile(atPath: other, contents: nil)
        let plainLog = base + "/plain"
        let plain = try children.start(["--foreground", "--config", node.configuration], log: output, errorLog: plainLog,
                                       environment: ["JOURNAL_STREAM": try Self.journalStream(of: other)])
        let again = await eventually(within: .seconds(20)) { formed([node], members: [1]) }
        try #require(again, "no ring; stderr:\n\((try? String(contentsOfFile: plainLog, encoding: .utf8)) ?? "")")
        kill(plain.processIdentifier, SIGTERM)
        #expect(await children.waitForExit(plain, timeout: .seconds(10)) == 0)
        let plainLines = try String(contentsOfFile: plainLog, encoding: .utf8).split(separator: "\n")
        #expect(!plainLines.isEmpty)
        for line in plainLines {
            #expect(Self.isTimestamped(line) && !line.hasPrefix("<"), "\(line)")
            #expect(!line.contains(" info ") && !line.contains(" debug "), "\(line)")
        }
    }

    /// The mcastport in a node's configuration.
    private static func port(of node: TestNode) throws -> String {
        let text = try String(contentsOfFile: node.configuration, encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("mcastport = ") })
        return String(line.dropFirst("mcastport = ".count))
    }
}
