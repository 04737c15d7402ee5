// Persists the last ring sequence number so a restarted node starts above it (spec §1.2, pitfall
// P7). Owns one small file per node in the state directory and its kept copy (KeptCopyFile).

import Glibc
import Totem

/// The ring sequence file of one node: `<directory>/ring-sequence-<node id>`, holding the
/// decimal sequence and a newline, with its kept copy `ring-sequence-<node id>.prev`.
///
/// `save` writes the file and then the copy, each atomically (two fsyncs each), before it
/// returns, and the runtime sends nothing of a new ring before it returned (Effect.swift rule 1).
/// So the copy never holds less than a sequence that reached the wire: a crash between the two
/// writes leaves the copy at the previous sequence, and the new one was never used. `load` falls
/// back to the copy when the file is missing or unusable, so the sequence never goes backwards;
/// when both are unusable it refuses, saying what to do. Four fsyncs on the event loop, once per
/// ring formed.
struct RingSequenceStore {
    let file: KeptCopyFile
    var path: String { file.path }

    init(directory: String, nodeID: NodeID) {
        file = KeptCopyFile(path: "\(directory)/ring-sequence-\(nodeID.rawValue)", policy: .sameContent)
    }

    /// Why the stored sequence could not be used.
    enum LoadError: Error, Equatable, CustomStringConvertible {
        /// The file and its kept copy are both unusable.
        case unusable(path: String, fileProblem: String, copyProblem: String)

        var description: String {
            switch self {
            case .unusable(let path, let fileProblem, let copyProblem):
                "the ring sequence file \(path) is \(fileProblem) and its kept copy \(path).prev is \(copyProblem); "
                    + "this node must not start below a ring sequence it used before. If other nodes of the cluster "
                    + "are running, write the sequence of their ring (the number after the dot of \"Ring ID\" in "
                    + "`devclusterd status`) into \(path); if the whole cluster is stopped, remove both files to start over"
            }
        }
    }

    /// A decimal sequence and an optional newline.
    struct MalformedSequence: Error, CustomStringConvertible {
        var description: String { "not a decimal ring sequence" }
    }

    /// The stored sequence (`nil` when neither copy exists yet), and a warning when the kept copy
    /// was used instead of the file.
    func load() throws(LoadError) -> (sequence: UInt64?, warning: String?) {
        switch file.read(limit: 32, decode: Self.decode) {
        case .absent:
            return (nil, nil)
        case .file(let sequence):
            return (sequence, nil)
        case .copy(let sequence, let fileProblem):
            var warning = "the ring sequence file \(path) is \(fileProblem); using its kept copy \(file.copyPath) (ring sequence \(sequence))"
            do {
                if let aside = try file.restoreFromCopy(mode: 0o644) { warning += "; the unusable file is kept as \(aside)" }
            } catch {
                warning += "; cannot restore the file from the copy yet (\(error)), the next ring written does"
            }
            return (sequence, warning)
        case .unusable(let fileProblem, let copyProblem):
            throw .unusable(path: path, fileProblem: fileProblem, copyProblem: copyProblem)
        }
    }

    static func decode(_ bytes: [UInt8]) throws -> UInt64 {
        let text = String(decoding: bytes, as: UTF8.self)
        let trimmed = text.hasSuffix("\n") ? String(text.dropLast()) : text
        guard !trimmed.isEmpty, trimmed.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let value = UInt64(trimmed) else {
            throw MalformedSequence()
        }
        return value
    }

    /// Replaces the stored sequence with `sequence`, durably, in the file and then its copy.
    func save(_ sequence: UInt64) throws(SystemError) {
        try file.write(Array("\(sequence)\n".utf8), mode: 0o644)
    }
}
