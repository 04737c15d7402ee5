// Preallocated memory for one batched receive (recvmmsg): datagram buffers, source addresses and
// control data. Owns the memory and its per-call reset; the socket call lives in UDPSocket.

import CSystem
import Glibc
import Totem

/// Buffers for receiving up to `capacity` messages with one `recvmmsg` call, allocated once,
/// and the datagrams they hold.
///
/// Without coalescing, a message is one datagram, and every buffer holds `maxDatagramBytes + 1`
/// bytes, so a datagram longer than the largest one we accept is recognisable (it fills the extra
/// byte, and the kernel sets `MSG_TRUNC`) and is dropped instead of being processed cut short
/// (spec §6.4).
///
/// With `coalesced` (the socket has UDP_GRO on), the kernel may hand over a whole run of
/// datagrams a peer sent as one segmented send in one message, with the segment size as
/// ancillary data: buffers then hold 64 KiB, and `split` cuts each message back into its
/// datagrams. Either way the entries `0..<count` are datagrams, each with its sender's address.
///
/// Confined to the thread that uses it (the event loop); it is deliberately not `Sendable`.
public final class ReceiveBatch {
    /// Most messages one receive call returns.
    public let capacity: Int
    /// The largest datagram accepted; longer ones are reported as truncated.
    public let maxDatagramBytes: Int
    /// Whether messages may carry several datagrams (UDP_GRO).
    public let coalesced: Bool
    /// Bytes per buffer: `maxDatagramBytes + 1`, or 64 KiB when coalesced.
    let bufferBytes: Int
    /// Room for the SO_RXQ_OVFL and UDP_GRO items with their headers, per message.
    static let controlBytes = 64
    /// The most datagrams the kernel coalesces into one message (UDP_GRO_CNT_MAX).
    static let maxSegmentsPerMessage = 64

    let buffers: UnsafeMutableRawPointer
    let headers: UnsafeMutablePointer<csystem_mmsghdr>
    private let vectors: UnsafeMutablePointer<iovec>
    private let names: UnsafeMutablePointer<sockaddr_storage>
    private let control: UnsafeMutableRawPointer
    /// Per datagram entry: where it starts in `buffers`, its length, its message, and whether
    /// the transport dropped it after receipt (truncated, unlisted source).
    private let entryCapacity: Int
    private let entryOffsets: UnsafeMutablePointer<Int>
    private let entryLengths: UnsafeMutablePointer<Int>
    private let entryMessages: UnsafeMutablePointer<Int>
    private let dropped: UnsafeMutablePointer<Bool>

    /// Datagrams filled in by the last receive; entries `0..<count` are valid.
    public internal(set) var count = 0
    /// Messages the last receive call filled; when it equals `capacity`, more may be waiting.
    public internal(set) var messageCount = 0
    /// Datagrams of the last receive that did not fit the entries (see `split`).
    public internal(set) var overflowDatagrams = 0

