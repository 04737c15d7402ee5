// `[metrics]` inside the daemon: opens the Prometheus endpoint on the event loop and answers each
// scrape from the counters the loop holds (ring, runtime, cluster services). A DaemonService with
// no commands and no ring messages, so the Daemon stops it with the others.

import Totem
import TotemRuntime

/// The Prometheus endpoint as a daemon service. Loop thread only.
final class MetricsService: DaemonService {
    let name = "metrics"
    let commands: [String] = []
    private let endpoint: DaemonConfiguration.Endpoint
    private let limits: MetricsServer.Limits
    private var context: ServiceContext?
    private var server: MetricsServer?

    init(endpoint: DaemonConfiguration.Endpoint, limits: MetricsServer.Limits = MetricsServer.Limits()) {
        self.endpoint = endpoint
        self.limits = limits
    }

    func start(_ context: ServiceContext) {
        self.context = context
    }

    /// Binds the endpoint (after `start`). Loop thread only.
    ///
    /// - Throws: `MetricsServer.Failure` when the address cannot be bound.
    func listen() throws(MetricsServer.Failure) {
        guard let context, server == nil else { return }
        server = try MetricsServer(endpoint: endpoint, eventLoop: context.eventLoop, logger: context.logger, limits: limits) {
            [unowned self] in render()
        }
        let exposure = endpoint.address.isLoopback ? "" : "; it has no authentication: anyone who can reach \(endpoint) can read it"
        context.logger.info("metrics on http://\(endpoint)\(MetricsHTTP.path)\(exposure)")
    }

    func handle(_ request: ControlRequest, reply: ControlReply) {
        reply.fail(ControlError(.unknownCommand, "the metrics service has no command \"\(request.command)\""))
    }

    func stop() {
        server?.close()
        server = nil
    }

    /// The metrics document, from what the loop holds now.
    private func render() -> [UInt8] {
        guard let context else { return [] }
        return MetricsReport.text(Self.snapshot(context)).bytes
    }

    /// Everything a scrape reports; cheap (counters and counts, no lists are built).
    static func snapshot(_ context: ServiceContext) -> MetricsSnapshot {
        let configuration = context.configuration
        let local = configuration.options.nodeID
        return MetricsSnapshot(
            version: Devclusterd.version, nodeID: local,
            nodeName: configuration.localNode?.name ?? DaemonConfiguration.defaultNodeName(local),
            clusterName: configuration.totem.clusterName, entityID: context.entityID.description,
            ringID: context.ringID, state: context.membershipState, members: context.members.count,
            configuredNodes: configuration.nodes.count, uptime: MonotonicClock.now() - context.startedAt,
            statistics: context.statistics, sendQueueMessages: context.node?.pendingMessageCount ?? 0,
            sendQueueBytes: context.node?.pendingBytes ?? 0, controlClients: context.controlClientCount(),
            services: context.metricsServices?())
    }
}
