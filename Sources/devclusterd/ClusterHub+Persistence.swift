// What the daemon tells of the local state's persistence: the `persistence` member of `status`
// and the `persistence` field of the answers to changes. The writing is LocalStateWriter's.

import ClusterServices
import DeviceState

extension ClusterHub {
    /// The `persistence` member of `status`.
    func persistenceReport() -> JSONValue {
        guard let stateWriter else {
            return .object(["state_file": .string(stateFilePath), "health": "unavailable", "degraded": true,
                            "persistence_failures": 0, "failures": 0, "failing": true,
                            "last_error": "the writer thread could not be started"])
        }
        let report = stateWriter.report
        return .object([
            "state_file": .string(stateFilePath), "log_file": .string(stateWriter.logPath),
            "health": .string(report.health.rawValue), "degraded": .bool(report.health != .ok),
            "persistence_failures": .number(report.failures), "failures": .number(report.failures),
            "failing": .bool(report.health == .failing), "last_error": report.lastError.map { .string($0) } ?? .null,
            "unpersisted_changes": .number(Int(clamping: report.unpersisted)),
            "records_written": .number(report.recordsWritten), "compactions": .number(report.compactions),
            "log_bytes": .number(report.logBytes), "snapshot_bytes": .number(report.snapshotBytes),
        ])
    }

    /// What a `devstate_set`, `devstate_clear` or `mwi_set` answer says of persistence:
    /// `"persistence": "queued"` while the writer is healthy (on disk within milliseconds), else
    /// `"not_persisted"` with `persistence_error`; a stalled or failing writer is logged, rate-limited.
    func addPersistence(to result: inout JSONObject) {
        let health = stateWriter?.health ?? .failing
        guard health != .ok else {
            result.set("persistence", "queued")
            return
        }
        let reason = health == .stalled
            ? "the disk of \(stateFilePath) has not completed a write for over \(LocalStateWriter.stallThreshold)"
            : "writing \(stateFilePath) fails: \(stateWriter?.report.lastError ?? "the writer thread could not be started")"
        result.set("persistence", "not_persisted")
        result.set("persistence_error", .string(reason))
        run { effects, now in host.persistenceFailing(health.rawValue, reason: reason, now: now, into: &effects) }
    }
}
