// What happened in a simulation, as values: the input of the PropertyChecker, and its
// deterministic rendering as JSON Lines. It records; it does not judge.

import Totem

/// The identity of an application message in a simulation: the K-th message (from 1) that the
/// application of node N submitted successfully in its I-th incarnation. Printed `N.I.K`.
public struct MessageID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var node: NodeID
    public var incarnation: UInt32
    public var index: UInt32

    public init(node: NodeID, incarnation: UInt32, index: UInt32) {
        self.node = node
        self.incarnation = incarnation
        self.index = index
    }

    public static func < (lhs: MessageID, rhs: MessageID) -> Bool {
        (lhs.node, lhs.incarnation, lhs.index) < (rhs.node, rhs.incarnation, rhs.index)
    }

    public var description: String { "\(node.rawValue).\(incarnation).\(index)" }
}

/// One delivery as the simulator observed it.
public struct DeliveryRecord: Sendable, Equatable {
    /// The message id read from the payload's envelope, `nil` if the payload has none.
    public var id: MessageID?
    /// The sender the core reported.
    public var sender: NodeID
    /// The ring the core says the message was originated in.
    public var ringID: RingID
    public var delivery: DeliveryMode
    /// Size and FNV-1a digest of the delivered payload (envelope included).
    public var size: Int
    public var digest: UInt64

    public init(id: MessageID?, sender: NodeID, ringID: RingID, delivery: DeliveryMode, size: Int, digest: UInt64) {
        self.id = id
        self.sender = sender
        self.ringID = ringID
        self.delivery = delivery
        self.size = size
        self.digest = digest
    }
}

/// One event of a simulation trace.
public struct TraceEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Node `node` starts its `incarnation`-th incarnation (1 at time 0, then one per restart).
        case start(node: NodeID, incarnation: UInt32)
        case crash(node: NodeID)
        /// The node left the ring gracefully (scripted scenarios only).
        case leave(node: NodeID)
        /// The application on `id.node` submitted message `id` and the core accepted it.
        case send(id: MessageID, size: Int, digest: UInt64, delivery: DeliveryMode)
        case deliver(node: NodeID, DeliveryRecord)
        case configuration(node: NodeID, ConfigurationChange)
        /// Faults stop: from here on the run must converge.
        case heal
        case end
    }

    /// Virtual time.
    public var time: MonotonicInstant
    public var kind: Kind

    public init(time: MonotonicInstant, kind: Kind) {
        self.time = time
        self.kind = kind
    }
}

/// The events of one simulation, in time order across all nodes.
public struct Trace: Sendable {
    public private(set) var events: [TraceEvent] = []
    public private(set) var sendCount = 0
    public private(set) var deliveryCount = 0
    public private(set) var configurationCount = 0

    public init() {}

    public init(events: [TraceEvent]) {
        for event in events { append(event) }
    }

    public mutating func append(_ event: TraceEvent) {
        if let last = events.last {
            precondition(last.time <= event.time, "trace goes back in time: \(event.time) after \(last.time)")
        }
        switch event.kind {
        case .send: sendCount += 1
        case .deliver: deliveryCount += 1
        case .configuration: configurationCount += 1
        default: break
        }
        events.append(event)
    }

    /// The trace as JSON Lines, one object per event, keys in a fixed order. Deterministic:
    /// the same events always give the same bytes.
    public func renderJSONLines() -> String {
        var output = ""
        output.reserveCapacity(events.count * 64)
        for event in events {
            Self.render(event, into: &output)
            output.append("\n")
        }
        return output
    }

    /// Renders one event as a JSON object (no newline).
    public static func render(_ event: TraceEvent, into output: inout String) {
        output.append("{\"t\":")
        output.append(String(event.time.milliseconds))
        switch event.kind {
        case .start(let node, let incarnation):
            output.append(",\"node\":\(node.rawValue),\"ev\":\"start\",\"inc\":\(incarnation)}")
        case .crash(let node):
            output.append(",\"node\":\(node.rawValue),\"ev\":\"crash\"}")
        case .leave(let node):
            output.append(",\"node\":\(node.rawValue),\"ev\":\"leave\"}")
        case .send(let id, let size, _, let delivery):
            output.append(",\"node\":\(id.node.rawValue),\"ev\":\"send\",\"id\":\"\(id)\",\"size\":\(size)")
            if delivery == .safe { output.append(",\"safe\":true") }
            output.append("}")
        case .deliver(let node, let record):
            output.append(",\"node\":\(node.rawValue),\"ev\":\"deliver\",\"id\":\"")
            output.append(record.id.map { String(describing: $0) } ?? "?")
            output.append("\",\"ring\":\"\(record.ringID)\"}")
        case .configuration(let node, let change):
            output.append(",\"node\":\(node.rawValue),\"ev\":\"config\",\"kind\":\"\(change.kind.rawValue)\"")
            output.append(",\"ring\":\"\(change.ringID)\",\"members\":")
            appendList(change.members, to: &output)
            switch change.kind {
            case .transitional:
                output.append(",\"left\":")
                appendList(change.left, to: &output)
            case .regular:
                output.append(",\"joined\":")
                appendList(change.joined, to: &output)
            }
            output.append("}")
        case .heal:
            output.append(",\"ev\":\"heal\"}")
        case .end:
            output.append(",\"ev\":\"end\"}")
        }
    }

    private static func appendList(_ nodes: [NodeID], to output: inout String) {
        output.append("[")
        for (position, node) in nodes.enumerated() {
            if position > 0 { output.append(",") }
            output.append(String(node.rawValue))
        }
        output.append("]")
    }
}
