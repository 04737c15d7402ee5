// Persists the last ring sequence number so a restarted node starts above it (spec §1.2, pitfall
// P7). Owns one small file per node in the state directory, replaced atomically.

import Glibc

/// The ring sequence file of one node: `<directory>/ring-sequence-<node id>`, holding the
/// decimal sequence and a newline.
///
/// `save` writes a temporary file, fsyncs it, renames it over the old one and fsyncs the
/// directory, so a crash leaves either the old or the new number, never a torn one. It blocks
/// the event loop for the duration of two fsyncs, once per ring formed.
struct RingSequenceStore {
    let directory: String
    let path: String

    init(directory: String, nodeID: NodeID) {
        self.directory = directory
        path = "\(directory)/ring-sequence-\(nodeID.rawValue)"
    }

    /// Why the stored sequence could not be read.
    enum LoadError: Error, Equatable, CustomStringConvertible {
        case unreadable(SystemError)
        case malformed(path: String)

        var description: String {
            switch self {
            case .unreadable(let error): "\(error)"
            case .malformed(let path): "\(path) does not hold a decimal ring sequence"
            }
        }
    }

    /// The stored sequence, or `nil` when no file exists yet.
    func load() throws(LoadError) -> UInt64? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return nil }
            throw .unreadable(.last("open \(path)"))
        }
        defer { _ = close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count >= 0 else { throw .unreadable(.last("read \(path)")) }
        let text = String(decoding: buffer[0..<count], as: UTF8.self)
        let trimmed = text.hasSuffix("\n") ? String(text.dropLast()) : text
        guard !trimmed.isEmpty, trimmed.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let value = UInt64(trimmed) else {
            throw .malformed(path: path)
        }
        return value
    }

    /// Replaces the stored sequence with `sequence`, durably.
    func save(_ sequence: UInt64) throws(SystemError) {
        let temporary = path + ".tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .last("open \(temporary)") }
        let bytes = Array("\(sequence)\n".utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            let error = written < 0 ? SystemError.last("write \(temporary)") : SystemError("write \(temporary)", code: EIO)
            _ = close(descriptor)
            throw error
        }
        guard fsync(descriptor) == 0 else {
            let error = SystemError.last("fsync \(temporary)")
            _ = close(descriptor)
            throw error
        }
        guard close(descriptor) == 0 else { throw .last("close \(temporary)") }
        guard rename(temporary, path) == 0 else { throw .last("rename \(temporary) to \(path)") }
        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directoryDescriptor >= 0 else { throw .last("open \(directory)") }
        defer { _ = close(directoryDescriptor) }
        guard fsync(directoryDescriptor) == 0 else { throw .last("fsync \(directory)") }
    }
}
