// The submit backlog (refusals keep their order, the limit drops the oldest, drains are bounded)
// and holding clients that submit while the ring is busy.

import DeviceState
import EventService
import Membership
import Testing
import Totem
@testable import ClusterServices

@Suite("ServiceHost flow control")
struct FlowControlTests {
    let client = ClientID(rawValue: 3)

    /// A host with `count` event publications made, each a distinct submit.
    private func publish(_ count: Int, on host: inout ServiceHost, now: MonotonicInstant,
                         into effects: inout [ServiceHost.Effect]) throws {
        for index in 0..<count {
            _ = try host.publishEvent(on: Fixture.callChannel, type: Fixture.callType, attributes: ["n": "\(index)"], payload: [],
                                      retention: nil, client: nil, now: now, ringQueuedBytes: 0, into: &effects)
        }
    }

    @Test func refusedSubmitsGoBackToTheBacklogInOrderAndLaterOnesQueueBehind() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        try publish(3, on: &host, now: Fixture.at(10), into: &effects)
        let made = effects.submits
        #expect(made.count == 3)
        #expect(effects.queuedSubmits.isEmpty, "an empty backlog submits at once")
        // The ring took the first and refused the second: the second and third come back.
        effects.removeAll()
        host.submitRefused(Array(made[1...]), now: Fixture.at(10), into: &effects)
        #expect(host.backlogCount == 2)
        #expect(effects.deadline(of: .backlog) == Fixture.at(10) + ServiceHost.backlogRetry)
        // A new submit waits behind them.
        effects.removeAll()
        try publish(1, on: &host, now: Fixture.at(11), into: &effects)
        #expect(effects.submits.isEmpty)
        #expect(host.backlogCount == 3)
        // The retry hands them out oldest first.
        effects.removeAll()
        host.timerFired(.backlog, now: Fixture.at(15), ringQueuedBytes: 0, into: &effects)
        let drained = effects.queuedSubmits
        #expect(drained.count == 3)
        #expect(Array(drained.prefix(2)) == Array(made[1...]))
        #expect(!drained.contains(made[0]), "the accepted one is not sent again")
        #expect(host.backlogCount == 0)
        #expect(effects.deadline(of: .backlog) == nil, "nothing left: not re-armed")
    }

    @Test func aDrainHandsOutABoundedBatchAndContinuesAtOnce() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        let messages = (0..<(ServiceHost.backlogDrainBatch + 10)).map { [ServiceID.event.rawValue, UInt8(truncatingIfNeeded: $0)] }
        host.submitRefused(messages, now: Fixture.at(0), into: &effects)
        effects.removeAll()
        host.timerFired(.backlog, now: Fixture.at(5), ringQueuedBytes: 0, into: &effects)
        #expect(effects.queuedSubmits == Array(messages.prefix(ServiceHost.backlogDrainBatch)))
        #expect(effects.deadline(of: .backlog) == Fixture.at(5), "the rest at the next turn of the loop")
        effects.removeAll()
        host.timerFired(.backlog, now: Fixture.at(5), ringQueuedBytes: 0, into: &effects)
        #expect(effects.queuedSubmits == Array(messages.suffix(10)))
    }

    @Test func aFullBacklogDropsTheOldestAndWarnsAtTheFirstAndEveryThousandth() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        let limit = ServiceHost.backlogLimit
        let messages = (0..<(limit + 1_000)).map { index in
            [ServiceID.event.rawValue, UInt8(truncatingIfNeeded: index >> 16), UInt8(truncatingIfNeeded: index >> 8), UInt8(truncatingIfNeeded: index)]
        }
        host.submitRefused(messages, now: .zero, into: &effects)
        #expect(host.backlogCount == limit)
        #expect(host.backlogDropped == 1_000)
        #expect(effects.logLines.map(\.1) == [
            "ring send backlog full (100000 messages): 1 oldest dropped so far",
            "ring send backlog full (100000 messages): 1000 oldest dropped so far",
        ])
        effects.removeAll()
        host.timerFired(.backlog, now: .zero, ringQueuedBytes: 0, into: &effects)
        #expect(effects.queuedSubmits.first == messages[1_000], "the oldest 1,000 went")
    }

    @Test func theBacklogTakesRefusedMessagesBackAtItsHead() {
        var backlog = SubmitBacklog(limit: 4)
        for byte: UInt8 in 1...3 { backlog.append([byte]) }
        let taken = backlog.takeFront(upTo: 2)
        #expect(taken == [[1], [2]])
        backlog.putBack([[2]])
        #expect(backlog.takeFront(upTo: 10) == [[2], [3]])
        #expect(backlog.isEmpty)
        // Past the limit the oldest go, whether appended or put back.
        for byte: UInt8 in 1...5 { backlog.append([byte]) }
        #expect(backlog.count == 4 && backlog.dropped == 1)
        backlog.putBack([[0]])
        #expect(backlog.dropped == 2)
        #expect(backlog.takeFront(upTo: 10) == [[2], [3], [4], [5]])
    }

    @Test func failedSubmitsAreLoggedAsTheyAreToday() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        host.submitFailed([2, 1], error: .messageTooLarge(size: 5, limit: 3), queued: false, now: .zero, into: &effects)
        host.submitFailed([2, 1], error: .notRunning, queued: false, now: .zero, into: &effects)
        host.submitFailed([2, 1], error: .notRunning, queued: true, now: .zero, into: &effects)
        #expect(effects.logLines.map(\.0) == [.error, .debug, .debug])
        #expect(effects.logLines.map(\.1) == [
            "dropped a ring message of 5 bytes: larger than 3 bytes",
            "dropped a ring message: the node is not running",
            "dropped a queued ring message: notRunning",
        ])
        effects.removeAll()
        host.submitFailed([2, 9], error: .tryAgain(pendingBytes: 1, limit: 1), queued: true, now: .zero, into: &effects)
        #expect(host.backlogCount == 1, "tryAgain is a refusal: kept")
    }

    // MARK: Holding clients

    @Test func aClientSubmittingAboveTheHoldMarkIsHeldAndCheckedEveryTwoMilliseconds() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        let device = try Fixture.device("SIP/1")
        _ = try host.setDeviceState(.busy, of: device, client: client, now: Fixture.at(1), ringQueuedBytes: 0, into: &effects)
        #expect(!effects.contains(.hold(client)), "an idle ring holds nobody")
        effects.removeAll()
        _ = try host.setDeviceState(.inUse, of: device, client: nil, now: Fixture.at(1), ringQueuedBytes: 1 << 20, into: &effects)
        #expect(host.held.isEmpty, "an in-process caller is never held")
        // Just below the mark before this submit, above it after.
        let below = ServiceHost.holdAboveBytes - 4
        _ = try host.setDeviceState(.ringing, of: device, client: client, now: Fixture.at(2), ringQueuedBytes: below, into: &effects)
        #expect(effects.contains(.hold(client)))
        #expect(effects.deadline(of: .release) == Fixture.at(2) + ServiceHost.releaseCheckInterval)
        #expect(host.held == [client])
        effects.removeAll()
        _ = try host.setDeviceState(.onHold, of: device, client: client, now: Fixture.at(3), ringQueuedBytes: 1 << 20, into: &effects)
        #expect(!effects.contains(.hold(client)), "held once")
    }

    @Test func heldClientsAreReleasedBelowTheReleaseMarkWithAnEmptyBacklog() throws {
        var ring = try LoopbackRing(try Fixture.host())
        var effects: [ServiceHost.Effect] = []
        _ = try ring.host.publishEvent(on: Fixture.callChannel, type: Fixture.callType, attributes: [:], payload: [], retention: nil,
                                       client: client, now: ring.now, ringQueuedBytes: 1 << 20, into: &effects)
        #expect(ring.host.held == [client])
        // Between the marks: still held, on a delivery and on the timer (re-armed).
        let between = ServiceHost.releaseBelowBytes + 1
        #expect(!ring.deliver(effects.submits, ringQueuedBytes: between).contains { if case .release = $0 { true } else { false } })
        effects.removeAll()
        ring.host.timerFired(.release, now: Fixture.at(2_000), ringQueuedBytes: between, into: &effects)
        #expect(effects.deadline(of: .release) == Fixture.at(2_000) + ServiceHost.releaseCheckInterval)
        // A backlog keeps it held whatever the queue.
        ring.host.submitRefused([[ServiceID.event.rawValue, 0]], now: Fixture.at(2_000), into: &effects)
        effects.removeAll()
        ring.host.timerFired(.release, now: Fixture.at(2_002), ringQueuedBytes: 0, into: &effects)
        #expect(ring.host.held == [client])
        // Backlog drained, queue low: released, the check disarmed.
        ring.host.timerFired(.backlog, now: Fixture.at(2_003), ringQueuedBytes: 0, into: &effects)
        effects.removeAll()
        ring.host.timerFired(.release, now: Fixture.at(2_004), ringQueuedBytes: ServiceHost.releaseBelowBytes - 1, into: &effects)
        #expect(effects == [.release([client]), .disarmTimer(.release)])
        #expect(ring.host.held.isEmpty)
    }

    @Test func stoppingReleasesHeldClientsAndDisarmsEveryTimer() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        _ = try host.setDeviceState(.busy, of: try Fixture.device("SIP/1"), client: client, now: .zero, ringQueuedBytes: 1 << 20,
                                    into: &effects)
        effects.removeAll()
        host.stop(into: &effects)
        #expect(effects.contains(.release([client])))
        for timer in ServiceHost.Timer.allCases { #expect(effects.contains(.disarmTimer(timer))) }
        #expect(host.held.isEmpty)
    }

    @Test func aRateLimitedLineIsWrittenOncePerIntervalCountingTheOthers() throws {
        var host = try Fixture.host()
        var effects: [ServiceHost.Effect] = []
        for second in [0, 3, 9] {
            host.persistenceFailing("failing", reason: "disk full", now: Fixture.at(Int64(second) * 1_000), into: &effects)
        }
        host.persistenceFailing("stalled", reason: "slow", now: Fixture.at(9_000), into: &effects)
        host.persistenceFailing("failing", reason: "disk full", now: Fixture.at(10_000), into: &effects)
        #expect(effects.logLines.map(\.1) == [
            "local states are answered but not persisted: disk full",
            "local states are answered but not persisted: slow",
            "local states are answered but not persisted: disk full (2 similar since the last such line, not logged)",
        ])
        #expect(effects.logLines.allSatisfy { $0.0 == .warning })
    }
}
