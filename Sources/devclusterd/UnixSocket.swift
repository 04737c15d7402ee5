// Unix stream sockets by path: the address structure, listening (with a private mode, replacing a
// stale socket but never a live daemon's or a non-socket file) and connecting. Used by the control
// server and the CLI client; neither the protocol nor the event loop lives here.

import CSystem
import Glibc

enum UnixSocket {
    /// Why a socket could not be opened, bound or connected.
    struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        var path: String
        var problem: String
        /// The errno behind it, 0 when the problem is not a failed call.
        var code: Int32

        var description: String { "\(path): \(problem)" }
    }

    /// Calls `body` with `path` as a `sockaddr_un`.
    ///
    /// - Throws: when the path does not fit `sun_path` (107 bytes) or contains NUL.
    static func withAddress<Result>(
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
    static func makeStreamSocket(nonBlocking: Bool, path: String) throws(Failure) -> Int32 {
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
    static func connect(to path: String) throws(Failure) -> Int32 {
        let descriptor = try makeStreamSocket(nonBlocking: false, path: path)
        var attempts = 0
        while true {
            attempts += 1
            let result = try withAddress(path) { Glibc.connect(descriptor, $0, $1) }
            if result == 0 { return descriptor }
            let code = errno
            if code == EINTR && attempts < 100 { continue }
            _ = close(descriptor)
            throw Failure(path: path, problem: "connect: \(String(cString: strerror(code)))", code: code)
        }
    }

    /// Whether a daemon answers on `path` (a connect succeeds).
    static func isLive(_ path: String) -> Bool {
        guard let descriptor = try? connect(to: path) else { return false }
        _ = close(descriptor)
        return true
    }

    /// A listening, non-blocking socket at `path` with permissions `mode` (and `group`, if given).
    ///
    /// An existing socket file is replaced only when nothing answers on it (a daemon that
    /// crashed left it behind); a live one, or a file that is not a socket, is an error.
    ///
    /// - Returns: the descriptor and the inode of the socket file (to remove only our own later).
    static func listen(at path: String, mode: mode_t, group: gid_t?, backlog: Int32 = 64) throws(Failure) -> (descriptor: Int32, inode: UInt64) {
        var existing = stat()
        if lstat(path, &existing) == 0 {
            guard existing.st_mode & S_IFMT == S_IFSOCK else {
                throw Failure(path: path, problem: "exists and is not a socket; refusing to replace it", code: EEXIST)
            }
            guard !isLive(path) else {
                throw Failure(path: path, problem: "another devclusterd is already listening on this socket", code: EADDRINUSE)
            }
            _ = unlink(path)
        }
        let descriptor = try makeStreamSocket(nonBlocking: true, path: path)
        func fail(_ operation: String, code: Int32 = errno) -> Failure {
            _ = close(descriptor)
            return Failure(path: path, problem: "\(operation): \(String(cString: strerror(code)))", code: code)
        }
        // The socket file is created by bind with 0777 & ~umask: a strict umask closes the window
        // in which another user could connect before the chmod below.
        let previousMask = umask(0o177)
        let bound = try withAddress(path) { Glibc.bind(descriptor, $0, $1) }
        let bindError = errno
        umask(previousMask)
        guard bound == 0 else { throw fail("bind", code: bindError) }
        if let group, chown(path, uid_t.max, group) != 0 {
            let failure = fail("chown to group \(group)")
            _ = unlink(path)
            throw failure
        }
        guard chmod(path, mode) == 0 else {
            let failure = fail("chmod")
            _ = unlink(path)
            throw failure
        }
        guard Glibc.listen(descriptor, backlog) == 0 else {
            let failure = fail("listen")
            _ = unlink(path)
            throw failure
        }
        var created = stat()
        let inode = stat(path, &created) == 0 ? UInt64(created.st_ino) : 0
        return (descriptor, inode)
    }

    /// Removes the socket file if it is still the one we created (same inode).
    static func removeIfOwned(_ path: String, inode: UInt64) {
        var status = stat()
        guard stat(path, &status) == 0, UInt64(status.st_ino) == inode, status.st_mode & S_IFMT == S_IFSOCK else { return }
        _ = unlink(path)
    }

    /// The group id of `name`.
    static func groupID(named name: String) -> gid_t? {
        var entry = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        let status = getgrnam_r(name, &entry, &buffer, buffer.count, &result)
        guard status == 0, let result else { return nil }
        return result.pointee.gr_gid
    }

    /// The user id of `name`.
    static func userID(named name: String) -> uid_t? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        let status = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
        guard status == 0, let result else { return nil }
        return result.pointee.pw_uid
    }

    /// Who is at the other end of a connected socket (`SO_PEERCRED`, with `SO_PEERGROUPS`): the
    /// client for an accepted socket, the listening server for a connected one.
    ///
    /// - Returns: `nil` when the kernel cannot tell (not a Unix socket).
    static func peerCredentials(of descriptor: Int32) -> PeerCredentials? {
        var processID: Int32 = 0
        var userID: UInt32 = 0
        var groupID: UInt32 = 0
        guard csystem_peer_credentials(descriptor, &processID, &userID, &groupID) == 0 else { return nil }
        var peer = PeerCredentials(processID: processID, userID: userID, groupID: groupID)
        var groups = [UInt32](repeating: 0, count: 256)
        let count = groups.withUnsafeMutableBufferPointer { csystem_peer_groups(descriptor, $0.baseAddress, Int32($0.count)) }
        if count > 0, count <= groups.count { peer.supplementaryGroups = Array(groups[0..<Int(count)]) }
        return peer
    }

    /// A user id in messages: `user asterisk (uid 110)`, or `uid 110` when it has no name.
    static func describeUser(_ userID: UInt32) -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        guard getpwuid_r(uid_t(userID), &entry, &buffer, buffer.count, &result) == 0, let result,
              let name = result.pointee.pw_name
        else { return "uid \(userID)" }
        return "user \(String(cString: name)) (uid \(userID))"
    }
}
