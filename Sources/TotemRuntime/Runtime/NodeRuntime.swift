// The thread-safe handle to a running Totem node: starts it on an event loop, and lets other
// threads submit, leave, stop and read statistics. The node itself (RingNode) never leaves its
// loop thread; this handle only sends it work.

import Totem


/// Why a node could not be started.
public enum NodeRuntimeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The configuration has problems (each described).
    case invalidConfiguration([String])
    /// A system call failed (socket, bind, epoll, thread, /dev/urandom).
    case system(SystemError)
    /// The event loop given to run the node on has stopped.
    case eventLoopStopped
    /// A state file and its kept copy are both unusable; the text says which and what to do.
    case unusableStateFile(String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let problems): "invalid configuration: " + problems.joined(separator: "; ")
        case .system(let error): "\(error)"
        case .eventLoopStopped: "the event loop has stopped"
        case .unusableStateFile(let problem): problem
        }
    }
}

/// A running Totem node, usable from any thread or task.
///
/// ```swift
/// let node = try await NodeRuntime.start(configuration) { event in print(event) }
/// try await node.submit(Array("hello".utf8))
/// await node.leave()
/// ```
///
/// The node runs on one event loop thread (its own unless one is given), where the core, the
/// sockets and the timers live, and where the event handler is called. The layer above that
/// wants to share the thread (the daemon's services) creates its state in `makeEventHandler`,
/// which runs on the loop thread and receives the `RingNode` to call synchronously.
public final class NodeRuntime: Sendable {
    public let nodeID: NodeID
    /// The loop the node runs on.
    public let eventLoop: EventLoop
    private let node: LoopBound<RingNode>
    /// Whether this runtime created the loop, and so stops it on `leave` and `stop`.
    private let ownsEventLoop: Bool

    private init(nodeID: NodeID, node: LoopBound<RingNode>, ownsEventLoop: Bool) {
        self.nodeID = nodeID
        self.eventLoop = node.eventLoop
        self.node = node
        self.ownsEventLoop = ownsEventLoop
    }

    /// Starts a node: validates the configuration, opens the sockets on the loop thread, and
    /// enters GATHER.
    ///
    /// - Parameters:
    ///   - configuration: the node's configuration; `validate()` must be empty.
    ///   - eventLoop: the loop to run on; `nil` creates one that the runtime owns and stops.
    ///   - makeEventHandler: called once on the loop thread before the protocol starts; the
    ///     closure it returns receives every `RingEvent` there. It may keep the node (it is
    ///     released at shutdown) and call `submit` on it synchronously.
    /// - Throws: `NodeRuntimeError`.
    public static func start(
        _ configuration: NodeRuntimeConfiguration, on eventLoop: EventLoop? = nil,
        makeEventHandler: @escaping @Sendable (RingNode) -> ((RingEvent) -> Void)?
    ) async throws(NodeRuntimeError) -> NodeRuntime {
        let problems = configuration.validate()
        guard problems.isEmpty else { throw .invalidConfiguration(problems) }
        let boot: BootRandomness
        do {
            boot = BootRandomness(epoch: UInt32(truncatingIfNeeded: try SystemRandom.uint64()), counterStart: try SystemRandom.uint64(),
                                  challengeSeed: try SystemRandom.uint64())
        } catch {
            throw .system(error)
        }
        let loop: EventLoop
        if let eventLoop {
            loop = eventLoop
        } else {
            do {
                loop = try EventLoop(name: "totem-\(configuration.nodeID)")
            } catch {
                throw .system(error)
            }
        }
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<LoopBound<RingNode>, NodeRuntimeError>, Never>) in
            let accepted = loop.execute {
                do throws(NodeRuntimeError) {
                    let node = try RingNode(configuration: configuration, eventLoop: loop, boot: boot)
                    node.setEventHandler(makeEventHandler(node))
                    try node.start()
                    continuation.resume(returning: .success(LoopBound(node, eventLoop: loop)))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
            if !accepted { continuation.resume(returning: .failure(.eventLoopStopped)) }
        }
        switch result {
        case .success(let node):
            return NodeRuntime(nodeID: configuration.nodeID, node: node, ownsEventLoop: eventLoop == nil)
        case .failure(let error):
            if eventLoop == nil {
                loop.stop()
                loop.join()
            }
            throw error
        }
    }

    /// Starts a node whose events go to `onEvent` (called on the loop thread).
    public static func start(
        _ configuration: NodeRuntimeConfiguration, on eventLoop: EventLoop? = nil,
        onEvent: @escaping @Sendable (RingEvent) -> Void
    ) async throws(NodeRuntimeError) -> NodeRuntime {
        try await start(configuration, on: eventLoop, makeEventHandler: { _ in onEvent })
    }

    /// Queues a message for totally ordered delivery to every member.
    ///
    /// Returns once the message is queued (not delivered); deliveries arrive as events.
    /// - Throws: `SubmitError` (too large, queue full, node not running).
    public func submit(_ payload: [UInt8], delivery: DeliveryMode = .agreed) async throws(SubmitError) {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, SubmitError>, Never>) in
            submit(payload, delivery: delivery) { continuation.resume(returning: $0) }
        }
        try result.get()
    }

    /// Queues a message and calls `completion` (on the loop thread) with the outcome.
    public func submit(
        _ payload: [UInt8], delivery: DeliveryMode = .agreed,
        completion: @escaping @Sendable (Result<Void, SubmitError>) -> Void
    ) {
        let node = node
        let accepted = eventLoop.execute {
            do throws(SubmitError) {
                try node.value.submit(payload, delivery: delivery)
                completion(.success(()))
            } catch {
                completion(.failure(error))
            }
        }
        if !accepted { completion(.failure(.notRunning)) }
    }

    /// Runs `body` with the node on its loop thread (for a layer above that lives there).
    ///
    /// - Returns: false, without running `body`, once the loop has stopped.
    @discardableResult
    public func withNode(_ body: @escaping @Sendable (RingNode) -> Void) -> Bool {
        let node = node
        return eventLoop.execute { body(node.value) }
    }

    /// Leaves the ring gracefully (the others reform without waiting for a timeout), closes
    /// the sockets, and stops the loop if this runtime owns it.
    public func leave() async {
        await runOnLoop { $0.leave() }
        stopOwnedLoop()
    }

    /// Stops at once without a LEAVE, as a crash would (the others notice by token loss).
    public func stop() async {
        await runOnLoop { $0.shutdown() }
        stopOwnedLoop()
    }

    /// A snapshot of the node's counters, or `nil` once its loop has stopped.
    public func statistics() async -> RuntimeStatistics? {
        let node = node
        return await withCheckedContinuation { (continuation: CheckedContinuation<RuntimeStatistics?, Never>) in
            let accepted = eventLoop.execute { continuation.resume(returning: node.value.statistics) }
            if !accepted { continuation.resume(returning: nil) }
        }
    }

    private func runOnLoop(_ body: @escaping @Sendable (RingNode) -> Void) async {
        let node = node
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let accepted = eventLoop.execute {
                body(node.value)
                continuation.resume()
            }
            if !accepted { continuation.resume() }
        }
    }

    private func stopOwnedLoop() {
        guard ownsEventLoop else { return }
        eventLoop.stop()
        eventLoop.join()
    }
}
