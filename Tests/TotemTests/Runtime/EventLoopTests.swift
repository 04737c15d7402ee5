// The event loop: timers in deadline order, cancellation, cross-thread execute, stop; and the
// timer heap against a naive model.

import Foundation
import Glibc
import Synchronization
import Testing
@testable import Totem
@testable import TotemRuntime

@Suite("EventLoop")
struct EventLoopTests {
    @Test("timers fire in deadline order, ties in arming order")
    func timersFireInOrder() async throws {
        let loop = try EventLoop(name: "test-timers")
        defer {
            loop.stop()
            loop.join()
        }
        let fired = Shared<[Int]>([])
        let offsets = [40, 10, 30, 10, 20, 0, 50]
        loop.execute {
            let start = MonotonicClock.now()
            for (label, offset) in offsets.enumerated() {
                loop.schedule(at: start + .milliseconds(offset)) {
                    fired.update { $0.append(label) }
                }
            }
        }
        let done = await eventually(within: .seconds(2)) { fired.value.count == offsets.count }
        #expect(done)
        // Deadlines 0, 10, 10, 20, 30, 40, 50: labels 5, then 1 and 3 (armed in that order), ...
        #expect(fired.value == [5, 1, 3, 4, 2, 0, 6])
    }

    @Test("a removed or disarmed timer does not fire, a re-armed one fires at its new deadline")
    func cancellation() async throws {
        let loop = try EventLoop(name: "test-cancel")
        defer {
            loop.stop()
            loop.join()
        }
        let fired = Shared<[String]>([])
        let firedAt = Shared<MonotonicInstant?>(nil)
        let start = Shared(MonotonicInstant.zero)
        loop.execute {
            let now = MonotonicClock.now()
            start.update { $0 = now }
            let removed = loop.schedule(at: now + .milliseconds(20)) { fired.update { $0.append("removed") } }
            loop.removeTimer(removed)
            let disarmed = loop.makeTimer { fired.update { $0.append("disarmed") } }
            loop.arm(disarmed, at: now + .milliseconds(20))
            loop.disarm(disarmed)
            #expect(!loop.isArmed(disarmed))
            let moved = loop.makeTimer {
                fired.update { $0.append("moved") }
                firedAt.update { $0 = MonotonicClock.now() }
            }
            loop.arm(moved, at: now + .milliseconds(10))
            loop.arm(moved, at: now + .milliseconds(120))
            loop.schedule(at: now + .milliseconds(200)) { fired.update { $0.append("last") } }
        }
        let done = await eventually(within: .seconds(2)) { fired.value.contains("last") }
        #expect(done)
        #expect(fired.value == ["moved", "last"])
        let elapsed = try #require(firedAt.value) - start.value
        #expect(elapsed >= .milliseconds(120))
    }

    @Test("execute from other threads wakes an idle loop and runs on the loop thread, in order per thread")
    func executeFromOtherThreads() async throws {
        let loop = try EventLoop(name: "test-execute")
        defer {
            loop.stop()
            loop.join()
        }
        let received = Shared<[Int]>([])
        let offLoop = Shared(0)
        await withTaskGroup(of: Void.self) { group in
            for sender in 0..<4 {
                group.addTask {
                    for index in 0..<250 {
                        loop.execute {
                            if !loop.inEventLoop { offLoop.update { $0 += 1 } }
                            received.update { $0.append(sender * 1_000 + index) }
                        }
                    }
                }
            }
        }
        let done = await eventually(within: .seconds(2)) { received.value.count == 1_000 }
        #expect(done)
        #expect(offLoop.value == 0)
        let values = received.value
        for sender in 0..<4 {
            let mine = values.filter { $0 / 1_000 == sender }
            #expect(mine == mine.sorted(), "work from one thread ran out of order")
        }
        #expect(!loop.inEventLoop)
    }

    @Test("after stop, queued work still runs and new work is refused")
    func stopRefusesNewWork() async throws {
        let loop = try EventLoop(name: "test-stop")
        let ran = Shared(0)
        loop.execute { ran.update { $0 += 1 } }
        loop.stop()
        loop.join()
        #expect(ran.value == 1)
        #expect(!loop.execute { ran.update { $0 += 1 } })
        #expect(ran.value == 1)
    }

