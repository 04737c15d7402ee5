// Persistence of the local state table off the loop thread: the loop hands each change over
// (O(1), never waiting), and one writer thread of our own appends the changes to the log in
// batches, compacts, and retries with backoff when the disk fails. Owns the thread, the hand-over
// and the health the daemon reports; the files' layout is LocalStateFiles'.

import CSystem
import DeviceState
import Glibc
import Synchronization
import Totem
import TotemRuntime

/// The local state's writer thread (a pthread, as the event loop's), fed by the loop thread.
///
/// `record` appends a change to a Mutex-guarded queue and wakes the thread through an eventfd
/// when the queue was empty; it never touches the disk. The thread takes the whole queue,
/// applies it to its own copy of the table and appends one record per change with one `write`
/// and one `fdatasync` (group commit): the cost per change does not grow with the table.
/// Compaction (the whole table as the snapshot, see `LocalStateFiles`) runs at start and then
/// after at least the snapshot's size in log bytes, so its cost per change stays bounded too.
///
/// A failed write is retried after 100 ms, doubling up to `maximumRetryDelay`; meanwhile the
/// changes are kept in the table (and as records while they fit in `maximumPendingBytes`, else
/// the next success compacts). The log gets the first failure, then at most one line per
/// `failureLogInterval`, and the recovery. A write in progress for longer than `stallThreshold`
/// makes the writer `stalled`: the daemon answers that changes are not persisted, as when it is
/// `failing`.
final class LocalStateWriter: Sendable {
    /// What the daemon tells clients and `status` of persistence.
    enum Health: String, Sendable {
        /// The last write succeeded and none is stuck: a change is on disk within milliseconds.
        case ok
        /// A write has been in progress for more than `stallThreshold` (the disk does not answer).
        case stalled
        /// The last write failed; it is retried with backoff.
        case failing
    }

    /// What `status` shows of persistence.
    struct Report: Sendable, Equatable {
        var health: Health
        /// Failed write attempts since start.
        var failures: Int
        var lastError: String?
        /// Changes handed over and not yet on disk.
        var unpersisted: UInt64
        /// Changes appended to the log, and compactions, since start.
        var recordsWritten: Int
        var compactions: Int
        var logBytes: Int
        var snapshotBytes: Int
    }

    private struct Shared {
        var queue: [LocalStateChange] = []
        /// The whole table, when the queue overflowed (the queued changes come after it).
        var replacement: LocalStateTable?
        /// Changes handed over since start, and how many of them are on disk.
        var handedOver: UInt64 = 0
        var durable: UInt64 = 0
        var stopping = false
        /// When the write in progress started (`nil`: none).
        var busySince: MonotonicInstant?
        var failing = false
        var failures = 0
        var lastError: String?
        var recordsWritten = 0
        var compactions = 0
        var logBytes = 0
        var snapshotBytes = 0
    }

    let snapshotPath: String
    var logPath: String { snapshotPath + LocalStateFiles.logSuffix }
    private let shared = Mutex(Shared())
    private let initialTable: Mutex<LocalStateTable?>
    private let wakeDescriptor: Int32
    private let doneDescriptor: Int32
    private let log: @Sendable (String) -> Void

    static let firstRetryDelay = Duration.milliseconds(100)
    static let maximumRetryDelay = Duration.seconds(5)
    static let failureLogInterval = Duration.seconds(60)
    static let stallThreshold = Duration.milliseconds(500)
    /// Records kept for a failing log; beyond this the next success compacts instead.
    static let maximumPendingBytes = 4 << 20
    /// Changes queued for a writer stuck in a write (a frozen disk), by default; beyond this the
    /// queue is replaced by the whole table (one copy), so memory stays bounded however long it hangs.
    static let defaultQueueLimit = 100_000
    private let queueLimit: Int

