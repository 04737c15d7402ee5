// The control commands of the cluster services: each request's arguments read into the host's
// typed command (argument errors are the daemon's: CommandArguments), the command run on the
// host, and its typed answer written as JSON. One case per command.

import ClusterServices
import DeviceState
import EventService
import Membership
import Totem

extension ClusterHub {
    static let deviceCommands = [
        "adapter_register", "devstate_set", "devstate_clear", "devstate_get", "devstate_list", "hints", "mwi_set", "mwi_get", "mwi_list",
        "watch", "subscribe", "unsubscribe", "snapshot", "event_publish", "event_subscribe", "event_unsubscribe",
    ]

    func handle(_ request: ControlRequest, reply: ControlReply) {
        guard let context else {
            reply.fail(ControlError(.unavailable, "the daemon is still starting"))
            return
        }
        let arguments = CommandArguments(request: request)
        let connection = reply.connection
        let client = connection.map(Self.clientID(of:))
        let name = context.name(of:)
        do throws(ControlError) {
            switch request.command {
            case "devstate_set":
                try arguments.allow(["device", "state"])
                let device = try arguments.string("device")
                let state = try arguments.string("state")
                let parsed: (DeviceName, DeviceStateValue)
                do {
                    parsed = (try DeviceName(parsing: device), try DeviceStateValue(parsing: state))
                } catch {
                    throw Self.controlError(.deviceState(error))
                }
                let queued = ringQueuedBytes
                let snapshot = try command(connection) { effects, now throws(ServiceHostError) in
                    try host.setDeviceState(parsed.1, of: parsed.0, client: client, now: now, ringQueuedBytes: queued, into: &effects)
                }
                var result = Self.json(snapshot, name: name)
                addPersistence(to: &result)
                reply.succeed(.object(result))
            case "devstate_clear":
                try arguments.allow(["device"])
                let device = try Self.deviceName(try arguments.string("device"))
                let queued = ringQueuedBytes
                let cleared = run(requester: connection) { effects, now in
                    host.clearDeviceState(of: device, client: client, now: now, ringQueuedBytes: queued, into: &effects)
                }
                var result = Self.json(cleared.snapshot, name: name)
                result.set("cleared", .bool(cleared.cleared))
                addPersistence(to: &result)
                reply.succeed(.object(result))
            case "adapter_register":
                try register(arguments, connection: connection, reply: reply, context: context)
            case "devstate_get":
                try arguments.allow(["device"])
                let device = try Self.deviceName(try arguments.string("device"))
                reply.succeed(.object(Self.json(host.deviceSnapshot(device), name: name)))
            case "devstate_list":
                try arguments.allow([])
                reply.succeed(.object(["devices": .array(host.devices.map { .object(Self.json($0, name: name)) })]))
            case "hints":
                try arguments.allow([])
                reply.succeed(.object(["hints": .array(host.hintRows.map { .object(Self.json($0)) })]))
            case "mwi_set":
                try arguments.allow(["mailbox", "new", "old"])
                let mailbox = try Self.mailboxName(try arguments.string("mailbox"))
                let counts = MailboxCounts(newMessages: try arguments.count("new"), oldMessages: try arguments.count("old"))
                let queued = ringQueuedBytes
                try command(connection) { effects, now throws(ServiceHostError) in
                    try host.setMailbox(mailbox, counts: counts, client: client, now: now, ringQueuedBytes: queued, into: &effects)
                }
                var result: JSONObject = [
                    "mailbox": .string(mailbox.mailbox), "context": .string(mailbox.context),
                    "new": .number(counts.newMessages), "old": .number(counts.oldMessages), "published": .bool(true),
                ]
                addPersistence(to: &result)
                reply.succeed(.object(result))
            case "mwi_get":
                try arguments.allow(["mailbox"])
                let mailbox = try Self.mailboxName(try arguments.string("mailbox"))
                guard let record = host.mailbox(mailbox) else {
                    // Unknown is zero messages, as app_voicemail reports an empty mailbox.
                    reply.succeed(.object([
                        "mailbox": .string(mailbox.mailbox), "context": .string(mailbox.context),
                        "new": 0, "old": 0, "waiting": false, "known": false,
                    ]))
                    return
                }
                var object = Self.json(record)
                object.set("known", .bool(true))
                reply.succeed(.object(object))
            case "mwi_list":
                try arguments.allow([])
                reply.succeed(.object(["mailboxes": .array(host.mailboxes.map { .object(Self.json($0)) })]))
            case "watch", "subscribe":
                try arguments.allow(["topics", "snapshot"])
                let topics = try arguments.topics()
                let wantsSnapshot = try arguments.bool("snapshot") ?? false
                guard let connection else {
                    throw ControlError(.unavailable, "\(request.command) needs a control connection")
                }
                let watched = host.watch(topics, client: Self.clientID(of: connection), includeSnapshot: wantsSnapshot)
                observeIfKept(connection)
                var result: JSONObject = ["topics": .array(watched.topics.map { .string($0.rawValue) })]
                if let snapshot = watched.snapshot { result.set("snapshot", json(snapshot)) }
                reply.succeed(.object(result))
            case "unsubscribe":
                try arguments.allow([])
                reply.succeed(.object(["unsubscribed": .bool(host.unsubscribe(client: client))]))
            case "snapshot":
                try arguments.allow([])
                reply.succeed(json(host.snapshot()))
            case "event_publish":
                let publication = try EventPublishRequest(arguments)
                let queued = ringQueuedBytes
                let id = try command(connection) { effects, now throws(ServiceHostError) in
                    try host.publishEvent(on: publication.channel, type: publication.type, attributes: publication.attributes,
                                          payload: publication.payload, retention: publication.retention, client: client, now: now,
                                          ringQueuedBytes: queued, into: &effects)
                }
                reply.succeed(.object(["event_id": .string(id.description)]))
            case "event_subscribe":
                let subscription = try Subscription(arguments)
                guard let connection else {
                    throw ControlError(.unavailable, "event_subscribe needs a control connection")
                }
                let opened = try command(connection) { _, now throws(ServiceHostError) in
                    try host.subscribeEvents(subscription, client: Self.clientID(of: connection), now: now)
                }
                observeIfKept(connection)
                reply.succeed(.object([
                    "subscription": .number(opened.subscription.rawValue), "channel": .string(opened.channel.rawValue),
                    "replayed": .number(opened.replayed),
                ]))
                // After the answer: a replayed event must not name a subscription the client does not know yet.
                if let replay = opened.replay { startReplay(replay, on: connection) }
            case "event_unsubscribe":
                try arguments.allow(["subscription"])
                guard let number = try arguments.optionalInteger("subscription", in: 0...Int64.max) else {
                    throw ControlError(.invalidArgument, "event_unsubscribe needs \"subscription\" (the number event_subscribe returned)")
                }
                let removed = host.unsubscribeEvents(SubscriptionID(rawValue: UInt64(number)), client: client)
                reply.succeed(.object(["unsubscribed": .bool(removed)]))
            default:
                throw ControlError(.unknownCommand, "the device-state service has no command \"\(request.command)\"")
            }
        } catch {
            reply.fail(error)
        }
    }

