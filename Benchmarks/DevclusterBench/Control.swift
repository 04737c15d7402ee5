// The bench's use of the control library (DevclusterControl): connecting while a daemon may still
// be starting, request lines encoded once by the library and then filled in per message, and byte
// searches in response and event lines. The hot paths (a publisher's requests, a subscriber's
// events) never build a JSON tree: requests are a template's bytes plus digits, and lines are
// scanned in the client's receive buffer where they lie.

import DevclusterControl
import Glibc

/// Connects to `path`, retrying every 20 ms until `timeout` passes (a daemon may still be starting).
///
/// - Parameters:
///   - requestTimeout: for each blocking send and receive (`call`, `result`).
///   - bufferBytes: the client's receive buffer (a subscriber reading a stream wants a large one).
func connectControl(path: String, timeout: Double = 5, requestTimeout: Double = 10, bufferBytes: Int = 1 << 21) throws -> ControlClient {
    let deadline = monotonicNanoseconds() + UInt64(max(0, timeout) * 1e9)
    var lastError = ControlClientError("no attempt")
    for _ in 0..<100_000 {
        do {
            return try ControlClient(path: path, timeout: .milliseconds(Int64(requestTimeout * 1_000)), receiveBufferBytes: bufferBytes)
        } catch {
            lastError = error
        }
        guard monotonicNanoseconds() < deadline else { break }
        usleep(20_000)
    }
    throw BenchError(lastError.message)
}

/// A request line encoded once by the library (`ControlRequest`) and cut around its variable
/// parts: the id and some string arguments, marked in the encoded request by placeholders.
/// Per message only the template's pieces, the id's digits and the values are appended.
struct RequestTemplate {
    /// The pieces between the variable parts: `{"id":`, then what follows the id up to the first
    /// placeholder, ..., then what follows the last placeholder, with the newline.
    let pieces: [[UInt8]]

    /// - Parameter placeholders: marker values inside `request`'s string arguments, in the order
    ///   they appear in the encoded line; each must appear exactly once.
    init(_ request: some ControlCommand, placeholders: [String]) throws {
        var line: [UInt8] = []
        ControlRequest(id: .integer(0), request).json.encode(into: &line)
        line.append(0x0A)
        let head = Array(#"{"id":0"#.utf8)
        guard line.starts(with: head) else { throw BenchError("a request line does not start with its id") }
        var pieces: [[UInt8]] = [Array(head.dropLast())]
        var rest = Array(line.dropFirst(head.count))
        for placeholder in placeholders {
            let marker = Array(placeholder.utf8)
            let found = rest.withUnsafeBufferPointer { find($0, marker) }
            guard let end = found else { throw BenchError("placeholder \(placeholder) is not in the request line") }
            pieces.append(Array(rest[..<(end - marker.count)]))
            rest = Array(rest[end...])
        }
        pieces.append(rest)
        self.pieces = pieces
    }

    /// Appends the piece before variable part `index` (0: before the id).
    @inline(__always)
    func appendPiece(_ index: Int, to bytes: inout [UInt8]) {
        bytes.append(contentsOf: pieces[index])
    }
}

/// Appends the decimal digits of `value` (the library's encoder: no allocation).
@inline(__always)
func appendDecimal(_ value: UInt64, to bytes: inout [UInt8]) {
    JSONValue.appendUnsigned(value, to: &bytes)
}

/// The result of `command`, or a `BenchError` with the daemon's error.
func requireResult(_ client: ControlClient, _ command: some ControlCommand) throws -> JSONValue {
    do {
        return try client.result(command.command, arguments: command.arguments)
    } catch {
        throw BenchError(error.message)
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
