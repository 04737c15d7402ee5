// MWI: latest in ring order wins, stale re-publications lose, MWI outlives its publisher and
// reaches newcomers.

import Testing
import EventService
import Membership
import Totem
@testable import DeviceState

@Suite("MWI")
struct MailboxTests {
    static let box = Builders.mailbox("1234@default")

    @Test("mailbox names: context defaults to `default`, exact comparison, invalid forms refused")
    func names() throws {
        #expect(try MailboxName(parsing: "1234") == MailboxName(mailbox: "1234", context: "default"))
        #expect(try MailboxName(parsing: "1234@sales").description == "1234@sales")
        #expect(try MailboxName(parsing: "1234@Sales") != MailboxName(parsing: "1234@sales"))
        for text in ["", "@x", "1234@", "a@b@c", "12 34"] {
            #expect(throws: DeviceStateError.self, "\(text)") { try MailboxName(parsing: text) }
        }
        #expect(throws: DeviceStateError.invalidMailbox("a@b@c")) { try MailboxName(parsing: "a@b@c") }
        #expect(MailboxCounts(newMessages: 2, oldMessages: 5).description == "2/5")
        #expect(MailboxCounts(newMessages: 1, oldMessages: 0).hasWaitingMessages)
        #expect(!MailboxCounts(newMessages: 0, oldMessages: 9).hasWaitingMessages)
    }

    @Test("the latest update in ring order wins, whoever published it")
    func latestWins() throws {
        var cluster = SimulatedCluster()
        for node: UInt32 in [1, 2, 3] { try cluster.start(node) }
        try cluster.configure([1, 2, 3])
        try cluster.setMailbox(1, "1234@default", new: 1, old: 0)
        try cluster.setMailbox(2, "1234@default", new: 7, old: 3)
        try cluster.deliverAll()
        let view = cluster.convergedView()
        #expect(view.mailboxes.map(\.counts) == [MailboxCounts(newMessages: 7, oldMessages: 3)])
        #expect(view.mailboxes.first?.originEntity == Builders.entity(2))
        // Submitted in the other order, the other update wins.
        try cluster.setMailbox(2, "1234@default", new: 8, old: 3)
        try cluster.setMailbox(1, "1234@default", new: 0, old: 9)
        try cluster.deliverAll()
        #expect(cluster.convergedView().mailboxes.map(\.counts) == [MailboxCounts(newMessages: 0, oldMessages: 9)])
        let changes = Builders.mailboxChanges(cluster.effects[3] ?? [])
        #expect(changes.map(\.new.counts.newMessages) == [1, 7, 8, 0])
        #expect(changes.first?.old == nil)
    }