    /// Starts the thread; its first act is a compaction of `table` (the state restored at start).
    ///
    /// - Parameters:
    ///   - queueLimit: The most changes queued while the thread is stuck in a write.
    ///   - log: Told of failures (rate-limited) and recoveries; called on the writer thread.
    /// - Throws: `SystemError` when the eventfds or the thread cannot be created.
    init(snapshotPath: String, table: LocalStateTable, queueLimit: Int = defaultQueueLimit,
         log: @escaping @Sendable (String) -> Void) throws(SystemError) {
        self.snapshotPath = snapshotPath
        self.queueLimit = max(1, queueLimit)
        self.log = log
        initialTable = Mutex(table)
        wakeDescriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wakeDescriptor >= 0 else { throw SystemError("eventfd", code: errno) }
        doneDescriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard doneDescriptor >= 0 else {
            let error = SystemError("eventfd", code: errno)
            _ = close(wakeDescriptor)
            throw error
        }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let result = pthread_create(&thread, nil, { context in
            let writer = Unmanaged<LocalStateWriter>.fromOpaque(context!).takeRetainedValue()
            writer.run()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<LocalStateWriter>.fromOpaque(context).release()
            throw SystemError("pthread_create", code: result)
        }
        // Never joined: `finish` waits for it with a time limit, as a frozen disk can hold it forever.
        pthread_detach(thread)
    }

    deinit {
        _ = close(wakeDescriptor)
        _ = close(doneDescriptor)
    }

    // MARK: Any thread

    /// Hands one change over; returns at once. After `finish`, does nothing.
    ///
    /// - Parameter table: The whole table with `change` applied; read only when the queue is
    ///   full (`queueLimit`), which it then replaces.
    func record(_ change: LocalStateChange, table: @autoclosure () -> LocalStateTable) {
        let mustWake = shared.withLock { shared -> Bool in
            guard !shared.stopping else { return false }
            shared.handedOver += 1
            if shared.queue.count >= queueLimit {
                shared.queue.removeAll()
                shared.replacement = table()
                return false
            }
            shared.queue.append(change)
            return shared.queue.count == 1
        }
        if mustWake { Self.signal(wakeDescriptor) }
    }

    /// The writer's health now.
    var health: Health { shared.withLock { Self.health(of: $0, now: MonotonicClock.now()) } }

    var report: Report {
        let now = MonotonicClock.now()
        return shared.withLock { shared in
            Report(health: Self.health(of: shared, now: now), failures: shared.failures, lastError: shared.lastError,
                   unpersisted: shared.handedOver - shared.durable, recordsWritten: shared.recordsWritten,
                   compactions: shared.compactions, logBytes: shared.logBytes, snapshotBytes: shared.snapshotBytes)
        }
    }

    /// Asks the thread to write what is pending, once more, and stop; waits for it at most
    /// `timeout` (a frozen disk would hold it forever). Returns whether it stopped.
    @discardableResult
    func finish(timeout: Duration) -> Bool {
        shared.withLock { $0.stopping = true }
        Self.signal(wakeDescriptor)
        return Self.wait(doneDescriptor, timeout: timeout)
    }

    private static func health(of shared: Shared, now: MonotonicInstant) -> Health {
        if shared.failing { return .failing }
        if let since = shared.busySince, now - since >= stallThreshold { return .stalled }
        return .ok
    }

    private static func signal(_ descriptor: Int32) {
        var one: UInt64 = 1
        _ = write(descriptor, &one, 8)
    }

    /// Waits until `descriptor` is readable (and resets it) or `timeout` passes (`nil`: forever).
    @discardableResult
    private static func wait(_ descriptor: Int32, timeout: Duration?) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let milliseconds = timeout.map { Int32(clamping: max(0, ($0.totalNanoseconds + 999_999) / 1_000_000)) } ?? -1
        // poll returns early on a signal (EINTR); the caller's loop waits again.
        guard poll(&entry, 1, milliseconds) > 0 else { return false }
        var value: UInt64 = 0
        _ = read(descriptor, &value, 8)
        return true
    }

    // MARK: The writer thread

    /// The thread's own state.
    private struct Work {
        var files: LocalStateFiles
        var table: LocalStateTable
        /// Records of changes taken from the queue and not yet on disk.
        var pending: [UInt8] = []
        var pendingCount = 0
        /// The changes taken so far (their count since start), all in `table`.
        var taken: UInt64 = 0
        /// Whether the next write must be a compaction (at start, and after the log's end was lost).
        var mustCompact = true
        var retryAt: MonotonicInstant?
        var retryDelay = LocalStateWriter.firstRetryDelay
        var everWritten = false
        var failuresSinceLine = 0
        var lastFailureLine: MonotonicInstant?
    }

