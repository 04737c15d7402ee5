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
        case .devstateSet: try devstateSet(result)
        case .devstateClear: try devstateClear(result)
        case .devstateGet: try devstateGet(result)
        case .devstateList: try devstateList(result)
        case .hints: try hints(result)
        case .mwiSet: try mwiSet(result)
        case .mwiGet: try mwiGet(result)
        case .mwiList: try mwiList(result)
        case .watch: ""
        case .ping: try ping(result)
        }
    }

    // MARK: Device state, hints, MWI

    /// `devstate set`: what was set and the cluster-wide state now.
    static func devstateSet(_ result: JSONValue) throws(FormatError) -> String {
        guard let device = result["device"]?.stringValue, let state = result["state"]?.stringValue else {
            throw FormatError("the daemon's answer has no \"device\" and \"state\"")
        }
        return "\(device): set on this server; cluster-wide state \(state)\n" + persistenceLine(result)
    }

    /// The line a change's answer adds when the daemon could not persist it (nothing otherwise).
    static func persistenceLine(_ result: JSONValue) -> String {
        guard result["persistence"]?.stringValue == "not_persisted" else { return "" }
        return "NOT PERSISTED: \(result["persistence_error"]?.stringValue ?? "the state directory cannot be written"); "
            + "the cluster has the change, this server keeps it in memory and retries writing it\n"
    }

    /// `devstate clear`: whether this server reported the device, and the cluster-wide state now.
    static func devstateClear(_ result: JSONValue) throws(FormatError) -> String {
        guard let device = result["device"]?.stringValue, let state = result["state"]?.stringValue else {
            throw FormatError("the daemon's answer has no \"device\" and \"state\"")
        }
        let what = result["cleared"]?.boolValue == false ? "this server did not report it" : "cleared on this server"
        return "\(device): \(what); cluster-wide state \(state)\n" + persistenceLine(result)
    }

    /// `devstate get`: the cluster-wide state, then one line per reporting server.
    static func devstateGet(_ result: JSONValue) throws(FormatError) -> String {
        guard let device = result["device"]?.stringValue, let state = result["state"]?.stringValue else {
            throw FormatError("the daemon's answer has no \"device\" and \"state\"")
        }
        var text = "\(device): \(state)"
        if let human = result["text"]?.stringValue { text += " (\(human))" }
        text += "\n"
        let servers = result["servers"]?.arrayValue ?? []
        if servers.isEmpty { text += "  no server reports this device\n" }
        for server in servers {
            let name = server["name"]?.stringValue ?? "?"
            let entity = server["entity_id"]?.stringValue ?? "?"
            text += "  \(name) (\(entity)): \(server["state"]?.stringValue ?? "?")\n"
        }
        return text
    }

    /// `devstate list`, in the style of Asterisk's `devstate list`.
    static func devstateList(_ result: JSONValue) throws(FormatError) -> String {
        guard let devices = result["devices"]?.arrayValue else { throw FormatError("the daemon's answer has no \"devices\" list") }
        var text = "\n--- Cluster-wide Device States ---\n---\n"
        for device in devices {
            text += "--- Name: '\(device["device"]?.stringValue ?? "?")'  State: '\(device["state"]?.stringValue ?? "?")'\n"
        }
        text += "---\n--- \(devices.count) device(s) ---\n\n"
        return text
    }

    /// `hints`, like `core show hints`.
    static func hints(_ result: JSONValue) throws(FormatError) -> String {
        guard let hints = result["hints"]?.arrayValue else { throw FormatError("the daemon's answer has no \"hints\" list") }
        func pad(_ text: String, _ width: Int, left: Bool) -> String {
            let padding = String(repeating: " ", count: max(0, width - text.count))
            return left ? text + padding : padding + text
        }
        func cut(_ text: String, _ width: Int) -> String { pad(String(text.prefix(width)), width, left: true) }
        var lines = ["    -= Registered Asterisk Dial Plan Hints =-"]
        for hint in hints {
            guard let exten = hint["exten"]?.stringValue, let context = hint["context"]?.stringValue else {
                throw FormatError("a hint in the daemon's answer lacks \"exten\" or \"context\"")
            }
            let devices = hint["devices"]?.stringValue ?? ""
            let state = hint["state"]?.stringValue ?? "?"
            let watchers = hint["watchers"]?.integerValue ?? 0
            // The layout of DeviceState.HintRow (the seed's core show hints).
            lines.append("   " + pad(exten, 20, left: false) + "@" + cut(context, 20) + ": " + cut(devices, 20)
                + "  State:" + cut(state, 15) + " Watchers " + pad(String(watchers), 2, left: false))
        }
        lines.append("----------------")
        lines.append("- \(hints.count) hints registered")
        return lines.joined(separator: "\n") + "\n"
    }

    private static func mailboxLine(_ result: JSONValue) throws(FormatError) -> String {
        guard let mailbox = result["mailbox"]?.stringValue, let context = result["context"]?.stringValue,
              let new = result["new"]?.integerValue, let old = result["old"]?.integerValue
        else { throw FormatError("the daemon's answer lacks \"mailbox\", \"context\", \"new\" or \"old\"") }
        return "\(mailbox)@\(context): \(new) new, \(old) old (Messages-Waiting: \(new > 0 ? "yes" : "no"))"
    }

    /// `mwi set`.
    static func mwiSet(_ result: JSONValue) throws(FormatError) -> String {
        try mailboxLine(result) + ", published\n" + persistenceLine(result)
    }

    /// `mwi get`.
    static func mwiGet(_ result: JSONValue) throws(FormatError) -> String {
        let line = try mailboxLine(result)
        return line + (result["known"]?.boolValue == false ? ", no update seen in the cluster" : "") + "\n"
    }

    /// `mwi list`.
    static func mwiList(_ result: JSONValue) throws(FormatError) -> String {
        guard let mailboxes = result["mailboxes"]?.arrayValue else { throw FormatError("the daemon's answer has no \"mailboxes\" list") }
        var text = ""
        for mailbox in mailboxes { text += try mailboxLine(mailbox) + "\n" }
        return text + "\(mailboxes.count) mailbox(es)\n"
    }

    /// `ping`: one line per member.
    static func ping(_ result: JSONValue) throws(FormatError) -> String {
        guard let nodes = result["nodes"]?.arrayValue else { throw FormatError("the daemon's answer has no \"nodes\" list") }
        var text = ""
        for node in nodes {
            let name = node["name"]?.stringValue ?? "?"
            let id = node["nodeid"]?.integerValue ?? 0
            if let rtt = node["rtt_ms"]?.doubleValue {
                let micro = Int64((rtt * 1_000).rounded())
                let fraction = String(micro % 1_000)
                text += "\(name) (node \(id)): \(micro / 1_000).\(String(repeating: "0", count: 3 - fraction.count) + fraction) ms\n"
            } else {
                text += "\(name) (node \(id)): no reply within \(result["timeout_ms"]?.integerValue ?? 0) ms\n"
            }
        }
        return text
    }

    /// One pushed event of `watch`, as one line; `nil` for an event this version does not know.
    static func watchLine(event: String, data: JSONValue) -> String? {
        func text(_ key: String) -> String { data[key]?.stringValue ?? "?" }
        switch event {
        case "device":
            return "device \(text("device")) \(text("state")) (was \(text("previous")))"
        case "extension":
            return "extension \(text("exten"))@\(text("context")) \(text("state")) (was \(text("previous")))"
        case "mwi":
            let new = data["new"]?.integerValue ?? 0
            let old = data["old"]?.integerValue ?? 0
            return "mwi \(text("mailbox"))@\(text("context")) \(new) new, \(old) old"
        case "membership":
            switch text("change") {
            // `view` is the first view a joined node is in, and the last one a departed node was in.
            case "joined":
                return "membership \(text("name")) joined (first in view \(data["view"]?.integerValue ?? 0))"
            case "left":
                let how = switch data["graceful"]?.boolValue {
                case true?: "left gracefully"
                case false?: "failed"
                case nil: "left"
                }
                return "membership \(text("name")) \(how) (last in view \(data["view"]?.integerValue ?? 0))"
            case "view":
                let members = data["members"]?.arrayValue?.compactMap(\.integerValue).map(String.init).joined(separator: ", ") ?? ""
                return "membership view \(data["view"]?.integerValue ?? 0) installed, ring \(text("ring")): nodes \(members)"
            case "identified":
                return "membership \(text("name")) identified (entity id \(text("entity_id")))"
            case "quorum":
                return "membership \(data["quorum"]?["text"]?.stringValue ?? "quorum changed")"
            default:
                return "membership \(data.encoded)"
            }
        default:
            return nil
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
        for conflict in result["entity_conflicts"]?.arrayValue ?? [] {
            let nodes = conflict["nodes"]?.arrayValue?.compactMap(\.integerValue).map(String.init).joined(separator: ", ") ?? "?"
            block.line("WARNING: nodes \(nodes) share entity id \(conflict["entity_id"]?.stringValue ?? "?"); "
                + "their device states overwrite each other (set entity_id in [options])")
        }
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
        if let quorum = result["quorum"]?["text"]?.stringValue { block.item("Quorum", quorum) }
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
        if let retained = result["retained_events"], let bytes = retained["bytes"]?.integerValue,
           let maximum = retained["max_bytes"]?.integerValue {
            block.item("Retained Events", "\(number(retained["events"])) of at most \(number(retained["max_events"])), "
                + "\(ByteSize.describe(Int(bytes))) of at most \(ByteSize.describe(Int(maximum))) (max_retained_bytes); "
                + "dropped before their expiry: \(number(retained["dropped_at_byte_cap"])) at the byte cap, "
                + "\(number(retained["dropped_at_event_cap"])) at the event cap")
        }
        if let persistence = result["persistence"], let health = persistence["health"]?.stringValue {
            var description = health == "ok" ? "ok" : "DEGRADED (\(health)): local states are not persisted"
            if health != "ok", let error = persistence["last_error"]?.stringValue { description += "; last error: \(error)" }
            description += "; \(number(persistence["persistence_failures"])) failed write(s), "
                + "\(number(persistence["unpersisted_changes"])) change(s) not yet on disk"
            block.item("Persistence", description)
        }
        block.blank()
        let counters = result["counters"]
        func counter(_ key: String) -> String { number(counters?[key]) }
        block.line("Counters")
        block.item("Datagrams", "\(counter("datagrams_sent")) sent (\(counter("datagrams_sent_segmented")) in segmented runs), "
            + "\(counter("datagrams_received")) received")
        block.item("Bytes", "\(counter("bytes_sent")) sent, \(counter("bytes_received")) received")
        block.item("Messages Delivered", counter("messages_delivered"))
        block.item("Retransmissions", "\(counter("retransmissions")) resent, \(counter("retransmit_requests")) requested, "
            + "\(counter("token_retransmissions")) token")
        block.item("Authentication Failures", counter("authentication_failures"))
        block.item("Freshness Refusals", "\(counter("freshness_refused")) (\(counter("freshness_refused_unproved_epoch")) in an "
            + "unproved epoch: a peer that just started, or a replay; \(counter("freshness_refused_duplicate")) duplicate, "
            + "\(counter("freshness_refused_stale")) stale, \(counter("freshness_refused_misaddressed")) misaddressed); "
            + "\(counter("freshness_challenges")) challenges sent, \(counter("epochs_proved")) epochs proved")
        block.item("Receive Drops", "\(counter("receive_drops")) (kernel), \(counter("decode_errors")) undecodable, "
            + "\(counter("truncated_datagrams")) truncated, \(counter("unlisted_source_drops")) from unlisted sources")
        block.item("Send Errors", counter("send_errors"))
        block.item("Rings Installed", counter("rings_installed"))
        block.item("Unreachable Reports", "\(counter("unreachable_reports")) (ICMP), \(counter("unreachable_refuted")) refuted "
            + "by a liveness probe's answer, \(counter("successors_unreachable")) for a successor that did not answer (ring re-formed)")
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
