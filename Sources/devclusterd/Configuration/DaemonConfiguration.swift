// The daemon's typed configuration, built from devcluster.conf with every value checked and every
// default and derivation (multicast address, this node's id, bind network) resolved.
// It reads files and asks the host for its addresses only through `HostEnvironment`.

import EventService
import Foundation
import Glibc
import Totem
import TotemRuntime

/// Everything `devclusterd` needs to know before it starts, validated.
///
/// Build it with `load(path:host:)` or `parse(text:path:host:)`, or take `embeddedDefault(host:)`
/// when there is no file. A value of this type is always usable: whatever could be wrong was
/// reported as a `ConfigurationError` while building it.
public struct DaemonConfiguration: Sendable, Equatable {
    /// `[totem]`: the ring, its transport and its timers.
    public var totem: TotemSection
    /// `[node]` sections in file order: the cluster's servers. Empty only with `transport = udp`.
    public var nodes: [Node]
    /// `[options]`: this server's identity and local resources.
    public var options: Options
    /// Sections with `type = event_channel`, in file order.
    public var eventChannels: [EventChannel]
    /// `[hints]` entries, in file order.
    public var hints: [Hint]
    /// `[control]`: who may use the control socket, and the bounds on its clients.
    public var control = Control()
    /// `[metrics]`: the Prometheus endpoint, `nil` when the file has no such section.
    public var metrics: Metrics?

    /// Creates a configuration from parts already validated.
    public init(totem: TotemSection, nodes: [Node], options: Options, eventChannels: [EventChannel], hints: [Hint]) {
        self.totem = totem
        self.nodes = nodes
        self.options = options
        self.eventChannels = eventChannels
        self.hints = hints
    }

    /// Where the daemon looks when `--config` is not given.
    public static let defaultPath = "/etc/devcluster/devcluster.conf"

    /// The `[node]` entry of this server, when there is a node list.
    public var localNode: Node? { nodes.first { $0.id == options.nodeID } }
}

// MARK: - The model

extension DaemonConfiguration {
    /// `[totem]`: ring-wide settings. Every node of one cluster should use the same values.
    public struct TotemSection: Sendable, Equatable {
        /// Names the cluster; packets of another cluster are ignored. 1-64 printable ASCII characters.
        public var clusterName: String
        /// How datagrams reach the other nodes.
        public var transport: Transport
        /// UDP port: `mcastport`, where every node receives (the multicast send socket of `udp`
        /// sends from an ephemeral port of the node's address; a firewall must let UDP to this port in).
        public var port: UInt16
        /// Largest IP datagram (`netmtu`), 576-65535 bytes; the transport derives the frame size.
        public var netMTU: Int
        /// `segmentation_offload`: hand runs of datagrams to the kernel as one segmented send
        /// and take them whole on receipt (UDP GSO/GRO) where the kernel offers it. The wire
        /// carries the same datagrams either way.
        public var segmentationOffload = true
        /// `port_unreachable`: a token the kernel answers with an ICMP "port unreachable" (the
        /// successor's daemon is gone, its host is up) fails that node at once, instead of after
        /// the token and consensus timeouts.
        public var portUnreachable = true
        /// `ttl`: the IP time-to-live (IPv6: hop limit) of multicast datagrams with `transport =
        /// udp`, 0-255. The default 1 keeps them on the local network: they do not cross a router.
        public var multicastTTL = 1
        /// Authentication and encryption of every datagram, with the key file.
        public var crypto: Crypto
        /// The protocol's timers and constants, `configuredNodeCount` set from the node list.
        public var settings: TotemSettings

        /// Creates the section.
        public init(clusterName: String, transport: Transport, port: UInt16, netMTU: Int, crypto: Crypto, settings: TotemSettings) {
            self.clusterName = clusterName
            self.transport = transport
            self.port = port
            self.netMTU = netMTU
            self.crypto = crypto
            self.settings = settings
        }
    }

    /// `transport`: multicast (`udp`, the default) or unicast to every listed node (`udpu`).
    public enum Transport: Sendable, Equatable {
        /// UDP multicast: bind on an interface of `bindNetwork` (a network or an interface
        /// address, matched as corosync's `bindnetaddr`), send to `multicastAddress`.
        case udp(bindNetwork: IPAddress, multicastAddress: IPAddress)
        /// UDP unicast to each `[node]` address.
        case udpu

        /// The name used in the file.
        public var name: String {
            switch self {
            case .udp: "udp"
            case .udpu: "udpu"
            }
        }
    }

    /// `crypto` and `keyfile`: how datagrams are protected.
    public enum Crypto: Sendable, Equatable {
        /// No protection; the daemon warns at start.
        case none
        /// Every datagram carries an HMAC-SHA-256 tag keyed from `keyFile`.
        case hmacSHA256(keyFile: String)
        /// Every datagram is encrypted and authenticated with ChaCha20-Poly1305 keyed from `keyFile`.
        case chaCha20Poly1305(keyFile: String)

