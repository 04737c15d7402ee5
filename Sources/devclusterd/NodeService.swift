// The built-in service: answers hello, status, members, channels, settings and debug from the ring
// state and the configuration. Sends nothing on the ring; Membership and EventService will take
// over members and channels when they plug in.

import Totem
import TotemRuntime

/// The daemon's own commands.
final class NodeService: DaemonService {
    let name = "node"
    let commands = ["hello", "status", "members", "channels", "settings", "debug"]
    private var context: ServiceContext?

    func start(_ context: ServiceContext) {
        self.context = context
    }

    func handle(_ request: ControlRequest, reply: ControlReply) {
        guard let context else {
            reply.fail(ControlError(.unavailable, "the daemon is still starting"))
            return
        }
        if request.command != "debug", let unexpected = request.arguments.keys.first {
            reply.fail(ControlError(.invalidArgument, "\(request.command) takes no arguments, got \"\(unexpected)\""))
            return
        }
        switch request.command {
        case "hello":
            reply.succeed(.object([
                "protocol": .number(ControlProtocol.version),
                "daemon": "devclusterd",
                "version": .string(Devclusterd.version),
                "nodeid": .number(context.localNodeID.rawValue),
                "max_line_bytes": .number(ControlProtocol.maximumLineBytes),
                "commands": .array(context.availableCommands.map { .string($0) }),
            ]))
        case "status":
            var status = ClusterReport.status(ClusterReport.StatusInput(
                configuration: context.configuration, runtime: context.runtimeConfiguration, entityID: context.entityID,
                ringID: context.ringID, ringMembers: context.members, state: context.membershipState,
                statistics: context.statistics, uptime: MonotonicClock.now() - context.startedAt,
                logLevel: context.effectiveLogLevel, controlClients: context.controlClientCount()))
            if case .object(var object) = status {
                if let quorum = context.quorumReport?() { object.set("quorum", quorum) }
                if let adapters = context.adaptersReport?() { object.set("adapters", adapters) }
                if let persistence = context.persistenceReport?() { object.set("persistence", persistence) }
                if let deviceState = context.deviceStateReport?() { object.set("device_state", deviceState) }
                if let retained = context.retainedEventsReport?() { object.set("retained_events", retained) }
                status = .object(object)
            }
            reply.succeed(status)
        case "members":
            if let report = context.membersReport {
                reply.succeed(report())
                return
            }
            reply.succeed(ClusterReport.members(configuration: context.configuration, ringID: context.ringID,
                                                ringMembers: context.members, state: context.membershipState))
        case "channels":
            if let report = context.channelsReport {
                reply.succeed(report())
                return
            }
            reply.succeed(ClusterReport.channels(configuration: context.configuration))
        case "settings":
            reply.succeed(ClusterReport.settings(context.runtimeConfiguration))
        case "debug":
            handleDebug(request, context: context, reply: reply)
        default:
            reply.fail(ControlError(.unknownCommand, "the node service has no command \"\(request.command)\""))
        }
    }

    /// `{"cmd":"debug","args":{"enabled":true}}`: debug logging on, or back to the configured level.
    private func handleDebug(_ request: ControlRequest, context: ServiceContext, reply: ControlReply) {
        if let unexpected = request.arguments.keys.first(where: { $0 != "enabled" }) {
            reply.fail(ControlError(.invalidArgument, "debug takes only \"enabled\", got \"\(unexpected)\""))
            return
        }
        guard let value = request.arguments["enabled"] else {
            reply.fail(ControlError(.invalidArgument, "debug needs \"enabled\": true or false"))
            return
        }
        guard let enabled = value.boolValue else {
            reply.fail(ControlError(.invalidArgument, "\"enabled\" must be true or false, got \(value.typeName)"))
            return
        }
        let previous = context.effectiveLogLevel
        context.setDebugForced(enabled)
        let now = context.effectiveLogLevel
        if previous != now {
            context.logger.log(.notice, "log level \(previous) -> \(now) (debug \(enabled ? "on" : "off") from the control socket)")
        }
        reply.succeed(.object(["debug": .bool(enabled), "log_level": .string(now.description)]))
    }
}