    @Test("a readable descriptor runs its callback on the loop thread")
    func descriptorCallbacks() async throws {
        let loop = try EventLoop(name: "test-fd")
        defer {
            loop.stop()
            loop.join()
        }
        let subnet = LoopbackSubnet()
        let address = subnet.address(1)
        let count = Shared(0)
        let registered = Shared(false)
        // The receiving socket is created, used and closed on the loop thread only.
        loop.execute {
            do {
                let receiver = try UDPSocket(family: .ipv4)
                try receiver.bind(to: address)
                let batch = ReceiveBatch(capacity: 8, maxDatagramBytes: 100)
                try loop.register(fileDescriptor: receiver.fileDescriptor) {
                    let received = receiver.receive(into: batch)
                    count.update { $0 += received }
                }
                registered.update { $0 = true }
            } catch {
                Issue.record("set-up failed: \(error)")
            }
        }
        #expect(await eventually(within: .seconds(2)) { registered.value })
        let sender = try UDPSocket(family: .ipv4)
        for _ in 0..<3 {
            [UInt8](repeating: 7, count: 10).withUnsafeBytes { _ = sender.send($0, to: address) }
        }
        #expect(await eventually(within: .seconds(2)) { count.value == 3 })
    }

    @Test("descriptors registered .afterOthers run after the others that became readable with them")
    func dispatchOrder() async throws {
        let loop = try EventLoop(name: "test-order")
        defer {
            loop.stop()
            loop.join()
        }
        let calls = Shared<[String]>([])
        loop.execute {
            // Four pipes, readable before they are registered, so one wait reports them all.
            let names = ["late-a", "normal-b", "late-c", "normal-d"]
            for name in names {
                var ends: [Int32] = [0, 0]
                guard pipe(&ends) == 0 else {
                    Issue.record("pipe failed")
                    return
                }
                var byte: UInt8 = 1
                _ = write(ends[1], &byte, 1)
                let order: EventLoop.DispatchOrder = name.hasPrefix("late") ? .afterOthers : .normal
                var registration: EventLoop.Registration?
                do {
                    registration = try loop.register(fileDescriptor: ends[0], order: order) {
                        var sink: UInt8 = 0
                        _ = read(ends[0], &sink, 1)
                        calls.update { $0.append(name) }
                        if let registration { loop.deregister(registration) }
                        close(ends[0])
                        close(ends[1])
                    }
                } catch {
                    Issue.record("register failed: \(error)")
                }
            }
        }
        #expect(await eventually(within: .seconds(2)) { calls.value.count == 4 })
        #expect(Set(calls.value.prefix(2)) == ["normal-b", "normal-d"])
        #expect(Set(calls.value.suffix(2)) == ["late-a", "late-c"])
    }
}

@Suite("TimerQueue")
struct TimerQueueTests {

    @Test("the heap fires what a naive sorted model fires, in the same order", arguments: 0..<20 as Range<UInt64>)
    func matchesNaiveModel(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var queue = TimerQueue()
        let fired = Shared<[Int]>([])
        var ids: [EventLoop.TimerID] = []
        // Model: label -> (deadline, arming order) for armed timers.
        var model: [Int: (Int64, Int)] = [:]
        var removed = Set<Int>()
        var order = 0
        for label in 0..<40 {
            ids.append(queue.make({ fired.update { $0.append(label) } }, isOneShot: false))
        }
        var now: Int64 = 0
        for _ in 0..<2_000 {
            let label = Int.random(in: 0..<40, using: &random)
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<5:
                let deadline = now + Int64.random(in: 0..<50, using: &random)
                queue.arm(ids[label], at: MonotonicInstant(nanoseconds: deadline))
                if !removed.contains(label) {
                    model[label] = (deadline, order)
                    order += 1
                }
            case 5..<7:
                queue.disarm(ids[label])
                model[label] = nil
            case 7:
                queue.remove(ids[label])
                model[label] = nil
                removed.insert(label)
            default:
                now += Int64.random(in: 0..<20, using: &random)
                let expected = model.filter { $0.value.0 <= now }.sorted { ($0.value.0, $0.value.1) < ($1.value.0, $1.value.1) }.map(\.key)
                fired.update { $0.removeAll() }
                var count = 0
                while count < 100, let callback = queue.popExpired(now: MonotonicInstant(nanoseconds: now)) {
                    callback()
                    count += 1
                }
                for label in expected { model[label] = nil }
                #expect(fired.value == expected, "seed \(seed)")
            }
            #expect(queue.armedCount == model.count, "seed \(seed)")
        }
    }
}
