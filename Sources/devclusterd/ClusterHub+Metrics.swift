// What the cluster services add to a metrics scrape: quorum, devices and mailboxes, the submit
// backlog, retained events, the local state writer, watchers and adapters. Counts only, read on the
// loop thread.

extension ClusterHub {
    /// The services' part of a scrape.
    func metricsServices() -> MetricsSnapshot.Services {
        let quorum = host.membership.quorum
        let deviceState = host.deviceState
        let retention = deviceState.events.retentionSummary
        let stateWrites = stateWriter?.report
        return MetricsSnapshot.Services(
            quorate: quorum.isQuorate, quorumPresent: quorum.presentCount, quorumConfigured: quorum.configuredCount,
            localDevices: deviceState.localState.devices.count, knownDevices: deviceState.knownDeviceCount,
            localMailboxes: deviceState.localState.mailboxes.count, knownMailboxes: deviceState.knownMailboxCount,
            backlogMessages: host.backlogCount, backlogDropped: host.backlogDropped,
            retainedEvents: retention.events, retainedBytes: retention.bytes,
            retainedDroppedAtEventCap: retention.droppedAtEventCap, retainedDroppedAtByteCap: retention.droppedAtByteCap,
            stateRecordsWritten: stateWrites?.recordsWritten ?? 0, persistenceFailures: stateWrites?.failures ?? 0,
            persistenceDegraded: (stateWrites?.health ?? .failing) != .ok, unpersistedChanges: stateWrites?.unpersisted ?? 0,
            watchers: host.watcherCount, adapters: host.registeredAdapters.count)
    }
}
