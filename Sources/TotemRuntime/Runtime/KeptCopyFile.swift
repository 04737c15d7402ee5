// Small state files written atomically with a second good copy kept beside them (`PATH.prev`),
// and read back by one rule: the file, else the kept copy, else "unusable". Owns the write order
// and the fallback; what the bytes mean, and what to do when both copies are unusable, is the
// caller's. The one implementation of atomic replacement for the daemon's files.

import Glibc
import Totem

/// A state file and its kept copy, `PATH.prev`.
///
/// Every write goes to a temporary file in the same directory, which is fsynced and renamed over
/// the file, and then the directory is fsynced: a crash leaves the old or the new content, never a
/// mix. The kept copy follows one of two policies:
///
/// - `previousContent` (tables): before the new content replaces the file, the old file is
///   hard-linked as the copy (atomically, by a rename), so the copy is the file's previous good
///   content: one write older.
/// - `sameContent` (counters that must never go backwards): the new content is written to the
///   file, then to the copy, both atomically, before `write` returns. The caller uses a value
///   only after `write` returned, so the copy never holds less than a value that was used: a
///   crash between the two writes leaves the copy at the previous value, which was the last one
///   used. On a full file system (`ENOSPC`, `EDQUOT`), where no temporary file can be created,
///   a counter of at most `inPlaceLimit` bytes is overwritten in place instead (one `pwrite` into
///   the first sector the file already has, then `fsync`): a node whose disk is full still
///   starts and forms rings. Sector writes are atomic on the devices this runs on, and a torn
///   file would fall back to the copy, which never holds less than a value used.
///
/// `read` applies the one rule: the file if it is present and decodes; else the copy if it
/// decodes (the caller tells the operator, naming the file and the problem); else both problems.
public struct KeptCopyFile: Sendable, Equatable {
    /// What the kept copy holds.
    public enum CopyPolicy: Sendable, Equatable {
        /// The file's content before the last write.
        case previousContent
        /// The same content as the file, written after it.
        case sameContent
    }

    /// The file.
    public let path: String
    /// What the kept copy holds.
    public let policy: CopyPolicy

    /// The kept copy: `PATH.prev`.
    public var copyPath: String { path + ".prev" }

    /// Names a file; nothing is read or written.
    public init(path: String, policy: CopyPolicy) {
        self.path = path
        self.policy = policy
    }

    /// What `read` found.
    public enum Contents<Value> {
        /// Neither the file nor the copy exists (a first start).
        case absent
        /// The file's value.
        case file(Value)
        /// The file is missing or unusable (`fileProblem` says why); the kept copy's value.
        case copy(Value, fileProblem: String)
        /// Neither is usable; each problem (`missing` for an absent one).
        case unusable(fileProblem: String, copyProblem: String)
    }

    /// Reads the file, else its kept copy.
    ///
    /// - Parameters:
    ///   - limit: The largest acceptable size in bytes (larger is a problem, checked before decoding).
    ///   - decode: Turns bytes into a value; a throw makes that copy unusable, its error the problem.
    public func read<Value>(limit: Int, decode: ([UInt8]) throws -> Value) -> Contents<Value> {
        let file = Self.load(path, limit: limit, decode: decode)
        if case .success(let value) = file { return .file(value) }
        let copy = Self.load(copyPath, limit: limit, decode: decode)
        switch (file, copy) {
        case (.failure(.missing), .failure(.missing)):
            return .absent
        case (.failure(let fileProblem), .success(let value)):
            return .copy(value, fileProblem: fileProblem.description)
        case (.failure(let fileProblem), .failure(let copyProblem)):
            return .unusable(fileProblem: fileProblem.description, copyProblem: copyProblem.description)
        case (.success, _):
            preconditionFailure("returned above")
        }
    }

