// What the daemon tells systemd, and when: READY=1 once the first ring is installed (or after a
// bounded wait), STATUS= when the ring, its members or the quorum change, RELOADING=1 and READY=1
// around a reload, STOPPING=1 when it leaves, and WATCHDOG=1 from a timer of the event loop itself,
// so that a loop that is stuck stops the notifications and systemd restarts the daemon.
// The Daemon decides the status text; SystemdNotifier sends.

import Totem
import TotemRuntime

/// The daemon's side of a `Type=notify` service, on the event-loop thread (built and used there).
final class SystemdSupervisor {
    /// The longest start-up waits for the first ring before it reports ready anyway: a node
    /// installs a ring of its own within join + consensus (a few seconds with the defaults), so
    /// this only fires when the ring cannot form at all; STATUS then says so, and systemd's
    /// start (TimeoutStartSec, 90 s by default) does not fail on a network problem the
    /// administrator should see in `devclusterd status` rather than as a restart loop.
    static let readyDeadline = Duration.seconds(30)

    private let notifier: SystemdNotifier
    private let eventLoop: EventLoop
    private var watchdogTimer: EventLoop.TimerID?
    private var readyTimer: EventLoop.TimerID?
    /// The interval between two `WATCHDOG=1`, half of WATCHDOG_USEC.
    let watchdogInterval: Duration?
    /// Whether `READY=1` was sent (and no reload is in progress).
    private(set) var isReady = false
    private var isReloading = false
    private var isStopping = false
    /// The last `STATUS=` sent, so that an unchanged status is not sent again.
    private var lastStatus: String?

    /// Logs what is wrong with the environment and returns a supervisor when NOTIFY_SOCKET names
    /// a usable socket, else `nil` (not run by systemd: nothing to do). Loop thread only.
    ///
    /// - Parameter notReadyStatus: the status when no ring formed within `readyDeadline`.
    static func make(_ environment: SystemdEnvironment, eventLoop: EventLoop, logger: DaemonLogger,
                     readyDeadline: Duration = readyDeadline) -> SystemdSupervisor? {
        eventLoop.preconditionInEventLoop()
        for problem in environment.problems { logger.warning(problem) }
        guard let address = environment.notifySocket else { return nil }
        let notifier: SystemdNotifier
        do {
            notifier = try SystemdNotifier(address: address, logger: logger)
        } catch {
            logger.warning("cannot notify systemd: \(error)")
            return nil
        }
        let interval = environment.watchdogInterval
        logger.info("notifying systemd through \(address)"
            + (interval.map { "; watchdog notifications every \($0.totalMilliseconds) ms" } ?? ""))
        return SystemdSupervisor(notifier: notifier, eventLoop: eventLoop, watchdogInterval: interval, readyDeadline: readyDeadline)
    }

    private init(notifier: SystemdNotifier, eventLoop: EventLoop, watchdogInterval: Duration?, readyDeadline: Duration) {
        self.notifier = notifier
        self.eventLoop = eventLoop
        self.watchdogInterval = watchdogInterval
        notifier.send(["STATUS=starting: forming the first ring"])
        readyTimer = eventLoop.schedule(at: MonotonicClock.now() + readyDeadline) { [weak self] in
            guard let self else { return }
            readyTimer = nil
            ready(status: "no ring formed within \(readyDeadline.totalMilliseconds / 1_000) s of start; still trying "
                + "(see the log and \"devclusterd status\")")
        }
        if watchdogInterval != nil {
            let timer = eventLoop.makeTimer { [weak self] in self?.keepAlive() }
            watchdogTimer = timer
            keepAlive()
        }
    }

    /// Sends `WATCHDOG=1` and arms the next one: the timer runs on the loop, so a loop that
    /// stops turning stops the notifications.
    private func keepAlive() {
        guard let watchdogTimer, let watchdogInterval else { return }
        notifier.send(["WATCHDOG=1"])
        eventLoop.arm(watchdogTimer, at: MonotonicClock.now() + watchdogInterval)
    }

    /// A regular configuration was installed: the first one makes the service ready; later ones
    /// update the status.
    func ringInstalled(status: String) {
        guard !isStopping else { return }
        if isReady {
            update(status: status)
        } else {
            ready(status: status)
        }
    }

    private func ready(status: String) {
        guard !isReady, !isStopping else { return }
        if let readyTimer { eventLoop.removeTimer(readyTimer) }
        readyTimer = nil
        isReady = true
        lastStatus = status
        notifier.send(["READY=1", "STATUS=" + status])
    }

    /// Sends `STATUS=` when `status` differs from the last one sent.
    func update(status: String) {
        guard isReady, !isStopping, status != lastStatus else { return }
        lastStatus = status
        notifier.send(["STATUS=" + status])
    }

    /// Before a reload: `RELOADING=1` with the monotonic time systemd pairs it with
    /// (`MONOTONIC_USEC`, for `Type=notify-reload`). Before the service is ready there is
    /// nothing to pair: the reload is not announced.
    func reloading(_ what: String) {
        guard isReady, !isStopping else { return }
        isReady = false
        isReloading = true
        let microseconds = MonotonicClock.now().nanoseconds / 1_000
        lastStatus = "reloading " + what
        notifier.send(["RELOADING=1", "MONOTONIC_USEC=\(microseconds)", "STATUS=reloading " + what])
    }

    /// After a reload, failed or not (the daemon runs on either way): `READY=1` again.
    func reloaded(status: String) {
        guard isReloading, !isStopping else { return }
        isReloading = false
        ready(status: status)
    }

    /// The daemon is leaving: `STOPPING=1`; no watchdog notifications after it.
    func stopping(_ reason: String) {
        guard !isStopping else { return }
        isStopping = true
        for timer in [watchdogTimer, readyTimer].compactMap({ $0 }) { eventLoop.removeTimer(timer) }
        watchdogTimer = nil
        readyTimer = nil
        notifier.send(["STOPPING=1", "STATUS=stopping: " + reason])
    }
}
