// The configuration used when there is no file (one node on loopback), the host facts defaults
// derive from (user id, environment, host name, interface addresses), and writing a configuration
// back as file text (`--print-default-config` gives a newcomer a file to start from).

import Foundation
import Glibc
import Totem

/// Facts about this server that configuration defaults and derivations depend on.
///
/// `current` asks the operating system; tests build one by hand so that no result depends on the
/// machine running them.
public struct HostEnvironment: Sendable {
    /// The effective user id.
    public var userID: UInt32
    /// Environment variables (`XDG_RUNTIME_DIR`, `TMPDIR`).
    public var variables: [String: String]
    /// The host name, when known.
    public var hostName: String?
    /// Whether a path is an existing directory this process may create files in.
    public var isWritableDirectory: @Sendable (String) -> Bool
    /// The addresses of this server's interfaces. Called only when a node id must be derived.
    public var interfaceAddresses: @Sendable () -> [InterfaceAddress]
    /// The id of a user name (`getpwnam`), for `[control]`.
    public var lookUpUser: @Sendable (String) -> UInt32?
    /// The id of a group name (`getgrnam`), for `[control]` and `control_socket_group`.
    public var lookUpGroup: @Sendable (String) -> UInt32?

    /// Creates host facts.
    public init(
        userID: UInt32,
        variables: [String: String] = [:],
        hostName: String? = nil,
        isWritableDirectory: @escaping @Sendable (String) -> Bool = { _ in false },
        interfaceAddresses: @escaping @Sendable () -> [InterfaceAddress] = { [] },
        lookUpUser: @escaping @Sendable (String) -> UInt32? = { _ in nil },
        lookUpGroup: @escaping @Sendable (String) -> UInt32? = { _ in nil }
    ) {
        self.userID = userID
        self.variables = variables
        self.hostName = hostName
        self.isWritableDirectory = isWritableDirectory
        self.interfaceAddresses = interfaceAddresses
        self.lookUpUser = lookUpUser
        self.lookUpGroup = lookUpGroup
    }

    /// The id of user `name` on this host, or `nil`.
    public func userID(named name: String) -> UInt32? { lookUpUser(name) }

    /// The id of group `name` on this host, or `nil`.
    public func groupID(named name: String) -> UInt32? { lookUpGroup(name) }

    /// One address of a network interface.
    public struct InterfaceAddress: Sendable, Equatable {
        /// The address.
        public var address: DaemonConfiguration.IPAddress
        /// The length of the network prefix (from the netmask).
        public var prefixLength: Int
        /// Whether the interface is a loopback interface.
        public var isLoopback: Bool

        /// Creates an interface address.
        public init(address: DaemonConfiguration.IPAddress, prefixLength: Int, isLoopback: Bool = false) {
            self.address = address
            self.prefixLength = prefixLength
            self.isLoopback = isLoopback
        }

        /// Whether `other` is an address of this server through this interface: equal to it, or
        /// inside the network of a loopback interface (all of 127.0.0.0/8 is local on Linux).
        public func owns(_ other: DaemonConfiguration.IPAddress) -> Bool {
            other == address || (isLoopback && address.sharesPrefix(with: other, length: prefixLength))
        }
    }

    /// The longest path a Unix socket address can hold (`sun_path` is 108 bytes with its NUL).
    public static let maximumSocketPathBytes = 107

    /// The file name of the control socket inside the runtime directory.
    public static let controlSocketName = "devclusterd.sock"

    /// Default locations of the daemon's control socket and state.
    public struct DefaultPaths: Sendable, Equatable {
        /// Absolute path of the control socket.
        public var controlSocket: String
        /// Absolute path of the state directory.
        public var stateDirectory: String

        /// Creates the pair.
        public init(controlSocket: String, stateDirectory: String) {
            self.controlSocket = controlSocket
            self.stateDirectory = stateDirectory
        }
    }

