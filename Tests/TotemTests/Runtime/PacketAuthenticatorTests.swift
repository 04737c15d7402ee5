// Packet authentication (none, HMAC-SHA-256, ChaCha20-Poly1305) and cluster key files: round
// trips, and a rejection test for each way a datagram or key can be wrong.

import Foundation
import Testing
@testable import Totem
@testable import TotemRuntime

@Suite("PacketAuthenticator")
struct PacketAuthenticatorTests {
    static let protectedModes: [PacketAuthenticator.Mode] = [.hmacSHA256, .chaCha20Poly1305]
    let codec = WireCodec(clusterName: "alpha")

    func authenticator(_ mode: PacketAuthenticator.Mode, key: ClusterKey = testKey(), cluster: String = "alpha", node: UInt32 = 1) -> PacketAuthenticator {
        PacketAuthenticator(mode: mode, key: key, clusterName: cluster, nodeID: NodeID(node), epoch: 0xE0E0, counterStart: 0xFFFF_FFFF_FFFF_FFF0)
    }

    func samplePacket() -> Packet {
        .multicast(DataMessage(
            sender: NodeID(1), ringID: RingID(representative: NodeID(1), sequence: 8), sequence: SequenceNumber(3),
            originator: NodeID(1), delivery: .agreed, content: .frame(Array("hello, ring".utf8))))
    }

    @Test("sealed datagrams open to the original and decode to the original packet", arguments: PacketAuthenticator.Mode.allCases)
    func roundTrip(mode: PacketAuthenticator.Mode) throws {
        var sender = authenticator(mode)
        let receiver = authenticator(mode, node: 2)
        let plain = codec.encode(samplePacket())
        var datagram = plain
        sender.seal(&datagram)
        #expect(datagram.count == plain.count + PacketAuthenticator.overheadBytes(for: mode))
        guard case .accepted(let opened, let stamp) = receiver.open(datagram) else {
            Issue.record("\(mode) rejected its own datagram")
            return
        }
        #expect(opened == plain)
        // Stamped for every node, in the sender's epoch, with its counter's first value.
        let expected = mode == .none ? nil : PacketAuthenticator.Stamp(sealer: 1, destination: 0, epoch: 0xE0E0, counter: 0xFFFF_FFFF_FFFF_FFF0)
        #expect(stamp == expected)
        #expect(try codec.decode(opened) == samplePacket())
        // The in-place variant agrees.
        var copy = datagram
        copy.withUnsafeMutableBytes { raw in
            guard case .accepted(let inPlace, _) = receiver.open(raw) else {
                Issue.record("in-place open rejected")
                return
            }
            #expect(Array(inPlace) == plain)
        }
    }

    @Test("ChaCha20-Poly1305 encrypts the body, leaves header and stamp in clear, and never repeats a nonce")
    func encryptionLayout() {
        var sender = authenticator(.chaCha20Poly1305, node: 0x0102_0304)
        let plain = codec.encode(samplePacket())
        var first = plain
        sender.seal(&first)
        var second = plain
        sender.seal(&second, destination: 7)
        #expect(Array(first[0..<16]) == Array(plain[0..<16]))
        // Stamp: sealer, destination (0: every node), epoch, counter (which wraps from 2^64 − 16 upwards).
        #expect(Array(first[16..<20]) == [1, 2, 3, 4])
        #expect(Array(first[20..<24]) == [0, 0, 0, 0])
        #expect(Array(second[20..<24]) == [0, 0, 0, 7])
        #expect(Array(first[24..<28]) == [0, 0, 0xE0, 0xE0])
        #expect(Array(first[28..<36]) == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xF0])
        #expect(Array(second[28..<36]) == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xF1])
        #expect(Array(first[36..<(36 + plain.count - 16)]) != Array(plain[16...]))
        #expect(first[36...] != second[36...])
    }

    @Test("the stamp is authenticated: another sealer, destination, epoch or counter fails the check", arguments: protectedModes)
    func stampIsAuthenticated(mode: PacketAuthenticator.Mode) {
        var sender = authenticator(mode)
        let receiver = authenticator(mode, node: 2)
        var datagram = codec.encode(samplePacket())
        sender.seal(&datagram, destination: 2)
        for (offset, value) in [(19, UInt8(3)), (23, 3), (27, 0xE1), (35, 0xF1)] {
            var altered = datagram
            altered[offset] = value
            guard case .rejected = receiver.open(altered) else {
                Issue.record("\(mode): a stamp altered at byte \(offset) was accepted")
                return
            }
        }
        #expect(receiver.open(datagram) == .accepted(codec.encode(samplePacket()), .init(sealer: 1, destination: 2, epoch: 0xE0E0, counter: 0xFFFF_FFFF_FFFF_FFF0)))
    }

