// `[control]`: who may use the control socket and how much (the allow-list, as corosync's
// `uidgid`), and the bounds on idle and numerous clients. The model, its reading from the file and
// the decision for one caller; the socket side lives in ControlServer.

extension DaemonConfiguration {
    /// `[control]`: the control socket's allow-list and client bounds.
    ///
    /// Root and the daemon's own user always have full control. `users` and `groups` add callers
    /// with full control, `read_only_users` and `read_only_groups` callers that may only ask and
    /// watch (see `ControlAccess.isReadOnly(command:)`); anyone else is refused at connect.
    public struct Control: Sendable, Equatable {
        /// A user or group of the allow-list: its name as written (or the number) and its id.
        public struct Principal: Sendable, Equatable, CustomStringConvertible {
            public var name: String
            public var id: UInt32

            public init(name: String, id: UInt32) {
                self.name = name
                self.id = id
            }

            public var description: String { name == String(id) ? name : "\(name) (\(id))" }
        }

        /// `users`: full control.
        public var users: [Principal] = []
        /// `groups`: full control for their members (primary or supplementary group).
        public var groups: [Principal] = []
        /// `read_only_users`: may ask and watch, not change anything.
        public var readOnlyUsers: [Principal] = []
        /// `read_only_groups`: read-only for their members.
        public var readOnlyGroups: [Principal] = []
        /// `idle_timeout` (seconds; 0 = never): a client that has not subscribed to anything and
        /// sends no request for this long is disconnected.
        public var idleTimeoutSeconds = 300
        /// `max_connections`: clients connected at once.
        public var maximumConnections = 128
        /// `max_connections_per_user`: clients of one user id at once (root and the daemon's user
        /// excepted: they may always use every slot).
        public var maximumConnectionsPerUser = 32

        public init() {}

        /// Whether the lists allow anyone besides root and the daemon's user.
        public var allowsOtherUsers: Bool {
            !(users.isEmpty && groups.isEmpty && readOnlyUsers.isEmpty && readOnlyGroups.isEmpty)
        }
    }
}

/// What a caller of the control socket may do.
enum ControlRole: String, Sendable, Equatable {
    /// Every command.
    case full
    /// Only the commands that change nothing (`ControlAccess.isReadOnly(command:)`).
    case readOnly = "read-only"
}

/// The credentials of a connected client, from `SO_PEERCRED` (and its supplementary groups from
/// `SO_PEERGROUPS`), taken when it connected.
struct PeerCredentials: Sendable, Equatable, CustomStringConvertible {
    var processID: Int32
    var userID: UInt32
    var groupID: UInt32
    /// Supplementary groups; empty when the kernel could not tell.
    var supplementaryGroups: [UInt32] = []

    var description: String { "uid \(userID) pid \(processID)" }
}

/// The access rules of `[control]` applied to one caller. Pure: no system calls.
struct ControlAccess: Sendable, Equatable {
    var control: DaemonConfiguration.Control
    /// The daemon's effective user id: always full control, as root.
    var daemonUserID: UInt32

    /// The caller's role, or `nil` when no rule allows it.
    func role(of peer: PeerCredentials) -> ControlRole? {
        if peer.userID == 0 || peer.userID == daemonUserID { return .full }
        let groups = [peer.groupID] + peer.supplementaryGroups
        if control.users.contains(where: { $0.id == peer.userID }) { return .full }
        if control.groups.contains(where: { groups.contains($0.id) }) { return .full }
        if control.readOnlyUsers.contains(where: { $0.id == peer.userID }) { return .readOnly }
        if control.readOnlyGroups.contains(where: { groups.contains($0.id) }) { return .readOnly }
        return nil
    }

    /// Whether the caller is exempt from the per-user connection cap (root, the daemon's user).
    func isPrivileged(_ peer: PeerCredentials) -> Bool {
        peer.userID == 0 || peer.userID == daemonUserID
    }

    /// Commands a read-only caller may use: they ask, watch or measure, and change no state.
    /// Anything else (`devstate_set`, `devstate_clear`, `mwi_set`, `event_publish`,
    /// `adapter_register`, `debug`, and every command added later until it is listed here) needs
    /// full control.
    static let readOnlyCommands: Set<String> = [
        "hello", "status", "members", "channels", "settings",
        "devstate_get", "devstate_list", "hints", "mwi_get", "mwi_list",
        "watch", "subscribe", "unsubscribe", "snapshot", "event_subscribe", "event_unsubscribe", "ping",
    ]

