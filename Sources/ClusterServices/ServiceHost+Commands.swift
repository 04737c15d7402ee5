// The device-state and MWI commands of the services' host, one function each: `devstate_set`,
// `devstate_clear`, `devstate_get`, `devstate_list`, `hints`, `mwi_set`, `mwi_get`, `mwi_list`,
// `snapshot`. Arguments arrive parsed; answers leave typed (the daemon writes the JSON).

import DeviceState
import EventService
import Membership
import Totem

extension ServiceHost {
    // MARK: Changes

    /// `devstate_set`: sets this server's own state of `device` (persisted, published, counted
    /// in the aggregate at once), and holds `client` while the ring is busy.
    ///
    /// - Parameters:
    ///   - client: Who asked; `nil` for an in-process caller (never held).
    ///   - ringQueuedBytes: Bytes in the ring's send queue now.
    /// - Returns: The device's cluster-wide state now.
    /// - Throws: `.deviceState` (no channel publishes device states, or a cap); nothing changes then.
    public mutating func setDeviceState(_ state: DeviceStateValue, of device: DeviceName, client: ClientID?, now: MonotonicInstant,
                                        ringQueuedBytes: Int, into effects: inout [Effect]) throws(ServiceHostError) -> DeviceSnapshot {
        defer { checkInvariants() }
        do {
            let changes = try deviceState.setLocalState(state, of: device)
            applyLocalChange(changes, client: client, now: now, ringQueuedBytes: ringQueuedBytes, into: &effects)
        } catch {
            throw .deviceState(error)
        }
        return deviceState.device(device)
    }

    /// `devstate_clear`: removes this server's own state of `device` (persisted and published
    /// when it had one), and holds `client` while the ring is busy.
    public mutating func clearDeviceState(of device: DeviceName, client: ClientID?, now: MonotonicInstant, ringQueuedBytes: Int,
                                          into effects: inout [Effect]) -> ClearResult {
        defer { checkInvariants() }
        let changes = deviceState.clearLocalState(of: device)
        applyLocalChange(changes, client: client, now: now, ringQueuedBytes: ringQueuedBytes, into: &effects)
        return ClearResult(snapshot: deviceState.device(device), cleared: !changes.isEmpty)
    }

    /// `mwi_set`: publishes this server's counts for `mailbox` (persisted); the cluster-wide
    /// record changes when the ring delivers them. Holds `client` while the ring is busy.
    ///
    /// - Throws: `.deviceState` (no channel publishes MWI, or the cap); nothing changes then.
    public mutating func setMailbox(_ mailbox: MailboxName, counts: MailboxCounts, client: ClientID?, now: MonotonicInstant,
                                    ringQueuedBytes: Int, into effects: inout [Effect]) throws(ServiceHostError) {
        defer { checkInvariants() }
        do {
            let changes = try deviceState.setMailbox(mailbox, counts: counts)
            applyLocalChange(changes, client: client, now: now, ringQueuedBytes: ringQueuedBytes, into: &effects)
        } catch {
            throw .deviceState(error)
        }
    }

    /// Appends what a local change asks for, and holds `client` if the ring is busy once its
    /// submits are in.
    mutating func applyLocalChange(_ changes: [DeviceStateEffect], client: ClientID?, now: MonotonicInstant, ringQueuedBytes: Int,
                                   into effects: inout [Effect]) {
        let start = effects.count
        apply(changes, now: now, into: &effects)
        holdIfRingBusy(client, ringQueuedBytes: ringQueuedBytes + Self.submittedBytes(in: effects, from: start), now: now, into: &effects)
    }

    /// The shell's writer of the local state does not keep up (`condition`: `stalled`) or fails
    /// (`failing`): changes are answered but not persisted. Logged once per `limitedLogInterval`
    /// and condition.
    public mutating func persistenceFailing(_ condition: String, reason: String, now: MonotonicInstant, into effects: inout [Effect]) {
        logLimited("persistence-\(condition)", "local states are answered but not persisted: \(reason)", now: now, into: &effects)
    }

    // MARK: Queries

    /// `devstate_get`: the cluster-wide state of `device` and each server's (INVALID and none
    /// for a device nobody reports).
    public func deviceSnapshot(_ device: DeviceName) -> DeviceSnapshot { deviceState.device(device) }

    /// `devstate_list`: every device some server reports, ascending.
    public var devices: [DeviceSnapshot] { deviceState.devices }

    /// `hints`: one row per hint, in configuration order; `watchers` counts the clients
    /// watching the `extension` topic.
    public var hintRows: [HintRow] { deviceState.hintRows }

    /// `mwi_get`: the cluster-wide record of `mailbox`, `nil` when unknown (zero messages).
    public func mailbox(_ mailbox: MailboxName) -> MailboxRecord? { deviceState.mailbox(mailbox) }

    /// `mwi_list`: every known mailbox, ascending.
    public var mailboxes: [MailboxRecord] { deviceState.mailboxes }

    /// `snapshot`: everything an adapter starts from.
    public func snapshot() -> ServicesSnapshot {
        let local = deviceState.localState
        return ServicesSnapshot(
            entityID: deviceState.entityID, devices: deviceState.devices, hints: deviceState.hintRows, mailboxes: deviceState.mailboxes,
            localDevices: local.devices.keys.sorted().compactMap { device in
                local.devices[device].map { ServicesSnapshot.LocalDevice(device: device, state: $0) }
            },
            localMailboxes: local.mailboxes.keys.sorted().compactMap { mailbox in
                local.mailboxes[mailbox].map { ServicesSnapshot.LocalMailbox(mailbox: mailbox, counts: $0.counts) }
            })
    }
}
