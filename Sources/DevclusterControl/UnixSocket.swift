// Unix stream sockets by path, the client's side: the address structure, connecting, and who
// listens at the other end. The daemon adds listening (Sources/devclusterd/UnixSocket+Listen.swift);
// neither the protocol nor an event loop lives here.

import CSystem
import Glibc

/// Unix stream sockets addressed by a file path.
public enum UnixSocket {
    /// Why a socket could not be opened, bound or connected.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var problem: String
        /// The errno behind it, 0 when the problem is not a failed call.
        public var code: Int32

        public init(path: String, problem: String, code: Int32) {
            self.path = path
            self.problem = problem
            self.code = code
        }

        public var description: String { "\(path): \(problem)" }
    }

    /// Calls `body` with `path` as a `sockaddr_un`.
    ///
    /// - Throws: when the path does not fit `sun_path` (107 bytes) or contains NUL.
    public static func withAddress<Result>(
        _ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result
    ) throws(Failure) -> Result {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
            throw Failure(path: path, problem: "not usable as a Unix socket path (1-\(capacity - 1) bytes, no NUL)", code: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
            buffer[bytes.count] = 0
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    /// A new stream socket, close-on-exec, optionally non-blocking.
    public static func makeStreamSocket(nonBlocking: Bool, path: String) throws(Failure) -> Int32 {
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        let descriptor = socket(AF_UNIX, type, 0)
        guard descriptor >= 0 else { throw Failure(path: path, problem: "socket: \(String(cString: strerror(errno)))", code: errno) }
        return descriptor
    }

    /// Connects a blocking socket to `path`.
    ///
    /// - Returns: the connected descriptor.
    /// - Throws: with the `errno` of `connect` (`ENOENT`, `ECONNREFUSED`, `EACCES`, ...).
    public static func connect(to path: String) throws(Failure) -> Int32 {
        let descriptor = try makeStreamSocket(nonBlocking: false, path: path)
        var attempts = 0
        while true {
            attempts += 1
            let result: Int32
            do {
                result = try withAddress(path) { Glibc.connect(descriptor, $0, $1) }
            } catch {
                _ = close(descriptor)
                throw error
            }
            if result == 0 { return descriptor }
            let code = errno
            if code == EINTR && attempts < 100 { continue }
            _ = close(descriptor)
            throw Failure(path: path, problem: "connect: \(String(cString: strerror(code)))", code: code)
        }
    }

    /// Whether a daemon answers on `path` (a connect succeeds).
    public static func isLive(_ path: String) -> Bool {
        guard let descriptor = try? connect(to: path) else { return false }
        _ = close(descriptor)
        return true
    }

    /// The process and user at the other end of a connected socket (`SO_PEERCRED`): the client
    /// for an accepted socket, the listening server for a connected one.
    ///
    /// - Returns: `nil` when the kernel cannot tell (not a Unix socket).
    public static func peerProcess(of descriptor: Int32) -> (processID: Int32, userID: UInt32, groupID: UInt32)? {
        var processID: Int32 = 0
        var userID: UInt32 = 0
        var groupID: UInt32 = 0
        guard csystem_peer_credentials(descriptor, &processID, &userID, &groupID) == 0 else { return nil }
        return (processID, userID, groupID)
    }

    /// A user id in messages: `user asterisk (uid 110)`, or `uid 110` when it has no name.
    public static func describeUser(_ userID: UInt32) -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        guard getpwuid_r(uid_t(userID), &entry, &buffer, buffer.count, &result) == 0, let result,
              let name = result.pointee.pw_name
        else { return "uid \(userID)" }
        return "user \(String(cString: name)) (uid \(userID))"
    }
}
