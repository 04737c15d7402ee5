// What happens to a ServiceCluster from outside its ring: client requests to a node's services,
// the fault plan's actions (some crashes turned into crashes during a services' disk write), the
// heal, and a server leaving for good.

import DeviceState
import Totem
import TotemSimulation

extension ServiceCluster {
    /// Node `index`'s client asks `operation` now. Nothing happens on a node that is down or
    /// paused (its daemon answers nobody).
    mutating func perform(_ operation: ClientOperation, on index: Int) {
        syncLifecycle(index)
        let id = nodeIDs[index]
        let now = simulator.now
        guard nodes[index] != nil, !simulator.isPaused(id) else { return }
        statistics.operations += 1
        record(now, index, "client: \(operation)")
        switch operation {
        case .setDevice(let device, let state):
            guard let result = nodes[index]?.setDeviceState(state, of: device, now: now) else { return }
            if result.accepted { model.recordSet(state, of: device, node: index) }
            execute(result.effects, on: index, at: now)
        case .clearDevice(let device):
            guard let effects = nodes[index]?.clearDeviceState(of: device, now: now) else { return }
            model.recordClear(device, node: index)
            execute(effects, on: index, at: now)
        case .setMailbox(let mailbox, let counts):
            guard let result = nodes[index]?.setMailbox(mailbox, counts: counts, now: now) else { return }
            if result.accepted { model.recordMailbox(mailbox, counts: counts) }
            execute(result.effects, on: index, at: now)
        case .publishAlert(let retention):
            let payload = Array("alert from node \(id) at \(now.milliseconds) ms".utf8)
            guard let result = nodes[index]?.publishAlert(payload: payload, retention: retention, now: now) else { return }
            if let eventID = result.id {
                let nanoseconds = retention?.totalNanoseconds ?? 0
                model.recordAlert(eventID, retentionMilliseconds: UInt32(clamping: (nanoseconds + 999_999) / 1_000_000))
                record(now, index, "published alert \(eventID)")
            }
            execute(result.effects, on: index, at: now)
        }
        if let node = nodes[index] {
            if node.ownDevices != model.devices[index] {
                report(ServiceViolation(.persistence, at: now,
                    "node \(id)'s own states are \(ServiceChecker.describe(node.ownDevices)) after \(operation), its clients left "
                        + "\(ServiceChecker.describe(model.devices[index]))"))
            }
            for violation in ServiceChecker.checkDuringRun(node, members: members[index], model: model, at: now) {
                report(violation)
            }
        }
        flush(index)
        drain()
    }

    /// Applies one action of the fault plan. With `serviceDiskCrashes`, half the crashes are
    /// armed instead for the node's next services' disk write: the node dies within a few
    /// milliseconds of it and its disk keeps the write torn (the disk one step behind).
    mutating func apply(_ action: FaultAction) {
        record(simulator.now, nil, "fault: \(action)")
        switch action {
        case .crash(let node) where serviceDiskCrashes && random.chance(0.5):
            let index = Int(node.rawValue) - 1
            guard simulator.isRunning(node), diskCrashAt[index] == nil else { return }
            diskCrashArmed[index] = true
            disks[index].armUnsyncedWrite()
            record(simulator.now, index, "a crash is armed for the services' next disk write")
        case .restart(let node):
            let index = Int(node.rawValue) - 1
            if diskCrashAt[index] != nil { strikeDiskCrash(index) }
            if diskCrashArmed[index] {
                // The armed crash never came: no write happened before the planned restart.
                diskCrashArmed[index] = false
                disks[index].disarm()
            }
            simulator.apply(action)
        default:
            simulator.apply(action)
        }
        drain()
    }

    /// Ends every fault (`Simulator.heal`): a disk crash about to strike strikes first, armed
    /// ones are forgotten, crashed nodes restart from their disks.
    mutating func heal() {
        record(simulator.now, nil, "heal")
        for index in diskCrashAt.indices where diskCrashAt[index] != nil { strikeDiskCrash(index) }
        for index in diskCrashArmed.indices where diskCrashArmed[index] {
            diskCrashArmed[index] = false
            disks[index].disarm()
        }
        simulator.heal()
        drain()
    }

    /// Node `index` leaves the ring for good (its server is taken out of the cluster).
    ///
    /// - Returns: Whether it left; a node that is down now cannot.
    mutating func depart(_ index: Int) -> Bool {
        let node = nodeIDs[index]
        guard simulator.isRunning(node) else { return false }
        if diskCrashAt[index] != nil {
            strikeDiskCrash(index)
            return false
        }
        record(simulator.now, index, "leaves the cluster for good")
        statistics.departures += 1
        simulator.leave(node: node)
        drain()
        return true
    }
}
