// `devclusterd --foreground`: prepares what must exist before the ring starts (configuration,
// directories, entity id, key), then builds the Daemon on a fresh event loop, starts the Totem
// runtime on that same loop, and waits for the loop to end.

import Dispatch
import Glibc
import Synchronization
import Totem
import TotemRuntime

enum ForegroundDaemon {
    /// Runs the daemon until SIGTERM or SIGINT; returns the exit status.
    static func run(configPath: String?, debug: Bool) -> Int32 {
        // Before any thread exists, so that every thread inherits the mask and the signals are
        // only ever seen through the signalfd.
        SignalWatcher.blockInAllThreads()
        // Also before any thread: reading them unsets them (unsetenv is not thread-safe).
        let systemd = SystemdEnvironment.takeFromProcess()
        let style = DaemonLogger.Style.forStandardError
        let errorPrefix = style == .journal ? "<\(LogLevel.error.syslogPriority)>" : ""
        let configuration: DaemonConfiguration
        let origin: DaemonConfiguration.Origin
        do {
            (configuration, origin) = try DaemonConfiguration.resolve(configPath: configPath)
        } catch {
            for problem in error.errors { Console.error("\(errorPrefix)devclusterd: \(problem)\n") }
            Console.error("\(errorPrefix)devclusterd: not started: the configuration has \(error.errors.count) problem(s)\n")
            return 1
        }
        let file = DaemonConfiguration.fileName(of: origin)
        let logger = DaemonLogger(level: debug ? .debug : LogLevel(configuration.options.logLevel), style: style)
        let local = configuration.localNode
        logger.info("devclusterd \(Devclusterd.version) starting: node \(configuration.options.nodeID) "
            + "(\(local?.name ?? DaemonConfiguration.defaultNodeName(configuration.options.nodeID))), "
            + "cluster \"\(configuration.totem.clusterName)\", \(configuration.totem.transport.name), "
            + (origin == .embedded ? "embedded default configuration (no \(DaemonConfiguration.defaultPath))" : "configuration \(file)"))

        for warning in configuration.publicationWarnings { logger.warning(warning) }
        guard let prepared = prepare(configuration, file: file, logger: logger) else { return 1 }
        return serve(configuration: configuration, origin: origin, prepared: prepared, logger: logger, debug: debug, systemd: systemd)
    }

    /// What start-up prepared for the loop.
    private struct Prepared: Sendable {
        var runtime: NodeRuntimeConfiguration
        var entityID: DaemonConfiguration.EntityID
        var cluster: ClusterSetup
    }

