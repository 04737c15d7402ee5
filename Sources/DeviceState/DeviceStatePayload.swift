// The payloads of `device_state` and `mwi` events: model and binary format. Owns encoding and
// bounds-checked decoding; applying them is DeviceStateService's.

import EventService
import Membership
import Totem

/// The payload of a device-state service event (inside an `EventMessage`).
///
/// Binary format (big-endian), starting at the first payload byte:
///
/// ```
/// size  field
///   1   format version = 1
///   1   kind: 1 = device state, 2 = mailbox update, 3 = mailbox re-publication,
///             4 = device state cleared, 5 = device states (several at once)
/// kind 1 (event type device_state):
///   1   state code 0...8 (DeviceStateValue)
///   2   device name length D, 1...255;  D bytes (a valid, normalized DeviceName)
/// kind 4 (event type device_state): the publisher no longer reports the device
///   2   device name length D, 1...255;  D bytes
/// kind 5 (event type device_state): several of the publisher's own states, each applied as a
///       kind 1 (the join re-publication: one event per ~1 KiB of states, not one per device)
///   2   count K, 1...170; K times:
///         1   state code 0...8
///         2   device name length D, 1...255;  D bytes
///       devices strictly ascending by their (normalized) name bytes, so none twice;
///       the whole payload at most 1,024 bytes (`maxBatchBytes`)
/// kind 2 (event type mwi):
///   4   new messages
///   4   old messages
///   1   mailbox length M, 1...80;  M bytes
///   1   context length C, 1...80;  C bytes
/// kind 3 (event type mwi): as kind 2, then the record's original stamp and origin:
///   8   ring sequence
///   8   index
///   6   origin entity id
///   4   origin node id (non-zero)
/// ```
/// Nothing may follow. Decoding rejects every violation with a `ServiceWireError`.
///
/// Daemons from before kind 5 existed count it as a payload that does not decode: a newcomer
/// running such a version learns the others' states from their next changes only.
public enum DeviceStatePayload: Sendable, Equatable {
    /// A server's own state of one device.
    case deviceState(DeviceName, DeviceStateValue)
    /// A fresh MWI update; its stamp is the ring position where it is delivered.
    case mailboxUpdate(MailboxName, MailboxCounts)
    /// A re-published MWI record, with its original stamp and origin.
    case mailboxRepublication(MailboxRecord)
    /// A server no longer reports one device (its slot is removed everywhere). Daemons from before
    /// this kind existed count it as a payload that does not decode and keep the old slot until
    /// the server leaves.
    case deviceStateCleared(DeviceName)
    /// Several of a server's own device states, strictly ascending by device (see
    /// `batches(of:)`), each counting as a `deviceState`.
    case deviceStates([DeviceStateEntry])

    /// The format version this build writes and reads.
    public static let version: UInt8 = 1
    /// The longest kind 5 payload, header included: with the event's own header it fits one
    /// Totem frame of the default 1,500-byte MTU.
    public static let maxBatchBytes = 1_024
    /// The most states in one kind 5 payload: as many of the shortest entries (a 3-byte name
    /// such as `a:b`, 6 bytes with its state and length) as fit in `maxBatchBytes`.
    public static let maxBatchCount = (maxBatchBytes - batchHeaderBytes) / 6
    /// The longest payload of any kind (a kind 1 needs at most 260 bytes, a kind 3 198).
    public static let maxBytes = maxBatchBytes
    /// Bytes of a kind 5 payload before its entries: version, kind, count.
    static let batchHeaderBytes = 4

    /// The event type this payload travels as.
    public var eventType: EventType {
        switch self {
        case .deviceState, .deviceStateCleared, .deviceStates: .deviceState
        case .mailboxUpdate, .mailboxRepublication: .mwi
        }
    }

    /// `entries` (strictly ascending by device) as kind 5 payloads in order, each as full as
    /// `maxBatchBytes` and `maxBatchCount` allow. Empty for no entries.
    public static func batches(of entries: [DeviceStateEntry]) -> [DeviceStatePayload] {
        var batches: [DeviceStatePayload] = []
        var batch: [DeviceStateEntry] = []
        var size = batchHeaderBytes
        for entry in entries {
            let entrySize = entry.encodedBytes
            if !batch.isEmpty && (size + entrySize > maxBatchBytes || batch.count == maxBatchCount) {
                batches.append(.deviceStates(batch))
                batch.removeAll(keepingCapacity: true)
                size = batchHeaderBytes
            }
            batch.append(entry)
            size += entrySize
        }
        if !batch.isEmpty { batches.append(.deviceStates(batch)) }
        return batches
    }

