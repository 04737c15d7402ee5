// The simulated clients of the services: what they ask a node to do (set and clear device
// states, set MWI, publish retained alerts) and when, drawn from the seed. It decides; the
// ServiceCluster performs.

import DeviceState
import Totem
import TotemSimulation

/// One client request to one node's services.
public enum ClientOperation: Sendable, Equatable, CustomStringConvertible {
    /// `devstate set DEVICE STATE`.
    case setDevice(String, DeviceStateValue)
    /// `devstate clear DEVICE`.
    case clearDevice(String)
    /// `mwi set MAILBOX NEW OLD`.
    case setMailbox(String, MailboxCounts)
    /// `event publish` of an alert, retained for the duration (`nil`: not retained).
    case publishAlert(retention: Duration?)

    public var description: String {
        switch self {
        case .setDevice(let device, let state): "set \(device) \(state.name)"
        case .clearDevice(let device): "clear \(device)"
        case .setMailbox(let mailbox, let counts): "mwi \(mailbox) \(counts)"
        case .publishAlert(let retention): "alert retained \(retention.map { "\($0.totalMilliseconds) ms" } ?? "no")"
        }
    }
}

/// A client request at a fixed time (scripted scenarios).
public struct ScriptedOperation: Sendable, Equatable {
    public var time: MonotonicInstant
    public var node: NodeID
    public var operation: ClientOperation

    public init(at time: Duration, node: NodeID, _ operation: ClientOperation) {
        self.time = MonotonicInstant.zero + time
        self.node = node
        self.operation = operation
    }
}

/// The clients of every node: each node's next request time and what it asks, from the seed.
///
/// A small set of device names and mailboxes is shared by all nodes, so that servers' states
/// of one device meet in the aggregate and MWI writers race; every `DeviceStateValue` is drawn.
struct ServiceWorkload {
    /// Devices every node's clients set: `Custom:` ones (UNKNOWN when nobody reports them) and
    /// channel devices (INVALID then); the hints name some of them.
    static let devices = ["Custom:alpha", "Custom:beta", "SIP/1001", "SIP/1002", "PJSIP/2001", "IAX2/3001"]
    /// Mailboxes every node's clients write.
    static let mailboxes = ["1001@default", "1002@default", "2001@sales"]

    private var random: SeededGenerator
    /// Per node: when its client asks next (virtual nanoseconds), `nil` once it stopped.
    private(set) var nextTick: [Int64?]
    private let meanInterval: Int64

    /// Clients of `nodeCount` nodes asking `operationsPerSecond` times a second each on average.
    init(seed: UInt64, nodeCount: Int, operationsPerSecond: Double) {
        random = SeededGenerator(seed: seed, stream: ServiceStream.workload)
        meanInterval = operationsPerSecond > 0 ? Int64(1e9 / operationsPerSecond) : Int64.max / 4
        nextTick = []
        for _ in 0..<nodeCount {
            nextTick.append(operationsPerSecond > 0 ? random.integer(in: 0...meanInterval) : nil)
        }
    }

    /// The earliest next request, if any.
    var earliest: Int64? { nextTick.compactMap { $0 }.min() }

    /// The request of node `index` now, and its next time (between 0.2 and 1.8 mean intervals on).
    mutating func take(node index: Int) -> ClientOperation {
        if let tick = nextTick[index] {
            nextTick[index] = tick + random.integer(in: meanInterval / 5 ... meanInterval * 9 / 5)
        }
        return operation()
    }

    /// Stops node `index`'s client (its server left for good).
    mutating func stop(node index: Int) {
        nextTick[index] = nil
    }

    private mutating func operation() -> ClientOperation {
        let device = Self.devices[random.index(below: Self.devices.count)]
        switch random.index(below: 20) {
        case 0..<10:
            return .setDevice(device, DeviceStateValue.allCases[random.index(below: DeviceStateValue.allCases.count)])
        case 10..<13:
            return .clearDevice(device)
        case 13..<16:
            let counts = MailboxCounts(newMessages: UInt32(random.index(below: 4)), oldMessages: UInt32(random.index(below: 6)))
            return .setMailbox(Self.mailboxes[random.index(below: Self.mailboxes.count)], counts)
        default:
            // Most alerts outlive the run's check, some expire before it, some are not retained.
            let retention: Duration? = random.chance(0.2) ? nil : random.duration(in: .milliseconds(500) ... .seconds(40))
            return .publishAlert(retention: retention)
        }
    }
}

/// The random streams of a service run (apart from TotemSimulation's `RandomStream`s).
enum ServiceStream {
    static let workload: UInt64 = 0x5E_0001
    static let diskCrashes: UInt64 = 0x5E_0002
    static let sweep: UInt64 = 0x5E_0003
}
