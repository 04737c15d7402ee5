// A client connection to one daemon's control socket (line-JSON, docs/control-protocol.md):
// non-blocking Unix stream socket, a reusable receive buffer scanned for newlines in place,
// and bounded waits. JSON trees are built only for rare replies (members, settings), never per
// event.

import Foundation
import Glibc

final class ControlConnection {
    let path: String
    let descriptor: Int32
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var nextID = 1_000_000
    /// Whether the daemon closed the connection.
    private(set) var closed = false

    /// Connects to `path`, retrying every 20 ms until `timeout` (a daemon may still be starting).
    init(path: String, timeout: Double = 5, bufferBytes: Int = 1 << 21) throws {
        self.path = path
        buffer = [UInt8](repeating: 0, count: bufferBytes)
        let deadline = monotonicNanoseconds() + UInt64(timeout * 1e9)
        var lastError: Int32 = 0
        for _ in 0..<100_000 {
            let socketDescriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard socketDescriptor >= 0 else { throw BenchError("socket: errno \(errno)") }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let pathBytes = Array(path.utf8)
            guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                close(socketDescriptor)
                throw BenchError("socket path too long: \(path)")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (index, byte) in pathBytes.enumerated() { raw[index] = byte }
            }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(socketDescriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            if result == 0 {
                _ = fcntl(socketDescriptor, F_SETFL, fcntl(socketDescriptor, F_GETFL) | O_NONBLOCK)
                descriptor = socketDescriptor
                return
            }
            lastError = errno
            close(socketDescriptor)
            guard monotonicNanoseconds() < deadline else { break }
            usleep(20_000)
        }
        throw BenchError("cannot connect to \(path): \(String(cString: strerror(lastError)))")
    }

    deinit { close(descriptor) }

