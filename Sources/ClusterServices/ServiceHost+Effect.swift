// What the services' host asks of its shell: the effects, the timers they arm, the notifications
// pushed to watchers and the log lines. The vocabulary only; the host's inputs make them.

import DeviceState
import EventService
import Membership
import Totem

extension ServiceHost {
    /// What the shell must do, in the order returned (swift-cluster-membership's directives).
    ///
    /// How to execute a batch (the effects one input appended):
    /// - `submit`s go to the ring in order. When the ring refuses one with `tryAgain`, submit no
    ///   later one of the batch: once the rest of the batch is executed, hand the refused message
    ///   and every later `submit` of the batch, in order, to `submitRefused(_:now:into:)` (they go
    ///   back to the head of the backlog). Any other refusal goes to `submitFailed`.
    /// - The other effects run in order, whatever the submits' fate.
    /// - An input that arrives while a batch runs (a connection's close handler, say) uses an
    ///   array of its own for its effects.
    public enum Effect: Sendable, Equatable {
        /// Submit `message` (its `ServiceID` byte first) to the ring. `queued`: it waited in the
        /// backlog (pass it back to `submitFailed`).
        case submit([UInt8], queued: Bool)
        /// Record this change of `deviceState.localState` durably, in order with earlier ones.
        case persist(LocalStateChange)
        /// Arm `timer` for `at`, replacing its earlier deadline; call `timerFired` then.
        case armTimer(Timer, at: MonotonicInstant)
        /// Disarm `timer` if armed.
        case disarmTimer(Timer)
        /// Push `notification` to these watchers (ascending), each of whose topics wants it.
        case push(Notification, to: [ClientID])
        /// Pass `event` to `client`, for its event subscription `subscription`; `replayed`: from
        /// the retention store (an event older than the subscription), else live.
        case deliverEvent(DeliveredEvent, subscription: SubscriptionID, client: ClientID, replayed: Bool)
        /// Stop reading `client`'s requests (its ring messages queue up); until `release`.
        case hold(ClientID)
        /// Read these clients' requests again.
        case release([ClientID])
        /// The answer to the `ping` that returned this id.
        case answerPing(PingID, Result<PingResult, ServiceHostError>)
        /// Write a log line.
        case log(LogLevel, LogLine)
    }

    /// The host's timers; at most one deadline each.
    public enum Timer: Int, Sendable, Hashable, CaseIterable {
        /// Retry the submit backlog.
        case backlog
        /// Check whether held clients can be released.
        case release
        /// Expire retained events.
        case expiry
        /// Finish the pings whose time is up.
        case ping
    }

    /// The levels of the host's log lines, as syslog's.
    public enum LogLevel: Int, Sendable, Comparable, CaseIterable {
        case debug, info, notice, warning, error

        public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// A log line, built as text only when written (some come with every delivery).
    public enum LogLine: Sendable, Equatable, CustomStringConvertible {
        /// A line already written.
        case text(String)
        /// A device's cluster-wide state moved (debug, with every change of an aggregate).
        case deviceStateChanged(DeviceStateChange)

        public var description: String {
            switch self {
            case .text(let text): text
            case .deviceStateChanged(let change): "device \(change.device): \(change.old.name) -> \(change.new.name)"
            }
        }
    }

    /// What a watcher is told, by topic (`WatchTopic`).
    public enum Notification: Sendable, Equatable {
        /// A membership change (`membership`); `graceful` tells whether a `left` node left
        /// gracefully (false for the other changes).
        case membership(MembershipChange, graceful: Bool)
        /// A device's cluster-wide state changed (`device`).
        case device(DeviceStateChange)
        /// A hint's extension state changed (`extension`); `devices` is its device list.
        case extensionState(ExtensionStateChange, devices: String)
        /// A mailbox's cluster-wide counts changed (`mwi`).
        case mailbox(MailboxChange)
        /// Another server's own state of a device changed (`servers`).
        case serverDevice(ServerStateChange)
        /// A server whose device states this node held left the ring (`servers`).
        case serverLeft(entity: EntityID, node: NodeID)

        /// The topic whose watchers want it.
        public var topic: WatchTopic {
            switch self {
            case .membership: .membership
            case .device: .device
            case .extensionState: .extension
            case .mailbox: .mwi
            case .serverDevice, .serverLeft: .servers
            }
        }
    }

    // MARK: Helpers for the inputs

    /// Appends a log line.
    static func log(_ level: LogLevel, _ text: String, into effects: inout [Effect]) {
        effects.append(.log(level, .text(text)))
    }

    /// Appends a warning at most once per `limitedLogInterval` for `key` (a fixed, small set),
    /// saying how many similar lines were held back since the last one.
    mutating func logLimited(_ key: String, _ message: @autoclosure () -> String, now: MonotonicInstant,
                             into effects: inout [Effect]) {
        guard let heldBack = limitedLog.admit(key, now: now) else { return }
        let more = heldBack > 0 ? " (\(heldBack) similar since the last such line, not logged)" : ""
        Self.log(.warning, message() + more, into: &effects)
    }

    /// Pushes `notification` to the watchers of its topic; `make` runs only when one wants it.
    func push(_ make: @autoclosure () -> Notification, topic: WatchTopic, into effects: inout [Effect]) {
        let clients = watchers.clients(watching: topic)
        guard !clients.isEmpty else { return }
        let notification = make()
        assert(notification.topic == topic, "\(notification) pushed as \(topic)")
        effects.append(.push(notification, to: clients))
    }
}
