// The local state file's writer thread: the latest table wins, finish writes what is pending,
// and a failing write is reported, retried and recovered from.

import DeviceState
import Foundation
import Glibc
import Synchronization
import Testing
@testable import devclusterd

@Suite("StateFileWriter")
struct StateFileWriterTests {
    static func table(_ count: Int) throws -> LocalStateTable {
        var table = LocalStateTable()
        for index in 0..<count { table.devices[try DeviceName(parsing: "Custom:d\(index)")] = .inUse }
        return table
    }

    static func read(_ path: String) throws -> LocalStateTable? {
        guard let bytes = try FileSystem.readFile(path, limit: 1 << 20) else { return nil }
        return try LocalStateTable(decoding: bytes)
    }

    @Test("the latest stored table is the one on disk; finish writes what is still pending")
    func latestWins() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let path = base + "/local_state"
        let logged = Mutex<[String]>([])
        let writer = StateFileWriter(path: path, lastWritten: nil) { line in logged.withLock { $0.append(line) } }
        for count in 1...200 { writer.store(try Self.table(count)) }
        #expect(writer.waitUntilIdle(timeout: .seconds(10)))
        #expect(try Self.read(path) == (try Self.table(200)))
        let writes = writer.report.writes
        #expect(writes >= 1 && writes <= 200)
        // Storing the same table again writes nothing.
        writer.store(try Self.table(200))
        #expect(writer.waitUntilIdle(timeout: .seconds(10)))
        #expect(writer.report.writes == writes)
        writer.store(try Self.table(3))
        writer.finish()
        #expect(try Self.read(path) == (try Self.table(3)))
        // After finish nothing more is written.
        writer.store(try Self.table(5))
        usleep(50_000)
        #expect(try Self.read(path) == (try Self.table(3)))
        #expect(logged.withLock { $0 }.isEmpty)
        #expect(writer.report == StateFileWriter.Report(writes: writes + 1, failures: 0, lastError: nil, failing: false))
    }

    @Test("a write that fails is reported once, retried, and recovered from when the disk lets it")
    func failureAndRecovery() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let directory = base + "/missing"
        let path = directory + "/local_state"
        let logged = Mutex<[String]>([])
        let writer = StateFileWriter(path: path, lastWritten: nil) { line in logged.withLock { $0.append(line) } }
        defer { writer.finish() }
        writer.store(try Self.table(2))
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(5)
        while clock.now < deadline && !writer.report.failing { usleep(2_000) }
        let failing = writer.report
        #expect(failing.failing && failing.failures >= 1 && failing.writes == 0, "\(failing)")
        #expect(failing.lastError?.contains("local_state") == true, "\(failing)")
        #expect(logged.withLock { $0 }.count == 1)
        #expect(logged.withLock { $0 }.first?.contains("cannot write the local state file") == true)
        // The directory appears: the retry writes the table, and the recovery is told.
        #expect(mkdir(directory, 0o700) == 0)
        let recovered = clock.now + .seconds(5)
        while clock.now < recovered && writer.report.failing { usleep(5_000) }
        #expect(!writer.report.failing)
        #expect(try Self.read(path) == (try Self.table(2)))
        #expect(logged.withLock { $0 }.last?.contains("written again") == true, "\(logged.withLock { $0 })")
    }

    @Test("busy until a table is written; told when ready again; writes at least the minimum interval apart")
    func pacing() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let path = base + "/local_state"
        let readyAt = Mutex<[ContinuousClock.Instant]>([])
        let writer = StateFileWriter(path: path, lastWritten: nil, minimumInterval: .milliseconds(80), log: { _ in },
                                     written: { readyAt.withLock { $0.append(ContinuousClock.now) } })
        defer { writer.finish() }
        #expect(writer.isIdle)
        writer.store(try Self.table(1))
        #expect(!writer.isIdle)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(5)
        while clock.now < deadline && readyAt.withLock({ $0.count }) < 1 { usleep(1_000) }
        #expect(writer.isIdle)
        writer.store(try Self.table(2))
        while clock.now < deadline && readyAt.withLock({ $0.count }) < 2 { usleep(1_000) }
        let times = readyAt.withLock { $0 }
        try #require(times.count == 2, "\(times)")
        // Each write holds the writer for the minimum interval, so the second ends >= 80 ms after the first.
        #expect(times[1] - times[0] >= .milliseconds(80), "\(times[1] - times[0])")
        #expect(try Self.read(path) == (try Self.table(2)))
        #expect(writer.report.writes == 2)
    }
}