    /// Writes all of `bytes`, waiting for the socket to drain; false when the deadline passes or the
    /// connection breaks.
    @discardableResult
    func writeAll(_ bytes: [UInt8], timeout: Double = 10) -> Bool {
        let deadline = monotonicNanoseconds() + UInt64(timeout * 1e9)
        var offset = 0
        return bytes.withUnsafeBytes { raw in
            for _ in 0..<1_000_000 {
                guard offset < raw.count else { break }
                let count = write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if count > 0 {
                    offset += count
                    continue
                }
                guard count < 0, errno == EAGAIN || errno == EINTR else { return false }
                let now = monotonicNanoseconds()
                guard now < deadline else { return false }
                var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&poller, 1, Int32(min(100, (deadline - now) / 1_000_000 + 1)))
            }
            return offset == raw.count
        }
    }

    /// Waits up to `timeoutMilliseconds` for data, reads what is there and hands each complete
    /// line (without its newline) to `handler`. Returns false once the connection is closed.
    @discardableResult
    func readLines(timeoutMilliseconds: Int32, _ handler: (UnsafeBufferPointer<UInt8>) -> Void) -> Bool {
        guard !closed else { return false }
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, timeoutMilliseconds)
        guard ready > 0 else { return true }
        return readAvailable(handler)
    }

    /// Reads once without waiting (the descriptor is non-blocking) and hands out complete lines.
    @discardableResult
    func readAvailable(_ handler: (UnsafeBufferPointer<UInt8>) -> Void) -> Bool {
        guard !closed else { return false }
        if end == buffer.count {
            if start > 0 {
                buffer.withUnsafeMutableBytes { raw in
                    _ = memmove(raw.baseAddress!, raw.baseAddress! + start, end - start)
                }
                end -= start
                start = 0
            } else {
                // A line longer than the buffer: the protocol caps lines at 64 KiB plus framing, so
                // this only happens with a broken daemon. Drop what we hold.
                start = 0
                end = 0
            }
        }
        let count = buffer.withUnsafeMutableBytes { raw in
            read(descriptor, raw.baseAddress! + end, raw.count - end)
        }
        if count == 0 {
            closed = true
            return false
        }
        if count < 0 { return errno == EAGAIN || errno == EINTR }
        end += count
        buffer.withUnsafeBufferPointer { all in
            let base = all.baseAddress!
            var lineStart = start
            for _ in 0..<all.count {
                guard lineStart < end,
                      let found = memchr(base + lineStart, 0x0A, end - lineStart) else { break }
                let newline = UnsafePointer<UInt8>(found.assumingMemoryBound(to: UInt8.self)) - base
                handler(UnsafeBufferPointer(start: base + lineStart, count: newline - lineStart))
                lineStart = newline + 1
            }
            start = lineStart
        }
        if start == end {
            start = 0
            end = 0
        }
        return true
    }

    /// Sends one request and waits (bounded) for the response with its id; other lines (pushed
    /// events) that arrive meanwhile are given to `onOther`. Returns the parsed response object.
    func request(_ command: String, arguments: String? = nil, timeout: Double = 5,
                 onOther: (UnsafeBufferPointer<UInt8>) -> Void = { _ in }) throws -> [String: Any] {
        nextID += 1
        let id = nextID
        var line = "{\"id\":\(id),\"cmd\":\"\(command)\""
        if let arguments { line += ",\"args\":\(arguments)" }
        line += "}\n"
        guard writeAll(Array(line.utf8), timeout: timeout) else { throw BenchError("\(path): cannot send \(command)") }
        let deadline = monotonicNanoseconds() + UInt64(timeout * 1e9)
        var response: [String: Any]?
        let prefix = Array("{\"id\":\(id),".utf8)
        for _ in 0..<1_000_000 {
            guard response == nil else { break }
            guard monotonicNanoseconds() < deadline else { break }
            let open = readLines(timeoutMilliseconds: 50) { line in
                if line.count >= prefix.count && prefix.withUnsafeBufferPointer({ memcmp($0.baseAddress!, line.baseAddress!, prefix.count) == 0 }) {
                    response = (try? JSONSerialization.jsonObject(with: Data(buffer: line))) as? [String: Any]
                } else {
                    onOther(line)
                }
            }
            if !open { throw BenchError("\(path): connection closed while waiting for \(command)") }
        }
        guard let response else { throw BenchError("\(path): no response to \(command) within \(timeout) s") }
        return response
    }

    /// `request`, requiring `"ok":true`; returns the result object.
    func result(_ command: String, arguments: String? = nil, timeout: Double = 5) throws -> [String: Any] {
        let response = try request(command, arguments: arguments, timeout: timeout)
        guard response["ok"] as? Bool == true else {
            throw BenchError("\(path): \(command) failed: \(response["error"] ?? response)")
        }
        return response["result"] as? [String: Any] ?? [:]
    }
}

/// Whether `line` contains `needle` (byte search, no decoding).
func contains(_ line: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
    find(line, needle) != nil
}

/// Index just after the first occurrence of `needle` in `line`. `anchor` is the needle byte
/// looked for with memchr (then memcmp for the whole needle): a byte that is rare in the lines
/// searched, so that few candidates are compared (`"` is in every JSON key).
func find(_ line: UnsafeBufferPointer<UInt8>, _ needle: [UInt8], anchor: Int = 0) -> Int? {
    guard line.count >= needle.count, let base = line.baseAddress else { return nil }
    precondition(anchor >= 0 && anchor < needle.count, "anchor \(anchor) outside the needle")
    // Glibc's module does not export memmem.
    return needle.withUnsafeBufferPointer { pattern -> Int? in
        let byte = Int32(pattern[anchor])
        // Candidate starts run from 0 to `last`; their anchor bytes from `anchor` to `last + anchor`.
        let last = line.count - pattern.count
        var offset = anchor
        while offset <= last + anchor {
            guard let found = memchr(base + offset, byte, last + anchor - offset + 1) else { return nil }
            let position = UnsafePointer<UInt8>(found.assumingMemoryBound(to: UInt8.self)) - base
            let start = position - anchor
            if memcmp(base + start, pattern.baseAddress!, pattern.count) == 0 { return start + pattern.count }
            offset = position + 1
        }
        return nil
    }
}
