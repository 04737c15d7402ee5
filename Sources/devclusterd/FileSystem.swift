// Files and directories of the daemon's own: private directories created 0700 and checked
// against hijacking in shared places like /tmp, small files read with a bound, and files replaced
// atomically. No policy about which paths are used.

import Glibc
import Totem
import TotemRuntime

/// Why a file-system step failed, with the path and the system's reason.
struct FileSystemError: Error, Sendable, Equatable, CustomStringConvertible {
    var path: String
    var problem: String

    init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    /// A failed call with the current `errno`.
    static func system(_ operation: String, _ path: String, code: Int32 = errno) -> FileSystemError {
        FileSystemError(path, "\(operation) failed: \(String(cString: strerror(code)))")
    }

    var description: String { "\(path): \(problem)" }
}

enum FileSystem {
    /// Creates `path` (and missing parents) with `mode` if it does not exist, then checks that it
    /// is a directory that is safe to keep private files in.
    ///
    /// Safe means: a directory (after following links), not writable by others unless sticky,
    /// and, when it sits in a world-writable sticky directory such as `/tmp` (the fallback
    /// locations), not a symbolic link and owned by this user. Someone else could have created
    /// it there beforehand to read our socket or state.
    ///
    /// - Returns: whether the directory was created.
    @discardableResult
    static func ensurePrivateDirectory(_ path: String, mode: mode_t = 0o700) throws(FileSystemError) -> Bool {
        guard path.hasPrefix("/") else { throw FileSystemError(path, "not an absolute path") }
        var created = false
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, mode) == 0 {
                created = true
                // mkdir applied the umask; the directory is ours, so set exactly what we want.
                _ = chmod(prefix, mode)
            } else if errno != EEXIST {
                throw .system("mkdir", prefix)
            }
        }
        try checkPrivateDirectory(path)
        return created
    }

    /// The checks of `ensurePrivateDirectory` on an existing directory.
    static func checkPrivateDirectory(_ path: String) throws(FileSystemError) {
        var status = stat()
        guard stat(path, &status) == 0 else { throw .system("stat", path) }
        guard status.st_mode & S_IFMT == S_IFDIR else { throw FileSystemError(path, "exists and is not a directory") }
        let isSticky = status.st_mode & S_ISVTX != 0
        if status.st_mode & S_IWOTH != 0 && !isSticky {
            throw FileSystemError(path, "is writable by every user (mode \(octal(status.st_mode & 0o7777))); use a private directory")
        }
        let parent = parentDirectory(of: path)
        var parentStatus = stat()
        guard stat(parent, &parentStatus) == 0 else { return }
        let parentIsShared = parentStatus.st_mode & S_IWOTH != 0 && parentStatus.st_mode & S_ISVTX != 0
        guard parentIsShared else { return }
        var linkStatus = stat()
        guard lstat(path, &linkStatus) == 0 else { throw .system("lstat", path) }
        if linkStatus.st_mode & S_IFMT == S_IFLNK {
            throw FileSystemError(path, "is a symbolic link in the shared directory \(parent); remove it or configure another path")
        }
        if status.st_uid != geteuid() {
            throw FileSystemError(path, "is owned by user id \(status.st_uid), not by this user (\(geteuid())), "
                + "in the shared directory \(parent); someone else may have created it: remove it or configure another path")
        }
    }

    /// Creates the control socket's directory if missing (with `mode`, and `group` when given),
    /// then checks that nobody but its owner can write to it: a user who can create entries there
    /// could replace the socket with one of their own and answer the CLI in the daemon's name.
    ///
    /// - Returns: whether the directory was created.
    @discardableResult
    static func ensureSocketDirectory(_ path: String, mode: mode_t, group: gid_t?) throws(FileSystemError) -> Bool {
        let created = try ensurePrivateDirectory(path, mode: mode)
        if created, let group {
            guard chown(path, uid_t.max, group) == 0 else { throw .system("chown to group \(group)", path) }
            _ = chmod(path, mode)
        }
        try checkSocketDirectory(path)
        return created
    }

    /// The checks of `ensureSocketDirectory` on an existing directory: owned by root or by this
    /// user, and writable by neither its group nor others (a sticky bit does not help: anyone
    /// may still create a socket of their own there before the daemon starts).
    static func checkSocketDirectory(_ path: String) throws(FileSystemError) {
        try checkPrivateDirectory(path)
        var status = stat()
        guard stat(path, &status) == 0 else { throw .system("stat", path) }
        if status.st_uid != 0 && status.st_uid != geteuid() {
            throw FileSystemError(path, "is owned by user id \(status.st_uid), neither root nor this user (\(geteuid())); "
                + "the control socket's directory must belong to one of them")
        }
        if status.st_mode & (S_IWGRP | S_IWOTH) != 0 {
            let who = status.st_mode & S_IWOTH != 0 ? "every user" : "its group"
            throw FileSystemError(path, "is writable by \(who) (mode \(octal(status.st_mode & 0o7777))), who could put a socket "
                + "of their own in the daemon's place; use a directory only root or the daemon's user can write to "
                + "(chmod go-w \(path), or another control_socket)")
        }
    }

    /// The directory part of an absolute path (`/` for a top-level entry).
    static func parentDirectory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }

    /// The whole file, or `nil` when it does not exist.
    ///
    /// - Throws: when it cannot be read or has more than `limit` bytes.
    static func readFile(_ path: String, limit: Int) throws(FileSystemError) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return nil }
            throw .system("open", path)
        }
        defer { _ = close(descriptor) }
        let bytes: [UInt8]
        do {
            bytes = try readBounded(descriptor, limit: limit)
        } catch {
            throw .system("read", path, code: error.code)
        }
        guard bytes.count <= limit else { throw FileSystemError(path, "is larger than \(limit) bytes") }
        return bytes
    }

    /// Replaces `path` with `bytes` so that a crash leaves the old or the new content, never a
    /// mix (`KeptCopyFile.writeAtomically`: the one implementation of atomic replacement).
    static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t) throws(FileSystemError) {
        do {
            try KeptCopyFile.writeAtomically(bytes, to: path, mode: mode)
        } catch {
            throw FileSystemError(path, error.description)
        }
    }

    /// `0755`-style text of permission bits.
    static func octal(_ mode: mode_t) -> String {
        let text = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - text.count)) + text
    }
}
