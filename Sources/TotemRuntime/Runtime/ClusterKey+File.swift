// Reading, generating and writing cluster key files. The key type and its derivations live in
// Security/ClusterKey.swift, which does no I/O.

import Glibc
import Totem

extension ClusterKey {
    /// Reads a key file: its raw bytes are the key.
    ///
    /// The file must be private, as ssh requires of a private key: a regular file owned by root
    /// or by this process's effective user, with no permission bit for its group or others. The
    /// checks run on the opened descriptor (`fstat`), so the file checked is the file read.
    ///
    /// - Throws: `ClusterKeyError.unreadable` if the file cannot be read; `.notPrivate` when
    ///   its group or others may access it; `.foreignOwner` when someone else owns it;
    ///   `.tooShort` or `.tooLong` outside 32...1024 bytes.
    public static func load(path: String) throws(ClusterKeyError) -> ClusterKey {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        guard descriptor >= 0 else { throw .unreadable(path: path, code: errno) }
        defer { _ = close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .unreadable(path: path, code: errno) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .unreadable(path: path, code: EINVAL) }
        let owner = UInt32(status.st_uid)
        guard owner == 0 || owner == UInt32(geteuid()) else {
            throw .foreignOwner(path: path, owner: owner, expected: UInt32(geteuid()))
        }
        guard status.st_mode & 0o077 == 0 else {
            throw .notPrivate(path: path, mode: UInt32(status.st_mode & 0o7777))
        }
        // Read one byte more than allowed to tell "exactly the maximum" from "too long".
        let bytes: [UInt8]
        do {
            bytes = try readBounded(descriptor, limit: maximumBytes)
        } catch {
            throw .unreadable(path: path, code: error.code)
        }
        let filled = bytes.count
        guard filled >= minimumBytes else { throw .tooShort(path: path, length: filled, minimum: minimumBytes) }
        guard filled <= maximumBytes else { throw .tooLong(path: path, length: filled, maximum: maximumBytes) }
        return try ClusterKey(bytes: bytes)
    }

    /// A new random key of `byteCount` bytes (256 by default) from /dev/urandom.
    ///
    /// - Throws: `ClusterKeyError.randomSourceUnavailable` if /dev/urandom cannot be read;
    ///   `.tooShort` or `.tooLong` if `byteCount` is outside 32...1024.
    public static func generate(byteCount: Int = generatedBytes) throws(ClusterKeyError) -> ClusterKey {
        guard byteCount >= minimumBytes else { throw .tooShort(path: nil, length: byteCount, minimum: minimumBytes) }
        guard byteCount <= maximumBytes else { throw .tooLong(path: nil, length: byteCount, maximum: maximumBytes) }
        let bytes: [UInt8]
        do throws(SystemError) {
            bytes = try SystemRandom.bytes(byteCount)
        } catch {
            throw .randomSourceUnavailable(code: error.code)
        }
        return try ClusterKey(bytes: bytes)
    }

    /// Writes the key to a new file readable by its owner only (mode 0400), refusing to
    /// overwrite an existing file.
    ///
    /// - Throws: `ClusterKeyError.unwritable` (errno `EEXIST` if the file exists).
    public func write(toPath path: String) throws(ClusterKeyError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o400)
        guard descriptor >= 0 else { throw .unwritable(path: path, code: errno) }
        do throws(SystemError) {
            try writeFully(material, to: descriptor, operation: "write \(path)")
        } catch {
            _ = close(descriptor)
            _ = unlink(path)
            throw .unwritable(path: path, code: error.code)
        }
        let synced = fsync(descriptor) == 0
        let code = errno
        _ = close(descriptor)
        guard synced else {
            _ = unlink(path)
            throw .unwritable(path: path, code: code)
        }
    }

    /// Replaces the key file at `path` (or creates it) atomically, readable by its owner only
    /// (mode 0400): a crash leaves the old key or the new one, never a mix
    /// (`KeptCopyFile.writeAtomically`: a temporary file, fsync, rename, fsync of the directory).
    ///
    /// - Throws: `ClusterKeyError.unwritable` with the step's errno.
    public func replace(atPath path: String) throws(ClusterKeyError) {
        do {
            try KeptCopyFile.writeAtomically(material, to: path, mode: 0o400)
        } catch {
            throw .unwritable(path: path, code: error.code)
        }
    }
}
