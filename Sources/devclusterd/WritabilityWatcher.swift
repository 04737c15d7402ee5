// "This socket can take more output" for the event loop, which itself watches readability only:
// a second epoll set, readable when one of its sockets is writable. Confined to the loop thread.

import CSystem
import Glibc
import Totem
import TotemRuntime

/// Calls back when a socket can take more output: a second epoll set, watched by the loop for
/// readability (an epoll descriptor is readable when one of its sockets is ready).
///
/// Sockets are added when a write would block and removed once their output is drained, so an
/// idle connection costs nothing. Level-triggered. Loop thread only.
final class WritabilityWatcher {
    private let eventLoop: EventLoop
    private let descriptor: Int32
    private var registration: EventLoop.Registration?
    private var callbacks: [Int32: () -> Void] = [:]
    private let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: 64)

    init(eventLoop: EventLoop) throws(SystemError) {
        eventLoop.preconditionInEventLoop()
        self.eventLoop = eventLoop
        descriptor = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard descriptor >= 0 else {
            events.deallocate()
            throw SystemError("epoll_create1", code: errno)
        }
        do {
            registration = try eventLoop.register(fileDescriptor: descriptor) { [unowned self] in dispatchReady() }
        } catch {
            _ = Glibc.close(descriptor)
            events.deallocate()
            throw error
        }
    }

    deinit {
        events.deallocate()
    }

    /// Whether `socket` is being watched.
    func isWatching(_ socket: Int32) -> Bool { callbacks[socket] != nil }

    /// Calls `onWritable` whenever `socket` can take output, until `unwatch`.
    func watch(_ socket: Int32, _ onWritable: @escaping () -> Void) {
        eventLoop.preconditionInEventLoop()
        guard callbacks[socket] == nil else { return }
        var event = epoll_event()
        event.events = EPOLLOUT.rawValue
        event.data.u64 = UInt64(UInt32(bitPattern: socket))
        guard epoll_ctl(descriptor, EPOLL_CTL_ADD, socket, &event) == 0 else { return }
        callbacks[socket] = onWritable
    }

    /// Stops watching `socket` (call before closing it).
    func unwatch(_ socket: Int32) {
        eventLoop.preconditionInEventLoop()
        guard callbacks.removeValue(forKey: socket) != nil else { return }
        _ = epoll_ctl(descriptor, EPOLL_CTL_DEL, socket, nil)
    }

    private func dispatchReady() {
        let ready = epoll_wait(descriptor, events, 64, 0)
        guard ready > 0 else { return }
        for index in 0..<Int(ready) {
            let socket = Int32(bitPattern: UInt32(truncatingIfNeeded: events[index].data.u64))
            // A callback earlier in this batch may have closed and unwatched this socket.
            callbacks[socket]?()
        }
    }

    /// Stops watching everything and closes the epoll descriptor. Loop thread only.
    func close() {
        guard let registration else { return }
        eventLoop.deregister(registration)
        self.registration = nil
        callbacks.removeAll()
        _ = Glibc.close(descriptor)
    }
}
