// Writing the local state table off the loop thread: the loop hands over the latest table (a
// copy-on-write value, so handing it over costs nothing) and goes on; one writer thread encodes
// it and writes it atomically, at most once per `minimumInterval`. Owns the writer thread and its
// counters; not what the table holds, nor when the loop hands a table over.

import Dispatch
import DeviceState
import Foundation
import Synchronization
import Totem

/// The local state file's writer: `store` from the loop thread never waits for the disk.
///
/// A table is on disk a few milliseconds after it was stored (one atomic write with two fsyncs,
/// 0.3-1 ms here), or after the write in progress and then this one. A crash in that window
/// restarts the node with the previous table; its PBX adapter re-sends its own states when it
/// reconnects. Before, every change was written on the loop thread before it went to the ring,
/// which held the token and every client's answer behind two fsyncs.
///
/// The loop should hand a table over only while `isIdle`, and again when `written` tells it the
/// writer is ready: a table the writer still holds makes the loop's next change copy the whole
/// table (copy on write), and encoding costs the table's size, so offering one per change made a
/// burst of N new devices cost O(N²) (a 20,000-change burst: 5 s of CPU on each of two threads).
/// Writes are at least `minimumInterval` apart, so a busy table is written at most 20 times a
/// second with the default.
final class StateFileWriter: Sendable {
    /// What a `status` report shows of persistence.
    struct Report: Sendable, Equatable {
        var writes: Int
        var failures: Int
        var lastError: String?
        /// Whether the last attempt failed (the table in memory is newer than the file).
        var failing: Bool
    }

    private struct State {
        var pending: LocalStateTable?
        var stopping = false
        var writingNow = false
        var writes = 0
        var failures = 0
        var lastError: String?
        var failing = false
    }

    private let path: String
    /// The file with its kept copy (`local_state.prev`: the table before the last write).
    private let file: KeptCopyFile
    private let minimumInterval: Duration
    private let log: @Sendable (String) -> Void
    private let written: @Sendable () -> Void
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    /// How long the writer waits after a failed write before it tries the latest table again.
    static let retryDelay = Duration.seconds(1)

    /// Starts the writer thread.
    ///
    /// - Parameters:
    ///   - path: The state file.
    ///   - lastWritten: The bytes the file holds now (tables encoding to them are not written).
    ///   - minimumInterval: The least time from the start of one write to the start of the next.
    ///   - log: Told of failures (the first, then every 100th, and the recovery); writer thread.
    ///   - written: Called on the writer thread each time it becomes idle after a table (written,
    ///     unchanged, or failed and not retried): the moment to hand over a newer one.
    init(path: String, lastWritten: [UInt8]?, minimumInterval: Duration = .milliseconds(50),
         log: @escaping @Sendable (String) -> Void, written: @escaping @Sendable () -> Void = {}) {
        self.path = path
        file = KeptCopyFile(path: path, policy: .previousContent)
        self.minimumInterval = minimumInterval
        self.log = log
        self.written = written
        let thread = Thread { [self] in run(lastWritten: lastWritten) }
        thread.name = "devclusterd state writer"
        thread.start()
    }

    /// Hands the latest table to the writer; returns at once. After `finish`, does nothing.
    func store(_ table: LocalStateTable) {
        let accepted = state.withLock { state -> Bool in
            guard !state.stopping else { return false }
            state.pending = table
            return true
        }
        if accepted { wake.signal() }
    }

    /// Writes what is pending, stops the thread and waits for it (at daemon stop; bounded by the
    /// one write in progress and the last one).
    func finish() {
        let first = state.withLock { state -> Bool in
            defer { state.stopping = true }
            return !state.stopping
        }
        guard first else { return }
        wake.signal()
        finished.wait()
    }

    /// Whether nothing is pending and no write runs: a table handed over now is written at once.
    var isIdle: Bool { state.withLock { $0.pending == nil && !$0.writingNow } }

    /// Writes and failures so far.
    var report: Report {
        state.withLock { Report(writes: $0.writes, failures: $0.failures, lastError: $0.lastError, failing: $0.failing) }
    }

    /// Waits until nothing is pending and no write runs (tests), at most `timeout`.
    func waitUntilIdle(timeout: Duration) -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        for _ in 0..<100_000 {
            guard clock.now < deadline else { break }
            if state.withLock({ $0.pending == nil && !$0.writingNow }) { return true }
            usleep(1_000)
        }
        return false
    }

    // MARK: The writer thread

    private func run(lastWritten initial: [UInt8]?) {
        var lastWritten = initial
        // One iteration per wake-up; a wake-up comes with each store, so the count is bounded by
        // the stores made plus the retries of a failing disk plus the final one.
        while true {
            wake.wait()
            let (table, stopping) = state.withLock { state -> (LocalStateTable?, Bool) in
                let table = state.pending
                state.pending = nil
                state.writingNow = table != nil
                return (table, state.stopping)
            }
            if let table {
                let clock = ContinuousClock()
                let started = clock.now
                let bytes = table.encoded()
                if bytes != lastWritten {
                    do {
                        try file.write(bytes, mode: 0o600)
                        lastWritten = bytes
                        recordSuccess()
                    } catch {
                        recordFailure(error.description, table: table, stopping: stopping)
                    }
                    // Pace the writes: the next one starts no sooner than minimumInterval after this
                    // one started (at stop, the last table is written without waiting).
                    let rest = minimumInterval - (clock.now - started)
                    if !stopping && rest > .zero { Thread.sleep(forTimeInterval: Double(rest.totalNanoseconds) / 1e9) }
                }
                state.withLock { $0.writingNow = false }
                written()
            }
            if stopping, state.withLock({ $0.pending == nil }) {
                finished.signal()
                return
            }
        }
    }

    private func recordSuccess() {
        let recovered = state.withLock { state -> Bool in
            state.writes += 1
            defer { state.failing = false }
            return state.failing
        }
        if recovered { log("the local state file is written again (\(path))") }
    }

    /// Counts a failed write and, unless stopping, keeps the table to try again after a delay
    /// (a newer table stored meanwhile replaces it).
    private func recordFailure(_ message: String, table: LocalStateTable, stopping: Bool) {
        let failures = state.withLock { state -> Int in
            state.failures += 1
            state.failing = true
            state.lastError = message
            if state.pending == nil && !stopping { state.pending = table }
            return state.failures
        }
        if failures == 1 || failures % 100 == 0 {
            log("cannot write the local state file (\(failures) failed attempt(s) so far): \(message); retrying every "
                + "\(Self.retryDelay.components.seconds) s, the states in memory are served meanwhile")
        }
        guard !stopping else { return }
        Thread.sleep(forTimeInterval: Double(Self.retryDelay.components.seconds))
        wake.signal()
    }
}
