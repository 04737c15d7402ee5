// The command line of the one binary that is both the daemon and its client: what was asked for
// (Invocation) or a specific usage error. Parsing only; running it is Devclusterd's job.

import DeviceState
import Membership

/// What the command line asks for.
enum Invocation: Equatable {
    /// `--help`: print the usage text.
    case help
    /// `--version`.
    case version
    /// `--foreground [--config FILE] [--debug]`: run the daemon.
    case foreground(configPath: String?, debug: Bool)
    /// `--check-config [--config FILE]`: validate and report.
    case checkConfig(configPath: String?)
    /// `keygen [--output FILE] [--force]`: write a new cluster key.
    case keygen(output: String, force: Bool)
    /// `[--config FILE | --socket PATH] COMMAND [--json]`: ask the running daemon.
    case client(ClientInvocation)
}

/// A command for the running daemon, and how to reach it.
struct ClientInvocation: Equatable {
    /// How the control socket is found.
    enum Target: Equatable {
        /// From `/etc/devcluster/devcluster.conf`, or the embedded default's location.
        case defaultConfiguration
        /// From `[options] control_socket` of this file.
        case configuration(String)
        /// This socket.
        case socket(String)
    }

    var target: Target
    var command: ClientCommand
    /// Print the result as JSON instead of the human form.
    var json: Bool
}

/// The client commands.
enum ClientCommand: Equatable, CaseIterable {
    case status
    case members
    case channels
    case settings
    case debug(enabled: Bool)
    /// `devstate set DEVICE STATE`: this server's own state of a device.
    case devstateSet(device: String, state: String)
    /// `devstate clear DEVICE`: this server no longer reports a device.
    case devstateClear(device: String)
    /// `devstate get DEVICE`: the cluster-wide state and each server's.
    case devstateGet(device: String)
    /// `devstate list`: every device some server reports.
    case devstateList
    /// `hints`: like `core show hints`.
    case hints
    /// `mwi set MAILBOX[@CONTEXT] NEW OLD`: publish message counts.
    case mwiSet(mailbox: String, new: UInt32, old: UInt32)
    /// `mwi get MAILBOX[@CONTEXT]`.
    case mwiGet(mailbox: String)
    /// `mwi list`.
    case mwiList
    /// `watch`: one line per change until interrupted.
    case watch
    /// `ping`: each member's round trip through the ring.
    case ping

    static let allCases: [ClientCommand] = [
        .status, .members, .channels, .settings, .debug(enabled: true), .devstateList, .hints, .mwiList, .watch, .ping,
    ]

    /// The command word on the command line.
    var name: String {
        switch self {
        case .status: "status"
        case .members: "members"
        case .channels: "channels"
        case .settings: "settings"
        case .debug: "debug"
        case .devstateSet, .devstateClear, .devstateGet, .devstateList: "devstate"
        case .hints: "hints"
        case .mwiSet, .mwiGet, .mwiList: "mwi"
        case .watch: "watch"
        case .ping: "ping"
        }
    }

    /// The request sent to the daemon.
    var request: ControlRequest {
        switch self {
        case .debug(let enabled): ControlRequest(id: 1, command: name, arguments: ["enabled": .bool(enabled)])
        case .devstateSet(let device, let state):
            ControlRequest(id: 1, command: "devstate_set", arguments: ["device": .string(device), "state": .string(state)])
        case .devstateClear(let device): ControlRequest(id: 1, command: "devstate_clear", arguments: ["device": .string(device)])
        case .devstateGet(let device): ControlRequest(id: 1, command: "devstate_get", arguments: ["device": .string(device)])
        case .devstateList: ControlRequest(id: 1, command: "devstate_list")
        case .mwiSet(let mailbox, let new, let old):
            ControlRequest(id: 1, command: "mwi_set", arguments: ["mailbox": .string(mailbox), "new": .number(new), "old": .number(old)])
        case .mwiGet(let mailbox): ControlRequest(id: 1, command: "mwi_get", arguments: ["mailbox": .string(mailbox)])
        case .mwiList: ControlRequest(id: 1, command: "mwi_list")
        default: ControlRequest(id: 1, command: name)
        }
    }

