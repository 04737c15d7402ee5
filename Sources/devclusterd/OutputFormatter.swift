// The CLI's human output, made from the daemon's JSON results, in the block style of the seed's
// `ais clm show members` and `ais evt show event channels` (=== framing, one block per entry).
// Formatting only: no sockets, no daemon state.

/// A result that lacks what the human output needs (a daemon of another version, most likely).
struct FormatError: Error, Equatable, CustomStringConvertible {
    var message: String

    init(_ message: String) {
        self.message = message
    }

    var description: String { message }
}

enum OutputFormatter {
    /// Lines are 61 characters wide, as in the seed.
    static let width = 61

    /// The text for `command`'s result.
    static func format(_ command: ClientCommand, result: JSONValue) throws(FormatError) -> String {
        switch command {
        case .members: try members(result)
        case .channels: try channels(result)
        case .status: try status(result)
        case .settings: try settings(result)
        case .debug: try debug(result)
        }
    }

    // MARK: Blocks

    private struct Block {
        private var lines: [String] = []

        init(title: String) {
            let rule = String(repeating: "=", count: OutputFormatter.width)
            let heading = "=== \(title) "
            lines = ["", rule, heading + String(repeating: "=", count: max(3, OutputFormatter.width - heading.count)), rule, "==="]
        }

        mutating func line(_ text: String) { lines.append("=== \(text)") }
        mutating func item(_ label: String, _ value: String) { lines.append("=== ==> \(label): \(value)") }
        mutating func blank() { lines.append("===") }
        mutating func entry(_ body: (inout Block) -> Void) {
            let separator = "=== " + String(repeating: "-", count: OutputFormatter.width - 4)
            lines.append(separator)
            body(&self)
            lines.append(separator)
            lines.append("===")
        }

        func finish() -> String {
            (lines + [String(repeating: "=", count: OutputFormatter.width), ""]).joined(separator: "\n") + "\n"
        }
    }

    // MARK: Commands

    /// `members`, like `ais clm show members`, with the ring on top.
    static func members(_ result: JSONValue) throws(FormatError) -> String {
        guard let members = result["members"]?.arrayValue else { throw FormatError("the daemon's answer has no \"members\" list") }
        var block = Block(title: "Cluster Members")
        let ring = result["ring"]?.stringValue ?? "none"
        let state = result["state"]?.stringValue ?? "unknown"
        let memberCount = members.count { $0["member"]?.boolValue == true }
        block.line("Ring: \(ring) (\(state)), \(memberCount) of \(members.count) nodes are members")
        block.blank()
        for member in members {
            guard let id = member["nodeid"]?.integerValue, let name = member["name"]?.stringValue else {
                throw FormatError("a member in the daemon's answer lacks \"nodeid\" or \"name\"")
            }
            block.entry { block in
                block.line("Node Name: \(name)")
                block.item("ID", "\(id) (0x\(String(id, radix: 16)))")
                let addresses = member["addresses"]?.arrayValue?.compactMap(\.stringValue) ?? []
                if addresses.isEmpty { block.item("Address", "unknown") }
                for address in addresses { block.item("Address", address) }
                block.item("Member", member["member"]?.boolValue == true ? "Yes" : "No")
            }
        }
        return block.finish()
    }

    /// `channels`, like `ais evt show event channels`.
    static func channels(_ result: JSONValue) throws(FormatError) -> String {
        guard let channels = result["channels"]?.arrayValue else { throw FormatError("the daemon's answer has no \"channels\" list") }
        var block = Block(title: "Event Channels")
        for channel in channels {
            guard let name = channel["name"]?.stringValue else { throw FormatError("a channel in the daemon's answer has no \"name\"") }
            block.entry { block in
                block.line("Event Channel Name: \(name)")
                for type in channel["publish"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                    block.item("Publishing Event Type", type)
                }
                for type in channel["subscribe"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                    block.item("Subscribing to Event Type", type)
                }
            }
        }
        return block.finish()
    }

