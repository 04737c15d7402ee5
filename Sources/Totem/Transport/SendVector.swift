// The message vector of one sendmmsg call: headers and iovecs pointing at datagrams and addresses
// that the caller keeps alive until the call. Owns only those two arrays.

import CSystem
import Glibc

/// Headers for sending up to `capacity` datagrams with one `sendmmsg` call, allocated once.
///
/// Entries point into memory owned elsewhere (a `SendBatch` slot, a transport's stored node
/// address); both must stay valid until `UDPSocket.send(_:)` returns. Confined to one thread.
final class SendVector {
    let capacity: Int
    let headers: UnsafeMutablePointer<csystem_mmsghdr>
    private let vectors: UnsafeMutablePointer<iovec>
    /// Entries filled since the last send.
    var count = 0

    init(capacity: Int) {
        precondition(capacity > 0 && capacity <= 1024, "send vector capacity \(capacity) outside 1...1024")
        self.capacity = capacity
        headers = .allocate(capacity: capacity)
        headers.initialize(repeating: csystem_mmsghdr(), count: capacity)
        vectors = .allocate(capacity: capacity)
        vectors.initialize(repeating: iovec(), count: capacity)
        for index in 0..<capacity {
            headers[index].msg_hdr.msg_iov = vectors + index
            headers[index].msg_hdr.msg_iovlen = 1
        }
    }

    deinit {
        headers.deinitialize(count: capacity)
        headers.deallocate()
        vectors.deinitialize(count: capacity)
        vectors.deallocate()
    }

    var isFull: Bool { count == capacity }

    /// Adds `datagram` for the address stored at `name`.
    func add(_ datagram: UnsafeRawBufferPointer, name: UnsafeMutablePointer<sockaddr_storage>, nameLength: socklen_t) {
        precondition(count < capacity, "send vector full (\(capacity))")
        vectors[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: datagram.baseAddress), iov_len: datagram.count)
        headers[count].msg_hdr.msg_name = UnsafeMutableRawPointer(name)
        headers[count].msg_hdr.msg_namelen = nameLength
        headers[count].msg_len = 0
        count += 1
    }
}