    /// How many words after the command word it consumes (more are a usage error).
    var argumentWords: Int {
        switch self {
        case .debug, .devstateList, .mwiList: 1
        case .devstateGet, .devstateClear, .mwiGet: 2
        case .devstateSet: 3
        case .mwiSet: 4
        default: 0
        }
    }
}

/// A command line that cannot be run; the message says exactly what is wrong.
struct UsageError: Error, Equatable, CustomStringConvertible {
    var message: String

    init(_ message: String) {
        self.message = message
    }

    var description: String { message }
}

/// Parses `devclusterd`'s arguments.
enum CommandLineParser {
    /// Where `keygen` writes without `--output`.
    static let defaultKeyPath = "/etc/devcluster/authkey"

    /// The options, each with whether it takes a value.
    private static let options: [(name: String, takesValue: Bool)] = [
        ("--foreground", false), ("--check-config", false), ("--config", true), ("--socket", true),
        ("--debug", false), ("--json", false), ("--output", true), ("--force", false),
        ("--help", false), ("--version", false),
    ]

    private static let commandWords = ClientCommand.allCases.map(\.name) + ["keygen"]

    /// `devstate set|get|list ...`.
    private static func devstate(_ rest: ArraySlice<String>) throws(UsageError) -> ClientCommand {
        let usage = "devstate set DEVICE STATE, devstate clear DEVICE, devstate get DEVICE or devstate list"
        guard let action = rest.first else { throw UsageError("devstate needs an action: \(usage)") }
        let operands = Array(rest.dropFirst())
        switch action {
        case "set":
            guard operands.count >= 2 else { throw UsageError("devstate set needs DEVICE and STATE (e.g. devstate set Custom:mystate INUSE)") }
            // A misspelt state is a usage mistake like any other: exit 2, with a suggestion.
            guard (try? DeviceStateValue(parsing: operands[1])) != nil else {
                let valid = DeviceStateValue.validNames
                let suggestion = ConfigurationReader.closest(to: operands[1].uppercased(), among: valid)
                throw UsageError("devstate set: unknown device state \"\(InvisibleCharacter.escaped(operands[1], limit: 64))\""
                    + (suggestion.map { " (did you mean \"\($0)\"?)" } ?? "") + "; valid states: " + valid.joined(separator: ", "))
            }
            return .devstateSet(device: operands[0], state: operands[1])
        case "clear":
            guard let device = operands.first else { throw UsageError("devstate clear needs DEVICE (e.g. devstate clear Custom:mystate)") }
            return .devstateClear(device: device)
        case "get":
            guard let device = operands.first else { throw UsageError("devstate get needs DEVICE (e.g. devstate get Custom:mystate)") }
            return .devstateGet(device: device)
        case "list":
            return .devstateList
        default:
            throw UsageError("unknown devstate action \"\(action)\"; use \(usage)")
        }
    }

    /// `mwi set|get|list ...`.
    private static func mwi(_ rest: ArraySlice<String>) throws(UsageError) -> ClientCommand {
        let usage = "mwi set MAILBOX[@CONTEXT] NEW OLD, mwi get MAILBOX[@CONTEXT] or mwi list"
        guard let action = rest.first else { throw UsageError("mwi needs an action: \(usage)") }
        let operands = Array(rest.dropFirst())
        switch action {
        case "set":
            guard operands.count >= 3 else { throw UsageError("mwi set needs MAILBOX[@CONTEXT] NEW OLD (e.g. mwi set 1234@default 2 5)") }
            func count(_ text: String, _ what: String) throws(UsageError) -> UInt32 {
                guard let value = UInt32(text) else {
                    throw UsageError("mwi set: \(what) must be a whole number 0...\(UInt32.max), got \"\(text)\"")
                }
                return value
            }
            return .mwiSet(mailbox: operands[0], new: try count(operands[1], "NEW"), old: try count(operands[2], "OLD"))
        case "get":
            guard let mailbox = operands.first else { throw UsageError("mwi get needs MAILBOX[@CONTEXT] (e.g. mwi get 1234@default)") }
            return .mwiGet(mailbox: mailbox)
        case "list":
            return .mwiList
        default:
            throw UsageError("unknown mwi action \"\(action)\"; use \(usage)")
        }
    }