    /// The payload bytes.
    public func encoded() -> [UInt8] {
        var writer = ServiceWireWriter(capacity: 48)
        writer.write(Self.version)
        switch self {
        case .deviceState(let device, let state):
            writer.write(UInt8(1))
            writer.write(state.rawValue)
            writer.writeString(device.rawValue, lengthAs: UInt16.self)
        case .mailboxUpdate(let mailbox, let counts):
            writer.write(UInt8(2))
            Self.write(mailbox, counts, to: &writer)
        case .mailboxRepublication(let record):
            writer.write(UInt8(3))
            Self.write(record.mailbox, record.counts, to: &writer)
            writer.write(record.stamp.position.ringSequence)
            writer.write(record.stamp.position.index)
            writer.write(record.originEntity)
            writer.write(record.originNode.rawValue)
        case .deviceStateCleared(let device):
            writer.write(UInt8(4))
            writer.writeString(device.rawValue, lengthAs: UInt16.self)
        case .deviceStates(let entries):
            // What the decoder checks, asserted: built by `batches(of:)`.
            precondition((1...Self.maxBatchCount).contains(entries.count), "a batch of \(entries.count) device states")
            precondition(zip(entries, entries.dropFirst()).allSatisfy { $0.device < $1.device }, "batch not ascending by device")
            writer.write(UInt8(5))
            writer.write(UInt16(entries.count))
            for entry in entries {
                writer.write(entry.state.rawValue)
                writer.writeString(entry.device.rawValue, lengthAs: UInt16.self)
            }
            precondition(writer.bytes.count <= Self.maxBatchBytes, "a batch of \(writer.bytes.count) bytes")
        }
        return writer.bytes
    }

    private static func write(_ mailbox: MailboxName, _ counts: MailboxCounts, to writer: inout ServiceWireWriter) {
        writer.write(counts.newMessages)
        writer.write(counts.oldMessages)
        writer.writeString(mailbox.mailbox, lengthAs: UInt8.self)
        writer.writeString(mailbox.context, lengthAs: UInt8.self)
    }

    /// Decodes payload bytes.
    ///
    /// - Throws: `ServiceWireError` for a wrong version or kind, an unknown state code, an
    ///   invalid device or mailbox name, a zero node id, a batch count out of range or devices
    ///   out of order, missing or trailing bytes.
    public init(decoding bytes: [UInt8]) throws(ServiceWireError) {
        guard bytes.count <= Self.maxBytes else { throw .oversized(size: bytes.count, limit: Self.maxBytes) }
        var reader = ServiceWireReader(bytes)
        let version = try reader.readUInt8()
        guard version == Self.version else { throw .unsupportedVersion(version, format: "device state") }
        let kind = try reader.readUInt8()
        switch kind {
        case 1:
            let code = try reader.readUInt8()
            guard let state = DeviceStateValue(rawValue: code) else { throw .invalidValue(field: "state", value: UInt64(code)) }
            self = .deviceState(try Self.readDevice(&reader), state)
        case 4:
            self = .deviceStateCleared(try Self.readDevice(&reader))
        case 5:
            self = .deviceStates(try Self.readBatch(&reader))
        case 2:
            let (mailbox, counts) = try Self.readMailbox(&reader)
            self = .mailboxUpdate(mailbox, counts)
        case 3:
            let (mailbox, counts) = try Self.readMailbox(&reader)
            let position = RingPosition(ringSequence: try reader.readUInt64(), index: try reader.readUInt64())
            guard let entity = EntityID(rawValue: try reader.readUInt48()) else {
                preconditionFailure("six bytes always make an entity id")
            }
            let rawNode = try reader.readUInt32()
            guard let node = NodeID(rawValue: rawNode) else { throw .zeroNodeID(field: "origin node") }
            self = .mailboxRepublication(MailboxRecord(mailbox: mailbox, counts: counts, originEntity: entity, originNode: node,
                                                       stamp: MailboxStamp(position: position, entity: entity)))
        default:
            throw .unknownKind(kind, format: "device state")
        }
        try reader.requireEnd()
    }

    private static func readBatch(_ reader: inout ServiceWireReader) throws(ServiceWireError) -> [DeviceStateEntry] {
        let count = try reader.readCount(as: UInt16.self, field: "device states", limit: maxBatchCount)
        guard count >= 1 else { throw .invalidValue(field: "device states count", value: 0) }
        var entries: [DeviceStateEntry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let code = try reader.readUInt8()
            guard let state = DeviceStateValue(rawValue: code) else { throw .invalidValue(field: "state", value: UInt64(code)) }
            let device = try readDevice(&reader)
            if let previous = entries.last, !(previous.device < device) { throw .notAscending(field: "device states") }
            entries.append(DeviceStateEntry(device: device, state: state))
        }
        return entries
    }

    private static func readDevice(_ reader: inout ServiceWireReader) throws(ServiceWireError) -> DeviceName {
        let text = try reader.readString(lengthAs: UInt16.self, field: "device", minimum: 1, limit: DeviceName.maxBytes)
        return try DeviceName(checking: text, field: "device")
    }

    private static func readMailbox(_ reader: inout ServiceWireReader) throws(ServiceWireError) -> (MailboxName, MailboxCounts) {
        let counts = MailboxCounts(newMessages: try reader.readUInt32(), oldMessages: try reader.readUInt32())
        let mailbox = try reader.readString(lengthAs: UInt8.self, field: "mailbox", minimum: 1, limit: 80)
        let context = try reader.readString(lengthAs: UInt8.self, field: "context", minimum: 1, limit: 80)
        return (try MailboxName(checking: mailbox, context: context), counts)
    }
}

/// One device's state in a batch (`DeviceStatePayload.deviceStates`).
public struct DeviceStateEntry: Sendable, Equatable {
    /// The device.
    public var device: DeviceName
    /// The publisher's state of it.
    public var state: DeviceStateValue

    /// Creates an entry.
    public init(device: DeviceName, state: DeviceStateValue) {
        self.device = device
        self.state = state
    }

    /// Its size in a kind 5 payload: state code, name length, name.
    var encodedBytes: Int { 3 + device.rawValue.utf8.count }
}
