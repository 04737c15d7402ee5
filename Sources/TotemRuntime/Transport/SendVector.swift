// The message vector of one sendmmsg call: headers and iovecs pointing at datagrams and addresses
// that the caller keeps alive until the call, and the UDP_SEGMENT control items that let one entry
// carry a run of datagrams. Owns only those arrays.

import CSystem
import Glibc
import Totem

/// Headers for sending up to `capacity` datagrams with one `sendmmsg` call, allocated once.
///
/// Added with `coalescing` (the socket offers UDP generic segmentation offload), consecutive
/// datagrams to the same address share one entry when the kernel can cut them apart again: every
/// datagram of the run except the last has the run's first length, the last is no longer, at
/// most `maxSegments` datagrams and `maxRunBytes` bytes. The kernel then builds one packet for
/// the whole run and segments it as late as it can (on this host's veth and bridge path: only at
/// the receiving socket), so routing, netfilter and the bridge are paid once per run instead of
/// once per datagram. On the wire, and for receivers, nothing changes: they get the same
/// datagrams, in order.
///
/// Entries point into memory owned elsewhere (a `SendBatch` slot, a transport's stored node
/// address); both must stay valid until `UDPSocket.send(_:)` returns. Confined to one thread.
final class SendVector {
    /// The most datagrams one entry carries (the kernel's UDP_MAX_SEGMENTS is 64 or more).
    static let maxSegments = 64
    /// The most payload bytes one entry carries (a UDP datagram's length field is 16 bits).
    static let maxRunBytes = 65_000

    /// Most datagrams held.
    let capacity: Int
    let headers: UnsafeMutablePointer<csystem_mmsghdr>
    private let vectors: UnsafeMutablePointer<iovec>
    private let controls: UnsafeMutableRawPointer
    private let controlBytes: Int
    /// Per entry: its datagram count.
    private let segments: UnsafeMutablePointer<Int>
    /// Entries filled since the last send.
    private(set) var count = 0
    /// Datagrams held by those entries.
    private(set) var datagramCount = 0

    init(capacity: Int) {
        precondition(capacity > 0 && capacity <= 1024, "send vector capacity \(capacity) outside 1...1024")
        self.capacity = capacity
        headers = .allocate(capacity: capacity)
        headers.initialize(repeating: csystem_mmsghdr(), count: capacity)
        vectors = .allocate(capacity: capacity)
        vectors.initialize(repeating: iovec(), count: capacity)
        controlBytes = csystem_udp_segment_control_bytes()
        controls = .allocate(byteCount: capacity * controlBytes, alignment: 16)
        controls.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * controlBytes)
        segments = .allocate(capacity: capacity)
        segments.initialize(repeating: 0, count: capacity)
    }

    deinit {
        headers.deinitialize(count: capacity)
        headers.deallocate()
        vectors.deinitialize(count: capacity)
        vectors.deallocate()
        controls.deallocate()
        segments.deinitialize(count: capacity)
        segments.deallocate()
    }

    var isFull: Bool { datagramCount == capacity }

    /// The number of datagrams entry `index` carries.
    func segmentCount(at index: Int) -> Int { segments[index] }

    /// Datagram `segment` of entry `index`.
    func datagram(at index: Int, segment: Int) -> UnsafeRawBufferPointer {
        let vector = headers[index].msg_hdr.msg_iov[segment]
        return UnsafeRawBufferPointer(start: vector.iov_base, count: vector.iov_len)
    }

    /// Adds `datagram` for the address stored at `name`; with `coalescing` (the sending socket's
    /// `segmentationOffload`), as part of the last entry's run where it can join it.
    func add(
        _ datagram: UnsafeRawBufferPointer, name: UnsafeMutablePointer<sockaddr_storage>, nameLength: socklen_t,
        coalescing: Bool = false
    ) {
        precondition(datagramCount < capacity, "send vector full (\(capacity))")
        let base = UnsafeMutableRawPointer(mutating: datagram.baseAddress)
        vectors[datagramCount] = iovec(iov_base: base, iov_len: datagram.count)
        datagramCount += 1
        if coalescing && count > 0 && joinsLastEntry(datagram.count, name: name) {
            let last = count - 1
            headers[last].msg_hdr.msg_iovlen += 1
            segments[last] += 1
            if segments[last] == 2 {
                let segmentBytes = UInt16(headers[last].msg_hdr.msg_iov[0].iov_len)
                csystem_set_udp_segment(&headers[last].msg_hdr, controls + last * controlBytes, segmentBytes)
            }
            return
        }
        headers[count].msg_hdr.msg_iov = vectors + datagramCount - 1
        headers[count].msg_hdr.msg_iovlen = 1
        headers[count].msg_hdr.msg_name = UnsafeMutableRawPointer(name)
        headers[count].msg_hdr.msg_namelen = nameLength
        headers[count].msg_hdr.msg_control = nil
        headers[count].msg_hdr.msg_controllen = 0
        headers[count].msg_len = 0
        segments[count] = 1
        count += 1
    }

    /// Whether a datagram of `length` bytes to `name` can extend the last entry.
    private func joinsLastEntry(_ length: Int, name: UnsafeMutablePointer<sockaddr_storage>) -> Bool {
        let last = count - 1
        let header = headers[last].msg_hdr
        guard header.msg_name == UnsafeMutableRawPointer(name), segments[last] < Self.maxSegments else { return false }
        let segmentBytes = header.msg_iov[0].iov_len
        // A shorter datagram may only end a run: the kernel cuts at every segmentBytes.
        guard length <= segmentBytes, header.msg_iov[segments[last] - 1].iov_len == segmentBytes else { return false }
        return segments[last] * segmentBytes + length <= Self.maxRunBytes
    }

    /// Forgets every entry.
    func removeAll() {
        count = 0
        datagramCount = 0
    }
}
