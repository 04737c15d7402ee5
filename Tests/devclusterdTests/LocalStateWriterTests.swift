// The local state's writer thread and files in one process: changes reach the log and come back
// at start; a crash at any byte of the log keeps its whole records; an interrupted compaction
// and a damaged snapshot follow the kept-copy rule; a failing disk is reported, retried and
// recovered from; and the bytes written per change do not grow with the table.

import DeviceState
import Foundation
import Glibc
import Synchronization
import Testing
import Totem
import TotemRuntime
@testable import devclusterd

@Suite("Local state writer")
struct LocalStateWriterTests {
    static func device(_ index: Int) throws -> DeviceName { try DeviceName(parsing: "Custom:d\(index)") }

    static func table(_ count: Int) throws -> LocalStateTable {
        var table = LocalStateTable()
        for index in 0..<count { table.devices[try device(index)] = .inUse }
        return table
    }

    /// Waits (5 s at most) until the writer has nothing left to write.
    static func settle(_ writer: LocalStateWriter) -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(5)
        for _ in 0..<5_000 {
            let report = writer.report
            if report.unpersisted == 0 && report.health == .ok && report.compactions >= 1 { return true }
            if clock.now >= deadline { break }
            usleep(2_000)
        }
        return false
    }

    @Test func changesAreAppendedAndRestoredWithTheSnapshot() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let path = base + "/local_state"
        let writer = try LocalStateWriter(snapshotPath: path, table: try Self.table(3), log: { _ in })
        #expect(Self.settle(writer))
        var expected = try Self.table(3)
        for index in 0..<50 {
            let change = LocalStateChange.device(try Self.device(index % 7), index % 2 == 0 ? .busy : .ringing)
            expected.apply(change)
            writer.record(change, table: expected)
        }
        expected.apply(.device(try Self.device(1), nil))
        writer.record(.device(try Self.device(1), nil), table: expected)
        #expect(Self.settle(writer))
        let report = writer.report
        #expect(report.compactions == 1 && report.failures == 0 && report.recordsWritten == 51, "\(report)")
        // On disk now, before any stop: the start's snapshot and the log after it.
        let restored = LocalStateFiles.restore(snapshotPath: path)
        #expect(restored.table == expected && restored.replayed == 51 && restored.warnings.isEmpty, "\(restored.warnings)")
        #expect(writer.finish(timeout: .seconds(5)))
        // A new start compacts: the snapshot holds everything, the log is empty, the old snapshot is the kept copy.
        let again = try LocalStateWriter(snapshotPath: path, table: restored.table, log: { _ in })
        #expect(Self.settle(again))
        #expect(again.finish(timeout: .seconds(5)))
        #expect(try LocalStateTable(decoding: try #require(try FileSystem.readFile(path, limit: 1 << 20))) == expected)
        #expect(try LocalStateTable(decoding: try #require(try FileSystem.readFile(path + ".prev", limit: 1 << 20))) == (try Self.table(3)))
        #expect(try FileSystem.readFile(path + ".log", limit: 1 << 20)?.count == LocalStateLog.headerBytes)
        // The log before that compaction is kept beside the kept snapshot it extends.
        let keptLog = try LocalStateLog.decode(try #require(try FileSystem.readFile(path + ".log.prev", limit: 1 << 20)))
        let startSnapshot = try Self.table(3).encoded()
        #expect(keptLog.changes.count == 51 && keptLog.base == LocalStateLog.Base(snapshot: startSnapshot))
    }

    @Test func aCrashAtAnyByteOfTheLogRestoresItsWholeRecords() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let path = base + "/local_state"
        let writer = try LocalStateWriter(snapshotPath: path, table: try Self.table(2), log: { _ in })
        // One change at a time, each settled (after the start's compaction), so that each is its own record.
        #expect(Self.settle(writer))
        var states: [LocalStateTable] = [try Self.table(2)]
        for index in 0..<6 {
            let change = LocalStateChange.device(try Self.device(index), .onHold)
            var next = states.last!
            next.apply(change)
            writer.record(change, table: next)
            #expect(Self.settle(writer))
            states.append(next)
        }
        #expect(writer.finish(timeout: .seconds(5)))
        let log = try #require(try FileSystem.readFile(path + ".log", limit: 1 << 20))
        let snapshot = try #require(try FileSystem.readFile(path, limit: 1 << 20))
        let contents = try LocalStateLog.decode(log)
        try #require(contents.changes.count == 6)
        // kill -9 while appending leaves the log cut anywhere after its header: the start uses
        // the snapshot and the whole records, and reports a torn one.
        var recordEnds: [Int] = []
        var end = LocalStateLog.headerBytes
        for _ in 0..<6 {
            end += 8 + Int(log[end + 3]) + Int(log[end + 2]) << 8
            recordEnds.append(end)
        }
        for cut in LocalStateLog.headerBytes...log.count {
            #expect(FileManager.default.createFile(atPath: path + ".log", contents: Data(log[..<cut])))
            let restored = LocalStateFiles.restore(snapshotPath: path)
            let whole = recordEnds.filter { $0 <= cut }.count
            #expect(restored.table == states[whole], "cut at \(cut)")
            let torn = !recordEnds.contains(cut) && cut != LocalStateLog.headerBytes
            #expect(restored.warnings.count == (torn ? 1 : 0), "cut at \(cut): \(restored.warnings)")
            if torn { #expect(restored.warnings.first?.contains("a write cut short by a crash") == true) }
        }
        #expect(try FileSystem.readFile(path, limit: 1 << 20) == snapshot)
    }

    @Test func anInterruptedCompactionAndADamagedSnapshotFollowTheKeptCopyRule() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let path = base + "/local_state"
        let first = try Self.table(2)
        let writer = try LocalStateWriter(snapshotPath: path, table: first, log: { _ in })
        #expect(Self.settle(writer))
        var afterLog = first
        afterLog.apply(.device(try Self.device(9), .busy))
        writer.record(.device(try Self.device(9), .busy), table: afterLog)
        #expect(Self.settle(writer))
        #expect(writer.finish(timeout: .seconds(5)))
        let oldLog = try #require(try FileSystem.readFile(path + ".log", limit: 1 << 20))

        // A compaction that wrote its snapshot and died before replacing the log: the old log
        // names the old snapshot and is ignored, silently (the new snapshot holds its changes).
        var newer = afterLog
        newer.apply(.device(try Self.device(9), .notInUse))
        try KeptCopyFile(path: path, policy: .previousContent).write(newer.encoded(), mode: 0o600)
        let interrupted = LocalStateFiles.restore(snapshotPath: path)
        #expect(interrupted.table == newer && interrupted.replayed == 0 && interrupted.warnings.isEmpty, "\(interrupted.warnings)")

        // The new snapshot damaged: its kept copy (the old snapshot) is used, the old log extends
        // it, so the state is the one before the compaction; the bad file is kept aside.
        try FileSystem.writeAtomically(Array("garbage".utf8), to: path, mode: 0o600)
        let damaged = LocalStateFiles.restore(snapshotPath: path)
        #expect(damaged.table == afterLog && damaged.replayed == 1)
        #expect(damaged.warnings.count == 1 && damaged.warnings[0].contains("using its kept copy \(path).prev"), "\(damaged.warnings)")
        #expect(try FileSystem.readFile(path + ".bad", limit: 100) == Array("garbage".utf8))

        // A log whose header is damaged is set aside; the snapshot alone is used.
        try FileSystem.writeAtomically(Array("XXXX".utf8) + oldLog.dropFirst(4), to: path + ".log", mode: 0o600)
        let badLog = LocalStateFiles.restore(snapshotPath: path)
        #expect(badLog.table == first && badLog.warnings.count == 1 && badLog.warnings[0].contains("kept as \(path).log.bad"), "\(badLog.warnings)")
    }

    @Test func aFailingDiskIsReportedRetriedAndRecoveredFrom() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let directory = base + "/missing"
        let path = directory + "/local_state"
        let logged = Mutex<[String]>([])
        let writer = try LocalStateWriter(snapshotPath: path, table: try Self.table(1)) { line in logged.withLock { $0.append(line) } }
        defer { writer.finish(timeout: .seconds(5)) }
        var table = try Self.table(1)
        for index in 0..<200 {
            table.devices[try Self.device(index)] = .busy
            writer.record(.device(try Self.device(index), .busy), table: table)
        }
        // Failing from the start: retried with backoff (100, 200, 400 ms...), one log line only.
        let clock = ContinuousClock()
        var deadline = clock.now + .seconds(5)
        while clock.now < deadline && writer.report.failures < 4 { usleep(5_000) }
        let failing = writer.report
        #expect(failing.health == .failing && failing.failures >= 4 && failing.unpersisted == 200, "\(failing)")
        #expect(failing.lastError?.contains(directory) == true, "\(failing)")
        #expect(logged.withLock { $0 }.count == 1, "\(logged.withLock { $0 })")
        #expect(logged.withLock { $0 }.first?.hasPrefix("persistence degraded at start: cannot write the local state") == true)
        // The directory appears: a retry writes everything, and the recovery is told.
        #expect(mkdir(directory, 0o700) == 0)
        deadline = clock.now + .seconds(10)
        while clock.now < deadline && writer.report.health != .ok { usleep(10_000) }
        #expect(writer.report.health == .ok && writer.report.unpersisted == 0, "\(writer.report)")
        #expect(LocalStateFiles.restore(snapshotPath: path).table.devices.count == 200)
        #expect(logged.withLock { $0 }.last?.hasPrefix("persistence recovered") == true, "\(logged.withLock { $0 })")
    }

    /// The proof that a change's cost does not grow with the table: the writer appends one record
    /// per change (bytes independent of the table) and compacts only at start, whatever the size.
    @Test func bytesWrittenPerChangeDoNotGrowWithTheTable() throws {
        var perChange: [Int: Double] = [:]
        for size in [100, 100_000] {
            let base = try makeTemporaryDirectory()
            defer { removeDirectory(base) }
            let path = base + "/local_state"
            let writer = try LocalStateWriter(snapshotPath: path, table: try Self.table(size), log: { _ in })
            #expect(Self.settle(writer))
            let start = writer.report
            var table = try Self.table(size)
            for index in 0..<5_000 {
                let change = LocalStateChange.device(try Self.device(index % 50), index % 2 == 0 ? .busy : .notInUse)
                table.apply(change)
                writer.record(change, table: table)
                if index % 500 == 0 { usleep(1_000) }
            }
            #expect(Self.settle(writer))
            let report = writer.report
            #expect(report.compactions == 1, "size \(size): \(report)")
            #expect(report.recordsWritten == 5_000)
            perChange[size] = Double(report.logBytes - start.logBytes) / 5_000
            #expect(writer.finish(timeout: .seconds(5)))
        }
        // Every record of these names is 8 + 1 + 1 + 2 + 9...10 bytes.
        #expect(perChange[100] == perChange[100_000], "\(perChange)")
        #expect((perChange[100] ?? 0) < 25, "\(perChange)")
    }
}