    /// Replaces the file with `bytes` and updates the kept copy as `policy` says, durably.
    ///
    /// - Throws: `SystemError` of the step that failed; the file then holds its old or its new
    ///   content, and the copy a good one.
    public func write(_ bytes: [UInt8], mode: mode_t) throws(SystemError) {
        switch policy {
        case .sameContent:
            try Self.writeAtomicallyOrInPlace(bytes, to: path, mode: mode)
            try Self.writeAtomicallyOrInPlace(bytes, to: copyPath, mode: mode)
        case .previousContent:
            let temporary = try Self.writeTemporary(bytes, for: path, mode: mode)
            do {
                try keepCurrentAsCopy(mode: mode)
            } catch {
                _ = unlink(temporary)
                throw error
            }
            guard rename(temporary, path) == 0 else {
                let error = SystemError.last("rename \(temporary) to \(path)")
                _ = unlink(temporary)
                throw error
            }
            try Self.syncDirectory(of: path)
        }
    }

    /// Moves an unusable file aside as `PATH.bad` (replacing an older one), so that it can be
    /// inspected and is never kept as the copy of a later write; with `includingCopy`, the copy
    /// too, as `PATH.prev.bad`.
    ///
    /// - Returns: Where they went (nothing for a file that could not be moved: it stays in place).
    @discardableResult
    public func setAside(includingCopy: Bool = false) -> [String] {
        var moved: [String] = []
        for source in includingCopy ? [path, copyPath] : [path] where rename(source, source + ".bad") == 0 {
            moved.append(source + ".bad")
        }
        return moved
    }

    /// After `read` fell back to the copy: moves the unusable file aside (`setAside`) and writes
    /// the copy's content as the file again, so the next start reads the file without a warning.
    ///
    /// - Returns: Where the unusable file went, if it existed and was moved.
    /// - Throws: `SystemError` when the copy cannot be read or the file not written.
    @discardableResult
    public func restoreFromCopy(mode: mode_t) throws(SystemError) -> String? {
        let bytes: [UInt8]
        switch Self.readAll(copyPath, limit: 1 << 30) {
        case .success(let content): bytes = content
        case .failure(.unreadable(let error)): throw error
        case .failure: throw SystemError("read \(copyPath)", code: ENOENT)
        }
        let aside = setAside().first
        try Self.writeAtomically(bytes, to: path, mode: mode)
        return aside
    }

    /// The current file becomes the copy: a hard link under a temporary name, renamed over the
    /// copy. Where hard links are not supported, its bytes are copied instead.
    private func keepCurrentAsCopy(mode: mode_t) throws(SystemError) {
        let temporary = "\(copyPath).tmp-\(getpid())"
        _ = unlink(temporary)
        if link(path, temporary) == 0 {
            guard rename(temporary, copyPath) == 0 else {
                let error = SystemError.last("rename \(temporary) to \(copyPath)")
                _ = unlink(temporary)
                throw error
            }
            return
        }
        let code = errno
        if code == ENOENT { return }   // nothing to keep yet
        guard code == EPERM || code == EOPNOTSUPP || code == EXDEV || code == EMLINK else {
            throw SystemError("link \(path) to \(temporary)", code: code)
        }
        switch Self.readAll(path, limit: 1 << 30) {
        case .success(let current): try Self.writeAtomically(current, to: copyPath, mode: mode)
        case .failure(.missing): return
        case .failure(.unreadable(let error)): throw error
        case .failure: return
        }
    }

    // MARK: Atomic replacement