        /// The name used in the file.
        public var name: String {
            switch self {
            case .none: "none"
            case .hmacSHA256: "hmac-sha256"
            case .chaCha20Poly1305: "chacha20-poly1305"
            }
        }

        /// The key file, when there is one.
        public var keyFile: String? {
            switch self {
            case .none: nil
            case .hmacSHA256(let keyFile), .chaCha20Poly1305(let keyFile): keyFile
            }
        }
    }

    /// One `[node]` section: a server of the cluster.
    public struct Node: Sendable, Equatable {
        /// `nodeid`, unique, 1 ... 4294967294.
        public var id: NodeID
        /// `name`, unique; `node<ID>` when not given.
        public var name: String
        /// `addr`: the address the node's ring traffic comes from, unique.
        public var address: IPAddress

        /// Creates a node.
        public init(id: NodeID, name: String, address: IPAddress) {
            self.id = id
            self.name = name
            self.address = address
        }
    }

    /// `[options]`: this server.
    public struct Options: Sendable, Equatable {
        /// This server's node id: `nodeid`, or the `[node]` whose address is local, or (udp with
        /// no node list) the IPv4 address of the local interface in `bindnetaddr`'s network.
        public var nodeID: NodeID
        /// `entity_id`; `nil` means "derive from a MAC address at start".
        public var entityID: EntityID?
        /// `control_socket`: absolute path of the Unix socket for the CLI and PBX adapters.
        public var controlSocket: String
        /// `control_socket_group`: when set, the socket gets this group and mode 0660.
        public var controlSocketGroup: String?
        /// `state_dir`: absolute path of the directory for persisted local state.
        public var stateDirectory: String
        /// `log_level`, default `info`.
        public var logLevel: LogLevel
        /// `max_devices`: the most devices one server reports (this one's `devstate set`, and
        /// each other node's states), 1-1,000,000; `DeviceStateLimits`.
        public var maxDevices = Options.defaultMaxDevices
        /// `max_mailboxes`: the most mailboxes this server publishes and the most cluster-wide
        /// MWI records it keeps, 1-1,000,000.
        public var maxMailboxes = Options.defaultMaxMailboxes
        /// `max_retained_bytes`: the most bytes of retained events this node keeps (payloads,
        /// attributes and a fixed overhead per event); beyond it the oldest are dropped.
        public var maxRetainedBytes = EventLimits.defaultRetainedBytes
        /// The defaults of `max_devices` and `max_mailboxes` (`DeviceStateLimits`'s).
        public static let defaultMaxDevices = 100_000
        public static let defaultMaxMailboxes = 100_000
        /// The largest value of either (the state file format's limit, `LocalStateTable.maxEntries`).
        public static let maximumEntries = 1_000_000

        /// Creates the options.
        public init(nodeID: NodeID, entityID: EntityID?, controlSocket: String, controlSocketGroup: String?, stateDirectory: String, logLevel: LogLevel) {
            self.nodeID = nodeID
            self.entityID = entityID
            self.controlSocket = controlSocket
            self.controlSocketGroup = controlSocketGroup
            self.stateDirectory = stateDirectory
            self.logLevel = logLevel
        }
    }

    /// `log_level`, from most to least verbose.
    public enum LogLevel: String, Sendable, Equatable, CaseIterable, Comparable {
        /// Everything, including each packet and state change.
        case debug
        /// Membership changes, start and stop (the default).
        case info
        /// Events worth a look: a node left, a foreign cluster's packets dropped.
        case notice
        /// Something is wrong but the daemon carries on.
        case warning
        /// Something failed.
        case error

        /// Orders by severity: `debug < info < ... < error`.
        public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.severity < rhs.severity }

