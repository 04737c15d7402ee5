// Unix stream sockets, the daemon's side: listening (with a private mode, replacing a stale socket
// but never a live daemon's or a non-socket file), removing our own socket file, user and group
// lookups and a client's credentials. The client's side (address, connect) is in DevclusterControl.

import CSystem
import DevclusterControl
import Glibc

extension UnixSocket {
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
        guard let process = peerProcess(of: descriptor) else { return nil }
        var peer = PeerCredentials(processID: process.processID, userID: process.userID, groupID: process.groupID)
        var groups = [UInt32](repeating: 0, count: 256)
        let count = groups.withUnsafeMutableBufferPointer { csystem_peer_groups(descriptor, $0.baseAddress, Int32($0.count)) }
        if count > 0, count <= groups.count { peer.supplementaryGroups = Array(groups[0..<Int(count)]) }
        return peer
    }
}