    @Test("a datagram another node built (a retransmitted MCAST keeps its originator) opens under the sealer's stamp", arguments: protectedModes)
    func retransmissionBySomeoneElse(mode: PacketAuthenticator.Mode) {
        var retransmitter = authenticator(mode, node: 3)
        let receiver = authenticator(mode, node: 2)
        let plain = codec.encode(samplePacket())  // built by node 1
        var datagram = plain
        retransmitter.seal(&datagram)
        #expect(receiver.open(datagram) == .accepted(plain, .init(sealer: 3, destination: 0, epoch: 0xE0E0, counter: 0xFFFF_FFFF_FFFF_FFF0)))
    }

    @Test("every single flipped bit is rejected", arguments: protectedModes)
    func flippedBitsAreRejected(mode: PacketAuthenticator.Mode) {
        var sender = authenticator(mode)
        let receiver = authenticator(mode, node: 2)
        var datagram = codec.encode(samplePacket())
        sender.seal(&datagram)
        for bit in 0..<(datagram.count * 8) {
            var corrupted = datagram
            corrupted[bit / 8] ^= 1 << UInt8(bit % 8)
            guard case .rejected = receiver.open(corrupted) else {
                Issue.record("\(mode): flipping bit \(bit) went unnoticed")
                return
            }
        }
    }

    @Test("a datagram sealed under another key is rejected", arguments: protectedModes)
    func wrongKeyIsRejected(mode: PacketAuthenticator.Mode) {
        var sender = authenticator(mode, key: testKey(1))
        let receiver = authenticator(mode, key: testKey(2))
        var datagram = codec.encode(samplePacket())
        sender.seal(&datagram)
        let expected: PacketAuthenticator.Rejection = mode == .hmacSHA256 ? .badAuthenticationCode : .badTag
        #expect(receiver.open(datagram) == .rejected(expected))
    }

    @Test("truncated datagrams are rejected, down to an empty one", arguments: protectedModes)
    func truncatedIsRejected(mode: PacketAuthenticator.Mode) {
        var sender = authenticator(mode)
        let receiver = authenticator(mode, node: 2)
        var datagram = codec.encode(samplePacket())
        sender.seal(&datagram)
        for length in 0..<datagram.count {
            guard case .rejected(let reason) = receiver.open(Array(datagram[0..<length])) else {
                Issue.record("\(mode): a datagram cut to \(length) bytes was accepted")
                return
            }
            if length < receiver.minimumDatagramBytes {
                #expect(reason == .tooShort(length: length, minimum: receiver.minimumDatagramBytes))
            }
        }
    }

    @Test("a datagram of another cluster under the same key is rejected by authentication", arguments: protectedModes)
    func otherClusterIsRejected(mode: PacketAuthenticator.Mode) {
        var other = authenticator(mode, cluster: "beta")
        let receiver = authenticator(mode, cluster: "alpha")
        var datagram = WireCodec(clusterName: "beta").encode(samplePacket())
        other.seal(&datagram)
        guard case .rejected = receiver.open(datagram) else {
            Issue.record("\(mode): cluster beta's datagram accepted by cluster alpha")
            return
        }
    }

    @Test("without authentication, another cluster's datagram is still stopped by the codec")
    func otherClusterWithoutAuthentication() {
        let receiver = PacketAuthenticator.unprotected()
        let datagram = WireCodec(clusterName: "beta").encode(samplePacket())
        guard case .accepted(let plain, nil) = receiver.open(datagram) else {
            Issue.record("unprotected mode rejected a datagram")
            return
        }
        #expect(throws: WireError.foreignCluster(WireCodec.clusterID(named: "beta"))) { try codec.decode(plain) }
    }
}

