// Tests of the daemon's local state: private directories (created 0700, refused when someone else
// owns them in /tmp), atomic files, and the entity id's sources in order of precedence.

import Foundation
import Glibc
import Testing
@testable import devclusterd

@Suite("Local state")
struct StateTests {
    @Test func privateDirectoriesAreCreatedWithMode0700() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let path = base + "/a/b/state"
        #expect(try FileSystem.ensurePrivateDirectory(path))
        var status = stat()
        #expect(stat(path, &status) == 0 && status.st_mode & 0o777 == 0o700)
        #expect(stat(base + "/a", &status) == 0 && status.st_mode & 0o777 == 0o700)
        #expect(try FileSystem.ensurePrivateDirectory(path) == false)
    }

    @Test func aDirectoryOwnedBySomeoneElseInASharedPlaceIsRefused() throws {
        guard geteuid() == 0 else { return }  // only root can give a directory to another user
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let shared = base + "/shared"
        #expect(mkdir(shared, 0o777) == 0 && chmod(shared, 0o1777) == 0)
        let planted = shared + "/devcluster-0"
        #expect(mkdir(planted, 0o700) == 0 && chown(planted, 4_242, 4_242) == 0)
        #expect(throws: FileSystemError(planted, "is owned by user id 4242, not by this user (0), in the shared directory \(shared); "
            + "someone else may have created it: remove it or configure another path")) {
            try FileSystem.ensurePrivateDirectory(planted)
        }
        let link = shared + "/link"
        #expect(symlink(base, link) == 0)
        #expect(throws: FileSystemError(link, "is a symbolic link in the shared directory \(shared); remove it or configure another path")) {
            try FileSystem.ensurePrivateDirectory(link)
        }
        let open = base + "/open"
        #expect(mkdir(open, 0o777) == 0 && chmod(open, 0o777) == 0)
        #expect(throws: FileSystemError(open, "is writable by every user (mode 0777); use a private directory")) {
            try FileSystem.ensurePrivateDirectory(open)
        }
        let file = base + "/file"
        _ = FileManager.default.createFile(atPath: file, contents: Data())
        #expect(throws: FileSystemError(file, "exists and is not a directory")) { try FileSystem.ensurePrivateDirectory(file) }
    }

    @Test func atomicWritesReplaceTheWholeFile() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let path = base + "/f"
        try FileSystem.writeAtomically(Array("first\n".utf8), to: path, mode: 0o644)
        try FileSystem.writeAtomically(Array("second\n".utf8), to: path, mode: 0o644)
        #expect(try FileSystem.readFile(path, limit: 100) == Array("second\n".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: base) == ["f"])
        #expect(try FileSystem.readFile(base + "/missing", limit: 10) == nil)
        #expect(throws: FileSystemError(path, "is larger than 3 bytes")) { try FileSystem.readFile(path, limit: 3) }
    }

    /// A fake /sys/class/net with the given interfaces and addresses.
    private func interfaces(_ entries: [String: String], in base: String) throws -> String {
        let directory = base + "/net"
        for (name, address) in entries {
            try FileManager.default.createDirectory(atPath: "\(directory)/\(name)", withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: "\(directory)/\(name)/address", contents: Data((address + "\n").utf8))
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test func entityIDComesFromConfigurationThenFileThenMACThenRandom() throws {
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let net = try interfaces(["lo": "00:00:00:00:00:00", "dummy0": "00:00:00:00:00:00", "eth1": "52:54:00:aa:bb:cc",
                                  "eth0": "52:54:00:12:34:56"], in: base)
        var identity = EntityIdentity(stateDirectory: base)
        identity.interfacesDirectory = net
        let configured = DaemonConfiguration.EntityID(parsing: "01:23:45:67:89:ab")!
        let fromConfiguration = try identity.resolve(configured: configured)
        #expect(fromConfiguration.id == configured && fromConfiguration.source == .configuration)
        #expect(!FileManager.default.fileExists(atPath: identity.filePath), "a configured id is not stored")

        let derived = try identity.resolve(configured: nil)
        #expect(derived.id.description == "52:54:00:12:34:56" && derived.source == .macAddress(interface: "eth0"))
        #expect(try FileSystem.readFile(identity.filePath, limit: 100) == Array("52:54:00:12:34:56\n".utf8))

        // The stored id wins over the MAC address from now on, even if the hardware changes.
        identity.interfacesDirectory = try interfaces([:], in: base + "/empty")
        let stored = try identity.resolve(configured: nil)
        #expect(stored.id.description == "52:54:00:12:34:56" && stored.source == .stateFile(identity.filePath))

        // A damaged file: its kept copy is used, with a warning, and the file is restored from it.
        try FileSystem.writeAtomically(Array("garbage".utf8), to: identity.filePath, mode: 0o644)
        let kept = try identity.resolve(configured: nil)
        #expect(kept.id.description == "52:54:00:12:34:56" && kept.source == .stateFile(identity.filePath + ".prev"))
        #expect(kept.warning == "the entity id file \(identity.filePath) is not valid (not an entity id); using its kept copy "
            + "\(identity.filePath).prev (52:54:00:12:34:56); the unusable file is kept as \(identity.filePath).bad")
        #expect(try FileSystem.readFile(identity.filePath, limit: 100) == Array("52:54:00:12:34:56\n".utf8))
        #expect(try identity.resolve(configured: nil).warning == nil)

        // No file, no copy and no usable interface: random, locally administered, stored.
        _ = unlink(identity.filePath)
        _ = unlink(identity.filePath + ".prev")
        identity.randomBytes = { [0xFF, 1, 2, 3, 4, 5] }
        let random = try identity.resolve(configured: nil)
        #expect(random.id.description == "fe:01:02:03:04:05" && random.source == .random)

        // Both damaged: replaced, with a warning naming both.
        try FileSystem.writeAtomically(Array("garbage".utf8), to: identity.filePath, mode: 0o644)
        try FileSystem.writeAtomically(Array("junk".utf8), to: identity.filePath + ".prev", mode: 0o644)
        let replaced = try identity.resolve(configured: nil)
        #expect(replaced.id.description == "fe:01:02:03:04:05")
        #expect(replaced.warning == "the entity id file \(identity.filePath) is not valid (not an entity id) and its kept copy "
            + "\(identity.filePath).prev is not valid (not an entity id) (an entity id is like 01:23:45:67:89:ab); replacing both")
        #expect(try FileSystem.readFile(identity.filePath + ".prev", limit: 100) == Array("fe:01:02:03:04:05\n".utf8))
    }
}