    /// Directories, entity id, key and runtime configuration; `nil` after logging why not.
    private static func prepare(_ configuration: DaemonConfiguration, file: String, logger: DaemonLogger) -> Prepared? {
        let options = configuration.options
        do {
            if try FileSystem.ensurePrivateDirectory(options.stateDirectory) {
                logger.info("created state directory \(options.stateDirectory) (mode 0700)")
            }
            let socketDirectory = FileSystem.parentDirectory(of: options.controlSocket)
            // Members of control_socket_group, or (without one) the users [control] allows, must
            // be able to reach the socket inside.
            var group: gid_t?
            if let name = options.controlSocketGroup {
                guard let id = UnixSocket.groupID(named: name) else {
                    logger.error("not started: [options] control_socket_group \"\(name)\" is not a group on this host")
                    return nil
                }
                group = id
            }
            let mode: mode_t = group != nil ? 0o750 : configuration.control.allowsOtherUsers ? 0o755 : 0o700
            if try FileSystem.ensureSocketDirectory(socketDirectory, mode: mode, group: group) {
                logger.info("created control socket directory \(socketDirectory) (mode \(FileSystem.octal(mode))"
                    + (options.controlSocketGroup.map { ", group \($0)" } ?? "") + ")")
            } else if let warning = unreachableSocketDirectoryWarning(socketDirectory, group: group,
                                                                       othersAllowed: configuration.control.allowsOtherUsers) {
                logger.warning(warning)
            }
        } catch {
            logger.error("not started: \(error)")
            return nil
        }
        let entity: (id: DaemonConfiguration.EntityID, source: EntityIdentity.Source, warning: String?)
        do {
            var identity = EntityIdentity(stateDirectory: options.stateDirectory)
            if EntityIdentity.sharesHost(configuration, localAddresses: HostEnvironment.current.interfaceAddresses().map(\.address)) {
                identity.sharedHostNodeID = options.nodeID
            }
            entity = try identity.resolve(configured: options.entityID)
        } catch {
            logger.error("not started: cannot store the entity id: \(error)")
            return nil
        }
        if let warning = entity.warning { logger.warning(warning) }
        logger.info("entity id \(entity.id) (\(entity.source))")

        let key: (mode: PacketAuthenticator.Mode, key: ClusterKey?, warning: String?)
        do {
            key = try configuration.loadClusterKey(file: file)
        } catch {
            logger.error("not started: \(error)")
            return nil
        }
        if let warning = key.warning { logger.warning(warning) }
        if key.mode == .none {
            logger.warning("no cluster key: datagrams are neither authenticated nor encrypted, so any host that can reach "
                + "UDP port \(configuration.totem.port) can join or disrupt the ring; create a key with \"devclusterd keygen\", "
                + "copy it to every node and set crypto = hmac-sha256 (or chacha20-poly1305) and keyfile in [totem]")
        } else {
            logger.info("datagrams protected with \(key.mode.rawValue) (key file \(configuration.totem.crypto.keyFile ?? ""))")
        }
        let cluster: ClusterSetup
        do {
            cluster = try ClusterSetup.make(configuration: configuration, entityID: entity.id) { logger.warning($0) }
        } catch {
            logger.error("not started: \(error)")
            return nil
        }
        logger.info("incarnation \(cluster.incarnation); restored \(cluster.restoredDevices) local device state(s) and "
            + "\(cluster.restoredMailboxes) mailbox(es) from \(cluster.stateFilePath)")
        let filter = RuntimeLogFilter(logger: logger)
        do {
            let runtime = try configuration.runtimeConfiguration(
                file: file, authentication: key.mode, key: key.key,
                localAddresses: HostEnvironment.current.interfaceAddresses().map(\.address), log: filter.handler)
            return Prepared(runtime: runtime, entityID: entity.id, cluster: cluster)
        } catch {
            logger.error("not started: \(error)")
            return nil
        }
    }

    /// Why the users `[control]` allows cannot reach the socket in an existing directory (the
    /// daemon changes only directories it created), or `nil`.
    private static func unreachableSocketDirectoryWarning(_ directory: String, group: gid_t?, othersAllowed: Bool) -> String? {
        var status = stat()
        guard stat(directory, &status) == 0 else { return nil }
        let mode = FileSystem.octal(status.st_mode & 0o7777)
        if let group, status.st_mode & S_IXOTH == 0, status.st_gid != group || status.st_mode & S_IXGRP == 0 {
            return "members of control_socket_group cannot reach the control socket: its directory \(directory) has mode \(mode) "
                + "and group id \(status.st_gid); run chgrp \(group) \(directory) and chmod 0750 \(directory)"
        }
        if group == nil, othersAllowed, status.st_mode & S_IXOTH == 0 {
            return "the users [control] allows cannot reach the control socket: its directory \(directory) has mode \(mode); "
                + "run chmod 0755 \(directory)"
        }
        return nil
    }

    /// A value handed from the loop thread or a task to the waiting main thread.
    private final class Handoff<Value: Sendable>: Sendable {
        private let value = Mutex<Value?>(nil)
        private let semaphore = DispatchSemaphore(value: 0)

        func put(_ newValue: Value) {
            value.withLock { $0 = newValue }
            semaphore.signal()
        }

