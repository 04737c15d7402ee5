// Message-waiting indication: mailbox names, counts, and the latest-wins records.

import EventService
import Membership
import Totem

/// A mailbox, `MAILBOX@CONTEXT`; the context defaults to `default` (as `app_voicemail`).
///
/// Both parts are 1 to 80 printable ASCII characters without `@` or spaces, compared exactly
/// (Asterisk's MWI cache key is an exact (MAILBOX, CONTEXT) match).
public struct MailboxName: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The mailbox.
    public let mailbox: String
    /// The voicemail context.
    public let context: String

    /// Creates a name from its parts.
    ///
    /// - Throws: `DeviceStateError.invisibleCharacter` naming the first control, format or space
    ///   character of a part, else `invalidMailbox`.
    public init(mailbox: String, context: String = "default") throws(DeviceStateError) {
        if let character = InvisibleCharacter.first(in: mailbox) {
            throw .invisibleCharacter(field: "mailbox", name: mailbox, character)
        }
        if let character = InvisibleCharacter.first(in: context) {
            throw .invisibleCharacter(field: "mailbox context", name: context, character)
        }
        guard Self.isValidPart(mailbox), Self.isValidPart(context) else {
            throw .invalidMailbox("\(mailbox)@\(context)")
        }
        self.mailbox = mailbox
        self.context = context
    }

    /// Parses `MAILBOX@CONTEXT` or `MAILBOX` (context `default`).
    ///
    /// - Throws: `DeviceStateError.invisibleCharacter` or `invalidMailbox`.
    public init(parsing text: String) throws(DeviceStateError) {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: try self.init(mailbox: text)
        case 2: try self.init(mailbox: String(parts[0]), context: String(parts[1]))
        default: throw .invalidMailbox(text)
        }
    }

    static func isValidPart(_ text: String) -> Bool {
        (1...80).contains(text.utf8.count) && text.utf8.allSatisfy { (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "@") }
    }

    public static func < (lhs: MailboxName, rhs: MailboxName) -> Bool { (lhs.mailbox, lhs.context) < (rhs.mailbox, rhs.context) }

    /// `MAILBOX@CONTEXT`
    public var description: String { "\(mailbox)@\(context)" }
}

/// New and old message counts of a mailbox (NEWMSGS already includes urgent ones, as
/// `app_voicemail` publishes them).
public struct MailboxCounts: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// New messages.
    public var newMessages: UInt32
    /// Old messages.
    public var oldMessages: UInt32

    /// Creates counts.
    public init(newMessages: UInt32, oldMessages: UInt32) {
        self.newMessages = newMessages
        self.oldMessages = oldMessages
    }

    /// Whether a phone should light its lamp (`Messages-Waiting: yes`).
    public var hasWaitingMessages: Bool { newMessages > 0 }

    public static func < (lhs: MailboxCounts, rhs: MailboxCounts) -> Bool {
        (lhs.newMessages, lhs.oldMessages) < (rhs.newMessages, rhs.oldMessages)
    }

    /// `new/old`, as in `Voice-Message: 2/5`.
    public var description: String { "\(newMessages)/\(oldMessages)" }
}

/// Which MWI update is the latest: the ring position of its original publication, then the
/// publisher's entity id (positions tie only across a partition, see `MailboxRecord`).
public struct MailboxStamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The ring position of the original publication.
    public var position: RingPosition
    /// The entity that published it.
    public var entity: EntityID

    /// Creates a stamp.
    public init(position: RingPosition, entity: EntityID) {
        self.position = position
        self.entity = entity
    }

    public static func < (lhs: MailboxStamp, rhs: MailboxStamp) -> Bool { (lhs.position, lhs.entity) < (rhs.position, rhs.entity) }

    /// `POSITION by ENTITY`
    public var description: String { "\(position) by \(entity)" }
}

/// The cluster-wide MWI of one mailbox: the latest update in ring order, wherever it came from.
///
/// Latest wins (Asterisk keys MWI by mailbox only, so the last writer wins cluster-wide). An
/// update replaces the record iff `(stamp, counts)` is greater: within one ring a later delivery
/// has a greater position; a later ring has a greater sequence; re-published records keep their
/// original stamp, so a stale re-publication never overrides a newer update. Two partitions can
/// give equal positions to different updates; the entity id, then the counts, break the tie the
/// same way on every node, so all nodes converge.
public struct MailboxRecord: Sendable, Equatable {
    /// The mailbox.
    public var mailbox: MailboxName
    /// The counts.
    public var counts: MailboxCounts
    /// The entity that published this update.
    public var originEntity: EntityID
    /// The node that published this update.
    public var originNode: NodeID
    /// The update's stamp.
    public var stamp: MailboxStamp

    /// Creates a record.
    public init(mailbox: MailboxName, counts: MailboxCounts, originEntity: EntityID, originNode: NodeID, stamp: MailboxStamp) {
        self.mailbox = mailbox
        self.counts = counts
        self.originEntity = originEntity
        self.originNode = originNode
        self.stamp = stamp
    }

    /// Whether `self` is a later update than `other`.
    func supersedes(_ other: MailboxRecord) -> Bool { (stamp, counts) > (other.stamp, other.counts) }
}

/// A change of a mailbox's cluster-wide counts.
public struct MailboxChange: Sendable, Equatable {
    /// The counts before (`nil`: the mailbox was unknown).
    public var old: MailboxCounts?
    /// The record now.
    public var new: MailboxRecord

    /// Creates a change.
    public init(old: MailboxCounts?, new: MailboxRecord) {
        self.old = old
        self.new = new
    }
}
