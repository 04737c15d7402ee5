// Preallocated memory for one batched receive (recvmmsg): datagram buffers, source addresses and
// control data. Owns the memory and its per-call reset; the socket call lives in UDPSocket.

import CSystem
import Glibc

/// Buffers for receiving up to `capacity` datagrams with one `recvmmsg` call, allocated once.
///
/// Every buffer holds `maxDatagramBytes + 1` bytes, so a datagram longer than the largest one
/// we accept is recognisable (it fills the extra byte, and the kernel sets `MSG_TRUNC`) and is
/// dropped instead of being processed cut short (spec §6.4).
///
/// Confined to the thread that uses it (the event loop); it is deliberately not `Sendable`.
public final class ReceiveBatch {
    /// Most datagrams one receive call returns.
    public let capacity: Int
    /// The largest datagram accepted; longer ones are reported as truncated.
    public let maxDatagramBytes: Int
    /// Bytes per buffer: `maxDatagramBytes + 1`.
    let bufferBytes: Int
    /// Room for one SO_RXQ_OVFL item (a 32-bit counter) with its header, per datagram.
    static let controlBytes = 64

    let buffers: UnsafeMutableRawPointer
    let headers: UnsafeMutablePointer<csystem_mmsghdr>
    private let vectors: UnsafeMutablePointer<iovec>
    private let names: UnsafeMutablePointer<sockaddr_storage>
    private let control: UnsafeMutableRawPointer
    /// Entries dropped by the transport after receipt (truncated, unlisted source).
    private let dropped: UnsafeMutablePointer<Bool>

    /// Datagrams filled in by the last receive; entries `0..<count` are valid.
    public internal(set) var count = 0

    /// Allocates buffers for `capacity` datagrams of up to `maxDatagramBytes` each.
    public init(capacity: Int, maxDatagramBytes: Int) {
        precondition(capacity > 0 && capacity <= 1024, "receive batch capacity \(capacity) outside 1...1024")
        precondition(maxDatagramBytes > 0 && maxDatagramBytes <= 65_535, "datagram limit \(maxDatagramBytes) outside 1...65535")
        self.capacity = capacity
        self.maxDatagramBytes = maxDatagramBytes
        bufferBytes = maxDatagramBytes + 1
        buffers = .allocate(byteCount: capacity * bufferBytes, alignment: 16)
        headers = .allocate(capacity: capacity)
        headers.initialize(repeating: csystem_mmsghdr(), count: capacity)
        vectors = .allocate(capacity: capacity)
        names = .allocate(capacity: capacity)
        names.initialize(repeating: sockaddr_storage(), count: capacity)
        control = .allocate(byteCount: capacity * Self.controlBytes, alignment: 16)
        dropped = .allocate(capacity: capacity)
        dropped.initialize(repeating: false, count: capacity)
        for index in 0..<capacity {
            vectors[index] = iovec(iov_base: buffers + index * bufferBytes, iov_len: bufferBytes)
            headers[index].msg_hdr.msg_iov = vectors + index
            headers[index].msg_hdr.msg_iovlen = 1
            headers[index].msg_hdr.msg_name = UnsafeMutableRawPointer(names + index)
            headers[index].msg_hdr.msg_control = control + index * Self.controlBytes
        }
        prepare()
    }

    deinit {
        buffers.deallocate()
        headers.deinitialize(count: capacity)
        headers.deallocate()
        vectors.deallocate()
        names.deinitialize(count: capacity)
        names.deallocate()
        control.deallocate()
        dropped.deinitialize(count: capacity)
        dropped.deallocate()
    }

    /// Resets the fields the kernel overwrites, before every receive call.
    func prepare() {
        count = 0
        for index in 0..<capacity {
            headers[index].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            headers[index].msg_hdr.msg_controllen = Self.controlBytes
            headers[index].msg_hdr.msg_flags = 0
            headers[index].msg_len = 0
            dropped[index] = false
        }
    }

    /// The number of bytes received into entry `index` (at most `maxDatagramBytes + 1`).
    public func length(at index: Int) -> Int {
        precondition(index >= 0 && index < count, "entry \(index) outside 0..<\(count)")
        return Int(headers[index].msg_len)
    }

    /// The received bytes of entry `index`, writable so that decryption can work in place.
    public func bytes(at index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: buffers + index * bufferBytes, count: length(at: index))
    }

    /// The sender's address of entry `index`, or `nil` for an unexpected address family.
    public func source(at index: Int) -> SocketAddress? {
        precondition(index >= 0 && index < count, "entry \(index) outside 0..<\(count)")
        return SocketAddress(UnsafeRawPointer(names + index), length: Int(headers[index].msg_hdr.msg_namelen))
    }

    /// Whether entry `index` was longer than `maxDatagramBytes` and so is incomplete.
    public func isTruncated(at index: Int) -> Bool {
        length(at: index) > maxDatagramBytes || headers[index].msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0
    }

    /// Whether the transport dropped entry `index` after receipt; such entries must be skipped.
    public func isDropped(at index: Int) -> Bool {
        precondition(index >= 0 && index < count, "entry \(index) outside 0..<\(count)")
        return dropped[index]
    }

    /// Marks entry `index` as dropped (the transport counts why).
    func drop(at index: Int) {
        precondition(index >= 0 && index < count, "entry \(index) outside 0..<\(count)")
        dropped[index] = true
    }

    /// The kernel's SO_RXQ_OVFL drop counter carried by entry `index`, or `nil` if absent.
    func receiveQueueOverflowCount(at index: Int) -> Int64? {
        let value = withUnsafePointer(to: &headers[index].msg_hdr) { csystem_receive_queue_overflow_count($0) }
        return value >= 0 ? value : nil
    }
}

extension ReceiveBatch {
    /// Drops the first `count` entries whose source is not a configured node
    /// (`block_unlisted_ips`, spec §6.3). Returns how many were dropped.
    func dropUnlistedSources(count: Int, nodes: NodeAddressTable, matchingPort: Bool) -> Int {
        var dropped = 0
        for entry in 0..<count where !isDropped(at: entry) {
            guard let source = source(at: entry), nodes.contains(source: source, matchingPort: matchingPort) else {
                drop(at: entry)
                dropped += 1
                continue
            }
        }
        return dropped
    }
}
