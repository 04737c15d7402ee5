// The local state table's change log: one record per change, appended after the snapshot
// (`LocalStateTable`) it extends. Owns the record format, its checksum and the rule that ties a
// log to its snapshot; writing, fsync and compaction are the daemon's.

import EventService
import Membership

/// One change to this server's local state table: what a `persist` effect carries and what one
/// log record holds. Applying a change is idempotent, so replaying a log twice changes nothing.
public enum LocalStateChange: Sendable, Equatable {
    /// A device's own state set (`nil`: cleared, no longer reported by this server).
    case device(DeviceName, DeviceStateValue?)
    /// A mailbox published (with its stamp once delivered), or `nil`: no longer published.
    case mailbox(MailboxName, LocalStateTable.PublishedMailbox?)
}

extension LocalStateTable {
    /// Applies one change.
    public mutating func apply(_ change: LocalStateChange) {
        switch change {
        case .device(let name, let state): devices[name] = state
        case .mailbox(let name, let entry): mailboxes[name] = entry
        }
    }
}

/// The append-only log of changes after a snapshot of the local state table.
///
/// File format (`local_state.log`, big-endian):
///
/// ```
/// header, 21 bytes, written once (atomically, with the snapshot it extends):
///   4   magic "DCLJ" (0x44 0x43 0x4C 0x4A)
///   1   format version = 1
///   8   base length: the size in bytes of the snapshot file this log extends
///   8   base hash: FNV-1a (64-bit) of that snapshot file's bytes
/// records, appended, each:
///   4   body length L, 1...512
///   4   CRC-32 (IEEE 802.3, as zlib's crc32) of the body
///   L   body: 1 kind, then
///         kind 1 device set:       1 state code 0...8, 2 name length N 1...255, N bytes (a normalized DeviceName)
///         kind 2 device cleared:   2 name length N, N bytes
///         kind 3 mailbox set:      4 new, 4 old, 1 mailbox length 1...80, bytes, 1 context length 1...80,
///                                  bytes, 1 has stamp 0 or 1; if 1: 8 ring sequence, 8 index
///         kind 4 mailbox removed:  1 mailbox length, bytes, 1 context length, bytes
///       with nothing left over.
/// ```
///
/// A log applies only to the snapshot whose length and hash its header names: compaction writes
/// a new snapshot and then replaces the log with an empty one naming it, so a crash between the two
/// leaves a log that names the previous snapshot, and is ignored (the new snapshot already holds
/// its changes). If the snapshot file is unusable and its kept copy (`local_state.prev`, the
/// previous snapshot) is read instead, a log that extends that copy still applies.
///
/// Reading stops at the first record that is cut short, fails its checksum or does not decode:
/// the records before it are the valid prefix (a crash while appending leaves a torn last
/// record); what follows is ignored and reported.
public enum LocalStateLog {
    /// The snapshot a log extends.
    public struct Base: Sendable, Equatable, CustomStringConvertible {
        /// The snapshot file's size in bytes.
        public var length: UInt64
        /// FNV-1a 64 of its bytes.
        public var hash: UInt64

        /// The base naming `snapshot`'s bytes.
        public init(snapshot: [UInt8]) {
            length = UInt64(snapshot.count)
            hash = LocalStateLog.fnv1a(snapshot)
        }

        init(length: UInt64, hash: UInt64) {
            self.length = length
            self.hash = hash
        }

        public var description: String { "\(length) bytes, hash \(String(hash, radix: 16))" }
    }

    /// What a log file holds.
    public struct Contents: Sendable, Equatable {
        /// The snapshot it extends.
        public var base: Base
        /// The changes of the valid prefix, in order.
        public var changes: [LocalStateChange]
        /// Bytes of the valid prefix, header included.
        public var validBytes: Int
        /// Why reading stopped before the end (`nil`: every byte was a valid record).
        public var problem: String?
    }

    /// The magic bytes at the start of the file.
    public static let magic: [UInt8] = Array("DCLJ".utf8)
    /// The format version this build writes and reads.
    public static let version: UInt8 = 1
    /// Header size in bytes.
    public static let headerBytes = 21
    /// The largest record body.
    public static let maxBodyBytes = 512

    /// The header of a new, empty log extending `base`.
    public static func header(base: Base) -> [UInt8] {
        var writer = ServiceWireWriter(capacity: headerBytes)
        writer.write(contentsOf: magic)
        writer.write(version)
        writer.write(base.length)
        writer.write(base.hash)
        return writer.bytes
    }