    /// Whether `command` changes nothing (see `readOnlyCommands`).
    static func isReadOnly(command: String) -> Bool { readOnlyCommands.contains(command) }
}

// MARK: - Reading [control]

extension ConfigurationKeys {
    static let control = ["users", "groups", "read_only_users", "read_only_groups", "idle_timeout",
                          "max_connections", "max_connections_per_user"]
}

extension ConfigurationReader {
    /// Reads `[control]`, resolving every user and group name on this host.
    mutating func readControl(_ section: INISection) -> DaemonConfiguration.Control {
        rejectUnknownKeys(in: section, named: "control", valid: ConfigurationKeys.control)
        var control = DaemonConfiguration.Control()
        for entry in section.entries {
            switch entry.normalizedKey {
            case "users": control.users = readPrincipals(entry, kind: .user)
            case "groups": control.groups = readPrincipals(entry, kind: .group)
            case "read_only_users": control.readOnlyUsers = readPrincipals(entry, kind: .user)
            case "read_only_groups": control.readOnlyGroups = readPrincipals(entry, kind: .group)
            case "idle_timeout":
                if let value = Self.decimal(entry.value, in: 0...86_400) { control.idleTimeoutSeconds = value }
                else { invalid(entry, "control", "a whole number of seconds 0-86400 (0: never)") }
            case "max_connections":
                if let value = Self.decimal(entry.value, in: 1...4_096) { control.maximumConnections = value }
                else { invalid(entry, "control", "a whole number 1-4096") }
            case "max_connections_per_user":
                if let value = Self.decimal(entry.value, in: 1...4_096) { control.maximumConnectionsPerUser = value }
                else { invalid(entry, "control", "a whole number 1-4096") }
            default:
                continue
            }
        }
        return control
    }

    enum PrincipalKind {
        case user, group
    }

    /// A comma-separated list of user or group names (or numeric ids), each looked up on this host.
    private mutating func readPrincipals(_ entry: INIEntry, kind: PrincipalKind) -> [DaemonConfiguration.Control.Principal] {
        var principals: [DaemonConfiguration.Control.Principal] = []
        for item in entry.value.split(separator: ",", omittingEmptySubsequences: false) {
            let name = INIParser.trimmed(item)
            guard DaemonConfiguration.isValidName(name) else {
                invalid(entry, "control", kind == .user ? "user names or ids separated by commas" : "group names or ids separated by commas")
                return []
            }
            let id: UInt32?
            if let number = Self.decimal(name, in: 0...Int(UInt32.max - 1)) {
                id = UInt32(exactly: number)
            } else {
                id = kind == .user ? host.userID(named: name) : host.groupID(named: name)
            }
            guard let id else {
                fail(entry.line, "control", entry.key, .unknownPrincipal(name, isGroup: kind == .group))
                continue
            }
            guard !principals.contains(where: { $0.id == id }) else {
                fail(entry.line, "control", entry.key, .duplicateListItem(name))
                continue
            }
            principals.append(DaemonConfiguration.Control.Principal(name: name, id: id))
        }
        return principals
    }

    /// `control_socket_group` must name a group of this host, and its members must be allowed
    /// something: a group that can reach the socket while no list allows anyone would only
    /// produce refusals (before the allow-list, such members had full control).
    mutating func checkControlSocketGroup(_ options: OptionsDraft, control: DaemonConfiguration.Control) {
        guard let group = options.controlSocketGroup else { return }
        guard host.groupID(named: group) != nil else {
            fail(options.controlSocketGroupLine, "options", "control_socket_group", .unknownPrincipal(group, isGroup: true))
            return
        }
        if !control.allowsOtherUsers {
            fail(options.controlSocketGroupLine, "options", "control_socket_group", .controlGroupWithoutAccess(group))
        }
    }
}

// MARK: - Writing [control]

extension DaemonConfiguration.Control {
    /// The section as file lines, or none when everything is at its default.
    var fileLines: [String] {
        guard self != DaemonConfiguration.Control() else { return [] }
        var lines = ["", "[control]"]
        func list(_ key: String, _ principals: [Principal]) {
            if !principals.isEmpty { lines.append("\(key) = " + principals.map(\.name).joined(separator: ", ")) }
        }
        list("users", users)
        list("groups", groups)
        list("read_only_users", readOnlyUsers)
        list("read_only_groups", readOnlyGroups)
        lines.append("idle_timeout = \(idleTimeoutSeconds)")
        lines.append("max_connections = \(maximumConnections)")
        lines.append("max_connections_per_user = \(maximumConnectionsPerUser)")
        return lines
    }
}
