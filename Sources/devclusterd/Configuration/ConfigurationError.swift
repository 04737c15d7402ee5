// What can be wrong with a configuration file, as typed facts, and how each is shown to a user
// (`devcluster.conf:7: [totem] mcastport: expected a port number 1-65535, got "54x05"`).

/// One problem found in a configuration file: where it is, and what is wrong.
///
/// The `reason` carries the facts; `message` and `description` render them for people. Loading
/// collects every problem it can find (see `ConfigurationErrors`), so `--check-config` lists them
/// all at once.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file as the user named it (or `<embedded>` for the built-in default).
    public var file: String
    /// The 1-based line the problem is on, or `nil` when it concerns the file as a whole.
    public var line: Int?
    /// The section the problem is in (`totem`, `node`, a channel name), when there is one.
    public var section: String?
    /// The option (key) the problem is about, when there is one.
    public var option: String?
    /// What is wrong, with the facts needed to explain it.
    public var reason: Reason

    /// Creates an error.
    public init(file: String, line: Int?, section: String?, option: String?, reason: Reason) {
        self.file = file
        self.line = line
        self.section = section
        self.option = option
        self.reason = reason
    }

    /// Everything that can be wrong with a configuration.
    public enum Reason: Sendable, Equatable {
        /// The file could not be read; the operating system's explanation.
        case unreadableFile(String)
        /// The file is larger than any sensible configuration.
        case fileTooLarge(bytes: Int, limit: Int)
        /// The file is not UTF-8 text.
        case notUTF8
        /// A line the INI reader rejected.
        case syntax(INISyntaxError.Kind)
        /// A section that is neither known nor an event channel.
        case unknownSection(String, expected: [String])
        /// A section that may appear only once appears again.
        case repeatedSection(firstLine: Int)
        /// A key the section does not have; the valid keys, and the closest one when it is close.
        case unknownOption(validOptions: [String], suggestion: String?)
        /// A value that does not parse or is out of range; `expected` describes what would.
        case invalidValue(got: String, expected: String)
        /// A required option is absent.
        case missingOption(expected: String)
        /// A value another section already claims (node ids, names and addresses are unique).
        case duplicateValue(String, firstLine: Int)
        /// More `[node]` sections than a ring can hold.
        case tooManyNodes(count: Int, limit: Int)
        /// An address of the other family than the one it must match.
        case addressFamilyMismatch(address: String, reference: String, referenceLine: Int)
        /// `transport = udpu` with no `[node]` section.
        case unicastWithoutNodes
        /// An option that only `transport = udp` uses.
        case onlyForMulticastTransport
        /// `[options] nodeid` names no `[node]`.
        case nodeNotListed(UInt32, listed: [UInt32])
        /// No `[node]` address is an address of this server.
        case localNodeNotFound(localAddresses: [String])
        /// Several `[node]` addresses are addresses of this server.
        case localNodeAmbiguous(candidates: [UInt32])
        /// No interface of this server is in the network of `bindnetaddr`.
        case noInterfaceInNetwork(network: String, localAddresses: [String])
        /// A node id is derived from an IPv4 address only.
        case cannotDeriveNodeID(fromAddress: String)
        /// An authenticating `crypto` without a `keyfile`.
        case cryptoNeedsKeyFile(crypto: String)
        /// `crypto = none` with a `keyfile` set.
        case keyFileWithoutCrypto(keyFileLine: Int)
        /// Neither `crypto` nor `keyfile`, and not every node is on loopback.
        case keyRequired(addresses: [String])
        /// A problem `TotemSettings.validate()` found with the timers and constants.
        case totemSettings(String)
        /// An item listed twice in one comma-separated list.
        case duplicateListItem(String)
        /// A user or group name this host does not know.
        case unknownPrincipal(String, isGroup: Bool)
        /// `control_socket_group` set while `[control]` allows nobody besides root and the daemon's user.
        case controlGroupWithoutAccess(String)
    }

    /// What is wrong and, where it helps, what is expected instead.
    public var message: String {
        switch reason {
        case .unreadableFile(let explanation):
            return "cannot read the configuration file: \(explanation)"
        case .fileTooLarge(let bytes, let limit):
            return "the file has \(bytes) bytes; a configuration file may have at most \(limit)"
        case .notUTF8:
            return "the file is not UTF-8 text"
        case .syntax(let kind):
            return Self.message(for: kind)
        case .unknownSection(let name, let expected):
            return "unknown section [\(name)]; expected one of \(expected.joined(separator: ", "))"
        case .repeatedSection(let firstLine):
            return "section repeated (first at line \(firstLine)); only [node] may appear more than once"
        case .unknownOption(let validOptions, let suggestion):
            let hint = suggestion.map { " (did you mean \"\($0)\"?)" } ?? ""
            return "unknown option\(hint); valid options: \(validOptions.joined(separator: ", "))"
        case .invalidValue(let got, let expected):
            return "expected \(expected), got \"\(got)\""
        case .missingOption(let expected):
            return "missing; expected \(expected)"
        case .duplicateValue(let value, let firstLine):
            return "\(value) is already used by the [node] at line \(firstLine)"
        case .tooManyNodes(let count, let limit):
            return "\(count) [node] sections, but a ring has at most \(limit) nodes"
        case .addressFamilyMismatch(let address, let reference, let referenceLine):
            return "\(address) is not of the address family of \(reference) (line \(referenceLine)); "
                + "one cluster uses either IPv4 or IPv6"
        case .unicastWithoutNodes:
            return "udpu needs at least one [node] section listing the peers"
        case .onlyForMulticastTransport:
            return "only used with transport = udp; remove it for udpu"
        case .nodeNotListed(let id, let listed):
            return "node \(id) is not in the [node] list (\(listed.map(String.init).joined(separator: ", ")))"
        case .localNodeNotFound(let localAddresses):
            return "none of the [node] addresses is an address of this server "
                + "(local: \(Self.list(localAddresses))); set [options] nodeid"
        case .localNodeAmbiguous(let candidates):
            return "several [node] addresses are addresses of this server "
                + "(nodes \(candidates.map(String.init).joined(separator: ", "))); set [options] nodeid"
        case .noInterfaceInNetwork(let network, let localAddresses):
            return "no address of this server is in the network of bindnetaddr \(network) "
                + "(local: \(Self.list(localAddresses))); fix bindnetaddr or set [options] nodeid"
        case .cannotDeriveNodeID(let address):
            return "cannot derive a node id from \(address) (only from an IPv4 address); set [options] nodeid"
        case .cryptoNeedsKeyFile(let crypto):
            return "\"\(crypto)\" needs a keyfile in [totem]"
        case .keyFileWithoutCrypto(let keyFileLine):
            return "\"none\" contradicts the keyfile at line \(keyFileLine); remove one of them"
        case .keyRequired(let addresses):
            return "no cluster key, and the cluster is not on loopback (\(Self.list(addresses))): anyone who can "
                + "send it a datagram could join or disturb the ring; create a key with `devclusterd keygen "
                + "--output /etc/devcluster/authkey`, copy it to every node and set keyfile (and crypto = "
                + "hmac-sha256 or chacha20-poly1305) in [totem], or set crypto = none to run unauthenticated "
                + "on a network you trust"
        case .totemSettings(let problem):
            return problem
        case .duplicateListItem(let item):
            return "\"\(item)\" is listed twice"
        case .unknownPrincipal(let name, let isGroup):
            return "\"\(name)\" is not a \(isGroup ? "group" : "user") on this host"
        case .controlGroupWithoutAccess(let group):
            return "members of \"\(group)\" can reach the control socket but [control] allows them nothing; "
                + "add \"groups = \(group)\" (full control) or \"read_only_groups = \(group)\" to [control], "
                + "or list its users there"
        }
    }

    /// The error as one line: `file:line: [section] option: message`.
    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        switch (section, option) {
        case (let section?, let option?): text += "[\(section)] \(option): "
        case (let section?, nil): text += "[\(section)]: "
        case (nil, let option?): text += "\(option): "
        case (nil, nil): break
        }
        return text + message
    }

    private static func message(for kind: INISyntaxError.Kind) -> String {
        switch kind {
        case .malformedLine(let text):
            return "expected \"[section]\", \"key = value\" or a comment, got \"\(text)\""
        case .keyOutsideSection(let key):
            return "\"\(key)\" appears before any [section] header"
        case .emptyKey(let text):
            return "expected a key before \"=\", got \"\(text)\""
        case .unterminatedSectionHeader(let text):
            return "expected \"]\" to close the section header, got \"\(text)\""
        case .emptySectionName:
            return "expected a section name between \"[\" and \"]\""
        case .textAfterSectionHeader(let section, let text):
            return "expected only a comment after [\(section)], got \"\(text)\""
        case .duplicateKey(_, _, let firstLine):
            return "set twice in one section (first at line \(firstLine))"
        }
    }

    private static func list(_ addresses: [String]) -> String {
        addresses.isEmpty ? "none" : addresses.joined(separator: ", ")
    }
}

/// Every problem found in one configuration file, in line order.
///
/// `DaemonConfiguration.load(path:)` throws this so the caller can print each problem on a line.
public struct ConfigurationErrors: Error, Sendable, Equatable, CustomStringConvertible {
    /// The problems, sorted by line; problems without a line come last. Never empty.
    public var errors: [ConfigurationError]

    /// Creates the list; `errors` must not be empty.
    public init(_ errors: [ConfigurationError]) {
        precondition(!errors.isEmpty, "a ConfigurationErrors value needs at least one error")
        self.errors = errors
    }

    /// One problem per line.
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
