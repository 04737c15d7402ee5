// The stored ring sequence never goes backwards (spec §1.2, pitfall P7; issue 14, item 12): it is
// written to the file and then its kept copy before the ring sends anything, a corrupt or missing
// file falls back to the copy, and both unusable refuses with a message saying what to do.

import Foundation
import Glibc
import Testing
@testable import Totem
@testable import TotemRuntime

@Suite("Ring sequence store")
struct RingSequenceStoreTests {
    private static func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.path + "/ringseq-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    private static func write(_ text: String, to path: String) throws {
        try KeptCopyFile.writeAtomically(Array(text.utf8), to: path, mode: 0o644)
    }

    @Test func theKeptCopyHoldsTheLastSequenceAndIsUsedWhenTheFileIsBad() throws {
        let base = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let store = RingSequenceStore(directory: base, nodeID: NodeID(3))
        #expect(try store.load() == (nil, nil))
        try store.save(8)
        try store.save(12)
        #expect(try String(contentsOfFile: store.path + ".prev", encoding: .utf8) == "12\n")
        #expect(try store.load() == (12, nil))

        try Self.write("1x\n", to: store.path)
        let loaded = try store.load()
        #expect(loaded.sequence == 12)
        #expect(loaded.warning == "the ring sequence file \(store.path) is not valid (not a decimal ring sequence); using its kept "
            + "copy \(store.path).prev (ring sequence 12); the unusable file is kept as \(store.path).bad")
        #expect(try String(contentsOfFile: store.path, encoding: .utf8) == "12\n", "the file is restored from the copy")
        #expect(try store.load() == (12, nil))
    }

    @Test func bothCopiesUnusableRefusesSayingWhatToDo() throws {
        let base = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let store = RingSequenceStore(directory: base, nodeID: NodeID(1))
        try Self.write("", to: store.path)
        try Self.write("twelve", to: store.path + ".prev")
        #expect(throws: RingSequenceStore.LoadError.unusable(path: store.path, fileProblem: "not valid (not a decimal ring sequence)",
                                                              copyProblem: "not valid (not a decimal ring sequence)")) {
            try store.load()
        }
        do {
            _ = try store.load()
        } catch {
            #expect(error.description.contains("write the sequence of their ring"))
            #expect(error.description.contains("remove both files to start over"))
        }
    }
}