        func take() -> Value? {
            semaphore.wait()
            return value.withLock { $0 }
        }
    }

    /// The exit status the Daemon sets when it stops.
    private final class ExitStatus: Sendable {
        private let status = Atomic<Int32>(0)
        func set(_ value: Int32) { status.store(value, ordering: .relaxed) }
        var value: Int32 { status.load(ordering: .relaxed) }
    }

    /// Builds the Daemon on a new loop, starts the runtime there and waits for the loop to end.
    private static func serve(configuration: DaemonConfiguration, origin: DaemonConfiguration.Origin, prepared: Prepared,
                              logger: DaemonLogger, debug: Bool, systemd: SystemdEnvironment) -> Int32 {
        let loop: EventLoop
        do {
            loop = try EventLoop(name: "devclusterd")
        } catch {
            logger.error("not started: cannot create the event loop: \(error)")
            return 1
        }
        let exitStatus = ExitStatus()
        let built = Handoff<Result<LoopBound<Daemon>, StartupProblem>>()
        let file = DaemonConfiguration.fileName(of: origin)
        loop.execute {
            let context = ServiceContext(configuration: configuration, origin: origin, runtimeConfiguration: prepared.runtime,
                                         entityID: prepared.entityID, logger: logger, eventLoop: loop, isDebugForced: debug)
            let hub = ClusterHub(setup: prepared.cluster)
            let metrics = configuration.metrics.map { MetricsService(endpoint: $0.listen) }
            let daemon = Daemon(context: context, services: [NodeService()] + hub.services() + (metrics.map { [$0] } ?? [])) {
                exitStatus.set($0)
            }
            do {
                try daemon.openControlSocket()
                try metrics?.listen()
                try daemon.watchSignals()
                daemon.superviseWithSystemd(systemd)
            } catch {
                let problem = switch error {
                case is UnixSocket.Failure: StartupProblem(file: file, location: "[options] control_socket", message: "\(error)")
                case let failure as MetricsServer.Failure: StartupProblem(file: file, location: "[metrics] listen", message: failure.problem)
                default: StartupProblem(file: file, location: nil, message: "cannot watch signals: \(error)")
                }
                logger.error("not started: \(problem)")
                daemon.stop(reason: "start-up failed", exitStatus: 1)
                built.put(.failure(problem))
                return
            }
            built.put(.success(LoopBound(daemon, eventLoop: loop)))
        }
        let daemon: LoopBound<Daemon>
        switch built.take() {
        case .success(let value)?:
            daemon = value
        case .failure?:
            loop.join()
            return 1
        case nil:
            loop.stop()
            loop.join()
            return 1
        }

        let started = Handoff<Result<NodeRuntime, NodeRuntimeError>>()
        let runtimeConfiguration = prepared.runtime
        Task.detached {
            do throws(NodeRuntimeError) {
                let runtime = try await NodeRuntime.start(runtimeConfiguration, on: loop) { node in
                    daemon.value.attach(node)
                }
                started.put(.success(runtime))
            } catch {
                started.put(.failure(error))
            }
        }
        switch started.take() {
        case .success?:
            let name = configuration.localNode?.name ?? DaemonConfiguration.defaultNodeName(configuration.options.nodeID)
            Console.output("devclusterd: node \(configuration.options.nodeID) (\(name)) running; "
                + "control socket \(configuration.options.controlSocket)\n")
        case .failure(.eventLoopStopped)?:
            // A SIGTERM arrived while the ring was starting; the Daemon has stopped already.
            break
        case .failure(let error)?:
            logger.error("not started: cannot start the ring: \(error)")
            loop.execute { daemon.value.stop(reason: "start-up failed", exitStatus: 1) }
        case nil:
            loop.execute { daemon.value.stop(reason: "start-up failed", exitStatus: 1) }
        }
        loop.join()
        return exitStatus.value
    }
}
