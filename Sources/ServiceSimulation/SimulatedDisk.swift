// One node's disk for its services' own state (the daemon's `local_state` snapshot and its
// change log): the writes in order, as opaque records, surviving crashes; and the disk one step
// behind, where a crash during a write tears it and loses whatever came after. It does not know
// the file formats (SimulatedServiceNode does).

/// The services' disk of one simulated node: a snapshot and the log of writes after it.
///
/// Writes are appended to the log as the services asked (`persist` effects, in order). Normally
/// every write is durable at once: a crash keeps them all. `armUnsyncedWrite()` makes the next
/// write the one in flight when a crash comes (the "disk one step behind" fault):
/// `loseUnsynced` then tears it, keeping a prefix of its bytes that cannot be read back, and
/// drops every write after it. At each start the node compacts (`compact`), as the daemon's
/// writer does first thing: the restored table becomes the snapshot and the log starts empty.
struct SimulatedDisk {
    /// The snapshot file's bytes.
    private(set) var snapshot: [UInt8]
    /// The change log's bytes: what the restarted node replays onto the snapshot.
    private(set) var log: [UInt8]
    /// Where each write since the last compaction starts in `log`, and what it said.
    private var writes: [(start: Int, summary: OwnWrite)] = []
    /// The first write that is not durable yet, if a crash is armed.
    private(set) var unsyncedFrom: Int?
    /// Whether the next write is the one a crash interrupts.
    private var nextIsUnsynced = false

    init(snapshot: [UInt8], log: [UInt8]) {
        self.snapshot = snapshot
        self.log = log
    }

    /// Replaces both files (a compaction): every write so far is in `snapshot`.
    mutating func compact(snapshot: [UInt8], log: [UInt8]) {
        self.snapshot = snapshot
        self.log = log
        writes = []
        unsyncedFrom = nil
        nextIsUnsynced = false
    }

    /// Writes that reached the disk so far (durable or not).
    var writeCount: Int { writes.count }

    /// Appends `write`'s record. Returns whether it is the write a crash will interrupt.
    mutating func append(_ write: PersistedWrite) -> Bool {
        writes.append((log.count, write.summary))
        log += write.record
        guard nextIsUnsynced else { return false }
        nextIsUnsynced = false
        unsyncedFrom = writes.count - 1
        return true
    }

    /// The next write will be in flight when the node crashes.
    mutating func armUnsyncedWrite() {
        nextIsUnsynced = true
    }

    /// Forgets an armed crash that did not happen.
    mutating func disarm() {
        nextIsUnsynced = false
    }

    /// The crash came: the unsynced write keeps only `tornBytes` of its record (fewer than it
    /// has, so it cannot be read back) and the writes after it are gone.
    ///
    /// - Returns: What the lost writes said, oldest first.
    mutating func loseUnsynced(tornBytes: Int) -> [OwnWrite] {
        defer {
            unsyncedFrom = nil
            nextIsUnsynced = false
        }
        guard let first = unsyncedFrom, first < writes.count else { return [] }
        let start = writes[first].start
        let recordBytes = (first + 1 < writes.count ? writes[first + 1].start : log.count) - start
        let kept = max(0, min(tornBytes, recordBytes - 1))
        let lost = writes[first...].map(\.summary)
        // The torn prefix stays: the restarted node's reader must stop there (and it compacts
        // at start, so nothing is ever appended after it).
        log.removeSubrange((start + kept)...)
        writes.removeSubrange(first...)
        return lost
    }
}