    /// Reads the arguments (without the program name).
    ///
    /// Options may come before or after the command word; `--name=value` and `--name value`
    /// are both accepted.
    /// - Throws: `UsageError` naming the offending argument.
    static func parse(_ arguments: [String]) throws(UsageError) -> Invocation {
        var values: [String: String] = [:]
        var flags: Set<String> = []
        var words: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "-h" {
                flags.insert("--help")
                continue
            }
            guard argument.hasPrefix("-"), argument != "-" else {
                words.append(argument)
                continue
            }
            let name: String
            var inlineValue: String?
            if let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                inlineValue = String(argument[argument.index(after: equals)...])
            } else {
                name = argument
            }
            guard let option = options.first(where: { $0.name == name }) else {
                let suggestion = ConfigurationReader.closest(to: name, among: options.map(\.name))
                throw UsageError("unknown option \"\(name)\"" + (suggestion.map { " (did you mean \"\($0)\"?)" } ?? ""))
            }
            if option.takesValue {
                guard values[name] == nil else { throw UsageError("option \(name) given twice") }
                let value: String
                if let inlineValue {
                    value = inlineValue
                } else {
                    guard index < arguments.count else { throw UsageError("option \(name) needs a value (\(placeholder(name)))") }
                    value = arguments[index]
                    index += 1
                }
                guard !value.isEmpty else { throw UsageError("option \(name) needs a non-empty \(placeholder(name))") }
                values[name] = value
            } else {
                guard inlineValue == nil else { throw UsageError("option \(name) takes no value") }
                guard !flags.contains(name) else { throw UsageError("option \(name) given twice") }
                flags.insert(name)
            }
        }
        if flags.contains("--help") { return .help }
        if flags.contains("--version") { return .version }
        return try interpret(values: values, flags: flags, words: words)
    }

    private static func placeholder(_ option: String) -> String {
        option == "--socket" ? "PATH" : "FILE"
    }

    private static func interpret(values: [String: String], flags: Set<String>, words: [String]) throws(UsageError) -> Invocation {
        /// Refuses the options that do not belong to `mode`.
        func allow(_ allowed: Set<String>, for mode: String) throws(UsageError) {
            let given = Set(values.keys).union(flags)
            for option in options.map(\.name) where given.contains(option) && !allowed.contains(option) {
                throw UsageError("option \(option) cannot be used with \(mode)")
            }
        }
        if flags.contains("--foreground") && flags.contains("--check-config") {
            throw UsageError("--foreground and --check-config cannot be combined")
        }
        if flags.contains("--foreground") {
            try allow(["--foreground", "--config", "--debug"], for: "--foreground")
            if let word = words.first { throw UsageError("--foreground takes no command, got \"\(word)\"") }
            return .foreground(configPath: values["--config"], debug: flags.contains("--debug"))
        }
        if flags.contains("--check-config") {
            try allow(["--check-config", "--config"], for: "--check-config")
            if let word = words.first { throw UsageError("--check-config takes no command, got \"\(word)\"") }
            return .checkConfig(configPath: values["--config"])
        }
        guard let word = words.first else {
            throw UsageError("no command given; run the daemon with --foreground, or give a command ("
                + commandWords.joined(separator: ", ") + ")")
        }
        let rest = words.dropFirst()
        if word == "keygen" {
            try allow(["--output", "--force"], for: "keygen")
            if let extra = rest.first { throw UsageError("unexpected argument \"\(extra)\" after keygen") }
            return .keygen(output: values["--output"] ?? defaultKeyPath, force: flags.contains("--force"))
        }
        let command: ClientCommand
        switch word {
        case "status": command = .status
        case "members": command = .members
        case "channels": command = .channels
        case "settings": command = .settings
        case "devstate": command = try devstate(rest)
        case "mwi": command = try mwi(rest)
        case "hints": command = .hints
        case "watch": command = .watch
        case "ping": command = .ping
        case "debug":
            guard let setting = rest.first else { throw UsageError("debug needs \"on\" or \"off\"") }
            switch setting {
            case "on": command = .debug(enabled: true)
            case "off": command = .debug(enabled: false)
            default: throw UsageError("debug takes \"on\" or \"off\", got \"\(setting)\"")
            }
        default:
            let suggestion = ConfigurationReader.closest(to: word, among: commandWords)
            throw UsageError("unknown command \"\(word)\"" + (suggestion.map { " (did you mean \"\($0)\"?)" } ?? "")
                + "; commands: " + commandWords.joined(separator: ", "))
        }
        let extras = rest.dropFirst(command.argumentWords)
        if let extra = extras.first { throw UsageError("unexpected argument \"\(extra)\" after \(word)") }
        try allow(["--config", "--socket", "--json"], for: "\"\(word)\"")
        let target: ClientInvocation.Target
        switch (values["--config"], values["--socket"]) {
        case (_?, _?): throw UsageError("--config and --socket cannot be combined: give one way to find the daemon")
        case (let file?, nil): target = .configuration(file)
        case (nil, let socket?): target = .socket(socket)
        case (nil, nil): target = .defaultConfiguration
        }
        return .client(ClientInvocation(target: target, command: command, json: flags.contains("--json")))
    }

    /// The short usage shown with every usage error.
    static let synopsis = """
        usage: devclusterd --foreground [--config FILE] [--debug]
               devclusterd --check-config [--config FILE]
               devclusterd keygen [--output FILE] [--force]
               devclusterd [--config FILE | --socket PATH] COMMAND [--json]
        """

    /// `--help`.
    static let help = synopsis + """


        Runs a devcluster node, or talks to the one running on this server.

        Commands:
          status          this node, its ring, transport, authentication, uptime and counters
          members         the configured nodes and which of them are in the ring
          channels        the event channels and the event types this node publishes and subscribes to
          settings        the effective Totem timers and constants
          debug on|off    debug logging on, or back to the configured log level
          devstate set DEVICE STATE   set this server's state of DEVICE (NOT_INUSE, INUSE, BUSY,
                          INVALID, UNAVAILABLE, RINGING, RINGINUSE, ONHOLD, UNKNOWN)
          devstate clear DEVICE       this server no longer reports DEVICE (its state stops counting)
          devstate get DEVICE         the cluster-wide state of DEVICE and each server's
          devstate list   every device some server reports, with its cluster-wide state
          hints           the hints and their extension states (like core show hints)
          mwi set MAILBOX[@CONTEXT] NEW OLD   publish message counts (context default: default)
          mwi get MAILBOX[@CONTEXT]           the cluster-wide counts of a mailbox
          mwi list        every known mailbox
          watch           print each membership, device, extension and MWI change until interrupted
          ping            each member's round trip through the ring
          keygen          write a new random cluster key (mode 0400)

        Options:
          --foreground    run the daemon in the foreground, logging to standard error
          --config FILE   the configuration file (default \(DaemonConfiguration.defaultPath); without
                          it, a built-in single-node cluster on loopback)
          --debug         with --foreground: log at debug level
          --check-config  validate the configuration, print every problem, exit 0 if it is usable
          --socket PATH   the daemon's control socket, instead of the one the configuration names
          --json          print the daemon's answer as one line of JSON (stable fields, see
                          docs/control-protocol.md)
          --output FILE   keygen: where to write the key (default \(defaultKeyPath))
          --force         keygen: replace an existing key file
          --help, -h      this text
          --version       the version

        Signals to the daemon: SIGTERM or SIGINT leave the ring and exit; SIGHUP re-reads the
        configuration file (log_level applies at once; other changes are logged and need a restart).

        Exit status: 0 success, 1 failure, 2 usage error; status exits 2 when the partition is
        not quorate.

        """
}
