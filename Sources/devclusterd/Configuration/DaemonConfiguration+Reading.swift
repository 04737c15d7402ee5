// How a parsed INI file becomes a DaemonConfiguration: option tables, per-section drafts and the
// section readers (the cross-section checks are in DaemonConfiguration+Resolving.swift). Every
// problem becomes a ConfigurationError with its file, line and option.

import DeviceState
import EventService
import Membership
import Totem

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
    static let totem = ["cluster_name", "transport", "bindnetaddr", "mcastaddr", "mcastport", "ttl", "netmtu", "segmentation_offload",
                        "port_unreachable"]
        + TotemNumericOption.all.map(\.key) + ["cancel_token_hold_on_retransmit", "keyfile", "crypto"]
    static let node = ["nodeid", "name", "addr"]
    static let options = ["nodeid", "entity_id", "control_socket", "control_socket_group", "state_dir", "log_level",
                          "max_devices", "max_mailboxes", "max_retained_bytes"]
    static let eventChannel = ["type", "publish_event", "subscribe_event"]
    static let sections = ["[totem]", "[node]", "[options]", "[control]", "[metrics]", "[hints]", "or an event channel (a section with \"type = event_channel\")"]
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
    var multicastTTL: Located<Int>?
    var netMTU = 1500
    var segmentationOffload = true
    var portUnreachable = true
    var keyFile: Located<String>?
    var crypto: Located<String>?
    var settings = DaemonConfiguration.defaultTotemSettings
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
    var controlSocketGroupLine: Int?
    var stateDirectory: String?
    var logLevel = DaemonConfiguration.LogLevel.info
    var maxDevices: Int?
    var maxMailboxes: Int?
    var maxRetainedBytes: Int?
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
        var control = Model.Control()
        var metrics: Model.Metrics?
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
            case "control": control = readControl(section)
            case "metrics": metrics = readMetrics(section)
            case "hints": hints = readHints(section)
            default:
                if let channel = readEventChannel(section) { channels.append(channel) }
            }
        }
        // A [node] that was rejected would make the node-list checks report consequences of
        // that one error (a missing node list, this node not listed); they wait for a clean list.
        let nodeList = NodeList(nodes: nodes, isComplete: nodes.count == nodeSectionCount)
        checkControlSocketGroup(options, control: control)
        var configuration = resolve(totem: totem, nodeList: nodeList, options: options, channels: channels, hints: hints)
        configuration?.control = control
        configuration?.metrics = metrics
        return errors.isEmpty ? configuration : nil
    }

    mutating func rejectUnknownKeys(in section: INISection, named sectionName: String, valid: [String]) {
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
            case "ttl":
                if let ttl = Self.decimal(entry.value, in: 0...255) { draft.multicastTTL = Located(value: ttl, line: entry.line) }
                else { invalid(entry, "totem", "a time-to-live 0-255 for multicast datagrams (1: they do not cross a router)") }
            case "netmtu":
                if let mtu = Self.decimal(entry.value, in: 576...65_535) { draft.netMTU = mtu }
                else { invalid(entry, "totem", "a whole number of bytes 576-65535") }
            case "segmentation_offload":
                if let flag = Self.boolean(entry.value) { draft.segmentationOffload = flag }
                else { invalid(entry, "totem", "yes or no") }
            case "port_unreachable":
                if let flag = Self.boolean(entry.value) { draft.portUnreachable = flag }
                else { invalid(entry, "totem", "yes or no") }
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
                if Model.isValidName(entry.value) {
                    draft.controlSocketGroup = entry.value
                    draft.controlSocketGroupLine = entry.line
                }
                else { invalid(entry, "options", "a group name") }
            case "state_dir":
                if Self.isAbsolutePath(entry.value) { draft.stateDirectory = entry.value }
                else { invalid(entry, "options", "an absolute path") }
            case "log_level":
                if let level = Model.LogLevel(rawValue: entry.value.lowercased()) { draft.logLevel = level }
                else { invalid(entry, "options", "one of " + Model.LogLevel.allCases.map(\.rawValue).joined(separator: ", ")) }
            case "max_devices", "max_mailboxes":
                let range = 1...Model.Options.maximumEntries
                guard let value = Self.decimal(entry.value, in: range), let count = Int(exactly: value) else {
                    invalid(entry, "options", "a number of entries 1-\(range.upperBound)")
                    continue
                }
                if entry.normalizedKey == "max_devices" { draft.maxDevices = count } else { draft.maxMailboxes = count }
            case "max_retained_bytes":
                let range = EventLimits.retainedBytesRange
                draft.maxRetainedBytes = ByteSize.parse(entry.value, in: range)
                if draft.maxRetainedBytes == nil {
                    invalid(entry, "options", "a size \(ByteSize.describe(range.lowerBound))-\(ByteSize.describe(range.upperBound)): \(ByteSize.syntax)")
                }
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
        var types: [Model.EventType] = []
        for item in entry.value.split(separator: ",", omittingEmptySubsequences: false) {
            let name = INIParser.trimmed(item)
            guard let type = Model.EventType(rawValue: name.lowercased()) else {
                fail(entry.line, section, entry.key, .invalidValue(
                    got: name, expected: "event types separated by commas (device_state, mwi, or names of "
                        + "1-32 characters a-z, 0-9, _ starting with a letter)"))
                return nil
            }
            if let builtIn = Self.builtInTypeNear(type) {
                fail(entry.line, section, entry.key, .invalidValue(
                    got: name, expected: "\"\(builtIn)\" (a type this close to a built-in one is taken for a typo of it)"))
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
            // The device-state rules (DeviceName, HintKey), so that --check-config and a reload
            // refuse what the service would; a control or format character is named by its code
            // point, and the text is shown escaped.
            do {
                _ = try DeviceState.Hint(parsingKey: entry.key, devices: devices.joined(separator: "&"))
            } catch {
                fail(entry.line, "hints", InvisibleCharacter.escaped(entry.key), .invalidValue(
                    got: InvisibleCharacter.escaped(entry.value), expected: "a valid hint (\(error))"))
                continue
            }
            hints.append(Model.Hint(exten: String(exten), context: String(context), devices: devices))
        }
        return hints
    }
}

