// One thread running epoll: readable-fd callbacks, timers on the monotonic clock, and work sent
// from other threads through a Mutex-guarded inbox woken by an eventfd. Owns the thread and its
// scheduling; knows nothing of Totem.

import CSystem
import Glibc
import Synchronization
import Totem

/// A single-threaded event loop on epoll.
///
/// Everything registered with the loop (file-descriptor callbacks, timers, `runSoon` work) runs
/// on its one thread, so the state those callbacks touch needs no locks: it is *confined* to the
/// loop (STYLE §5). Other threads talk to the loop only through `execute(_:)`, which queues a
/// `Sendable` closure and wakes the loop, and `stop()`.
///
/// Methods marked "loop thread only" check that they are called there and trap otherwise: calling
/// them from another thread is a programming error.
///
/// Each iteration waits in `epoll_wait` until a registered descriptor is readable or the earliest
/// timer is due (millisecond resolution, rounded up, so a timer never fires early), runs the
/// callbacks of readable descriptors (those registered `.afterOthers` last), then the expired
/// timers in deadline order, then `runSoon` work.
public final class EventLoop: @unchecked Sendable {
    // Why `@unchecked Sendable` is safe: the stored properties fall into three groups.
    // 1. `epollDescriptor`, `wakeDescriptor`, `name`: immutable after `init`.
    // 2. `inbox`, `threadState`, `loopThread`: `Mutex` or `Atomic`, safe from any thread.
    // 3. Everything else (`registrations`, `timers`, `soon`, `isStopRequested`, ...): read and
    //    written only on the loop thread, which every accessor checks with
    //    `preconditionInEventLoop()`; `init` writes them before the thread starts, and the
    //    thread's start (pthread_create) orders those writes before its first read.

    /// A registered file descriptor.
    public struct Registration: Hashable, Sendable {
        let slot: Int
        let generation: UInt32
    }

    private struct Inbox {
        var work: [@Sendable () -> Void] = []
        var isAccepting = true
    }

    /// When a readable descriptor's callback runs among those that became ready together.
    public enum DispatchOrder: Sendable {
        /// In the order epoll reports them.
        case normal
        /// After every `.normal` one of the same wait.
        case afterOthers
    }

    private struct RegistrationSlot {
        var fileDescriptor: Int32 = -1
        var generation: UInt32 = 0
        var order = DispatchOrder.normal
        var onReadable: (() -> Void)?
    }

    /// The thread's name (also given to the OS thread).
    public let name: String
    private let epollDescriptor: Int32
    private let wakeDescriptor: Int32
    private let inbox = Mutex(Inbox())
    /// The loop thread's `pthread_t`, 0 until it runs.
    private let loopThread = Atomic<UInt>(0)
    /// The thread handle until someone joins it.
    private let joinableThread = Mutex<pthread_t?>(nil)

    // Loop-confined state (see the comment at the top).
    private var registrations: [RegistrationSlot] = []
    private var freeRegistrationSlots: [Int] = []
    private var timers = TimerQueue()
    private var soon: [() -> Void] = []
    private var spareWork: [@Sendable () -> Void] = []
    private var isStopRequested = false

    /// Most epoll events handled per wait.
    private static let eventCapacity = 64
    /// Most timer callbacks run per iteration, so timers re-arming themselves in the past cannot
    /// starve the descriptors.
    private static let timerCallbacksPerIteration = 10_000

