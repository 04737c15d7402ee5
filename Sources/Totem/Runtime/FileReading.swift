// Reading a whole small file (key files, state files) with a size bound. Owns no policy on
// what a missing or oversized file means; the callers decide.

import Glibc

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
