// Outgoing datagrams collected while one input's effects are executed, sent together afterwards.
// Owns the preallocated slots and the MTU check; which socket and address each goes to is the
// transport's business.

import Totem


/// Datagrams waiting to be sent, each with its destination, in the order they were queued.
///
/// The runtime encodes and seals each packet and appends the bytes here; the transport then
/// sends the whole batch with as few `sendmmsg` calls as possible. Slots are allocated once and
/// reused, so the send path allocates nothing.
///
/// Appending enforces the MTU budget: a datagram larger than `maxDatagramBytes` is a programming
/// error (the frame capacity was computed wrongly) and traps, since sending it would rely on IP
/// fragmentation (pitfall P12).
public final class SendBatch {
    /// Where a queued datagram goes.
    public enum Destination: Sendable, Equatable {
        /// Every node of the cluster (the group in udp mode, every listed node in udpu).
        case allNodes
        /// One node (tokens and commit tokens).
        case node(NodeID)
    }

    /// Most datagrams held before the runtime must flush.
    public let capacity: Int
    /// The largest datagram the transport may send: `netmtu` minus the IP and UDP headers.
    public let maxDatagramBytes: Int

    private let storage: UnsafeMutableRawPointer
    private var lengths: [Int]
    private var destinations: [Destination]

    /// Number of datagrams queued.
    public private(set) var count = 0

    /// Allocates `capacity` slots of `maxDatagramBytes` bytes.
    public init(capacity: Int, maxDatagramBytes: Int) {
        precondition(capacity > 0 && capacity <= 1024, "send batch capacity \(capacity) outside 1...1024")
        precondition(maxDatagramBytes > 0 && maxDatagramBytes <= 65_507, "datagram limit \(maxDatagramBytes) outside 1...65507")
        self.capacity = capacity
        self.maxDatagramBytes = maxDatagramBytes
        storage = .allocate(byteCount: capacity * maxDatagramBytes, alignment: 16)
        lengths = [Int](repeating: 0, count: capacity)
        destinations = [Destination](repeating: .allNodes, count: capacity)
    }

    deinit {
        storage.deallocate()
    }

    public var isEmpty: Bool { count == 0 }
    public var isFull: Bool { count == capacity }

    /// Copies `datagram` into the next slot.
    ///
    /// - Precondition: the batch is not full and `datagram.count <= maxDatagramBytes`.
    public func append(_ datagram: UnsafeRawBufferPointer, to destination: Destination) {
        precondition(count < capacity, "send batch full (\(capacity)); flush before appending")
        precondition(
            datagram.count <= maxDatagramBytes,
            "datagram of \(datagram.count) bytes exceeds the MTU budget of \(maxDatagramBytes)")
        precondition(!datagram.isEmpty, "empty datagram")
        let slot = storage + count * maxDatagramBytes
        slot.copyMemory(from: datagram.baseAddress!, byteCount: datagram.count)
        lengths[count] = datagram.count
        destinations[count] = destination
        count += 1
    }

    /// The bytes of queued datagram `index`; valid until `removeAll()`.
    public func datagram(at index: Int) -> UnsafeRawBufferPointer {
        precondition(index >= 0 && index < count, "entry \(index) outside 0..<\(count)")
        return UnsafeRawBufferPointer(start: storage + index * maxDatagramBytes, count: lengths[index])
    }

    /// The destination of queued datagram `index`.
    public func destination(at index: Int) -> Destination {
        precondition(index >= 0 && index < count, "entry \(index) outside 0..<\(count)")
        return destinations[index]
    }

    /// Forgets every queued datagram, keeping the memory.
    public func removeAll() {
        count = 0
    }
}