        private var severity: Int {
            switch self {
            case .debug: 0
            case .info: 1
            case .notice: 2
            case .warning: 3
            case .error: 4
            }
        }
    }

    /// A section with `type = event_channel`, as in the seed's ais.conf.
    public struct EventChannel: Sendable, Equatable {
        /// The section name, which is the channel name.
        public var name: String
        /// `publish_event`: the local events this server publishes on the channel.
        public var publishes: [EventType]
        /// `subscribe_event`: the events this server takes from the channel.
        public var subscribes: [EventType]

        /// Creates a channel.
        public init(name: String, publishes: [EventType], subscribes: [EventType]) {
            self.name = name
            self.publishes = publishes
            self.subscribes = subscribes
        }
    }

    /// The type of events on a channel: `device_state` and `mwi` for the device-state service,
    /// any other name for clients' own events (`event_publish`). Lower case, as the event
    /// service's rule: 1-32 characters of a-z, 0-9 and `_`, starting with a letter.
    public struct EventType: RawRepresentable, Sendable, Hashable {
        public let rawValue: String

        /// Device state changes.
        public static let deviceState = EventType(rawValue: "device_state")!
        /// Message-waiting indication.
        public static let mwi = EventType(rawValue: "mwi")!

        public init?(rawValue: String) {
            guard EventService.EventType.isValid(rawValue) else { return nil }
            self.rawValue = rawValue
        }
    }

    /// One `[hints]` entry: `EXTEN@CONTEXT = DEV1&DEV2`.
    public struct Hint: Sendable, Equatable {
        /// The extension (before `@`).
        public var exten: String
        /// The dialplan context (after `@`).
        public var context: String
        /// The devices whose states make up the extension state, in the order given.
        public var devices: [String]

        /// Creates a hint.
        public init(exten: String, context: String, devices: [String]) {
            self.exten = exten
            self.context = context
            self.devices = devices
        }
    }

    /// A server's entity id: six octets, written `01:23:45:67:89:ab`.
    public struct EntityID: Sendable, Hashable, CustomStringConvertible {
        /// Exactly six octets.
        public let octets: [UInt8]

        /// Creates an id from six octets, or `nil` for another count.
        public init?(octets: [UInt8]) {
            guard octets.count == 6 else { return nil }
            self.octets = octets
        }

        /// Parses six two-digit hex octets separated by `:`, or returns `nil`.
        public init?(parsing text: String) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 6 else { return nil }
            var octets: [UInt8] = []
            for part in parts {
                guard part.count == 2, part.allSatisfy(\.isHexDigit), part.allSatisfy(\.isASCII),
                      let octet = UInt8(part, radix: 16)
                else { return nil }
                octets.append(octet)
            }
            self.octets = octets
        }

        /// Lower-case hex octets separated by `:`.
        public var description: String {
            octets.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
        }
    }

    /// An IPv4 or IPv6 address (no zone, no port).
    public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
        /// Network byte order: 4 bytes for IPv4, 16 for IPv6.
        public let bytes: [UInt8]

        /// Creates an address from 4 or 16 bytes, or `nil` for another count.
        public init?(bytes: [UInt8]) {
            guard bytes.count == 4 || bytes.count == 16 else { return nil }
            self.bytes = bytes
        }

        /// 127.0.0.0/8 or ::1.
        public var isLoopback: Bool {
            bytes.count == 4 ? bytes[0] == 127 : bytes == [UInt8](repeating: 0, count: 15) + [1]
        }

        /// Parses an IPv4 dotted quad or an IPv6 literal (`inet_pton`), or returns `nil`.
        public init?(_ text: String) {
            // A NUL would end the C string early and let "1.2.3.4\0junk" through.
            guard !text.utf8.contains(0) else { return nil }
            var buffer = [UInt8](repeating: 0, count: 16)
            if inet_pton(AF_INET, text, &buffer) == 1 {
                bytes = Array(buffer.prefix(4))
            } else if inet_pton(AF_INET6, text, &buffer) == 1 {
                bytes = buffer
            } else {
                return nil
            }
        }

        /// Whether this is an IPv4 address.
        public var isIPv4: Bool { bytes.count == 4 }

        /// Whether this is a multicast group: 224.0.0.0/4 or ff00::/8.
        public var isMulticast: Bool { isIPv4 ? bytes[0] & 0xF0 == 0xE0 : bytes[0] == 0xFF }

        /// The IPv4 address as a big-endian number (10.19.2.255 is 0x0A1302FF), `nil` for IPv6.
        public var ipv4Value: UInt32? {
            guard isIPv4 else { return nil }
            return bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        }

        /// Whether `other` has the same family and the same first `prefixLength` bits.
        public func sharesPrefix(with other: IPAddress, length prefixLength: Int) -> Bool {
            guard bytes.count == other.bytes.count else { return false }
            var remaining = max(0, min(prefixLength, bytes.count * 8))
            for (mine, theirs) in zip(bytes, other.bytes) where remaining > 0 {
                let bits = min(remaining, 8)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if mine & mask != theirs & mask { return false }
                remaining -= bits
            }
            return true
        }

        /// The conventional text form (`inet_ntop`).
        public var description: String {
            if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            guard inet_ntop(AF_INET6, bytes, &text, socklen_t(text.count)) != nil else {
                return bytes.map { String($0, radix: 16) }.joined(separator: ":")
            }
            return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}

// MARK: - Loading

extension DaemonConfiguration {
    /// A configuration file larger than this is refused before it is read.
    public static let maximumFileBytes = 1 << 20