    /// Runs a command of the host that may refuse, its refusal as the control protocol's error.
    private func command<Result>(_ connection: ControlConnection?,
                                 _ input: (inout [ServiceHost.Effect], MonotonicInstant) throws(ServiceHostError) -> Result)
        throws(ControlError) -> Result {
        do {
            return try run(requester: connection, input)
        } catch {
            throw Self.controlError(error)
        }
    }

    /// `adapter_register`: a PBX adapter says which entity id it publishes for (the host checks
    /// it is this server's).
    private func register(_ arguments: CommandArguments, connection: ControlConnection?, reply: ControlReply,
                          context: ServiceContext) throws(ControlError) {
        try arguments.allow(["entity_id", "name", "system_name", "version"])
        let text = try arguments.string("entity_id")
        guard let entity = EntityID(parsing: text) else {
            throw ControlError(.invalidArgument, "\"entity_id\" must be six hexadecimal octets like 02:00:00:00:00:01, got \"\(text.prefix(40))\"")
        }
        let name = try CommandArguments.label(try arguments.string("name"), "name")
        let systemName = try arguments.optionalString("system_name").map { text throws(ControlError) in try CommandArguments.label(text, "system_name") }
        let version = try arguments.optionalString("version").map { text throws(ControlError) in try CommandArguments.label(text, "version") }
        guard let connection else {
            throw ControlError(.unavailable, "adapter_register needs a control connection")
        }
        let registration = AdapterRegistration(name: name, entityID: entity, systemName: systemName, version: version)
        try command(connection) { effects, _ throws(ServiceHostError) in
            try host.registerAdapter(registration, client: Self.clientID(of: connection), into: &effects)
        }
        observeIfKept(connection)
        reply.succeed(.object([
            "entity_id": .string(host.deviceState.entityID.description), "nodeid": .number(context.localNodeID.rawValue),
            "name": .string(context.name(of: context.localNodeID)), "cluster": .string(context.configuration.totem.clusterName),
        ]))
    }

    // MARK: Ping

    func handlePing(_ request: ControlRequest, reply: ControlReply) {
        guard let context else {
            reply.fail(ControlError(.unavailable, "the daemon is still starting"))
            return
        }
        if let unexpected = request.arguments.keys.first {
            reply.fail(ControlError(.invalidArgument, "ping takes no arguments, got \"\(unexpected)\""))
            return
        }
        let isRunning = context.node?.isRunning == true
        let members = context.members
        do throws(ControlError) {
            try command(reply.connection) { effects, now throws(ServiceHostError) in
                let id = try host.ping(isRunning: isRunning, ringMembers: members, now: now, into: &effects)
                // Kept before the effects run: the answer may come while they do.
                pingReplies[id] = reply
            }
        } catch {
            reply.fail(error)
        }
    }

    /// The host's answer to a ping.
    func answerPing(_ id: PingID, _ result: Result<PingResult, ServiceHostError>) {
        guard let reply = pingReplies.removeValue(forKey: id), let context else { return }
        switch result {
        case .success(let ping): reply.succeed(Self.json(ping, name: context.name(of:)))
        case .failure(let error): reply.fail(Self.controlError(error))
        }
    }

    // MARK: Errors

    /// A refusal of the host as the control protocol's error: `limit_reached` at a cap,
    /// `entity_mismatch`, `unavailable` for what the client cannot fix by its arguments, else
    /// `invalid_argument`.
    static func controlError(_ error: ServiceHostError) -> ControlError {
        switch error {
        case .deviceState(.tooManyDevices), .deviceState(.tooManyMailboxes): ControlError(.limitReached, error.description)
        case .deviceState, .publish, .subscribe: ControlError(.invalidArgument, error.description)
        case .entityMismatch: ControlError(.entityMismatch, error.description)
        case .tooManySubscriptions, .notInRing, .stopping: ControlError(.unavailable, error.description)
        }
    }

    static func deviceName(_ text: String) throws(ControlError) -> DeviceName {
        do {
            return try DeviceName(parsing: text)
        } catch {
            throw ControlError(.invalidArgument, error.description)
        }
    }

    static func mailboxName(_ text: String) throws(ControlError) -> MailboxName {
        do {
            return try MailboxName(parsing: text)
        } catch {
            throw ControlError(.invalidArgument, error.description)
        }
    }
}