    /// Chooses where the control socket and the state go when the configuration does not say.
    ///
    /// - Control socket: `/run/devcluster/devclusterd.sock` for root when `/run` is writable; else
    ///   under `$XDG_RUNTIME_DIR/devcluster` when that is a writable absolute directory; else
    ///   `$TMPDIR/devcluster-<uid>` (`/tmp` without `TMPDIR`). A candidate whose socket path would
    ///   not fit a Unix socket address is skipped.
    /// - State: `/var/lib/devcluster` for root when `/var/lib` is writable; else
    ///   `$TMPDIR/devcluster-<uid>/state`.
    ///
    /// - Parameters:
    ///   - userID: the effective user id.
    ///   - environment: the environment variables.
    ///   - isWritableDirectory: whether a path is an existing directory we may create files in.
    public static func defaultPaths(
        userID: UInt32, environment: [String: String], isWritableDirectory: (String) -> Bool
    ) -> DefaultPaths {
        func socket(in directory: String) -> String? {
            let path = directory + "/" + controlSocketName
            return path.utf8.count <= maximumSocketPathBytes ? path : nil
        }
        let temporary = withoutTrailingSlashes(absolute(environment["TMPDIR"]) ?? "/tmp")
        let perUser = temporary + "/devcluster-\(userID)"
        let isRoot = userID == 0
        var controlSocket: String?
        if isRoot && (isWritableDirectory("/run/devcluster") || isWritableDirectory("/run")) {
            controlSocket = socket(in: "/run/devcluster")
        }
        if controlSocket == nil, let runtime = absolute(environment["XDG_RUNTIME_DIR"]), isWritableDirectory(runtime) {
            controlSocket = socket(in: withoutTrailingSlashes(runtime) + "/devcluster")
        }
        let fallbackSocket = socket(in: perUser) ?? "/tmp/devcluster-\(userID)/" + controlSocketName
        let stateDirectory = isRoot && (isWritableDirectory("/var/lib/devcluster") || isWritableDirectory("/var/lib"))
            ? "/var/lib/devcluster" : perUser + "/state"
        return DefaultPaths(controlSocket: controlSocket ?? fallbackSocket, stateDirectory: stateDirectory)
    }

    /// `defaultPaths(userID:environment:isWritableDirectory:)` for this host.
    public func defaultPaths() -> DefaultPaths {
        Self.defaultPaths(userID: userID, environment: variables, isWritableDirectory: isWritableDirectory)
    }

    private static func absolute(_ path: String?) -> String? {
        guard let path, path.hasPrefix("/"), !path.utf8.contains(0) else { return nil }
        return path
    }

    private static func withoutTrailingSlashes(_ path: String) -> String {
        var result = Substring(path)
        while result.count > 1 && result.hasSuffix("/") { result = result.dropLast() }
        return result == "/" ? "" : String(result)
    }
}

// MARK: - This host

extension HostEnvironment {
    /// The facts of the machine this process runs on.
    public static var current: HostEnvironment {
        HostEnvironment(
            userID: UInt32(geteuid()),
            variables: ProcessInfo.processInfo.environment,
            hostName: currentHostName(),
            isWritableDirectory: { path in
                var isDirectory: ObjCBool = false
                return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
                    && isDirectory.boolValue && access(path, W_OK) == 0
            },
            interfaceAddresses: { currentInterfaceAddresses() },
            lookUpUser: { name in UnixSocket.userID(named: name) },
            lookUpGroup: { name in UnixSocket.groupID(named: name) })
    }

    private static func currentHostName() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return nil }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? nil : name
    }

    /// Every IPv4 and IPv6 address of every interface (`getifaddrs`), in the kernel's order.
    private static func currentInterfaceAddresses() -> [InterfaceAddress] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var result: [InterfaceAddress] = []
        var cursor = list
        while let entry = cursor {
            cursor = entry.pointee.ifa_next
            guard let address = ipAddress(entry.pointee.ifa_addr) else { continue }
            let mask = ipAddress(entry.pointee.ifa_netmask)
            let prefixLength = mask?.bytes.reduce(0) { $0 + $1.nonzeroBitCount } ?? address.bytes.count * 8
            let isLoopback = Int(entry.pointee.ifa_flags) & Int(IFF_LOOPBACK) != 0
            result.append(InterfaceAddress(address: address, prefixLength: prefixLength, isLoopback: isLoopback))
        }
        return result
    }

    private static func ipAddress(_ socketAddress: UnsafeMutablePointer<sockaddr>?) -> DaemonConfiguration.IPAddress? {
        guard let socketAddress else { return nil }
        switch Int32(socketAddress.pointee.sa_family) {
        case AF_INET:
            var address = socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            return DaemonConfiguration.IPAddress(bytes: withUnsafeBytes(of: &address) { Array($0) })
        case AF_INET6:
            var address = socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            return DaemonConfiguration.IPAddress(bytes: withUnsafeBytes(of: &address) { Array($0) })
        default:
            return nil
        }
    }
}

// MARK: - The embedded default

extension DaemonConfiguration {
    /// The name error messages use for the embedded default.
    public static let embeddedFileName = "<embedded>"

    /// The Totem settings before any `[totem]` option: the core's (corosync's), except
    /// `window_size` 160 and `max_messages` 80 for corosync's 50 and 17. Those date from
    /// 100 Mbit/s switches; with 17 frames per token visit a single sender's throughput is
    /// bounded by the rotation time (measured in Benchmarks/ANALYSIS.md, "Steps taken"). Both
    /// stay under the spec's 256000/netmtu bound for a 1500-byte MTU, and either can be set back
    /// in `[totem]`.
    public static var defaultTotemSettings: TotemSettings {
        var settings = TotemSettings()
        settings.windowSize = 160
        settings.maxMessages = 80
        return settings
    }

