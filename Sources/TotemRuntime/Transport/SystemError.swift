// A failed system call, as an error value: which call, and errno. Owns no retry or logging policy.

import Glibc
import Totem

/// A system call that failed, with the `errno` it reported.
///
/// Operating errors of sockets and files (a port in use, an address not configured on this host,
/// a missing state directory) surface as this type; they are reported, never trapped on.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was attempted, for example `bind 127.0.0.1:5405`.
    public var operation: String
    /// The `errno` value the call reported.
    public var code: Int32

    public init(_ operation: String, code: Int32) {
        self.operation = operation
        self.code = code
    }

    /// Captures the calling thread's current `errno`.
    static func last(_ operation: String) -> SystemError {
        SystemError(operation, code: errno)
    }

    /// `operation: strerror(code)`, e.g. `bind 127.0.0.1:5405: Address already in use`.
    public var description: String {
        "\(operation): \(String(cString: strerror(code))) (errno \(code))"
    }
}
