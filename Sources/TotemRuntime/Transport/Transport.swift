// The interface between the runtime and a UDP transport (udp multicast or udpu), the statistics
// they share, and the factory choosing one from the configuration. No Totem logic lives here.

import Totem


/// What arrives on one of a transport's receiving sockets; the runtime drains multicast
/// channels before it hands a token to the core (spec §6.2 `receiveFlush`, pitfall P1).
public enum ChannelRole: Sendable, Equatable {
    /// Only multicast datagrams (the udp group socket).
    case multicast
    /// Only datagrams addressed to this node (the udp token socket).
    case unicast
    /// Everything (the single udpu socket, whose order per sender is already preserved).
    case multicastAndUnicast
}

/// A receiving socket the event loop watches.
public struct ReceiveChannel: Sendable, Equatable {
    public var fileDescriptor: Int32
    public var role: ChannelRole
}

/// Counters a transport keeps, summed over its sockets.
public struct TransportStatistics: Sendable, Equatable {
    /// Totals of the transport's sockets (datagrams, bytes, truncation, kernel drops, errors).
    public var sockets = UDPSocket.Counters()
    /// Datagrams from a source address that is not a listed node, dropped.
    public var unlistedSourceDrops = 0
    /// Unicasts for a node without a configured address, dropped.
    public var unknownDestinationDrops = 0

    public init() {}
}

/// A UDP transport: sends datagrams to every node or to one node, and receives them.
///
/// "Every node" means every node but this one: the runtime delivers its own multicasts to
/// itself, unless `loopsBackOwnMulticasts` says the network already does (spec §6.1: self-delivery
/// is mandatory). Implementations are confined to the event-loop thread.
public protocol Transport: AnyObject {
    /// The largest datagram sent or accepted: `netmtu − IP/UDP header`.
    var maxDatagramBytes: Int { get }
    /// Whether this node's own multicasts come back through the network.
    var loopsBackOwnMulticasts: Bool { get }
    /// The sockets to watch for incoming datagrams.
    var channels: [ReceiveChannel] { get }
    /// What was sent, received and dropped so far.
    var statistics: TransportStatistics { get }
    /// Datagrams whose send failed so far (`statistics.sockets.sendErrors`), without building
    /// the statistics: the runtime reads it after every batch of sends.
    var sendErrorCount: Int { get }
    /// Whether a receiving socket may hand over several datagrams in one message (UDP_GRO):
    /// the runtime must then receive into a `ReceiveBatch` made with `coalesced`.
    var receivesCoalesced: Bool { get }
    /// One line per socket for the start-up log (addresses and the buffer sizes granted).
    var setupReport: [String] { get }

    /// Sends every datagram of `batch`, in order, to its destination. Failures are counted.
    /// The caller empties the batch afterwards.
    func send(_ batch: SendBatch)
    /// Things the transport changed on its own since the last call (a kernel refusing
    /// segmentation offload), one log line each; empty nearly always.
    func takeNotices() -> [String]
    /// Whether the kernel reported since the last `takeUnreachableNodes()` that nothing listens
    /// at a node's address (ICMP port unreachable for a datagram sent to it). Cheap: the runtime
    /// reads it after every batch of sends and receives.
    var hasUnreachableNodes: Bool { get }
    /// The nodes reported unreachable since the last call, each once, oldest report first.
    func takeUnreachableNodes() -> [NodeID]
    /// Reads the datagrams waiting on channel `index` into `batch` (at most its capacity);
    /// entries that must not be processed (truncated, unlisted source) are marked dropped.
    /// - Returns: the number of entries filled; 0 when nothing was waiting.
    func receive(on index: Int, into batch: ReceiveBatch) -> Int
    /// Closes every socket.
    func close()
}

extension Transport {
    public func takeNotices() -> [String] { [] }

    /// The set-up report's words for the unreachable reports: `nil` when the configuration
    /// turned them off, else whether the kernel accepted the option.
    static func describe(unreachableReports: Bool?) -> String {
        switch unreachableReports {
        case nil: "off"
        case true?: "on"
        case false?: "unavailable"
        }
    }
}

/// Opens the transport `configuration` describes.
///
/// - Throws: `SystemError` when a socket cannot be opened, configured or bound (address not
///   on this host, port in use, ...).
public func makeTransport(_ configuration: TransportConfiguration) throws(SystemError) -> any Transport {
    switch configuration.mode {
    case .udp(let group): try MulticastTransport(configuration, group: group)
    case .udpu: try UnicastTransport(configuration)
    }
}