@Suite("ClusterKey")
struct ClusterKeyTests {
    @Test("load accepts 32 to 1024 bytes and rejects shorter, longer and missing files")
    func loadLimits() throws {
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        func write(_ count: Int) throws -> String {
            let path = "\(directory)/key-\(count)"
            try Data((0..<count).map { UInt8(truncatingIfNeeded: $0) }).write(to: URL(fileURLWithPath: path))
            #expect(chmod(path, 0o600) == 0)
            return path
        }
        #expect(try ClusterKey.load(path: write(32)).byteCount == 32)
        #expect(try ClusterKey.load(path: write(1_024)).byteCount == 1_024)
        let short = try write(31)
        #expect(throws: ClusterKeyError.tooShort(path: short, length: 31, minimum: 32)) { try ClusterKey.load(path: short) }
        let empty = try write(0)
        #expect(throws: ClusterKeyError.tooShort(path: empty, length: 0, minimum: 32)) { try ClusterKey.load(path: empty) }
        let long = try write(1_025)
        #expect(throws: ClusterKeyError.tooLong(path: long, length: 1_025, maximum: 1_024)) { try ClusterKey.load(path: long) }
        let missing = "\(directory)/missing"
        #expect(throws: ClusterKeyError.unreadable(path: missing, code: ENOENT)) { try ClusterKey.load(path: missing) }
        #expect(throws: ClusterKeyError.self) { try ClusterKey(bytes: [1, 2, 3]) }
    }

    @Test("load refuses, as ssh does, a key file its group or others may read, or that another user owns")
    func loadRefusesAnOpenOrForeignKey() throws {
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let path = "\(directory)/authkey"
        try Data(repeating: 7, count: 64).write(to: URL(fileURLWithPath: path))
        for mode: mode_t in [0o644, 0o640, 0o604, 0o666, 0o401] {
            #expect(chmod(path, mode) == 0)
            #expect(throws: ClusterKeyError.notPrivate(path: path, mode: UInt32(mode))) { try ClusterKey.load(path: path) }
        }
        #expect(chmod(path, 0o644) == 0)
        let message = "\(ClusterKeyError.notPrivate(path: path, mode: 0o644))"
        #expect(message == "permissions 0644 for \(path) are too open: the key must be readable by its owner only; run chmod 0400 \(path)")
        for mode: mode_t in [0o400, 0o600] {
            #expect(chmod(path, mode) == 0)
            #expect(try ClusterKey.load(path: path).byteCount == 64)
        }
        // Owned by another user (only root can give a file away): refused even at 0400.
        if geteuid() == 0 {
            #expect(chown(path, 65_534, 65_534) == 0)
            #expect(throws: ClusterKeyError.foreignOwner(path: path, owner: 65_534, expected: 0)) { try ClusterKey.load(path: path) }
        } else {
            Issue.record("run as root to check the owner rule (chown to another user)")
        }
        // A directory is not a key.
        #expect(throws: ClusterKeyError.unreadable(path: directory, code: EINVAL)) { try ClusterKey.load(path: directory) }
    }

    @Test("a generated key survives writing and loading, and the file is private and never overwritten")
    func generateWriteLoad() throws {
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let key = try ClusterKey.generate()
        #expect(key.byteCount == ClusterKey.generatedBytes)
        #expect(!key.description.contains(",") && key.description.contains("256 bytes"))
        let path = "\(directory)/authkey"
        try key.write(toPath: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o400)
        #expect(throws: ClusterKeyError.unwritable(path: path, code: EEXIST)) { try key.write(toPath: path) }
        let loaded = try ClusterKey.load(path: path)
        // Same key: each side opens what the other seals.
        var sealer = PacketAuthenticator(mode: .hmacSHA256, key: key, clusterName: "c", nodeID: NodeID(1), epoch: 1, counterStart: 0)
        let opener = PacketAuthenticator(mode: .hmacSHA256, key: loaded, clusterName: "c", nodeID: NodeID(2), epoch: 2, counterStart: 0)
        var datagram = WireCodec(clusterName: "c").encode(.mergeDetect(MergeDetect(sender: NodeID(1), ringID: RingID(representative: NodeID(1), sequence: 1))))
        sealer.seal(&datagram)
        guard case .accepted = opener.open(datagram) else {
            Issue.record("a loaded key does not match the written one")
            return
        }
        #expect(try ClusterKey.generate(byteCount: 32).byteCount == 32)
        #expect(throws: ClusterKeyError.self) { try ClusterKey.generate(byteCount: 16) }
    }

    @Test("two generated keys differ")
    func generatedKeysDiffer() throws {
        let first = try ClusterKey.generate(byteCount: 32)
        let second = try ClusterKey.generate(byteCount: 32)
        #expect(first.material != second.material)
    }
}