    /// The configuration used when there is no file at all: a one-node cluster "devcluster" on
    /// loopback (udpu, 127.0.0.1, node 1, named after the host or "node1"), port 5405, no crypto,
    /// the `device_state` and `mwi` channels publishing and subscribing, and the control socket
    /// and state directory from `HostEnvironment.defaultPaths()`.
    public static func embeddedDefault(host: HostEnvironment = .current) -> DaemonConfiguration {
        let id = NodeID(1)
        let name = host.hostName.flatMap { isValidName($0) ? $0 : nil } ?? defaultNodeName(id)
        guard let loopback = IPAddress(bytes: [127, 0, 0, 1]) else {
            preconditionFailure("four bytes are an IPv4 address")
        }
        var settings = defaultTotemSettings
        settings.configuredNodeCount = 1
        let paths = host.defaultPaths()
        return DaemonConfiguration(
            totem: TotemSection(clusterName: "devcluster", transport: .udpu, port: 5405, netMTU: 1500,
                                crypto: .none, settings: settings),
            nodes: [Node(id: id, name: name, address: loopback)],
            options: Options(nodeID: id, entityID: nil, controlSocket: paths.controlSocket, controlSocketGroup: nil,
                             stateDirectory: paths.stateDirectory, logLevel: .info),
            eventChannels: [
                EventChannel(name: "device_state", publishes: [.deviceState], subscribes: [.deviceState]),
                EventChannel(name: "mwi", publishes: [.mwi], subscribes: [.mwi]),
            ],
            hints: [])
    }
}

// MARK: - Writing a configuration as a file

extension DaemonConfiguration {
    /// This configuration as devcluster.conf text with every option explicit (derived values
    /// such as the multicast address and this node's id written out). Reading it back gives an
    /// equal configuration.
    public var fileText: String {
        var lines = ["; devcluster configuration, every option explicit", "", "[totem]"]
        func add(_ key: String, _ value: String) { lines.append("\(key) = \(Self.escaped(value))") }
        add("cluster_name", totem.clusterName)
        add("transport", totem.transport.name)
        if case .udp(let bindNetwork, let multicastAddress) = totem.transport {
            add("bindnetaddr", bindNetwork.description)
            add("mcastaddr", multicastAddress.description)
            add("ttl", String(totem.multicastTTL))
        }
        add("mcastport", String(totem.port))
        add("netmtu", String(totem.netMTU))
        add("segmentation_offload", totem.segmentationOffload ? "yes" : "no")
        add("port_unreachable", totem.portUnreachable ? "yes" : "no")
        for option in TotemNumericOption.all {
            if let value = option.current(totem.settings) { add(option.key, String(value)) }
        }
        add("cancel_token_hold_on_retransmit", totem.settings.cancelHoldOnRetransmit ? "yes" : "no")
        add("crypto", totem.crypto.name)
        if let keyFile = totem.crypto.keyFile { add("keyfile", keyFile) }
        for node in nodes {
            lines += ["", "[node]"]
            add("nodeid", node.id.description)
            add("name", node.name)
            add("addr", node.address.description)
        }
        lines += ["", "[options]"]
        add("nodeid", options.nodeID.description)
        if let entityID = options.entityID { add("entity_id", entityID.description) }
        add("control_socket", options.controlSocket)
        if let group = options.controlSocketGroup { add("control_socket_group", group) }
        add("state_dir", options.stateDirectory)
        add("log_level", options.logLevel.rawValue)
        add("max_devices", String(options.maxDevices))
        add("max_mailboxes", String(options.maxMailboxes))
        add("max_retained_bytes", ByteSize.format(options.maxRetainedBytes))
        for channel in eventChannels {
            lines += ["", "[\(channel.name)]"]
            add("type", "event_channel")
            if !channel.publishes.isEmpty { add("publish_event", channel.publishes.map(\.rawValue).joined(separator: ", ")) }
            if !channel.subscribes.isEmpty { add("subscribe_event", channel.subscribes.map(\.rawValue).joined(separator: ", ")) }
        }
        lines += control.fileLines
        lines += metrics?.fileLines ?? []
        if !hints.isEmpty {
            lines += ["", "[hints]"]
            for hint in hints { add(Self.escaped("\(hint.exten)@\(hint.context)"), hint.devices.joined(separator: "&")) }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Escapes the comment characters so the INI reader gives the text back.
    private static func escaped(_ text: String) -> String {
        var result = ""
        for character in text {
            if character == ";" || character == "#" { result.append("\\") }
            result.append(character)
        }
        return result
    }
}
