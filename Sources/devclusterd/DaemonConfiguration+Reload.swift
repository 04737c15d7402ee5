// What a reloaded configuration changes that only a restart applies (everything but log_level and
// [control], whose allow-list and limits apply live; the socket's mode they imply does not),
// named the way the file names it, for the SIGHUP log line.

import Totem

extension DaemonConfiguration {
    /// The changes from `self` (running) to `new` that need a restart, as
    /// `[section] option (old -> new)` texts, in file order. `log_level` is not among them:
    /// it applies live.
    func restartRequiredChanges(to new: DaemonConfiguration) -> [String] {
        var changes: [String] = []
        func compare<Value: Equatable>(_ section: String, _ option: String, _ old: Value, _ new: Value, _ show: (Value) -> String) {
            if old != new { changes.append("[\(section)] \(option) (\(show(old)) -> \(show(new)))") }
        }
        compare("totem", "cluster_name", totem.clusterName, new.totem.clusterName) { "\"\($0)\"" }
        compare("totem", "transport", totem.transport, new.totem.transport) { transport in
            switch transport {
            case .udpu: "udpu"
            case .udp(let bind, let group): "udp, bindnetaddr \(bind), mcastaddr \(group)"
            }
        }
        compare("totem", "mcastport", totem.port, new.totem.port) { String($0) }
        compare("totem", "ttl", totem.multicastTTL, new.totem.multicastTTL) { String($0) }
        compare("totem", "netmtu", totem.netMTU, new.totem.netMTU) { String($0) }
        compare("totem", "segmentation_offload", totem.segmentationOffload, new.totem.segmentationOffload) { $0 ? "yes" : "no" }
        compare("totem", "port_unreachable", totem.portUnreachable, new.totem.portUnreachable) { $0 ? "yes" : "no" }
        compare("totem", "crypto", totem.crypto, new.totem.crypto) { crypto in
            crypto.keyFile.map { "\(crypto.name), keyfile \($0)" } ?? crypto.name
        }
        for option in TotemNumericOption.all {
            compare("totem", option.key, option.current(totem.settings), option.current(new.totem.settings)) {
                $0.map(String.init) ?? "derived"
            }
        }
        compare("totem", "cancel_token_hold_on_retransmit", totem.settings.cancelHoldOnRetransmit,
                new.totem.settings.cancelHoldOnRetransmit) { $0 ? "yes" : "no" }
        if nodes != new.nodes {
            let describe: ([Node]) -> String = { nodes in
                nodes.map { "\($0.id) \($0.name) \($0.address)" }.joined(separator: ", ")
            }
            changes.append("[node] list (\(describe(nodes)) -> \(describe(new.nodes)))")
        }
        compare("options", "nodeid", options.nodeID, new.options.nodeID) { $0.description }
        compare("options", "entity_id", options.entityID, new.options.entityID) { $0?.description ?? "derived" }
        compare("options", "control_socket", options.controlSocket, new.options.controlSocket) { $0 }
        compare("options", "control_socket_group", options.controlSocketGroup, new.options.controlSocketGroup) { $0 ?? "none" }
        compare("control", "users and groups (the socket's mode)", ControlServer.socketMode(group: options.controlSocketGroup, allowsOtherUsers: control.allowsOtherUsers),
                ControlServer.socketMode(group: new.options.controlSocketGroup, allowsOtherUsers: new.control.allowsOtherUsers)) { FileSystem.octal($0) }
        compare("options", "max_devices", options.maxDevices, new.options.maxDevices) { String($0) }
        compare("options", "max_mailboxes", options.maxMailboxes, new.options.maxMailboxes) { String($0) }
        compare("options", "max_retained_bytes", options.maxRetainedBytes, new.options.maxRetainedBytes) { ByteSize.format($0) }
        compare("options", "state_dir", options.stateDirectory, new.options.stateDirectory) { $0 }
        compare("metrics", "listen", metrics?.listen, new.metrics?.listen) { $0?.description ?? "off" }
        if eventChannels != new.eventChannels {
            changes.append("event channels (\(eventChannels.map(\.name).joined(separator: ", ")) -> "
                + "\(new.eventChannels.map(\.name).joined(separator: ", ")))")
        }
        if hints != new.hints {
            changes.append("[hints] (\(hints.count) -> \(new.hints.count) entries)")
        }
        return changes
    }
}