    @Test("the publisher learns its update's ring position and persists it")
    func confirmationStamps() throws {
        var service = try Builders.service(1)
        for change in Builders.change(from: [], to: [1], sequence: 4) { _ = service.configurationChanged(change, now: .zero) }
        let effects = try service.setMailbox(Self.box, counts: MailboxCounts(newMessages: 2, oldMessages: 1))
        #expect(Builders.persisted(effects) == [.mailbox(Self.box, LocalStateTable.PublishedMailbox(
            counts: MailboxCounts(newMessages: 2, oldMessages: 1), position: nil))])
        let back = try service.delivered(payload: Builders.submits(effects)[0], from: NodeID(1), now: .zero)
        #expect(Builders.persisted(back) == [.mailbox(Self.box, LocalStateTable.PublishedMailbox(
            counts: MailboxCounts(newMessages: 2, oldMessages: 1), position: RingPosition(ringSequence: 4, index: 0)))])
        #expect(service.localState.mailboxes[Self.box]?.position == RingPosition(ringSequence: 4, index: 0))
        #expect(service.mailbox(Self.box)?.stamp == MailboxStamp(position: RingPosition(ringSequence: 4, index: 0), entity: Builders.entity(1)))
    }

    @Test("a join before the publisher's update came back: the publisher keeps the stamp every node keeps")
    func joinBeforeConfirmation() throws {
        // Found by the service simulation (seed 6): the join re-publishes the unconfirmed update
        // afresh, so it is delivered twice; every node keeps the later copy, the publisher kept
        // the first and later re-published that older stamp to newcomers.
        var publisher = try Builders.service(1)
        var receiver = try Builders.service(2)
        for change in Builders.change(from: [], to: [1], sequence: 4) { _ = publisher.configurationChanged(change, now: .zero) }
        for change in Builders.change(from: [], to: [2], sequence: 4) { _ = receiver.configurationChanged(change, now: .zero) }
        let counts = MailboxCounts(newMessages: 3, oldMessages: 1)
        let first = Builders.submits(try publisher.setMailbox(Self.box, counts: counts))
        var second: [[UInt8]] = []
        for change in Builders.change(from: [1], to: [1, 2], sequence: 8) {
            second += Builders.submits(publisher.configurationChanged(change, now: .zero))
        }
        for change in Builders.change(from: [2], to: [1, 2], sequence: 8) { _ = receiver.configurationChanged(change, now: .zero) }
        let copies = first + second.filter { (try? DeviceStatePayload(decoding: EventMessage(decoding: $0).payload)) != nil }
        try #require(copies.count == 2, "the update and its fresh re-publication")
        for copy in copies {
            _ = try receiver.delivered(payload: copy, from: NodeID(1), now: .zero)
            _ = try publisher.delivered(payload: copy, from: NodeID(1), now: .zero)
        }
        let kept = try #require(receiver.mailbox(Self.box)?.stamp)
        #expect(kept.position == RingPosition(ringSequence: 8, index: 1))
        #expect(publisher.mailbox(Self.box)?.stamp == kept)
        #expect(publisher.localState.mailboxes[Self.box]?.position == kept.position)
    }

    @Test("a publisher whose crash lost its last updates from its disk learns them back; every node converges")
    func publisherLostItsLastWrites() throws {
        // Found by the service simulation (seed 247): node 1's last update reached every node but
        // not its own disk; node 3 crashed too; node 2 alone kept the update. At the merge node 1
        // re-published its older update and node 3 its own, node 2 re-published nothing (node 1
        // is a member): nodes 1 and 3 showed 3/3, node 2 the last write 1/3.
        var cluster = SimulatedCluster()
        for node: UInt32 in [1, 2, 3] { try cluster.start(node) }
        try cluster.configure([1, 2, 3])
        try cluster.setMailbox(1, "1002@default", new: 1, old: 5)
        try cluster.deliverAll()
        try cluster.setMailbox(3, "1002@default", new: 3, old: 3)
        try cluster.deliverAll()
        let diskBefore = try #require(cluster.stateFiles[1])
        try cluster.setMailbox(1, "1002@default", new: 1, old: 3)
        try cluster.setMailbox(1, "2001@sales", new: 4, old: 4)
        try cluster.deliverAll()
        #expect(cluster.convergedView().mailboxes.map(\.counts) == [MailboxCounts(newMessages: 1, oldMessages: 3),
                                                                   MailboxCounts(newMessages: 4, oldMessages: 4)])
        cluster.stateFiles[1] = diskBefore
        cluster.crash(1)
        cluster.crash(3)
        try cluster.configure([2])
        try cluster.start(1)
        try cluster.start(3)
        try cluster.configure([1, 2, 3])
        let view = cluster.convergedView()
        #expect(view.mailboxes.map(\.mailbox.description) == ["1002@default", "2001@sales"])
        #expect(view.mailboxes.map(\.counts) == [MailboxCounts(newMessages: 1, oldMessages: 3), MailboxCounts(newMessages: 4, oldMessages: 4)])
        #expect(view.mailboxes.allSatisfy { $0.originEntity == Builders.entity(1) })
        // Node 1 holds its updates again, on its disk too: its next re-publication carries them.
        let own = try #require(cluster.services[1]?.localState.mailboxes)
        #expect(own[Builders.mailbox("1002@default")]?.counts == MailboxCounts(newMessages: 1, oldMessages: 3))
        #expect(own[Builders.mailbox("2001@sales")]?.counts == MailboxCounts(newMessages: 4, oldMessages: 4))
        #expect(cluster.stateFiles[1]?.mailboxes == own)
    }

    @Test("a publisher that leaves at a merge before its re-publication is delivered: the others re-publish its MWI")
    func publisherLeavesAtMerge() throws {
        // Found by the service simulation (seed 1131): node 3 left right after the merge that
        // brought node 1 back; its own re-publication never came, node 2 re-published nothing
        // (node 3 was a member, then it had left but nobody joined) and node 1 never had the MWI.
        var cluster = SimulatedCluster()
        for node: UInt32 in [2, 3] { try cluster.start(node) }
        try cluster.configure([2, 3])
        try cluster.setMailbox(3, "2001@sales", new: 2, old: 5)
        try cluster.deliverAll()
        try cluster.start(1)
        try cluster.configure([1, 2, 3], deliveringAfter: false)
        cluster.crash(3)
        try cluster.configure([1, 2])
        let view = cluster.convergedView()
        #expect(view.mailboxes.map(\.counts) == [MailboxCounts(newMessages: 2, oldMessages: 5)])
        #expect(view.mailboxes.first?.originEntity == Builders.entity(3))
    }

    @Test("a re-published older record never overrides a newer one; a newer one does")
    func staleRepublication() throws {
        var service = try Builders.service(1)
        for change in Builders.change(from: [], to: [1, 2], sequence: 8) { _ = service.configurationChanged(change, now: .zero) }
        var sender = try EventChannelService(localNode: NodeID(2), entityID: Builders.entity(2), incarnation: 1, channels: Builders.channels)
        func deliver(_ payload: DeviceStatePayload) throws -> [DeviceStateEffect] {
            let published = try sender.publish(on: Builders.mwiChannel, type: .mwi, payload: payload.encoded())
            return try service.delivered(payload: Builders.submits(published.effects.map(DeviceStateService.translate))[0], from: NodeID(2),
                                         now: .zero)
        }
        _ = try deliver(.mailboxUpdate(Self.box, MailboxCounts(newMessages: 5, oldMessages: 0)))
        #expect(service.mailbox(Self.box)?.stamp.position == RingPosition(ringSequence: 8, index: 0))
        let old = MailboxRecord(mailbox: Self.box, counts: MailboxCounts(newMessages: 1, oldMessages: 0), originEntity: Builders.entity(3),
                                originNode: NodeID(3), stamp: MailboxStamp(position: RingPosition(ringSequence: 4, index: 9), entity: Builders.entity(3)))
        #expect(Builders.mailboxChanges(try deliver(.mailboxRepublication(old))).isEmpty)
        #expect(service.mailbox(Self.box)?.counts.newMessages == 5)
        #expect(service.statistics.staleMailboxUpdates == 1)
        var newer = old
        newer.stamp.position = RingPosition(ringSequence: 8, index: 1)
        newer.counts.newMessages = 6
        #expect(Builders.mailboxChanges(try deliver(.mailboxRepublication(newer))).map(\.new) == [newer])
        // Equal positions from two partitions: the entity id breaks the tie, the same way everywhere.
        var tie = newer
        tie.originEntity = Builders.entity(4)
        tie.stamp.entity = Builders.entity(4)
        tie.counts.newMessages = 0
        _ = try deliver(.mailboxRepublication(tie))
        #expect(service.mailbox(Self.box)?.counts.newMessages == 0)
        _ = try deliver(.mailboxRepublication(newer))
        #expect(service.mailbox(Self.box)?.counts.newMessages == 0)
    }

    @Test("MWI survives its publisher's leave and reaches a node that joins afterwards")
    func survivesLeaveAndReachesNewcomer() throws {
        var cluster = SimulatedCluster()
        for node: UInt32 in [1, 2, 3] { try cluster.start(node) }
        try cluster.configure([1, 2, 3])
        try cluster.setMailbox(3, "2000@default", new: 4, old: 2)
        try cluster.deliverAll()
        cluster.crash(3)
        try cluster.configure([1, 2])
        #expect(cluster.convergedView().mailboxes.map(\.counts) == [MailboxCounts(newMessages: 4, oldMessages: 2)])
        try cluster.start(4)
        try cluster.configure([1, 2, 4])
        let view = cluster.convergedView()
        #expect(view.mailboxes.map(\.counts) == [MailboxCounts(newMessages: 4, oldMessages: 2)])
        #expect(view.mailboxes.first?.originEntity == Builders.entity(3))
    }

    @Test("a restarted voicemail server re-asserts its MWI with the original stamp, losing to newer updates")
    func restartedPublisher() throws {
        var cluster = SimulatedCluster()
        for node: UInt32 in [1, 2] { try cluster.start(node) }
        try cluster.configure([1, 2])
        try cluster.setMailbox(2, "1234@default", new: 3, old: 0)
        try cluster.setMailbox(2, "5555@default", new: 1, old: 1)
        try cluster.deliverAll()
        cluster.crash(2)
        try cluster.configure([1])
        try cluster.setMailbox(1, "1234@default", new: 0, old: 3)
        try cluster.deliverAll()
        try cluster.start(2)
        try cluster.configure([1, 2])
        let view = cluster.convergedView()
        #expect(view.mailboxes.map(\.mailbox.mailbox) == ["1234", "5555"])
        #expect(view.mailboxes.map(\.counts) == [MailboxCounts(newMessages: 0, oldMessages: 3), MailboxCounts(newMessages: 1, oldMessages: 1)])
    }
}
