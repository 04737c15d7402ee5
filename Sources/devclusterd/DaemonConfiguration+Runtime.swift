// From the daemon's configuration to the Totem runtime's: transport and node addresses, timers with
// the node count, the frame size from the MTU budget, the cluster key, and the state directory
// for the ring sequence. Also the start-up problems that a valid file can still have.

import Glibc
import Totem
import TotemRuntime

/// Why the daemon cannot start or a configuration cannot run, beyond the file's own errors.
struct StartupProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// The configuration file (or `<embedded>`).
    var file: String
    /// `[section] option`, when the problem belongs to one.
    var location: String?
    var message: String

    var description: String {
        "\(file): " + (location.map { "\($0): " } ?? "") + message
    }
}

extension DaemonConfiguration {
    /// The authentication mode and key of the `crypto` setting. The key file must be private
    /// (owner root or the daemon's user, no permission for group or others); `warning` is
    /// always `nil` today.
    ///
    /// - Throws: `StartupProblem` naming the key file and what to do about it.
    func loadClusterKey(file: String) throws(StartupProblem) -> (mode: PacketAuthenticator.Mode, key: ClusterKey?, warning: String?) {
        let mode: PacketAuthenticator.Mode
        switch totem.crypto {
        case .none: return (.none, nil, nil)
        case .hmacSHA256: mode = .hmacSHA256
        case .chaCha20Poly1305: mode = .chaCha20Poly1305
        }
        guard let path = totem.crypto.keyFile else { return (.none, nil, nil) }
        let key: ClusterKey
        do {
            key = try ClusterKey.load(path: path)
        } catch {
            throw StartupProblem(file: file, location: "[totem] keyfile", message: Self.explain(error, path: path))
        }
        // A key others can read, or that someone else owns, was refused by ClusterKey.load.
        return (mode, key, nil)
    }

    private static func explain(_ error: ClusterKeyError, path: String) -> String {
        switch error {
        case .unreadable(_, let code) where code == ENOENT:
            return "key file \(path) does not exist; create one with \"devclusterd keygen --output \(path)\" "
                + "and copy it to every node"
        case .unreadable(_, let code) where code == EINVAL:
            return "key file \(path) is not a regular file"
        case .unreadable(_, let code) where code == EACCES:
            return "cannot read key file \(path): permission denied (it must be readable by the daemon's user)"
        case .unreadable(_, let code):
            return "cannot read key file \(path): \(String(cString: strerror(code)))"
        case .tooShort(_, let length, let minimum):
            return "key file \(path) has \(length) bytes; a key needs at least \(minimum) (make one with \"devclusterd keygen\")"
        case .tooLong(_, let length, let maximum):
            return "key file \(path) has \(length) bytes or more; a key has at most \(maximum)"
        default:
            return "\(error)"
        }
    }

    /// The runtime configuration for this node.
    ///
    /// - Parameters:
    ///   - file: the configuration file's name, for problems.
    ///   - authentication: from `loadClusterKey`.
    ///   - key: from `loadClusterKey`.
    ///   - log: receives the runtime's lines (the daemon filters by level, so the runtime
    ///     passes everything down to debug).
    /// - Throws: `StartupProblem` for what the runtime cannot do with a valid file.
    ///   - localAddresses: this host's interface addresses: multicasts loop back to this host
    ///     only when another node's address is among them (or is a loopback address).
    func runtimeConfiguration(file: String, authentication: PacketAuthenticator.Mode, key: ClusterKey?,
                              localAddresses: [IPAddress] = [], log: @escaping LogHandler) throws(StartupProblem) -> NodeRuntimeConfiguration {
        guard !nodes.isEmpty else {
            throw StartupProblem(file: file, location: "[totem] transport", message:
                "udp without [node] sections is not supported yet: tokens go by unicast to each listed node; "
                + "add one [node] section (nodeid, name, addr) per server")
        }
        var transportNodes: [TransportConfiguration.Node] = []
        for node in nodes {
            guard let address = SocketAddress(ip: node.address.description, port: totem.port) else {
                throw StartupProblem(file: file, location: "[node] addr", message: "\(node.address) cannot be used as a socket address")
            }
            transportNodes.append(TransportConfiguration.Node(id: node.id, address: address))
        }
        let mode: TransportConfiguration.Mode
        switch totem.transport {
        case .udpu:
            mode = .udpu
        case .udp(_, let multicastAddress):
            guard let group = SocketAddress(ip: multicastAddress.description, port: totem.port) else {
                throw StartupProblem(file: file, location: "[totem] mcastaddr", message: "\(multicastAddress) cannot be used as a group address")
            }
            mode = .udp(group: group)
        }
        var transport = TransportConfiguration(mode: mode, localNode: options.nodeID, nodes: transportNodes)
        transport.netmtu = totem.netMTU
        transport.segmentationOffload = totem.segmentationOffload
        transport.multicastTTL = totem.multicastTTL
        transport.reportsUnreachable = totem.portUnreachable
        transport.multicastLoop = nodes.contains { node in
            node.id != options.nodeID && (node.address.isLoopback || localAddresses.contains(node.address))
        }
        var settings = totem.settings
        settings.configuredNodeCount = nodes.count
        settings.frameCapacityBytes = min(65_535, transport.frameCapacityBytes(authentication: authentication))
        var configuration = NodeRuntimeConfiguration(
            clusterName: totem.clusterName, transport: transport, settings: settings,
            authentication: authentication, key: key, stateDirectory: options.stateDirectory, log: log)
        configuration.logLevel = .debug
        let problems = configuration.validate()
        guard problems.isEmpty else {
            throw StartupProblem(file: file, location: "[totem]", message: problems.joined(separator: "; "))
        }
        return configuration
    }

    /// The name problems use for a configuration from `origin`.
    static func fileName(of origin: Origin) -> String {
        switch origin {
        case .file(let path): path
        case .embedded: embeddedFileName
        }
    }
}