    /// Replaces `path` with `bytes` so that a crash leaves the old or the new content, never a
    /// mix: a temporary file in the same directory, fsync, rename, fsync of the directory.
    ///
    /// - Throws: `SystemError` of the step that failed (no temporary file is left behind).
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t) throws(SystemError) {
        let temporary = try writeTemporary(bytes, for: path, mode: mode)
        guard rename(temporary, path) == 0 else {
            let error = SystemError.last("rename \(temporary) to \(path)")
            _ = unlink(temporary)
            throw error
        }
        try syncDirectory(of: path)
    }

    /// The largest content `sameContent` overwrites in place on a full file system.
    public static let inPlaceLimit = 64

    /// `writeAtomically`, or on a full file system an overwrite in place of an existing file (see
    /// the type's comment).
    private static func writeAtomicallyOrInPlace(_ bytes: [UInt8], to path: String, mode: mode_t) throws(SystemError) {
        do {
            try writeAtomically(bytes, to: path, mode: mode)
        } catch where (error.code == ENOSPC || error.code == EDQUOT) && bytes.count <= inPlaceLimit {
            try overwriteInPlace(bytes, at: path, otherwise: error)
        }
    }

    /// Overwrites an existing small file's bytes from offset 0 and cuts it to `bytes.count`;
    /// throws `otherwise` when there is no such file.
    private static func overwriteInPlace(_ bytes: [UInt8], at path: String, otherwise: SystemError) throws(SystemError) {
        let descriptor = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else { throw otherwise }
        defer { _ = close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG, status.st_size <= 512 else { throw otherwise }
        let written = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        guard written == bytes.count else { throw written < 0 ? .last("write \(path) in place") : otherwise }
        guard ftruncate(descriptor, off_t(bytes.count)) == 0 else { throw .last("truncate \(path)") }
        guard fsync(descriptor) == 0 else { throw .last("fsync \(path)") }
    }

    /// Writes and fsyncs `PATH.tmp-PID`; returns its path.
    private static func writeTemporary(_ bytes: [UInt8], for path: String, mode: mode_t) throws(SystemError) -> String {
        let temporary = "\(path).tmp-\(getpid())"
        _ = unlink(temporary)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw .last("create \(temporary)") }
        do {
            try writeFully(bytes, to: descriptor, operation: "write \(temporary)")
        } catch {
            _ = close(descriptor)
            _ = unlink(temporary)
            throw error
        }
        guard fsync(descriptor) == 0 else {
            let error = SystemError.last("fsync \(temporary)")
            _ = close(descriptor)
            _ = unlink(temporary)
            throw error
        }
        guard close(descriptor) == 0 else {
            let error = SystemError.last("close \(temporary)")
            _ = unlink(temporary)
            throw error
        }
        return temporary
    }

    private static func syncDirectory(of path: String) throws(SystemError) {
        let directory = parentDirectory(of: path)
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .last("open \(directory)") }
        defer { _ = close(descriptor) }
        guard fsync(descriptor) == 0 else { throw .last("fsync \(directory)") }
    }

    private static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    // MARK: Reading

    /// Why one copy could not be used.
    private enum Problem: Error, CustomStringConvertible {
        case missing
        case unreadable(SystemError)
        case tooLarge(limit: Int)
        case invalid(String)

        var description: String {
            switch self {
            case .missing: "missing"
            case .unreadable(let error): "unreadable (\(error))"
            case .tooLarge(let limit): "larger than \(limit) bytes"
            case .invalid(let reason): "not valid (\(reason))"
            }
        }
    }

    private static func load<Value>(_ path: String, limit: Int, decode: ([UInt8]) throws -> Value) -> Result<Value, Problem> {
        switch readAll(path, limit: limit) {
        case .failure(let problem):
            return .failure(problem)
        case .success(let bytes):
            do {
                return .success(try decode(bytes))
            } catch {
                return .failure(.invalid("\(error)"))
            }
        }
    }

    private static func readAll(_ path: String, limit: Int) -> Result<[UInt8], Problem> {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            return .failure(errno == ENOENT ? .missing : .unreadable(.last("open \(path)")))
        }
        defer { _ = close(descriptor) }
        // The buffer is sized from the file, not from the limit: the state table's limit is
        // hundreds of megabytes, which every start would otherwise allocate and zero.
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return .failure(.unreadable(.last("fstat \(path)"))) }
        let size = Int(status.st_size)
        guard size <= limit else { return .failure(.tooLarge(limit: limit)) }
        do {
            let bytes = try readBounded(descriptor, limit: size)
            // More than fstat said: the file grew while being read.
            guard bytes.count <= size else {
                return .failure(size < limit ? .unreadable(SystemError("read \(path) (it changed while being read)", code: EAGAIN))
                                             : .tooLarge(limit: limit))
            }
            return .success(bytes)
        } catch {
            return .failure(.unreadable(SystemError("read \(path)", code: error.code)))
        }
    }
}
