// Reading a whole small file (key files, state files) with a size bound, and writing all of a
// buffer. Own no policy on what a missing, oversized or unwritable file means; the callers decide.

import Glibc
import Totem

/// Reads everything from `descriptor`, but never more than `limit + 1` bytes, so that a caller
/// can tell "exactly `limit`" from "too long" by the count. Retries EINTR; bounded in calls.
/// - Throws: `SystemError` for a failed `read`.
public func readBounded(_ descriptor: Int32, limit: Int) throws(SystemError) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: limit + 1)
    var filled = 0
    var attempts = 0
    while filled < bytes.count && attempts < 10_000 {
        attempts += 1
        let result = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + filled, $0.count - filled) }
        if result > 0 {
            filled += result
        } else if result == 0 {
            break
        } else if errno != EINTR {
            throw SystemError.last("read")
        }
    }
    bytes.removeLast(bytes.count - filled)
    return bytes
}

/// Writes all of `bytes` to `descriptor`, with as many `write` calls as it takes (at most
/// `attempts`). Retries EINTR.
/// - Throws: `SystemError` named `operation` for a failed `write` (`EIO` when a call wrote
///   nothing, or the attempts ran out).
public func writeFully(_ bytes: [UInt8], to descriptor: Int32, operation: String, attempts limit: Int = 10_000) throws(SystemError) {
    var written = 0
    var attempts = 0
    while written < bytes.count && attempts < limit {
        attempts += 1
        let result = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, $0.count - written) }
        if result > 0 {
            written += result
        } else if result < 0 && errno == EINTR {
            continue
        } else {
            throw SystemError(operation, code: result < 0 ? errno : EIO)
        }
    }
    guard written == bytes.count else { throw SystemError(operation, code: EIO) }
}
