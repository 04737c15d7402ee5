// This server's own states, which survive a restart: the snapshot file's format (the change
// log's is in LocalStateLog). Writing the file (atomically) is the daemon's job.

import EventService
import Membership

/// The states this server itself set: its local device states and the MWI counts it published.
///
/// `DeviceStateService` emits each change in a `persist` effect (`LocalStateChange`); the daemon
/// appends it to a change log (`LocalStateLog`) and now and then writes `encoded()` atomically as
/// the snapshot the log extends (compaction). At start it passes the snapshot with its log
/// replayed back, after which the states are published again.
///
/// File format (big-endian):
///
/// ```
/// size  field
///   4   magic "DCLS" (0x44 0x43 0x4C 0x53)
///   1   format version = 1
///   4   device count D, 0...1_000_000; D times, ascending by name bytes:
///         1 state code 0...8
///         2 name length N, 1...255; N bytes (a valid, normalized DeviceName)
///   4   mailbox count M, 0...1_000_000; M times, ascending by (mailbox, context):
///         4 new messages, 4 old messages
///         1 mailbox length, 1...80; bytes
///         1 context length, 1...80; bytes
///         1 has stamp: 0 or 1; if 1: 8 ring sequence, 8 index
/// ```
/// Nothing may follow. Decoding rejects every violation with a `ServiceWireError`.
public struct LocalStateTable: Sendable, Equatable {
    /// A mailbox this server published: the counts, and the ring position where the ring
    /// delivered that publication (`nil` until it came back).
    public struct PublishedMailbox: Sendable, Equatable {
        /// The counts published.
        public var counts: MailboxCounts
        /// Where the publication was delivered, once known.
        public var position: RingPosition?

        /// Creates an entry.
        public init(counts: MailboxCounts, position: RingPosition?) {
            self.counts = counts
            self.position = position
        }
    }

    /// The magic bytes at the start of the file.
    public static let magic: [UInt8] = Array("DCLS".utf8)
    /// The format version this build writes and reads.
    public static let version: UInt8 = 1
    /// The most devices or mailboxes in one file.
    public static let maxEntries = 1_000_000
    /// The largest file accepted, checked before parsing.
    public static let maxBytes = 9 + maxEntries * (3 + DeviceName.maxBytes) + 4 + maxEntries * (27 + 160)

    /// Local device states.
    public var devices: [DeviceName: DeviceStateValue]
    /// Mailboxes this server published.
    public var mailboxes: [MailboxName: PublishedMailbox]

    /// Creates a table.
    public init(devices: [DeviceName: DeviceStateValue] = [:], mailboxes: [MailboxName: PublishedMailbox] = [:]) {
        self.devices = devices
        self.mailboxes = mailboxes
    }

    /// The file bytes. Deterministic: entries are written in ascending order.
    public func encoded() -> [UInt8] {
        precondition(devices.count <= Self.maxEntries && mailboxes.count <= Self.maxEntries, "table over \(Self.maxEntries) entries")
        var writer = ServiceWireWriter(capacity: 16 + devices.count * 24 + mailboxes.count * 40)
        writer.write(contentsOf: Self.magic)
        writer.write(Self.version)
        writer.writeLength(devices.count, as: UInt32.self)
        for device in devices.keys.sorted() {
            writer.write(devices[device]?.rawValue ?? DeviceStateValue.unknown.rawValue)
            writer.writeString(device.rawValue, lengthAs: UInt16.self)
        }
        writer.writeLength(mailboxes.count, as: UInt32.self)
        for mailbox in mailboxes.keys.sorted() {
            guard let entry = mailboxes[mailbox] else { continue }
            entry.write(named: mailbox, into: &writer)
        }
        return writer.bytes
    }

    /// Decodes file bytes.
    ///
    /// - Throws: `ServiceWireError` for a bad magic (`unknownKind`), version, count, state code,
    ///   name, flag, order, missing or trailing bytes.
    public init(decoding bytes: [UInt8]) throws(ServiceWireError) {
        guard bytes.count <= Self.maxBytes else { throw .oversized(size: bytes.count, limit: Self.maxBytes) }
        var reader = ServiceWireReader(bytes)
        let magic = try reader.readBytes(count: 4)
        guard magic == Self.magic else { throw .unknownKind(magic[0], format: "local state file magic") }
        let version = try reader.readUInt8()
        guard version == Self.version else { throw .unsupportedVersion(version, format: "local state file") }
        let deviceCount = try reader.readCount(as: UInt32.self, field: "devices", limit: Self.maxEntries)
        var devices: [DeviceName: DeviceStateValue] = [:]
        var previousDevice: DeviceName?
        for _ in 0..<deviceCount {
            let code = try reader.readUInt8()
            guard let state = DeviceStateValue(rawValue: code) else { throw .invalidValue(field: "state", value: UInt64(code)) }
            let text = try reader.readString(lengthAs: UInt16.self, field: "device", minimum: 1, limit: DeviceName.maxBytes)
            let device = try DeviceName(checking: text, field: "device")
            guard device.rawValue == text else { throw .invalidText(field: "device") }
            if let previousDevice, !(previousDevice < device) { throw .notAscending(field: "devices") }
            previousDevice = device
            devices[device] = state
        }
        let mailboxCount = try reader.readCount(as: UInt32.self, field: "mailboxes", limit: Self.maxEntries)
        var mailboxes: [MailboxName: PublishedMailbox] = [:]
        var previousMailbox: MailboxName?
        for _ in 0..<mailboxCount {
            let (name, entry) = try PublishedMailbox.read(from: &reader)
            if let previousMailbox, !(previousMailbox < name) { throw .notAscending(field: "mailboxes") }
            previousMailbox = name
            mailboxes[name] = entry
        }
        try reader.requireEnd()
        self.init(devices: devices, mailboxes: mailboxes)
    }
}

extension LocalStateTable.PublishedMailbox {
    /// One mailbox as the table and the change log (LocalStateLog) both write it:
    /// `new u32, old u32, mailbox (u8 length), context (u8 length), has_position u8
    /// [ring_sequence u64, index u64]`.
    func write(named name: MailboxName, into writer: inout ServiceWireWriter) {
        writer.write(counts.newMessages)
        writer.write(counts.oldMessages)
        writer.writeString(name.mailbox, lengthAs: UInt8.self)
        writer.writeString(name.context, lengthAs: UInt8.self)
        if let position {
            writer.write(UInt8(1))
            writer.write(position.ringSequence)
            writer.write(position.index)
        } else {
            writer.write(UInt8(0))
        }
    }

    /// Reads what `write(named:into:)` wrote, checking the name.
    static func read(from reader: inout ServiceWireReader) throws(ServiceWireError) -> (MailboxName, Self) {
        let counts = MailboxCounts(newMessages: try reader.readUInt32(), oldMessages: try reader.readUInt32())
        let mailbox = try reader.readString(lengthAs: UInt8.self, field: "mailbox", minimum: 1, limit: 80)
        let context = try reader.readString(lengthAs: UInt8.self, field: "context", minimum: 1, limit: 80)
        let name = try MailboxName(checking: mailbox, context: context)
        let flag = try reader.readUInt8()
        let position: RingPosition?
        switch flag {
        case 0: position = nil
        case 1: position = RingPosition(ringSequence: try reader.readUInt64(), index: try reader.readUInt64())
        default: throw .invalidValue(field: "has stamp", value: UInt64(flag))
        }
        return (name, Self(counts: counts, position: position))
    }
}