    /// `status`: this node, its ring and counters.
    static func status(_ result: JSONValue) throws(FormatError) -> String {
        guard let node = result["node"], let id = node["nodeid"]?.integerValue, let name = node["name"]?.stringValue else {
            throw FormatError("the daemon's answer has no \"node\" with \"nodeid\" and \"name\"")
        }
        func text(_ key: String) -> String { result[key]?.stringValue ?? "unknown" }
        func number(_ value: JSONValue?) -> String { value?.integerValue.map(String.init) ?? "?" }
        var block = Block(title: "Node Status")
        block.line("Node Name: \(name)")
        block.item("ID", "\(id) (0x\(String(id, radix: 16)))")
        block.item("Entity ID", node["entity_id"]?.stringValue ?? "unknown")
        block.item("Cluster", text("cluster"))
        block.item("Version", text("version"))
        block.item("Ring", result["ring"]?.stringValue ?? "none")
        block.item("State", text("state"))
        block.item("Members", "\(number(result["members"])) of \(number(result["configured_nodes"])) configured nodes")
        if let transport = result["transport"] {
            var description = transport["mode"]?.stringValue ?? "unknown"
            if let address = transport["address"]?.stringValue { description += " on \(address)" }
            if let group = transport["multicast"]?.stringValue { description += ", multicast group \(group)" }
            if let mtu = transport["netmtu"]?.integerValue { description += ", netmtu \(mtu)" }
            block.item("Transport", description)
        }
        let authentication = text("authentication")
        block.item("Authentication", authentication == "none" ? "none (WARNING: datagrams are not authenticated)" : authentication)
        block.item("Uptime", uptime(seconds: result["uptime_seconds"]?.integerValue ?? 0))
        block.item("Log Level", text("log_level"))
        block.item("Control Clients", number(result["control_clients"]))
        block.blank()
        let counters = result["counters"]
        func counter(_ key: String) -> String { number(counters?[key]) }
        block.line("Counters")
        block.item("Datagrams", "\(counter("datagrams_sent")) sent, \(counter("datagrams_received")) received")
        block.item("Bytes", "\(counter("bytes_sent")) sent, \(counter("bytes_received")) received")
        block.item("Messages Delivered", counter("messages_delivered"))
        block.item("Retransmissions", "\(counter("retransmissions")) resent, \(counter("retransmit_requests")) requested, "
            + "\(counter("token_retransmissions")) token")
        block.item("Authentication Failures", counter("authentication_failures"))
        block.item("Receive Drops", "\(counter("receive_drops")) (kernel), \(counter("decode_errors")) undecodable, "
            + "\(counter("truncated_datagrams")) truncated, \(counter("unlisted_source_drops")) from unlisted sources")
        block.item("Send Errors", counter("send_errors"))
        block.item("Rings Installed", counter("rings_installed"))
        block.blank()
        return block.finish()
    }

    /// `settings`: the effective timers and constants.
    static func settings(_ result: JSONValue) throws(FormatError) -> String {
        guard let token = result["token_ms"]?.integerValue else { throw FormatError("the daemon's answer has no \"token_ms\"") }
        func number(_ key: String) -> String { result[key]?.integerValue.map(String.init) ?? "?" }
        func milliseconds(_ key: String) -> String { "\(number(key)) ms" }
        var block = Block(title: "Totem Settings")
        var tokenText = "\(token) ms"
        if let configured = result["token_configured_ms"]?.integerValue, configured != token {
            let nodes = result["configured_nodes"]?.integerValue ?? 0
            tokenText += " (token \(configured) ms + token_coefficient \(number("token_coefficient_ms")) ms × \(max(0, nodes - 2)) nodes beyond 2)"
        }
        block.item("token", tokenText)
        block.item("token_retransmit", milliseconds("token_retransmit_ms"))
        block.item("token_retransmits_before_loss_const", number("token_retransmits_before_loss_const"))
        block.item("hold", milliseconds("hold_ms"))
        block.item("join", milliseconds("join_ms"))
        block.item("consensus", milliseconds("consensus_ms"))
        block.item("merge", milliseconds("merge_ms"))
        block.item("window_size", number("window_size"))
        block.item("max_messages", number("max_messages"))
        block.item("miss_count_const", number("miss_count_const"))
        block.item("fail_recv_const", number("fail_recv_const"))
        block.item("seqno_unchanged_const", number("seqno_unchanged_const"))
        block.item("cancel_token_hold_on_retransmit", result["cancel_token_hold_on_retransmit"]?.boolValue == true ? "yes" : "no")
        block.item("frame size", "\(number("frame_size_bytes")) bytes (netmtu \(number("netmtu")))")
        block.item("largest message", "\(number("max_message_bytes")) bytes")
        block.blank()
        return block.finish()
    }

    /// `debug on|off`: one line.
    static func debug(_ result: JSONValue) throws(FormatError) -> String {
        guard let enabled = result["debug"]?.boolValue, let level = result["log_level"]?.stringValue else {
            throw FormatError("the daemon's answer has no \"debug\" and \"log_level\"")
        }
        return "debug logging \(enabled ? "on" : "off"); log level \(level)\n"
    }

    /// `3d 4h 5m 6s`, leading zero units left out.
    static func uptime(seconds: Int64) -> String {
        let days = seconds / 86_400
        let hours = seconds % 86_400 / 3_600
        let minutes = seconds % 3_600 / 60
        let rest = seconds % 60
        if days > 0 { return "\(days)d \(hours)h \(minutes)m \(rest)s" }
        if hours > 0 { return "\(hours)h \(minutes)m \(rest)s" }
        if minutes > 0 { return "\(minutes)m \(rest)s" }
        return "\(rest)s"
    }
}
