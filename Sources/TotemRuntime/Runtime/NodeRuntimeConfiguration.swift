// Everything a NodeRuntime needs to run one node: cluster name, protocol settings, transport,
// authentication, state directory and logging. Validation only; no parsing of files.

import Totem


/// The configuration of one running Totem node.
public struct NodeRuntimeConfiguration: Sendable {
    /// The cluster name; its hash is the wire `cluster_id`, and it is bound into derived keys.
    public var clusterName: String
    /// The protocol's timers and constants. `frameCapacityBytes` must fit the MTU budget:
    /// set it from `transport.frameCapacityBytes(authentication:)`.
    public var settings: TotemSettings
    public var transport: TransportConfiguration
    public var authentication: PacketAuthenticator.Mode
    /// Required unless `authentication` is `.none`.
    public var key: ClusterKey?
    /// Where the ring sequence is persisted; `nil` keeps nothing (a restarted node then relies
    /// on the sequences it hears, spec T23).
    public var stateDirectory: String?
    /// The link number written into and required from every datagram.
    public var link: UInt8 = 0
    /// Receives log lines on the event-loop thread.
    public var log: LogHandler
    /// Lines below this level are not passed to `log`.
    public var logLevel: LogLevel = .info

    /// The node this configuration runs.
    public var nodeID: NodeID { transport.localNode }

    public init(
        clusterName: String, transport: TransportConfiguration, settings: TotemSettings = TotemSettings(),
        authentication: PacketAuthenticator.Mode = .none, key: ClusterKey? = nil, stateDirectory: String? = nil,
        log: @escaping LogHandler = RuntimeLog.standardError
    ) {
        self.clusterName = clusterName
        self.transport = transport
        self.settings = settings
        self.authentication = authentication
        self.key = key
        self.stateDirectory = stateDirectory
        self.log = log
    }

    /// The problems with this configuration, empty when it is usable.
    public func validate() -> [String] {
        var problems = transport.validate() + settings.validate()
        if clusterName.isEmpty { problems.append("the cluster name is empty") }
        if authentication != .none && key == nil {
            problems.append("authentication \(authentication.rawValue) needs a cluster key")
        }
        let budget = transport.frameCapacityBytes(authentication: authentication)
        if settings.frameCapacityBytes > budget {
            problems.append(
                "frame capacity \(settings.frameCapacityBytes) exceeds the MTU budget of \(budget) bytes (netmtu \(transport.netmtu), \(authentication.rawValue))"
            )
        }
        return problems
    }
}
