// `devclusterd --check-config`: every problem of the configuration, including the start-up checks
// a valid file can still fail (key file, transport), or a one-line summary. Exit status 0 or 1.

import Totem
import TotemRuntime

/// `devclusterd --check-config [--config FILE]`.
enum ConfigurationCheck {
    /// Prints every problem (`file:line: [section] option: message`) to standard error, or a
    /// one-line summary to standard output. Returns 0 when the daemon could start with it.
    ///
    /// Beyond the file itself it checks what start-up checks: the key file can be read and the
    /// runtime accepts the transport and timers.
    static func run(configPath: String?) -> Int32 {
        let configuration: DaemonConfiguration
        let origin: DaemonConfiguration.Origin
        do {
            (configuration, origin) = try DaemonConfiguration.resolve(configPath: configPath)
        } catch {
            for problem in error.errors { Console.error("\(problem)\n") }
            let count = error.errors.count
            Console.error("devclusterd: \(count) problem\(count == 1 ? "" : "s") found\n")
            return 1
        }
        let file = DaemonConfiguration.fileName(of: origin)
        var problems: [StartupProblem] = []
        var authentication = PacketAuthenticator.Mode.none
        var key: ClusterKey?
        var warning: String?
        do {
            (authentication, key, warning) = try configuration.loadClusterKey(file: file)
        } catch {
            problems.append(error)
        }
        if problems.isEmpty {
            do {
                _ = try configuration.runtimeConfiguration(file: file, authentication: authentication, key: key, log: RuntimeLog.discard)
            } catch {
                problems.append(error)
            }
        }
        guard problems.isEmpty else {
            for problem in problems { Console.error("\(problem)\n") }
            Console.error("devclusterd: \(problems.count) problem\(problems.count == 1 ? "" : "s") found\n")
            return 1
        }
        if let warning { Console.error("\(file): [totem] keyfile: warning: \(warning)\n") }
        for warning in configuration.publicationWarnings { Console.error("\(file): warning: \(warning)\n") }
        Console.output(summary(configuration, file: file, origin: origin) + "\n")
        return 0
    }

    /// `FILE: OK: cluster "pbx", udpu, 3 nodes, this node 1 (server1), crypto hmac-sha256, ...`
    static func summary(_ configuration: DaemonConfiguration, file: String, origin: DaemonConfiguration.Origin) -> String {
        let local = configuration.options.nodeID
        let name = configuration.localNode?.name ?? DaemonConfiguration.defaultNodeName(local)
        let nodes = configuration.nodes.count
        let channels = configuration.eventChannels.count
        let hints = configuration.hints.count
        var text = "\(file): OK: cluster \"\(configuration.totem.clusterName)\", \(configuration.totem.transport.name), "
            + "\(nodes) node\(nodes == 1 ? "" : "s"), this node \(local) (\(name)), crypto \(configuration.totem.crypto.name), "
            + "\(channels) event channel\(channels == 1 ? "" : "s"), \(hints) hint\(hints == 1 ? "" : "s"), "
            + "control socket \(configuration.options.controlSocket)"
        if configuration.control.allowsOtherUsers { text += "; control socket access: " + Daemon.describeAccess(configuration.control) }
        if origin == .embedded { text += " (no \(DaemonConfiguration.defaultPath): the built-in default)" }
        return text
    }
}

extension DaemonConfiguration {
    /// What this node cannot share with the others, as warnings (`--check-config` and the
    /// start-up log): without a channel publishing `device_state` (or `mwi`), `devstate set`
    /// (or `mwi set`) is refused here.
    var publicationWarnings: [String] {
        var warnings: [String] = []
        for type in [EventType.deviceState, .mwi] where !eventChannels.contains(where: { $0.publishes.contains(type) }) {
            let command = type == .deviceState ? "devstate set" : "mwi set"
            warnings.append("no event channel publishes \(type.rawValue): \(command) is refused on this node (nothing it set "
                + "would reach another server); add publish_event = \(type.rawValue) to a channel, as [\(type.rawValue)] in the README")
        }
        return warnings
    }
}
