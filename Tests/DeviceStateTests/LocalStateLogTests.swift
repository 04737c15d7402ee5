// The local state change log's format: records round-trip, a log cut at any byte keeps exactly
// its whole records, a damaged record ends the valid prefix, and a bad header is refused.

import DeviceState
import EventService
import Membership
import ServiceTestSupport
import Testing
import Totem

@Suite("Local state log")
struct LocalStateLogTests {
    static let changes: [LocalStateChange] = [
        .device(Builders.device("SIP/alice"), .inUse),
        .device(Builders.device("Custom:x"), .unavailable),
        .mailbox(try! MailboxName(mailbox: "100", context: "default"),
                 LocalStateTable.PublishedMailbox(counts: MailboxCounts(newMessages: 3, oldMessages: 1), position: nil)),
        .mailbox(try! MailboxName(mailbox: "100", context: "default"),
                 LocalStateTable.PublishedMailbox(counts: MailboxCounts(newMessages: 3, oldMessages: 1),
                                                  position: RingPosition(ringSequence: 9, index: 77))),
        .device(Builders.device("SIP/alice"), nil),
        .mailbox(try! MailboxName(mailbox: "200", context: "office"), nil),
    ]

    static func log(_ changes: [LocalStateChange], base: LocalStateLog.Base) -> (bytes: [UInt8], ends: [Int]) {
        var bytes = LocalStateLog.header(base: base)
        var ends = [bytes.count]
        for change in changes {
            LocalStateLog.appendRecord(change, to: &bytes)
            ends.append(bytes.count)
        }
        return (bytes, ends)
    }

    @Test func recordsRoundTripAndReplayIsIdempotent() throws {
        let snapshot = LocalStateTable().encoded()
        let base = LocalStateLog.Base(snapshot: snapshot)
        let (bytes, _) = Self.log(Self.changes, base: base)
        let contents = try LocalStateLog.decode(bytes)
        #expect(contents.base == base && contents.changes == Self.changes && contents.validBytes == bytes.count && contents.problem == nil)
        var once = LocalStateTable()
        for change in contents.changes { once.apply(change) }
        var twice = once
        for change in contents.changes { twice.apply(change) }
        #expect(once == twice)
        #expect(once.devices == [Builders.device("Custom:x"): .unavailable])
        #expect(once.mailboxes.count == 1)
        // The CRC is zlib's: crc32("123456789") = 0xCBF43926.
        #expect(LocalStateLog.crc32(Array("123456789".utf8)[...]) == 0xCBF4_3926)
    }

    @Test func aLogCutAtAnyByteKeepsExactlyItsWholeRecords() throws {
        let base = LocalStateLog.Base(snapshot: [1, 2, 3])
        let (bytes, ends) = Self.log(Self.changes, base: base)
        for cut in LocalStateLog.headerBytes...bytes.count {
            let contents = try LocalStateLog.decode(Array(bytes[..<cut]))
            let whole = ends.lastIndex { $0 <= cut }!
            #expect(contents.changes == Array(Self.changes[..<whole]), "cut at \(cut)")
            #expect(contents.validBytes == ends[whole])
            #expect((contents.problem == nil) == (cut == ends[whole]), "cut at \(cut): \(contents.problem ?? "none")")
        }
        // Shorter than a header: unusable as a whole.
        for cut in 0..<LocalStateLog.headerBytes {
            #expect(throws: ServiceWireError.self) { try LocalStateLog.decode(Array(bytes[..<cut])) }
        }
    }

    @Test func aDamagedRecordEndsTheValidPrefix() throws {
        let (bytes, ends) = Self.log(Self.changes, base: LocalStateLog.Base(snapshot: []))
        // Flip one bit in the third record's body: the first two stay, the rest is reported.
        var damaged = bytes
        damaged[ends[2] + 9] ^= 0x10
        let contents = try LocalStateLog.decode(damaged)
        #expect(contents.changes == Array(Self.changes[..<2]))
        #expect(contents.problem == "a record whose checksum does not match at byte \(ends[2]); \(bytes.count - ends[2]) byte(s) ignored")
        // An absurd length (zeros where a record should start).
        let zeros = Array(bytes[..<ends[1]]) + [UInt8](repeating: 0, count: 40)
        let zeroed = try LocalStateLog.decode(zeros)
        #expect(zeroed.changes == [Self.changes[0]])
        #expect(zeroed.problem?.hasPrefix("a record length of 0 bytes") == true)
        // A bad magic or version is refused.
        var magic = bytes
        magic[0] = 0x58
        #expect(throws: ServiceWireError.unknownKind(0x58, format: "local state log magic")) { try LocalStateLog.decode(magic) }
        var version = bytes
        version[4] = 2
        #expect(throws: ServiceWireError.unsupportedVersion(2, format: "local state log")) { try LocalStateLog.decode(version) }
        // The base names the snapshot's length and content.
        #expect(LocalStateLog.Base(snapshot: [1, 2, 3]) != LocalStateLog.Base(snapshot: [1, 2, 4]))
        #expect(LocalStateLog.Base(snapshot: [1, 2, 3]).length == 3)
    }

    /// Mutated logs (a disk's garbage, a hostile file): decoding never traps, keeps only records
    /// that pass their checksum, and a valid prefix stays a prefix of what was written.
    @Test func mutatedLogsNeverTrapAndKeepOnlyCheckedRecords() throws {
        var generator = SeededGenerator(seed: 14)
        let (bytes, _) = Self.log(Self.changes + Self.changes, base: LocalStateLog.Base(snapshot: [9]))
        var decoded = 0
        for _ in 0..<5_000 {
            let mutated = Mutation.mutate(bytes, using: &generator)
            guard let contents = try? LocalStateLog.decode(mutated) else { continue }
            decoded += 1
            #expect(contents.validBytes <= mutated.count)
            #expect((contents.problem == nil) == (contents.validBytes == mutated.count))
            var table = LocalStateTable()
            for change in contents.changes { table.apply(change) }
            #expect(table.devices.count + table.mailboxes.count <= contents.changes.count)
            if mutated.count >= bytes.count && Array(mutated[..<bytes.count]) == bytes {
                #expect(Array(contents.changes.prefix(12)) == Self.changes + Self.changes)
            }
        }
        #expect(decoded > 0)
    }
}