    /// Creates the epoll instance and the wake-up eventfd, and starts the loop thread.
    ///
    /// - Parameter name: the thread name (Linux keeps 15 bytes).
    /// - Throws: `SystemError` if a descriptor or the thread cannot be created.
    public init(name: String) throws(SystemError) {
        self.name = name
        epollDescriptor = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollDescriptor >= 0 else { throw .last("epoll_create1") }
        wakeDescriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wakeDescriptor >= 0 else {
            let error = SystemError.last("eventfd")
            _ = close(epollDescriptor)
            throw error
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = UInt64.max
        guard epoll_ctl(epollDescriptor, EPOLL_CTL_ADD, wakeDescriptor, &event) == 0 else {
            let error = SystemError.last("epoll_ctl add eventfd")
            _ = close(wakeDescriptor)
            _ = close(epollDescriptor)
            throw error
        }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let result = pthread_create(&thread, nil, { context in
            let loop = Unmanaged<EventLoop>.fromOpaque(context!).takeRetainedValue()
            loop.run()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<EventLoop>.fromOpaque(context).release()
            throw SystemError("pthread_create", code: result)
        }
        joinableThread.withLock { $0 = thread }
    }

    deinit {
        // The last reference may be dropped by the loop thread itself as it exits: it cannot
        // join itself, so it detaches.
        if let thread = joinableThread.withLock({ $0.take() }) {
            if pthread_equal(thread, pthread_self()) != 0 {
                pthread_detach(thread)
            } else {
                pthread_join(thread, nil)
            }
        }
        _ = close(wakeDescriptor)
        _ = close(epollDescriptor)
    }

    // MARK: Any thread

    /// Whether the caller runs on the loop thread.
    public var inEventLoop: Bool {
        let current = loopThread.load(ordering: .acquiring)
        return current != 0 && pthread_equal(current, pthread_self()) != 0
    }

    /// Traps unless called on the loop thread.
    public func preconditionInEventLoop(file: StaticString = #fileID, line: UInt = #line) {
        precondition(inEventLoop, "called off the event loop thread \(name)", file: file, line: line)
    }

    /// Runs `work` on the loop thread, after the work queued before it. Callable from any
    /// thread, the loop's own included.
    ///
    /// - Returns: false, without running `work`, once the loop has stopped.
    @discardableResult
    public func execute(_ work: @escaping @Sendable () -> Void) -> Bool {
        let (accepted, mustWake) = inbox.withLock { inbox -> (Bool, Bool) in
            guard inbox.isAccepting else { return (false, false) }
            inbox.work.append(work)
            // Only the first item needs a wake-up: the loop drains the whole inbox.
            return (true, inbox.work.count == 1)
        }
        if mustWake { wake() }
        return accepted
    }

    /// Asks the loop to stop after its current iteration. Work already queued with `execute`
    /// still runs; later `execute` calls are refused. Callable from any thread.
    public func stop() {
        if inEventLoop {
            isStopRequested = true
        } else {
            execute { [self] in isStopRequested = true }
        }
    }

    /// Waits until the loop thread has exited. Call `stop()` first. Not on the loop thread.
    public func join() {
        precondition(!inEventLoop, "the event loop thread \(name) cannot join itself")
        guard let thread = joinableThread.withLock({ $0.take() }) else { return }
        pthread_join(thread, nil)
    }

    private func wake() {
        var one: UInt64 = 1
        // EAGAIN only if the counter is near 2^64: the loop is already awake then.
        _ = write(wakeDescriptor, &one, MemoryLayout<UInt64>.size)
    }

    // MARK: Loop thread only

    /// Calls `onReadable` on the loop thread whenever `fileDescriptor` has data to read
    /// (level-triggered: again on the next iteration if data remains). `order` says whether it
    /// runs after the other descriptors that became readable in the same wait.
    @discardableResult
    public func register(
        fileDescriptor: Int32, order: DispatchOrder = .normal, onReadable: @escaping () -> Void
    ) throws(SystemError) -> Registration {
        preconditionInEventLoop()
        let slot: Int
        if let free = freeRegistrationSlots.popLast() {
            slot = free
        } else {
            slot = registrations.count
            registrations.append(RegistrationSlot())
        }
        let generation = registrations[slot].generation
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = UInt64(generation) << 32 | UInt64(slot)
        guard epoll_ctl(epollDescriptor, EPOLL_CTL_ADD, fileDescriptor, &event) == 0 else {
            freeRegistrationSlots.append(slot)
            throw .last("epoll_ctl add \(fileDescriptor)")
        }
        registrations[slot].fileDescriptor = fileDescriptor
        registrations[slot].order = order
        registrations[slot].onReadable = onReadable
        return Registration(slot: slot, generation: generation)
    }

    /// Stops watching a descriptor. Call before closing it. Stale registrations are ignored.
    public func deregister(_ registration: Registration) {
        preconditionInEventLoop()
        guard registration.slot < registrations.count,
            registrations[registration.slot].generation == registration.generation,
            registrations[registration.slot].onReadable != nil
        else { return }
        let descriptor = registrations[registration.slot].fileDescriptor
        // Fails only if the descriptor was closed already, which removed it from epoll anyway.
        _ = epoll_ctl(epollDescriptor, EPOLL_CTL_DEL, descriptor, nil)
        registrations[registration.slot] = RegistrationSlot(
            fileDescriptor: -1, generation: registration.generation &+ 1, onReadable: nil)
        freeRegistrationSlots.append(registration.slot)
    }

    /// Creates a disarmed, reusable timer that runs `callback` when it expires.
    public func makeTimer(_ callback: @escaping () -> Void) -> EventLoop.TimerID {
        preconditionInEventLoop()
        return timers.make(callback, isOneShot: false)
    }

    /// Arms `timer` to fire at `deadline` (on `MonotonicClock`), replacing an earlier deadline.
    public func arm(_ timer: EventLoop.TimerID, at deadline: MonotonicInstant) {
        preconditionInEventLoop()
        timers.arm(timer, at: deadline)
    }

    /// Disarms `timer` if armed; it can be armed again.
    public func disarm(_ timer: EventLoop.TimerID) {
        preconditionInEventLoop()
        timers.disarm(timer)
    }

    /// Whether `timer` is armed.
    public func isArmed(_ timer: EventLoop.TimerID) -> Bool {
        preconditionInEventLoop()
        return timers.isArmed(timer)
    }

    /// Disarms and discards `timer`.
    public func removeTimer(_ timer: EventLoop.TimerID) {
        preconditionInEventLoop()
        timers.remove(timer)
    }

    /// Runs `callback` once at `deadline`; cancel with `removeTimer`.
    @discardableResult
    public func schedule(at deadline: MonotonicInstant, _ callback: @escaping () -> Void) -> EventLoop.TimerID {
        preconditionInEventLoop()
        let timer = timers.make(callback, isOneShot: true)
        timers.arm(timer, at: deadline)
        return timer
    }

    /// Runs `work` at the end of this iteration (or the next), without waiting.
    public func runSoon(_ work: @escaping () -> Void) {
        preconditionInEventLoop()
        soon.append(work)
    }

    // MARK: The loop

    private func run() {
        loopThread.store(pthread_self(), ordering: .releasing)
        name.withCString { csystem_set_thread_name($0) }
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Self.eventCapacity)
        let lateKeys = UnsafeMutablePointer<UInt64>.allocate(capacity: Self.eventCapacity)
        defer {
            events.deallocate()
            lateKeys.deallocate()
        }
        while !isStopRequested {
            let ready = epoll_wait(epollDescriptor, events, Int32(Self.eventCapacity), waitTimeoutMilliseconds())
            if ready < 0 {
                let error = errno
                precondition(error == EINTR, "epoll_wait failed: \(SystemError("epoll_wait", code: error))")
                continue
            }
            var lateCount = 0
            for index in 0..<Int(ready) {
                let key = events[index].data.u64
                if runsLate(key) {
                    lateKeys[lateCount] = key
                    lateCount += 1
                } else {
                    dispatch(key)
                }
            }
            for index in 0..<lateCount { dispatch(lateKeys[index]) }
            runExpiredTimers()
            runSoonWork()
        }
        finish()
    }

    /// Until the next timer, rounded up to whole milliseconds; 0 with `runSoon` work pending;
    /// -1 (forever) with nothing scheduled.
    private func waitTimeoutMilliseconds() -> Int32 {
        guard soon.isEmpty else { return 0 }
        guard let deadline = timers.nextDeadline else { return -1 }
        let remaining = deadline.nanoseconds - MonotonicClock.now().nanoseconds
        guard remaining > 0 else { return 0 }
        let milliseconds = (remaining + 999_999) / 1_000_000
        return Int32(clamping: milliseconds)
    }

    private func runsLate(_ key: UInt64) -> Bool {
        let slot = Int(key & 0xFFFF_FFFF)
        return key != UInt64.max && slot < registrations.count && registrations[slot].order == .afterOthers
    }

    private func dispatch(_ key: UInt64) {
        if key == UInt64.max {
            drainInbox()
            return
        }
        let slot = Int(key & 0xFFFF_FFFF)
        let generation = UInt32(key >> 32)
        // A callback earlier in this batch may have removed this registration.
        guard slot < registrations.count, registrations[slot].generation == generation,
            let callback = registrations[slot].onReadable
        else { return }
        callback()
    }

    private func drainInbox() {
        var counter: UInt64 = 0
        // Reset the eventfd before taking the work: an `execute` racing with us then either
        // lands in this batch or writes the eventfd again.
        _ = read(wakeDescriptor, &counter, MemoryLayout<UInt64>.size)
        var work = spareWork
        inbox.withLock { swap(&$0.work, &work) }
        for item in work { item() }
        work.removeAll(keepingCapacity: true)
        spareWork = work
    }

    private func runExpiredTimers() {
        guard timers.armedCount > 0 else { return }
        let now = MonotonicClock.now()
        var fired = 0
        while fired < Self.timerCallbacksPerIteration, let callback = timers.popExpired(now: now) {
            callback()
            fired += 1
        }
    }

    private func runSoonWork() {
        guard !soon.isEmpty else { return }
        let work = soon
        soon.removeAll(keepingCapacity: true)
        for item in work { item() }
    }

    /// Refuses new work, runs what was queued, and drops every callback (breaking reference
    /// cycles through captured owners).
    private func finish() {
        let remaining = inbox.withLock { inbox -> [@Sendable () -> Void] in
            inbox.isAccepting = false
            let work = inbox.work
            inbox.work.removeAll()
            return work
        }
        for item in remaining { item() }
        for slot in registrations.indices where registrations[slot].onReadable != nil {
            _ = epoll_ctl(epollDescriptor, EPOLL_CTL_DEL, registrations[slot].fileDescriptor, nil)
            registrations[slot].onReadable = nil
        }
        timers.removeAll()
        soon.removeAll()
    }
}