    /// Appends `change`'s record to `bytes`.
    public static func appendRecord(_ change: LocalStateChange, to bytes: inout [UInt8]) {
        var body = ServiceWireWriter(capacity: 64)
        switch change {
        case .device(let name, let state?):
            body.write(UInt8(1))
            body.write(state.rawValue)
            body.writeString(name.rawValue, lengthAs: UInt16.self)
        case .device(let name, nil):
            body.write(UInt8(2))
            body.writeString(name.rawValue, lengthAs: UInt16.self)
        case .mailbox(let name, let entry?):
            body.write(UInt8(3))
            entry.write(named: name, into: &body)
        case .mailbox(let name, nil):
            body.write(UInt8(4))
            body.writeString(name.mailbox, lengthAs: UInt8.self)
            body.writeString(name.context, lengthAs: UInt8.self)
        }
        var header = ServiceWireWriter(capacity: 8)
        header.writeLength(body.bytes.count, as: UInt32.self)
        header.write(crc32(body.bytes[...]))
        bytes.append(contentsOf: header.bytes)
        bytes.append(contentsOf: body.bytes)
    }

    /// Reads a log file's bytes: the header, then records up to the first invalid one.
    ///
    /// - Throws: `ServiceWireError` when the header itself is missing or wrong (the whole file
    ///   is then unusable).
    public static func decode(_ bytes: [UInt8]) throws(ServiceWireError) -> Contents {
        var reader = ServiceWireReader(bytes)
        let magic = try reader.readBytes(count: 4)
        guard magic == Self.magic else { throw .unknownKind(magic[0], format: "local state log magic") }
        let version = try reader.readUInt8()
        guard version == Self.version else { throw .unsupportedVersion(version, format: "local state log") }
        let base = Base(length: try reader.readUInt64(), hash: try reader.readUInt64())
        var changes: [LocalStateChange] = []
        var valid = reader.offset
        var problem: String?
        // One iteration per record; each consumes at least 9 bytes, so the count is bounded.
        while reader.remaining > 0 {
            guard reader.remaining >= 8 else {
                problem = "a record header cut short (\(reader.remaining) bytes)"
                break
            }
            let length = Int(try reader.readUInt32())
            let checksum = try reader.readUInt32()
            guard length >= 1 && length <= maxBodyBytes else {
                problem = "a record length of \(length) bytes (1...\(maxBodyBytes))"
                break
            }
            guard reader.remaining >= length else {
                problem = "a record cut short (\(reader.remaining) of \(length) bytes)"
                break
            }
            let body = try reader.readSlice(count: length)
            guard crc32(body) == checksum else {
                problem = "a record whose checksum does not match"
                break
            }
            do {
                changes.append(try decodeBody(Array(body)))
            } catch {
                problem = "a record that does not decode (\(error))"
                break
            }
            valid = reader.offset
        }
        return Contents(base: base, changes: changes, validBytes: valid,
                        problem: problem.map { "\($0) at byte \(valid); \(bytes.count - valid) byte(s) ignored" })
    }

    private static func decodeBody(_ bytes: [UInt8]) throws(ServiceWireError) -> LocalStateChange {
        var reader = ServiceWireReader(bytes)
        let kind = try reader.readUInt8()
        let change: LocalStateChange
        switch kind {
        case 1, 2:
            var state: DeviceStateValue?
            if kind == 1 {
                let code = try reader.readUInt8()
                guard let value = DeviceStateValue(rawValue: code) else { throw .invalidValue(field: "state", value: UInt64(code)) }
                state = value
            }
            let text = try reader.readString(lengthAs: UInt16.self, field: "device", minimum: 1, limit: DeviceName.maxBytes)
            let device = try DeviceName(checking: text, field: "device")
            guard device.rawValue == text else { throw .invalidText(field: "device") }
            change = .device(device, state)
        case 3:
            let (name, entry) = try LocalStateTable.PublishedMailbox.read(from: &reader)
            change = .mailbox(name, entry)
        case 4:
            change = .mailbox(try readMailboxName(&reader), nil)
        default:
            throw .unknownKind(kind, format: "local state log record")
        }
        try reader.requireEnd()
        return change
    }

    private static func readMailboxName(_ reader: inout ServiceWireReader) throws(ServiceWireError) -> MailboxName {
        let mailbox = try reader.readString(lengthAs: UInt8.self, field: "mailbox", minimum: 1, limit: 80)
        let context = try reader.readString(lengthAs: UInt8.self, field: "context", minimum: 1, limit: 80)
        return try MailboxName(checking: mailbox, context: context)
    }

    // MARK: Checksums

    /// FNV-1a, 64-bit.
    static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }

    private static let crcTable: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    /// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`).
    public static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
