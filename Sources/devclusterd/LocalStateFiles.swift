// The local state table's files in state_dir: the snapshot `local_state` (LocalStateTable
// format, with its kept copy `local_state.prev`) and the change log `local_state.log`
// (LocalStateLog format) that extends it (with its kept copy `local_state.log.prev`, which
// extends `local_state.prev`). Owns appending, compaction and reading them back at
// start; when to write, the thread and the retries are LocalStateWriter's.

import DeviceState
import Glibc
import Totem
import TotemRuntime

/// The snapshot and its change log, as the writer thread holds them open. Writer thread only.
///
/// - `append` writes records at the end of the log's valid bytes and `fdatasync`s the log: one
///   write and one flush per batch of changes, whatever the table's size.
/// - `compact` writes the whole table as the snapshot (`KeptCopyFile.previousContent`: the old
///   snapshot stays as `local_state.prev`), then replaces the log, atomically, with an empty one
///   naming the new snapshot (the old log stays as `local_state.log.prev`, so the kept snapshot
///   comes with the changes made after it). The writer compacts at start, when the log has grown past
///   `max(compactionMinimumBytes, snapshot size)` (so a compaction's cost, proportional to the
///   table, is spread over at least as many bytes of changes), and after any failure that left the
///   log's end unknown.
struct LocalStateFiles {
    let snapshot: KeptCopyFile
    var snapshotPath: String { snapshot.path }
    var logPath: String { snapshot.path + ".log" }
    /// The open log (`-1`: none; the next write must compact).
    private var descriptor: Int32 = -1
    /// Bytes of the log that hold whole, durable records (header included).
    private(set) var logBytes = 0
    /// Size of the snapshot the log extends.
    private(set) var snapshotBytes = 0

    /// The least log size that makes the writer compact.
    static let compactionMinimumBytes = 1 << 20
    /// The log file's name beside the snapshot.
    static let logSuffix = ".log"

    init(snapshotPath: String) {
        snapshot = KeptCopyFile(path: snapshotPath, policy: .previousContent)
    }

    /// Whether appending `pendingBytes` more should be a compaction instead.
    func wantsCompaction(pendingBytes: Int) -> Bool {
        descriptor < 0 || logBytes + pendingBytes > max(Self.compactionMinimumBytes, snapshotBytes)
    }