    /// Allocates buffers for `capacity` messages of up to `maxDatagramBytes` each, or of up to
    /// 64 KiB of coalesced datagrams with `coalesced`.
    public init(capacity: Int, maxDatagramBytes: Int, coalesced: Bool = false) {
        precondition(capacity > 0 && capacity <= 1024, "receive batch capacity \(capacity) outside 1...1024")
        precondition(maxDatagramBytes > 0 && maxDatagramBytes <= 65_535, "datagram limit \(maxDatagramBytes) outside 1...65535")
        self.capacity = capacity
        self.maxDatagramBytes = maxDatagramBytes
        self.coalesced = coalesced
        bufferBytes = coalesced ? 65_536 : maxDatagramBytes + 1
        buffers = .allocate(byteCount: capacity * bufferBytes, alignment: 16)
        headers = .allocate(capacity: capacity)
        headers.initialize(repeating: csystem_mmsghdr(), count: capacity)
        vectors = .allocate(capacity: capacity)
        names = .allocate(capacity: capacity)
        names.initialize(repeating: sockaddr_storage(), count: capacity)
        control = .allocate(byteCount: capacity * Self.controlBytes, alignment: 16)
        entryCapacity = coalesced ? capacity * Self.maxSegmentsPerMessage : capacity
        entryOffsets = .allocate(capacity: entryCapacity)
        entryOffsets.initialize(repeating: 0, count: entryCapacity)
        entryLengths = .allocate(capacity: entryCapacity)
        entryLengths.initialize(repeating: 0, count: entryCapacity)
        entryMessages = .allocate(capacity: entryCapacity)
        entryMessages.initialize(repeating: 0, count: entryCapacity)
        dropped = .allocate(capacity: entryCapacity)
        dropped.initialize(repeating: false, count: entryCapacity)
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
        entryOffsets.deinitialize(count: entryCapacity)
        entryOffsets.deallocate()
        entryLengths.deinitialize(count: entryCapacity)
        entryLengths.deallocate()
        entryMessages.deinitialize(count: entryCapacity)
        entryMessages.deallocate()
        dropped.deinitialize(count: entryCapacity)
        dropped.deallocate()
    }

    /// Resets the fields the kernel overwrites, before every receive call.
    func prepare() {
        count = 0
        messageCount = 0
        for index in 0..<capacity {
            headers[index].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            headers[index].msg_hdr.msg_controllen = Self.controlBytes
            headers[index].msg_hdr.msg_flags = 0
            headers[index].msg_len = 0
        }
    }

    /// Turns the `messages` the kernel filled into datagram entries: one per message, or, for
    /// a message carrying a UDP_GRO segment size, one per segment (the last may be shorter).
    /// Datagrams beyond the entry capacity (never seen: the kernel coalesces at most 64 per
    /// message) are left out and counted in `overflowDatagrams`.
    func split(messages: Int) {
        messageCount = messages
        count = 0
        overflowDatagrams = 0
        for message in 0..<messages {
            let length = Int(headers[message].msg_len)
            var segment = length
            if coalesced {
                let size = withUnsafePointer(to: &headers[message].msg_hdr) { Int(csystem_udp_gro_segment_size($0)) }
                if size > 0 { segment = size }
            }
            var offset = 0
            repeat {
                let piece = min(segment, length - offset)
                if count < entryCapacity {
                    entryOffsets[count] = message * bufferBytes + offset
                    entryLengths[count] = piece
                    entryMessages[count] = message
                    dropped[count] = false
                    count += 1
                } else {
                    overflowDatagrams += 1
                }
                offset += piece
            } while offset < length
        }
    }

    /// The number of bytes received into entry `index`.
    public func length(at index: Int) -> Int {
        precondition(index >= 0 && index < count, "entry \(index) outside 0..<\(count)")
        return entryLengths[index]
    }

    /// The received bytes of entry `index`, writable so that decryption can work in place.
    public func bytes(at index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: buffers + entryOffsets[index], count: length(at: index))
    }

    /// The sender's address of entry `index`, or `nil` for an unexpected address family.
    public func source(at index: Int) -> SocketAddress? {
        precondition(index >= 0 && index < count, "entry \(index) outside 0..<\(count)")
        let message = entryMessages[index]
        return SocketAddress(UnsafeRawPointer(names + message), length: Int(headers[message].msg_hdr.msg_namelen))
    }

    /// Whether entry `index` was longer than `maxDatagramBytes` and so is incomplete.
    public func isTruncated(at index: Int) -> Bool {
        length(at: index) > maxDatagramBytes || headers[entryMessages[index]].msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0
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

    /// The kernel's SO_RXQ_OVFL drop counter carried by the message of entry `index`, or `nil`
    /// if absent.
    func receiveQueueOverflowCount(at index: Int) -> Int64? {
        let message = entryMessages[index]
        let value = withUnsafePointer(to: &headers[message].msg_hdr) { csystem_receive_queue_overflow_count($0) }
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
