// The one rule for state files (issue 14, item 12): every file is written atomically with a kept
// copy; a missing or corrupt file falls back to the copy with a warning naming the file; counters
// never go backwards; both copies unusable refuses (counters) or starts empty (the table).

import DeviceState
import Foundation
import Glibc
import Testing
import Totem
import TotemRuntime
@testable import devclusterd

@Suite("State files with a kept copy")
struct KeptCopyTests {
    private static func contents(_ path: String) -> String? {
        guard let bytes = try? FileSystem.readFile(path, limit: 1 << 20) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func text(_ bytes: [UInt8]) throws -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.hasPrefix("good") else { throw KeptCopyTestError.bad(text) }
        return text
    }

    @Test func previousContentKeepsTheTableBeforeTheLastWrite() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let file = KeptCopyFile(path: base + "/table", policy: .previousContent)
        guard case .absent = file.read(limit: 100, decode: Self.text) else { Issue.record("a first start is not absent"); return }
        try file.write(Array("good 1".utf8), mode: 0o600)
        #expect(Self.contents(file.path) == "good 1" && Self.contents(file.copyPath) == nil)
        try file.write(Array("good 2".utf8), mode: 0o600)
        #expect(Self.contents(file.path) == "good 2" && Self.contents(file.copyPath) == "good 1")
        guard case .file(let current) = file.read(limit: 100, decode: Self.text) else { Issue.record("the file is not read"); return }
        #expect(current == "good 2")

        try FileSystem.writeAtomically(Array("torn".utf8), to: file.path, mode: 0o600)
        guard case .copy(let kept, let problem) = file.read(limit: 100, decode: Self.text) else { Issue.record("no fallback"); return }
        #expect(kept == "good 1" && problem == "not valid (bad(\"torn\"))")
        #expect(try file.restoreFromCopy(mode: 0o600) == file.path + ".bad")
        #expect(Self.contents(file.path) == "good 1" && Self.contents(file.path + ".bad") == "torn")

        try FileSystem.writeAtomically(Array("good but far too long".utf8), to: file.path, mode: 0o600)
        guard case .copy(_, "larger than 10 bytes") = file.read(limit: 10, decode: Self.text) else {
            Issue.record("a file over the limit is not refused before decoding"); return
        }
        _ = unlink(file.path)
        guard case .copy(_, "missing") = file.read(limit: 100, decode: Self.text) else { Issue.record("no fallback for a missing file"); return }
        try FileSystem.writeAtomically(Array("torn".utf8), to: file.path, mode: 0o600)
        try FileSystem.writeAtomically(Array("torn too".utf8), to: file.copyPath, mode: 0o600)
        guard case .unusable(let fileProblem, let copyProblem) = file.read(limit: 100, decode: Self.text) else {
            Issue.record("both unusable is not reported"); return
        }
        #expect(fileProblem == "not valid (bad(\"torn\"))" && copyProblem == "not valid (bad(\"torn too\"))")
        #expect(file.setAside(includingCopy: true) == [file.path + ".bad", file.copyPath + ".bad"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: base).sorted() == ["table.bad", "table.prev.bad"])
    }

    @Test func sameContentWritesTheFileThenTheCopy() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let file = KeptCopyFile(path: base + "/counter", policy: .sameContent)
        try file.write(Array("good 7".utf8), mode: 0o600)
        try file.write(Array("good 8".utf8), mode: 0o600)
        #expect(Self.contents(file.path) == "good 8" && Self.contents(file.copyPath) == "good 8")
        #expect(try FileManager.default.contentsOfDirectory(atPath: base).sorted() == ["counter", "counter.prev"], "no temporary file left")
    }

    @Test func theIncarnationNeverGoesBackwards() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        var warnings: [String] = []
        #expect(try ClusterSetup.nextIncarnation(in: base) == 1)
        #expect(try ClusterSetup.nextIncarnation(in: base) == 2)
        let path = base + "/incarnation"
        #expect(Self.contents(path) == "2\n" && Self.contents(path + ".prev") == "2\n")

        try FileSystem.writeAtomically(Array("x7".utf8), to: path, mode: 0o600)
        #expect(try ClusterSetup.nextIncarnation(in: base) { warnings.append($0) } == 3)
        #expect(warnings == ["the incarnation counter \(path) is not valid (not a decimal counter: \"x7\"); using its kept copy "
            + "\(path).prev (2); the unusable file is kept as \(path).bad"])
        #expect(Self.contents(path) == "3\n" && Self.contents(path + ".prev") == "3\n")

        _ = unlink(path)
        #expect(try ClusterSetup.nextIncarnation(in: base) { warnings.append($0) } == 4)
        #expect(warnings.last == "the incarnation counter \(path) is missing; using its kept copy \(path).prev (3)")

        try FileSystem.writeAtomically(Array("".utf8), to: path, mode: 0o600)
        try FileSystem.writeAtomically(Array("-1".utf8), to: path + ".prev", mode: 0o600)
        do {
            _ = try ClusterSetup.nextIncarnation(in: base)
            Issue.record("started with both incarnation files unusable")
        } catch {
            #expect(error.description.hasPrefix("the incarnation counter \(path) is not valid (not a decimal counter: \"\") and its "
                + "kept copy \(path).prev is not valid (not a decimal counter: \"-1\"); this node must not reuse an incarnation"))
            #expect(error.description.contains("date +%s"))
        }
        #expect(Self.contents(path) == "", "a refused start leaves the files for the operator")
    }

    private static func table(_ devices: [String: DeviceStateValue]) throws -> LocalStateTable {
        var table = LocalStateTable()
        for (name, state) in devices { table.devices[try DeviceName(parsing: name)] = state }
        return table
    }

    @Test func theLocalStateFallsBackToTheSnapshotBeforeTheLastCompaction() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let path = base + "/local_state"
        var warnings: [String] = []
        let first = try Self.table(["SIP/1": .inUse])
        let second = try Self.table(["SIP/1": .busy, "SIP/2": .ringing])
        let file = KeptCopyFile(path: path, policy: .previousContent)
        try file.write(first.encoded(), mode: 0o600)
        try file.write(second.encoded(), mode: 0o600)
        #expect(ClusterSetup.loadLocalState(path: path) { warnings.append($0) } == second)
        #expect(warnings.isEmpty)

        var torn = second.encoded()
        torn.removeLast(3)
        try FileSystem.writeAtomically(torn, to: path, mode: 0o600)
        #expect(ClusterSetup.loadLocalState(path: path) { warnings.append($0) } == first)
        #expect(warnings == ["the local state file \(path) is not valid (truncated: needed 4 bytes, 1 available); using its kept "
            + "copy \(path).prev, the snapshot before the last compaction (1 devices, 0 mailboxes); the unusable file is kept as \(path).bad"])
        #expect(ClusterSetup.loadLocalState(path: path) { warnings.append($0) } == first, "restored from the copy")
        #expect(warnings.count == 1)

        try FileSystem.writeAtomically(Array("DCLS".utf8), to: path, mode: 0o600)
        try FileSystem.writeAtomically(Array("junk".utf8), to: path + ".prev", mode: 0o600)
        #expect(ClusterSetup.loadLocalState(path: path) { warnings.append($0) } == LocalStateTable())
        #expect(warnings.last?.contains("starting with no local states") == true)
        #expect(warnings.last?.hasSuffix("kept as \(path).bad and \(path).prev.bad") == true)
    }
}

private enum KeptCopyTestError: Error {
    case bad(String)
}