    /// Writes `table` as the snapshot and starts an empty log after it.
    ///
    /// - Throws: `SystemError` of the step that failed. The files on disk then still hold a
    ///   consistent state (the old snapshot and log, or the new snapshot and a log it ignores).
    mutating func compact(_ table: LocalStateTable) throws(SystemError) {
        closeLog()
        let bytes = table.encoded()
        try snapshot.write(bytes, mode: 0o600)
        // The old log becomes local_state.log.prev: it extends local_state.prev, its kept copy.
        let header = LocalStateLog.header(base: LocalStateLog.Base(snapshot: bytes))
        try KeptCopyFile(path: logPath, policy: .previousContent).write(header, mode: 0o600)
        let opened = open(logPath, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        guard opened >= 0 else { throw SystemError("open \(logPath)", code: errno) }
        descriptor = opened
        logBytes = header.count
        snapshotBytes = bytes.count
    }

    /// Appends `records` after the log's valid bytes and flushes them to the disk.
    ///
    /// - Throws: `SystemError`. A failed write is cut off again (`ftruncate`), so a retry
    ///   appends after the last whole record; a failed flush, or a cut that fails, closes the log
    ///   so that the next attempt compacts (the kernel may have dropped the pages it could not
    ///   write, so what the log holds is no longer known).
    mutating func append(_ records: [UInt8]) throws(SystemError) {
        guard descriptor >= 0 else { throw SystemError("append to \(logPath) (not open)", code: EBADF) }
        guard lseek(descriptor, off_t(logBytes), SEEK_SET) == off_t(logBytes) else {
            let error = SystemError("seek in \(logPath)", code: errno)
            closeLog()
            throw error
        }
        do {
            try writeFully(records, to: descriptor, operation: "write \(logPath)")
        } catch {
            if ftruncate(descriptor, off_t(logBytes)) != 0 { closeLog() }
            throw error
        }
        guard fdatasync(descriptor) == 0 else {
            let error = SystemError("fdatasync \(logPath)", code: errno)
            closeLog()
            throw error
        }
        logBytes += records.count
    }

    mutating func closeLog() {
        if descriptor >= 0 { _ = close(descriptor) }
        descriptor = -1
    }

    // MARK: Reading at start

    /// The table of a previous run and what the operator should be told about it.
    struct Restored {
        var table: LocalStateTable
        /// Changes replayed from the log.
        var replayed = 0
        var warnings: [String] = []
    }

    /// The snapshot (else its kept copy, by the `KeptCopyFile` rule) with the valid prefix of the
    /// log that extends it replayed: `local_state.log`, else its kept copy `local_state.log.prev`
    /// (the log before the last compaction, which extends `local_state.prev`). A torn or damaged
    /// end of the log is ignored and reported; a log that names another snapshot is ignored
    /// (reported only when the snapshot came from its copy, as changes are then lost); an unusable
    /// log is set aside as `.bad`.
    static func restore(snapshotPath: String) -> Restored {
        let files = LocalStateFiles(snapshotPath: snapshotPath)
        let file = files.snapshot
        let logPaths = [files.logPath, files.logPath + ".prev"]
        var restored = Restored(table: LocalStateTable())
        let decode = { (bytes: [UInt8]) throws -> (LocalStateTable, LocalStateLog.Base) in
            (try LocalStateTable(decoding: bytes), LocalStateLog.Base(snapshot: bytes))
        }
        let base: LocalStateLog.Base
        var copyProblem: String?
        switch file.read(limit: LocalStateTable.maxBytes, decode: decode) {
        case .absent:
            // No snapshot: a first start (a log without one cannot be placed).
            return restored
        case .file(let value):
            (restored.table, base) = value
        case .copy(let value, let fileProblem):
            (restored.table, base) = value
            copyProblem = fileProblem
        case .unusable(let fileProblem, let copyProblem):
            let moved = file.setAside(includingCopy: true) + logPaths.flatMap(Self.setAside)
            restored.warnings.append("the local state file \(snapshotPath) is \(fileProblem) and its kept copy \(file.copyPath) is "
                + "\(copyProblem); starting with no local states (the PBX adapter sends its states again when it reconnects)"
                + (moved.isEmpty ? "" : "; kept as \(moved.joined(separator: " and "))"))
            return restored
        }
        var usedLog: String?
        var ignored: [String] = []
        for path in logPaths {
            let bytes: [UInt8]
            do {
                guard let content = try Self.readLog(path) else { continue }
                bytes = content
            } catch {
                restored.warnings.append("cannot read the local state log: \(error); it is ignored")
                continue
            }
            let log: LocalStateLog.Contents
            do {
                log = try LocalStateLog.decode(bytes)
            } catch {
                let aside = Self.setAside(path)
                restored.warnings.append("the local state log \(path) is not valid (\(error)); it is ignored"
                    + (aside.first.map { "; kept as \($0)" } ?? ""))
                continue
            }
            // A compaction that wrote its snapshot but not yet the new log leaves the old log,
            // naming the previous snapshot: the new snapshot holds its changes.
            guard log.base == base else {
                if log.changes.count > 0 { ignored.append("\(path) (\(log.changes.count) change(s))") }
                continue
            }
            for change in log.changes { restored.table.apply(change) }
            restored.replayed = log.changes.count
            usedLog = path
            if let problem = log.problem {
                restored.warnings.append("the local state log \(path) ends with \(problem) (a write cut short by a crash or a "
                    + "full disk); the \(log.changes.count) change(s) before it are used")
            }
            break
        }
        guard let copyProblem else { return restored }
        let table = restored.table
        var message = "the local state file \(snapshotPath) is \(copyProblem); using its kept copy \(file.copyPath), the "
            + "snapshot before the last compaction" + (usedLog.map { ", with the change log \($0)" } ?? "")
            + " (\(table.devices.count) devices, \(table.mailboxes.count) mailboxes)"
        if usedLog != files.logPath, !ignored.isEmpty {
            message += "; changes made after that compaction are lost: \(ignored.joined(separator: ", ")) extends the unusable file"
        }
        do {
            if let aside = try file.restoreFromCopy(mode: 0o600) { message += "; the unusable file is kept as \(aside)" }
        } catch {
            message += "; cannot restore the file from the copy (\(error)), the next compaction writes it"
        }
        restored.warnings.append(message)
        return restored
    }

    /// The largest log read at start: a full snapshot's worth of records and a writer's pending bytes.
    static let maximumLogBytes = LocalStateTable.maxBytes + (64 << 20)

    /// The log's bytes (`nil`: no log), read into a buffer sized from the file, not the limit.
    private static func readLog(_ path: String) throws(SystemError) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return nil }
            throw SystemError("open \(path)", code: errno)
        }
        defer { _ = close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw SystemError("fstat \(path)", code: errno) }
        guard Int(status.st_size) <= maximumLogBytes else { throw SystemError("read \(path) (over \(maximumLogBytes) bytes)", code: EFBIG) }
        do {
            return try readBounded(descriptor, limit: Int(status.st_size))
        } catch {
            throw SystemError("read \(path)", code: error.code)
        }
    }

    /// Renames `path` to `path.bad`; where it went, if it was moved.
    private static func setAside(_ path: String) -> [String] {
        rename(path, path + ".bad") == 0 ? [path + ".bad"] : []
    }
}