    private func run() {
        var work = Work(files: LocalStateFiles(snapshotPath: snapshotPath),
                        table: initialTable.withLock { $0.take() } ?? LocalStateTable())
        var batch: [LocalStateChange] = []
        // A service loop: one iteration per wake-up (a hand-over, a retry, or the stop).
        while true {
            // Everything handed over is now in the table, the replacement or the batch.
            let (queued, stopping, replacement, handedOver) = shared.withLock { shared in
                swap(&batch, &shared.queue)
                defer { shared.replacement = nil }
                return (!batch.isEmpty || shared.replacement != nil, shared.stopping, shared.replacement, shared.handedOver)
            }
            if let replacement {
                work.table = replacement
                work.mustCompact = true
                work.pending.removeAll(keepingCapacity: true)
                work.pendingCount = 0
            }
            for change in batch {
                work.table.apply(change)
                if !work.mustCompact {
                    LocalStateLog.appendRecord(change, to: &work.pending)
                    work.pendingCount += 1
                }
            }
            work.taken = handedOver
            batch.removeAll(keepingCapacity: true)
            if work.pending.count > Self.maximumPendingBytes {
                work.pending = []
                work.pendingCount = 0
                work.mustCompact = true
            }
            let hasWork = work.mustCompact || !work.pending.isEmpty
            let now = MonotonicClock.now()
            if hasWork && (stopping || work.retryAt.map { now >= $0 } ?? true) {
                attempt(&work, now: now)
            }
            if stopping {
                if !work.mustCompact && work.pending.isEmpty {
                    work.files.closeLog()
                } else {
                    log("stopping with \(shared.withLock { $0.handedOver - $0.durable }) change(s) of the local state not "
                        + "written to \(logPath): \(shared.withLock { $0.lastError ?? "" })")
                }
                Self.signal(doneDescriptor)
                return
            }
            if queued { continue }
            let timeout = hasWork ? work.retryAt.map { max(.zero, $0 - MonotonicClock.now()) } : nil
            Self.wait(wakeDescriptor, timeout: timeout)
        }
    }

    /// One write: a compaction or an append of the pending records.
    private func attempt(_ work: inout Work, now: MonotonicInstant) {
        let compacting = work.mustCompact || work.files.wantsCompaction(pendingBytes: work.pending.count)
        let through = work.taken
        shared.withLock { $0.busySince = now }
        let result: Result<Void, SystemError>
        do {
            if compacting {
                try work.files.compact(work.table)
            } else {
                try work.files.append(work.pending)
            }
            result = .success(())
        } catch {
            result = .failure(error)
        }
        let (failures, wasFailing) = shared.withLock { shared -> (Int, Bool) in
            shared.busySince = nil
            let wasFailing = shared.failing
            switch result {
            case .success:
                shared.failing = false
                shared.durable = through
                if compacting { shared.compactions += 1 } else { shared.recordsWritten += work.pendingCount }
                shared.logBytes = work.files.logBytes
                shared.snapshotBytes = work.files.snapshotBytes
            case .failure(let error):
                shared.failing = true
                shared.failures += 1
                shared.lastError = error.description
            }
            return (shared.failures, wasFailing)
        }
        switch result {
        case .success:
            work.pending.removeAll(keepingCapacity: true)
            work.pendingCount = 0
            work.mustCompact = false
            work.retryAt = nil
            work.retryDelay = Self.firstRetryDelay
            work.everWritten = true
            if wasFailing {
                log("persistence recovered: the local state is written to \(snapshotPath) again (\(failures) failed "
                    + "attempt(s) since start)")
                work.lastFailureLine = nil
                work.failuresSinceLine = 0
            }
        case .failure(let error):
            if compacting || work.files.wantsCompaction(pendingBytes: 0) {
                // The records are in the table: the next attempt compacts.
                work.mustCompact = true
                work.pending.removeAll(keepingCapacity: true)
                work.pendingCount = 0
            }
            let after = MonotonicClock.now()
            work.retryAt = after + work.retryDelay
            work.retryDelay = min(work.retryDelay * 2, Self.maximumRetryDelay)
            work.failuresSinceLine += 1
            if !wasFailing {
                log("persistence degraded\(work.everWritten ? "" : " at start"): cannot write the local state to "
                    + "\(snapshotPath): \(error); the cluster is served from memory, changes are not persisted until a "
                    + "retry succeeds (retrying, every \(Self.maximumRetryDelay.components.seconds) s at most)")
                work.lastFailureLine = after
                work.failuresSinceLine = 0
            } else if let last = work.lastFailureLine, after - last >= Self.failureLogInterval {
                log("persistence still degraded: \(work.failuresSinceLine) more failed attempt(s) to write the local state "
                    + "in the last \((after - last).components.seconds) s (\(failures) since start); the latest: \(error)")
                work.lastFailureLine = after
                work.failuresSinceLine = 0
            }
        }
    }
}
