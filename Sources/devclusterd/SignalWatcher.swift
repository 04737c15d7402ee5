// Signals as events of the runtime's event loop: SIGTERM, SIGINT and SIGHUP are blocked in every
// thread and read from a signalfd on the loop, so no work ever runs in a signal handler.

import CSystem
import Glibc
import Totem
import TotemRuntime

/// Delivers selected signals as calls on the event loop, through a signalfd.
///
/// The signals must be blocked in every thread first (`blockInAllThreads`, before any thread is
/// started), or the kernel may run their default action instead of queueing them for the fd.
final class SignalWatcher {
    private let eventLoop: EventLoop
    private let descriptor: Int32
    private var registration: EventLoop.Registration?

    /// The signals the daemon handles: SIGTERM, SIGINT (leave and exit) and SIGHUP (reload).
    static let daemonSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP]

    /// Blocks `signals` for the calling thread and every thread it starts later, and ignores
    /// SIGPIPE (a control client that hangs up must not kill the daemon).
    ///
    /// The signals' dispositions are reset to the default first: one inherited as ignored
    /// (`nohup` ignores SIGHUP) would be discarded by the kernel and never reach the signalfd.
    /// Blocked, the default action never runs.
    static func blockInAllThreads(_ signals: [Int32] = daemonSignals) {
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in signals { sigaddset(&mask, signal) }
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        for signal in signals { _ = Glibc.signal(signal, SIG_DFL) }
        _ = Glibc.signal(SIGPIPE, SIG_IGN)
    }

    /// Unblocks `signals` for the calling thread, so that their default action (ending the
    /// process) runs: a client started by a parent that blocked them (test runners, some
    /// supervisors) would otherwise ignore Ctrl-C and `kill`. Dispositions are left alone (a
    /// background job's ignored SIGINT stays ignored).
    static func unblock(_ signals: [Int32]) {
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in signals { sigaddset(&mask, signal) }
        pthread_sigmask(SIG_UNBLOCK, &mask, nil)
    }

    /// Opens the signalfd and watches it. Loop thread only.
    ///
    /// - Parameter onSignal: called on the loop thread with each signal number received.
    init(eventLoop: EventLoop, signals: [Int32] = daemonSignals, onSignal: @escaping (Int32) -> Void) throws(SystemError) {
        eventLoop.preconditionInEventLoop()
        self.eventLoop = eventLoop
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in signals { sigaddset(&mask, signal) }
        descriptor = signalfd(-1, &mask, Int32(SFD_NONBLOCK | SFD_CLOEXEC))
        guard descriptor >= 0 else { throw SystemError("signalfd", code: errno) }
        let descriptor = descriptor
        do {
            registration = try eventLoop.register(fileDescriptor: descriptor) {
                Self.drain(descriptor, onSignal)
            }
        } catch {
            _ = Glibc.close(descriptor)
            throw error
        }
    }

    /// Reads every queued signal (a few at a time, so a signal storm cannot starve the loop).
    private static func drain(_ descriptor: Int32, _ onSignal: (Int32) -> Void) {
        var info = signalfd_siginfo()
        let size = MemoryLayout<signalfd_siginfo>.size
        for _ in 0..<16 {
            let count = read(descriptor, &info, size)
            guard count == size else { return }
            onSignal(Int32(bitPattern: info.ssi_signo))
        }
    }

    /// Stops watching and closes the descriptor. Loop thread only.
    func close() {
        guard let registration else { return }
        eventLoop.deregister(registration)
        self.registration = nil
        _ = Glibc.close(descriptor)
    }
}