    /// Reads and validates the configuration file at `path`.
    ///
    /// - Parameters:
    ///   - path: the file; error messages name it as given.
    ///   - host: facts about this server (its addresses, user id, environment).
    /// - Throws: every problem found, not only the first.
    public static func load(path: String, host: HostEnvironment = .current) throws(ConfigurationErrors) -> DaemonConfiguration {
        let text: String
        do {
            text = try readText(path: path)
        } catch {
            throw ConfigurationErrors([error])
        }
        return try parse(text: text, path: path, host: host)
    }

    /// Validates configuration text.
    ///
    /// - Parameters:
    ///   - text: the file's contents.
    ///   - path: the name used in error messages.
    ///   - host: facts about this server (its addresses, user id, environment).
    /// - Throws: every problem found, sorted by line.
    public static func parse(text: String, path: String, host: HostEnvironment = .current) throws(ConfigurationErrors) -> DaemonConfiguration {
        var reader = ConfigurationReader(file: path, host: host)
        let result = INIParser.parse(text)
        for syntaxError in result.errors { reader.report(syntaxError) }
        let configuration = reader.read(result.document)
        // Stable: problems on one line keep the order in which they were found.
        let sorted = reader.errors.enumerated().sorted { left, right in
            let leftLine = left.element.line ?? Int.max
            let rightLine = right.element.line ?? Int.max
            return leftLine != rightLine ? leftLine < rightLine : left.offset < right.offset
        }.map(\.element)
        guard sorted.isEmpty, let configuration else {
            throw ConfigurationErrors(sorted.isEmpty ? [reader.internalInconsistency()] : sorted)
        }
        return configuration
    }

    /// Where a configuration came from.
    public enum Origin: Sendable, Equatable {
        /// Read from this file.
        case file(String)
        /// The built-in single-node default: no file was named and `defaultPath` does not exist.
        case embedded
    }

    /// The configuration the daemon runs with: the file named by `--config` (which must exist),
    /// else `defaultPath` when it exists, else the embedded default.
    /// - Throws: every problem of the chosen file.
    public static func resolve(configPath: String?, host: HostEnvironment = .current) throws(ConfigurationErrors) -> (DaemonConfiguration, Origin) {
        if let configPath { return (try load(path: configPath, host: host), .file(configPath)) }
        if access(defaultPath, F_OK) == 0 { return (try load(path: defaultPath, host: host), .file(defaultPath)) }
        return (embeddedDefault(host: host), .embedded)
    }

    private static func readText(path: String) throws(ConfigurationError) -> String {
        func failure(_ reason: ConfigurationError.Reason) -> ConfigurationError {
            ConfigurationError(file: path, line: nil, section: nil, option: nil, reason: reason)
        }
        guard let handle = fopen(path, "rb") else {
            throw failure(.unreadableFile(String(cString: strerror(errno))))
        }
        defer { fclose(handle) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = fread(&chunk, 1, chunk.count, handle)
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > maximumFileBytes {
                throw failure(.fileTooLarge(bytes: bytes.count, limit: maximumFileBytes))
            }
            if count < chunk.count {
                if ferror(handle) != 0 { throw failure(.unreadableFile(String(cString: strerror(errno)))) }
                break
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw failure(.notUTF8) }
        return text
    }
}

// MARK: - Derivations

extension DaemonConfiguration {
    /// The multicast group corosync derives from a cluster name (totem-spec §6.2):
    /// `id = Σ (id << 1) + byte` over the name's bytes, `& 0xFFFF`, `+ link`; then
    /// `239.192.(id >> 8).(id % 255)` for IPv4 or `ff15::<id in hex>` for IPv6.
    ///
    /// - Parameters:
    ///   - clusterName: the configured `cluster_name`.
    ///   - ipv6: derive the IPv6 group instead of the IPv4 one.
    ///   - link: the link (ring) number; devcluster has one link, 0.
    public static func defaultMulticastAddress(clusterName: String, ipv6: Bool, link: UInt16 = 0) -> IPAddress {
        var id: UInt16 = 0
        for byte in clusterName.utf8 {
            // Only the low 16 bits survive the mask, and shift and add never carry downwards,
            // so 16-bit wrapping arithmetic gives the same id as corosync's wider one.
            id = (id << 1) &+ UInt16(byte)
        }
        id = id &+ link
        let text = ipv6 ? "ff15::\(String(id, radix: 16))" : "239.192.\(id >> 8).\(id % 255)"
        guard let address = IPAddress(text) else {
            preconditionFailure("derived multicast address \(text) does not parse")
        }
        return address
    }

    /// The default name of a node that has none: `node<ID>`.
    public static func defaultNodeName(_ id: NodeID) -> String { "node\(id.rawValue)" }

    /// Whether `name` can name a node or a channel: 1-64 printable ASCII characters, no spaces.
    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.utf8.allSatisfy { (0x21...0x7E).contains($0) }
    }
}
