// The daemon's typed configuration, built from devcluster.conf with every value checked and every
// default and derivation (multicast address, this node's id, bind network) resolved.
// It reads files and asks the host for its addresses only through `HostEnvironment`.

import Foundation
import Glibc
import Totem

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
        /// UDP port: `mcastport` (the multicast send socket of `udp` also uses `port - 1`).
        public var port: UInt16
        /// Largest IP datagram (`netmtu`), 576-65535 bytes; the transport derives the frame size.
        public var netMTU: Int
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

    /// The kinds of events that travel on channels.
    public enum EventType: String, Sendable, Equatable, CaseIterable {
        /// Device state changes.
        case deviceState = "device_state"
        /// Message-waiting indication.
        case mwi
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

// MARK: - Reading: the option tables

/// A numeric `[totem]` option that maps onto a `TotemSettings` field.
struct TotemNumericOption: Sendable {
    let key: String
    let range: ClosedRange<Int>
    let isMilliseconds: Bool
    /// Stores a checked value.
    let apply: @Sendable (inout TotemSettings, Int) -> Void
    /// The value to write back, or `nil` when the setting is derived (not set).
    let current: @Sendable (TotemSettings) -> Int?

    var expected: String {
        let unit = isMilliseconds ? " of milliseconds" : ""
        return "a whole number\(unit) \(range.lowerBound)-\(range.upperBound)"
    }

    /// Every numeric option, in the order the documentation lists them.
    static let all: [TotemNumericOption] = [
        milliseconds("token", 30...600_000, { $0.token = .milliseconds($1) }, { $0.token.wholeMilliseconds }),
        milliseconds("token_coefficient", 0...600_000, { $0.tokenCoefficient = .milliseconds($1) }, { $0.tokenCoefficient.wholeMilliseconds }),
        milliseconds("token_retransmit", 1...600_000, { $0.tokenRetransmitOverride = .milliseconds($1) }, { $0.tokenRetransmitOverride?.wholeMilliseconds }),
        count("token_retransmits_before_loss_const", 1...100, { $0.tokenRetransmitsBeforeLoss = $1 }, { $0.tokenRetransmitsBeforeLoss }),
        milliseconds("hold", 1...600_000, { $0.holdOverride = .milliseconds($1) }, { $0.holdOverride?.wholeMilliseconds }),
        milliseconds("join", 1...600_000, { $0.join = .milliseconds($1) }, { $0.join.wholeMilliseconds }),
        milliseconds("consensus", 1...600_000, { $0.consensusOverride = .milliseconds($1) }, { $0.consensusOverride?.wholeMilliseconds }),
        milliseconds("merge", 1...600_000, { $0.merge = .milliseconds($1) }, { $0.merge.wholeMilliseconds }),
        count("window_size", 1...16_384, { $0.windowSize = $1 }, { $0.windowSize }),
        count("max_messages", 1...16_384, { $0.maxMessages = $1 }, { $0.maxMessages }),
        count("miss_count_const", 0...1_000, { $0.missCountConstant = $1 }, { $0.missCountConstant }),
        count("fail_recv_const", 1...1_000_000, { $0.failToReceiveConstant = $1 }, { $0.failToReceiveConstant }),
        count("seqno_unchanged_const", 1...1_000_000, { $0.sequenceUnchangedConstant = $1 }, { $0.sequenceUnchangedConstant }),
    ]

    private static func milliseconds(
        _ key: String, _ range: ClosedRange<Int>,
        _ apply: @escaping @Sendable (inout TotemSettings, Int) -> Void,
        _ current: @escaping @Sendable (TotemSettings) -> Int?
    ) -> TotemNumericOption {
        TotemNumericOption(key: key, range: range, isMilliseconds: true, apply: apply, current: current)
    }

    private static func count(
        _ key: String, _ range: ClosedRange<Int>,
        _ apply: @escaping @Sendable (inout TotemSettings, Int) -> Void,
        _ current: @escaping @Sendable (TotemSettings) -> Int?
    ) -> TotemNumericOption {
        TotemNumericOption(key: key, range: range, isMilliseconds: false, apply: apply, current: current)
    }
}

extension Duration {
    /// The duration in whole milliseconds, rounded towards zero.
    var wholeMilliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1_000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}

/// The keys each kind of section accepts, in documentation order.
enum ConfigurationKeys {
    static let totem = ["cluster_name", "transport", "bindnetaddr", "mcastaddr", "mcastport", "netmtu"]
        + TotemNumericOption.all.map(\.key) + ["cancel_token_hold_on_retransmit", "keyfile", "crypto"]
    static let node = ["nodeid", "name", "addr"]
    static let options = ["nodeid", "entity_id", "control_socket", "control_socket_group", "state_dir", "log_level"]
    static let eventChannel = ["type", "publish_event", "subscribe_event"]
    static let sections = ["[totem]", "[node]", "[options]", "[hints]", "or an event channel (a section with \"type = event_channel\")"]
}

// MARK: - Reading: drafts

/// A value and the line it came from.
struct Located<Value: Sendable>: Sendable {
    var value: Value
    var line: Int
}

/// `[totem]` as read, before the cross-section checks.
struct TotemDraft {
    var sectionLine: Int?
    var clusterName: String?
    var hasClusterNameEntry = false
    var isUnicast = false
    /// Set when `transport` names no transport; the transport checks then stay silent.
    var isTransportInvalid = false
    var transportLine: Int?
    var bindNetwork: Located<DaemonConfiguration.IPAddress>?
    var multicastAddress: Located<DaemonConfiguration.IPAddress>?
    var port = Located(value: 5405, line: 0)
    var netMTU = 1500
    var keyFile: Located<String>?
    var crypto: Located<String>?
    var settings = TotemSettings()
    /// Lines of the numeric options that were set, to place `TotemSettings.validate()` problems.
    var numericOptionLines: [String: Int] = [:]
}

/// One `[node]` as read.
struct NodeDraft {
    var sectionLine: Int
    var id: Located<NodeID>
    var name: Located<String>
    var address: Located<DaemonConfiguration.IPAddress>
}

/// The `[node]` sections that were read, and whether all of them were valid.
struct NodeList {
    var nodes: [NodeDraft]
    var isComplete: Bool
}

/// `[options]` as read.
struct OptionsDraft {
    var sectionLine: Int?
    var nodeID: Located<NodeID>?
    var entityID: DaemonConfiguration.EntityID?
    var controlSocket: String?
    var controlSocketGroup: String?
    var stateDirectory: String?
    var logLevel = DaemonConfiguration.LogLevel.info
}

// MARK: - Reading: sections

/// Turns an `INIDocument` into a `DaemonConfiguration`, collecting every problem on the way.
struct ConfigurationReader {
    typealias Model = DaemonConfiguration

    let file: String
    let host: HostEnvironment
    private(set) var errors: [ConfigurationError] = []

    init(file: String, host: HostEnvironment) {
        self.file = file
        self.host = host
    }

    mutating func fail(_ line: Int?, _ section: String?, _ option: String?, _ reason: ConfigurationError.Reason) {
        errors.append(ConfigurationError(file: file, line: line, section: section, option: option, reason: reason))
    }

    mutating func invalid(_ entry: INIEntry, _ section: String, _ expected: String) {
        fail(entry.line, section, entry.key, .invalidValue(got: entry.value, expected: expected))
    }

    mutating func report(_ syntaxError: INISyntaxError) {
        switch syntaxError.kind {
        case .duplicateKey(let key, let section, _):
            fail(syntaxError.line, section, key, .syntax(syntaxError.kind))
        default:
            fail(syntaxError.line, nil, nil, .syntax(syntaxError.kind))
        }
    }

    /// Reported only if reading produced no configuration and no error, which is a bug here.
    func internalInconsistency() -> ConfigurationError {
        ConfigurationError(file: file, line: nil, section: nil, option: nil,
                           reason: .invalidValue(got: "", expected: "a configuration (internal error: nothing was reported)"))
    }

    /// Reads every section, then resolves what depends on several of them.
    mutating func read(_ document: INIDocument) -> DaemonConfiguration? {
        var totem = TotemDraft()
        var nodes: [NodeDraft] = []
        var options = OptionsDraft()
        var channels: [Model.EventChannel] = []
        var hints: [Model.Hint] = []
        var firstLines: [String: Int] = [:]
        var nodeSectionCount = 0
        for section in document.sections {
            let name = section.normalizedName
            if name != "node" {
                if let firstLine = firstLines[name] {
                    fail(section.line, section.name, nil, .repeatedSection(firstLine: firstLine))
                    continue
                }
                firstLines[name] = section.line
            }
            switch name {
            case "totem": totem = readTotem(section)
            case "node":
                nodeSectionCount += 1
                if nodeSectionCount == WireLimits.maxNodes + 1 {
                    let total = document.sections.count(where: { $0.normalizedName == "node" })
                    fail(section.line, "node", nil, .tooManyNodes(count: total, limit: WireLimits.maxNodes))
                }
                if let node = readNode(section) { nodes.append(node) }
            case "options": options = readOptions(section)
            case "hints": hints = readHints(section)
            default:
                if let channel = readEventChannel(section) { channels.append(channel) }
            }
        }
        // A [node] that was rejected would make the node-list checks report consequences of
        // that one error (a missing node list, this node not listed); they wait for a clean list.
        let nodeList = NodeList(nodes: nodes, isComplete: nodes.count == nodeSectionCount)
        return resolve(totem: totem, nodeList: nodeList, options: options, channels: channels, hints: hints)
    }

    private mutating func rejectUnknownKeys(in section: INISection, named sectionName: String, valid: [String]) {
        for entry in section.entries where !valid.contains(entry.normalizedKey) {
            let suggestion = Self.closest(to: entry.normalizedKey, among: valid)
            fail(entry.line, sectionName, entry.key, .unknownOption(validOptions: valid, suggestion: suggestion))
        }
    }

    private mutating func readTotem(_ section: INISection) -> TotemDraft {
        rejectUnknownKeys(in: section, named: "totem", valid: ConfigurationKeys.totem)
        var draft = TotemDraft(sectionLine: section.line)
        draft.port.line = section.line
        for entry in section.entries {
            switch entry.normalizedKey {
            case "cluster_name":
                draft.hasClusterNameEntry = true
                if Self.isValidClusterName(entry.value) { draft.clusterName = entry.value }
                else { invalid(entry, "totem", "1-64 printable ASCII characters") }
            case "transport":
                draft.transportLine = entry.line
                switch entry.value.lowercased() {
                case "udp": draft.isUnicast = false
                case "udpu": draft.isUnicast = true
                default:
                    draft.isTransportInvalid = true
                    invalid(entry, "totem", "\"udp\" (multicast) or \"udpu\" (unicast to each [node])")
                }
            case "bindnetaddr":
                if let address = Model.IPAddress(entry.value) { draft.bindNetwork = Located(value: address, line: entry.line) }
                else { invalid(entry, "totem", "an IPv4 or IPv6 address") }
            case "mcastaddr":
                if let address = Model.IPAddress(entry.value), address.isMulticast {
                    draft.multicastAddress = Located(value: address, line: entry.line)
                } else {
                    invalid(entry, "totem", "a multicast address (224.0.0.0-239.255.255.255 or ff00::/8)")
                }
            case "mcastport":
                if let port = Self.decimal(entry.value, in: 1...65_535) { draft.port = Located(value: port, line: entry.line) }
                else { invalid(entry, "totem", "a port number 1-65535") }
            case "netmtu":
                if let mtu = Self.decimal(entry.value, in: 576...65_535) { draft.netMTU = mtu }
                else { invalid(entry, "totem", "a whole number of bytes 576-65535") }
            case "cancel_token_hold_on_retransmit":
                if let flag = Self.boolean(entry.value) { draft.settings.cancelHoldOnRetransmit = flag }
                else { invalid(entry, "totem", "yes or no") }
            case "keyfile":
                if Self.isAbsolutePath(entry.value) { draft.keyFile = Located(value: entry.value, line: entry.line) }
                else { invalid(entry, "totem", "an absolute path") }
            case "crypto":
                let name = entry.value.lowercased()
                if ["none", "hmac-sha256", "chacha20-poly1305"].contains(name) { draft.crypto = Located(value: name, line: entry.line) }
                else { invalid(entry, "totem", "\"hmac-sha256\", \"chacha20-poly1305\" or \"none\"") }
            default:
                guard let option = TotemNumericOption.all.first(where: { $0.key == entry.normalizedKey }) else { continue }
                if let value = Self.decimal(entry.value, in: option.range) {
                    option.apply(&draft.settings, value)
                    draft.numericOptionLines[option.key] = entry.line
                } else {
                    invalid(entry, "totem", option.expected)
                }
            }
        }
        return draft
    }

    private mutating func readNode(_ section: INISection) -> NodeDraft? {
        rejectUnknownKeys(in: section, named: "node", valid: ConfigurationKeys.node)
        let id = readNodeID(section.entry("nodeid"), section: "node", sectionLine: section.line, required: true)
        var address: Located<Model.IPAddress>?
        if let entry = section.entry("addr") {
            if let value = Model.IPAddress(entry.value) {
                address = Located(value: value, line: entry.line)
            } else {
                fail(entry.line, "node", entry.key, .invalidValue(got: entry.value, expected: "an IPv4 or IPv6 address"))
            }
        } else {
            fail(section.line, "node", "addr", .missingOption(expected: "the node's IPv4 or IPv6 address"))
        }
        var name: Located<String>?
        if let entry = section.entry("name") {
            if Model.isValidName(entry.value) { name = Located(value: entry.value, line: entry.line) }
            else { fail(entry.line, "node", entry.key, .invalidValue(got: entry.value, expected: "1-64 printable ASCII characters without spaces")) }
        }
        guard let id, let address else { return nil }
        return NodeDraft(sectionLine: section.line, id: id,
                         name: name ?? Located(value: Model.defaultNodeName(id.value), line: section.line),
                         address: address)
    }

    private mutating func readNodeID(_ entry: INIEntry?, section: String, sectionLine: Int?, required: Bool) -> Located<NodeID>? {
        let expected = "a node id 1-4294967294 (0 and 4294967295 are reserved)"
        guard let entry else {
            if required { fail(sectionLine, section, "nodeid", .missingOption(expected: expected)) }
            return nil
        }
        guard let value = Self.decimal(entry.value, in: 1...0xFFFF_FFFE), let raw = UInt32(exactly: value),
              let id = NodeID(rawValue: raw)
        else {
            fail(entry.line, section, entry.key, .invalidValue(got: entry.value, expected: expected))
            return nil
        }
        return Located(value: id, line: entry.line)
    }

    private mutating func readOptions(_ section: INISection) -> OptionsDraft {
        rejectUnknownKeys(in: section, named: "options", valid: ConfigurationKeys.options)
        var draft = OptionsDraft(sectionLine: section.line)
        draft.nodeID = readNodeID(section.entry("nodeid"), section: "options", sectionLine: section.line, required: false)
        for entry in section.entries {
            switch entry.normalizedKey {
            case "entity_id":
                if let id = Model.EntityID(parsing: entry.value) { draft.entityID = id }
                else { invalid(entry, "options", "six hex octets separated by \":\" (like 01:23:45:67:89:ab)") }
            case "control_socket":
                if Self.isAbsolutePath(entry.value), entry.value.utf8.count <= HostEnvironment.maximumSocketPathBytes {
                    draft.controlSocket = entry.value
                } else {
                    invalid(entry, "options", "an absolute path of at most \(HostEnvironment.maximumSocketPathBytes) bytes (a Unix socket address)")
                }
            case "control_socket_group":
                if Model.isValidName(entry.value) { draft.controlSocketGroup = entry.value }
                else { invalid(entry, "options", "a group name") }
            case "state_dir":
                if Self.isAbsolutePath(entry.value) { draft.stateDirectory = entry.value }
                else { invalid(entry, "options", "an absolute path") }
            case "log_level":
                if let level = Model.LogLevel(rawValue: entry.value.lowercased()) { draft.logLevel = level }
                else { invalid(entry, "options", "one of " + Model.LogLevel.allCases.map(\.rawValue).joined(separator: ", ")) }
            default:
                continue
            }
        }
        return draft
    }

    private mutating func readEventChannel(_ section: INISection) -> Model.EventChannel? {
        guard let type = section.entry("type") else {
            fail(section.line, nil, nil, .unknownSection(section.name, expected: ConfigurationKeys.sections))
            return nil
        }
        rejectUnknownKeys(in: section, named: section.name, valid: ConfigurationKeys.eventChannel)
        guard type.value.lowercased() == "event_channel" else {
            fail(type.line, section.name, type.key, .invalidValue(got: type.value, expected: "\"event_channel\""))
            return nil
        }
        var isValid = true
        if !Model.isValidName(section.name) {
            fail(section.line, section.name, nil, .invalidValue(
                got: section.name, expected: "a channel name of 1-64 printable ASCII characters without spaces"))
            isValid = false
        }
        let publishes = readEventTypes(section.entry("publish_event"), section: section.name)
        let subscribes = readEventTypes(section.entry("subscribe_event"), section: section.name)
        guard isValid, let publishes, let subscribes else { return nil }
        return Model.EventChannel(name: section.name, publishes: publishes, subscribes: subscribes)
    }

    /// A comma-separated list of event types; `[]` when absent, `nil` after reporting a problem.
    private mutating func readEventTypes(_ entry: INIEntry?, section: String) -> [Model.EventType]? {
        guard let entry else { return [] }
        let valid = Model.EventType.allCases.map(\.rawValue).joined(separator: ", ")
        var types: [Model.EventType] = []
        for item in entry.value.split(separator: ",", omittingEmptySubsequences: false) {
            let name = INIParser.trimmed(item)
            guard let type = Model.EventType(rawValue: name.lowercased()) else {
                fail(entry.line, section, entry.key, .invalidValue(
                    got: name, expected: "event types separated by commas, each one of \(valid)"))
                return nil
            }
            guard !types.contains(type) else {
                fail(entry.line, section, entry.key, .duplicateListItem(name))
                return nil
            }
            types.append(type)
        }
        return types
    }

    private mutating func readHints(_ section: INISection) -> [Model.Hint] {
        var hints: [Model.Hint] = []
        for entry in section.entries {
            let parts = entry.key.split(separator: "@", omittingEmptySubsequences: false)
            guard parts.count == 2, let exten = parts.first, let context = parts.last,
                  Self.isWord(exten), Self.isWord(context)
            else {
                fail(entry.line, "hints", entry.key, .invalidValue(
                    got: entry.key, expected: "a hint key EXTEN@CONTEXT (like 1234@devstate_test)"))
                continue
            }
            let devices = entry.value.split(separator: "&", omittingEmptySubsequences: false).map { INIParser.trimmed($0) }
            guard devices.allSatisfy({ Self.isWord($0) }) else {
                fail(entry.line, "hints", entry.key, .invalidValue(
                    got: entry.value, expected: "devices separated by \"&\" (like SIP/1234&Custom:mystate)"))
                continue
            }
            hints.append(Model.Hint(exten: String(exten), context: String(context), devices: devices))
        }
        return hints
    }
}

// MARK: - Reading: what depends on several sections

extension ConfigurationReader {
    fileprivate mutating func resolve(
        totem: TotemDraft, nodeList: NodeList, options: OptionsDraft,
        channels: [Model.EventChannel], hints: [Model.Hint]
    ) -> DaemonConfiguration? {
        let nodes = nodeList.nodes
        if !totem.hasClusterNameEntry {
            fail(totem.sectionLine, "totem", "cluster_name", .missingOption(expected: "1-64 printable ASCII characters naming the cluster"))
        }
        checkUniqueness(of: nodes)
        checkAddressFamilies(totem: totem, nodes: nodes)
        let localID = nodeList.isComplete ? resolveLocalNodeID(totem: totem, nodes: nodes, options: options) : nil
        let transport = nodeList.isComplete ? resolveTransport(totem: totem, nodes: nodes, localID: localID) : nil
        let crypto = resolveCrypto(totem)
        let settings = resolveSettings(totem, nodeCount: nodes.count)
        let paths = host.defaultPaths()
        guard errors.isEmpty, let clusterName = totem.clusterName, let localID, let transport, let crypto,
              let port = UInt16(exactly: totem.port.value)
        else { return nil }
        return DaemonConfiguration(
            totem: Model.TotemSection(clusterName: clusterName, transport: transport, port: port,
                                      netMTU: totem.netMTU, crypto: crypto, settings: settings),
            nodes: nodes.map { Model.Node(id: $0.id.value, name: $0.name.value, address: $0.address.value) },
            options: Model.Options(nodeID: localID, entityID: options.entityID,
                                   controlSocket: options.controlSocket ?? paths.controlSocket,
                                   controlSocketGroup: options.controlSocketGroup,
                                   stateDirectory: options.stateDirectory ?? paths.stateDirectory,
                                   logLevel: options.logLevel),
            eventChannels: channels, hints: hints)
    }

    /// Node ids, names and addresses are unique; each duplicate names the earlier line.
    private mutating func checkUniqueness(of nodes: [NodeDraft]) {
        for (index, node) in nodes.enumerated() {
            let earlier = nodes[..<index]
            if let first = earlier.first(where: { $0.id.value == node.id.value }) {
                fail(node.id.line, "node", "nodeid", .duplicateValue("node id \(node.id.value)", firstLine: first.id.line))
            }
            if let first = earlier.first(where: { $0.name.value == node.name.value }) {
                fail(node.name.line, "node", "name", .duplicateValue("name \"\(node.name.value)\"", firstLine: first.name.line))
            }
            if let first = earlier.first(where: { $0.address.value == node.address.value }) {
                fail(node.address.line, "node", "addr", .duplicateValue("address \(node.address.value)", firstLine: first.address.line))
            }
        }
    }

    /// One cluster speaks one address family: every address must match the first one given.
    private mutating func checkAddressFamilies(totem: TotemDraft, nodes: [NodeDraft]) {
        var addresses: [(option: String, section: String, address: Located<Model.IPAddress>)] =
            nodes.map { ("addr", "node", $0.address) }
        if let bind = totem.bindNetwork { addresses.append(("bindnetaddr", "totem", bind)) }
        if let group = totem.multicastAddress { addresses.append(("mcastaddr", "totem", group)) }
        guard let anchor = addresses.first else { return }
        for other in addresses.dropFirst() where other.address.value.isIPv4 != anchor.address.value.isIPv4 {
            let reference = anchor.section == "node" ? "the [node] addr \(anchor.address.value)" : "\(anchor.option) \(anchor.address.value)"
            fail(other.address.line, other.section, other.option, .addressFamilyMismatch(
                address: other.address.value.description, reference: reference, referenceLine: anchor.address.line))
        }
    }

    /// This server's node id (spec of `Options.nodeID`); `nil` after reporting why it is unknown.
    private mutating func resolveLocalNodeID(totem: TotemDraft, nodes: [NodeDraft], options: OptionsDraft) -> NodeID? {
        if let configured = options.nodeID {
            if !nodes.isEmpty && !nodes.contains(where: { $0.id.value == configured.value }) {
                fail(configured.line, "options", "nodeid",
                     .nodeNotListed(configured.value.rawValue, listed: nodes.map(\.id.value.rawValue)))
            }
            return configured.value
        }
        if !nodes.isEmpty {
            let interfaces = host.interfaceAddresses()
            let local = nodes.filter { node in interfaces.contains { $0.owns(node.address.value) } }
            switch local.count {
            case 1: return local[0].id.value
            case 0: fail(options.sectionLine, "options", "nodeid",
                         .localNodeNotFound(localAddresses: interfaces.map(\.address.description)))
            default: fail(options.sectionLine, "options", "nodeid",
                          .localNodeAmbiguous(candidates: local.map(\.id.value.rawValue)))
            }
            return nil
        }
        // No node list: udpu is reported by the transport check; udp derives the id, as
        // corosync does, from the IPv4 address of the interface in bindnetaddr's network.
        guard !totem.isUnicast, let bind = totem.bindNetwork else { return nil }
        guard bind.value.isIPv4 else {
            fail(bind.line, "totem", "bindnetaddr", .cannotDeriveNodeID(fromAddress: bind.value.description))
            return nil
        }
        let interfaces = host.interfaceAddresses()
        guard let interface = interfaces.first(where: { $0.address.sharesPrefix(with: bind.value, length: $0.prefixLength) }) else {
            fail(bind.line, "totem", "bindnetaddr", .noInterfaceInNetwork(
                network: bind.value.description, localAddresses: interfaces.map(\.address.description)))
            return nil
        }
        guard let raw = interface.address.ipv4Value, raw != UInt32.max, let id = NodeID(rawValue: raw) else {
            fail(bind.line, "totem", "bindnetaddr", .cannotDeriveNodeID(fromAddress: interface.address.description))
            return nil
        }
        return id
    }

    private mutating func resolveTransport(totem: TotemDraft, nodes: [NodeDraft], localID: NodeID?) -> Model.Transport? {
        if totem.isTransportInvalid { return nil }
        if totem.isUnicast {
            if nodes.isEmpty { fail(totem.transportLine ?? totem.sectionLine, "totem", "transport", .unicastWithoutNodes) }
            if let bind = totem.bindNetwork { fail(bind.line, "totem", "bindnetaddr", .onlyForMulticastTransport) }
            if let group = totem.multicastAddress { fail(group.line, "totem", "mcastaddr", .onlyForMulticastTransport) }
            return .udpu
        }
        if totem.port.value < 2 {
            fail(totem.port.line, "totem", "mcastport", .invalidValue(
                got: String(totem.port.value), expected: "a port number 2-65535 (udp also sends from the port below)"))
        }
        let localAddress = nodes.first { $0.id.value == localID }?.address.value
        guard let bindNetwork = totem.bindNetwork?.value ?? localAddress else {
            if nodes.isEmpty {
                fail(totem.sectionLine, "totem", "bindnetaddr", .missingOption(
                    expected: "the network to bind on (udp needs bindnetaddr or a [node] list naming this server)"))
            }
            return nil
        }
        let group = totem.multicastAddress?.value ?? Model.defaultMulticastAddress(
            clusterName: totem.clusterName ?? "", ipv6: !bindNetwork.isIPv4)
        return .udp(bindNetwork: bindNetwork, multicastAddress: group)
    }

    private mutating func resolveCrypto(_ totem: TotemDraft) -> Model.Crypto? {
        switch (totem.crypto?.value, totem.keyFile) {
        case (nil, nil): return Model.Crypto.none
        case (nil, let keyFile?), ("hmac-sha256", let keyFile?): return .hmacSHA256(keyFile: keyFile.value)
        case ("chacha20-poly1305", let keyFile?): return .chaCha20Poly1305(keyFile: keyFile.value)
        case ("none", nil): return Model.Crypto.none
        case ("none", let keyFile?):
            fail(totem.crypto?.line, "totem", "crypto", .keyFileWithoutCrypto(keyFileLine: keyFile.line))
            return nil
        case (let name?, nil):
            fail(totem.crypto?.line, "totem", "crypto", .cryptoNeedsKeyFile(crypto: name))
            return nil
        case (_?, _?):
            return nil  // An unknown name was reported while reading [totem].
        }
    }

    /// Applies the node count and turns each `TotemSettings.validate()` problem into an error,
    /// placed on the line of the option it starts with when the file sets that option.
    private mutating func resolveSettings(_ totem: TotemDraft, nodeCount: Int) -> TotemSettings {
        var settings = totem.settings
        settings.configuredNodeCount = nodeCount
        for problem in settings.validate() {
            let firstWord = String(problem.prefix { $0.isLetter || $0 == "_" })
            if let line = totem.numericOptionLines[firstWord] {
                fail(line, "totem", firstWord, .totemSettings(problem))
            } else {
                fail(totem.sectionLine, "totem", nil, .totemSettings(problem))
            }
        }
        return settings
    }
}

// MARK: - Reading: values

extension ConfigurationReader {
    /// A decimal number without sign in `range`, or `nil`.
    static func decimal(_ text: String, in range: ClosedRange<Int>) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        let significant = text.drop { $0 == "0" }
        // At most 18 digits fit an Int without overflow; longer is out of any range we use.
        guard significant.utf8.count <= 18 else { return nil }
        guard let value = significant.isEmpty ? 0 : Int(significant), range.contains(value) else { return nil }
        return value
    }

    static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "yes", "on", "true", "1": true
        case "no", "off", "false", "0": false
        default: nil
        }
    }

    static func isAbsolutePath(_ text: String) -> Bool { text.hasPrefix("/") && !text.utf8.contains(0) }

    static func isValidClusterName(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy { (0x20...0x7E).contains($0) }
    }

    /// Non-empty and without whitespace.
    static func isWord<Text: StringProtocol>(_ text: Text) -> Bool {
        !text.isEmpty && !text.contains { $0.isWhitespace }
    }

    /// The candidate within edit distance 2 of `word` (transpositions count 1), closest first.
    static func closest(to word: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(Array(word), Array($0))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2 else { return nil }
        return best.0
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and adjacent
    /// transpositions each cost 1.
    static func editDistance(_ left: [Character], _ right: [Character]) -> Int {
        if left.isEmpty { return right.count }
        if right.isEmpty { return left.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: right.count + 1), count: left.count + 1)
        for i in 0...left.count { table[i][0] = i }
        for j in 0...right.count { table[0][j] = j }
        for i in 1...left.count {
            for j in 1...right.count {
                let cost = left[i - 1] == right[j - 1] ? 0 : 1
                var distance = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, left[i - 1] == right[j - 2], left[i - 2] == right[j - 1] {
                    distance = min(distance, table[i - 2][j - 2] + 1)
                }
                table[i][j] = distance
            }
        }
        return table[left.count][right.count]
    }
}
