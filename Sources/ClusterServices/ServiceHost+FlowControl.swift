// Ring submits and flow control: the backlog for a full send queue (its limit, drop policy and
// retry), the outcomes of the shell's submits, holding clients that submit while the ring is
// busy, and the timers. The ring's own queue limit is the core's (SubmitError.tryAgain).

import Totem

extension ServiceHost {
    // MARK: Timers

    /// A timer the host armed fired.
    ///
    /// - Parameter ringQueuedBytes: Bytes in the ring's send queue now (`RingNode.pendingBytes`).
    public mutating func timerFired(_ timer: Timer, now: MonotonicInstant, ringQueuedBytes: Int, into effects: inout [Effect]) {
        defer { checkInvariants() }
        switch timer {
        case .backlog: drainBacklog(now: now, into: &effects)
        case .release: releaseTimerFired(now: now, ringQueuedBytes: ringQueuedBytes, into: &effects)
        case .expiry: expiryTimerFired(now: now, into: &effects)
        case .ping: pingTimerFired(now: now, into: &effects)
        }
    }

    // MARK: Submits and the backlog

    /// Submits a whole message (its tag first), or queues it behind a backlog: messages leave in
    /// the order they were made.
    mutating func submit(_ message: [UInt8], now: MonotonicInstant, into effects: inout [Effect]) {
        guard !message.isEmpty else { return }
        if backlog.isEmpty {
            effects.append(.submit(message, queued: false))
        } else {
            enqueue(message, now: now, into: &effects)
        }
    }

    private mutating func enqueue(_ message: [UInt8], now: MonotonicInstant, into effects: inout [Effect]) {
        let droppedBefore = backlog.dropped
        backlog.append(message)
        warnOfBacklogDrops(since: droppedBefore, into: &effects)
        effects.append(.armTimer(.backlog, at: now + Self.backlogRetry))
    }

    /// Logs the drops of a full backlog since `droppedBefore` of them: the first and every thousandth.
    private func warnOfBacklogDrops(since droppedBefore: Int, into effects: inout [Effect]) {
        guard backlog.dropped > droppedBefore else { return }
        for dropped in (droppedBefore + 1)...backlog.dropped where dropped == 1 || dropped % 1_000 == 0 {
            Self.log(.warning, "ring send backlog full (\(Self.backlogLimit) messages): \(dropped) oldest dropped so far", into: &effects)
        }
    }

    /// The ring refused a submit with `tryAgain`: `messages` are that one and every later submit
    /// of its batch, in order. They go back to the head of the backlog (dropping the oldest
    /// beyond its limit), retried after `backlogRetry`.
    public mutating func submitRefused(_ messages: [[UInt8]], now: MonotonicInstant, into effects: inout [Effect]) {
        defer { checkInvariants() }
        guard !messages.isEmpty else { return }
        let droppedBefore = backlog.dropped
        backlog.putBack(messages)
        warnOfBacklogDrops(since: droppedBefore, into: &effects)
        effects.append(.armTimer(.backlog, at: now + Self.backlogRetry))
    }

    /// The ring refused a submit for good (too large, or the node is not running); `queued`
    /// as the `submit` effect said. A `tryAgain` is taken as `submitRefused([message])`.
    public mutating func submitFailed(_ message: [UInt8], error: SubmitError, queued: Bool, now: MonotonicInstant,
                                      into effects: inout [Effect]) {
        if case .tryAgain = error {
            submitRefused([message], now: now, into: &effects)
            return
        }
        guard !queued else {
            Self.log(.debug, "dropped a queued ring message: \(error)", into: &effects)
            return
        }
        switch error {
        case .messageTooLarge(let size, let limit):
            Self.log(.error, "dropped a ring message of \(size) bytes: larger than \(limit) bytes", into: &effects)
        case .notRunning, .tryAgain:
            Self.log(.debug, "dropped a ring message: the node is not running", into: &effects)
        }
    }

    /// Hands out the oldest waiting messages (at most `backlogDrainBatch`; the rest at the next
    /// turn of the loop).
    private mutating func drainBacklog(now: MonotonicInstant, into effects: inout [Effect]) {
        for message in backlog.takeFront(upTo: Self.backlogDrainBatch) {
            effects.append(.submit(message, queued: true))
        }
        if !backlog.isEmpty { effects.append(.armTimer(.backlog, at: now)) }
    }

    // MARK: Holding clients that submit

    /// Bytes the effects appended since `start` submit to the ring (what the ring's queue will
    /// hold more once they are executed).
    static func submittedBytes(in effects: [Effect], from start: Int) -> Int {
        var bytes = 0
        for case .submit(let message, _) in effects[start...] { bytes += message.count }
        return bytes
    }

    /// Holds `client` (its requests are not read) while the ring has too much queued, so that a
    /// client submitting faster than the ring sends waits in its socket buffer instead of
    /// filling the daemon's memory (nothing accepted is dropped; corosync answers TRY_AGAIN).
    ///
    /// - Parameter ringQueuedBytes: The ring's queue once this input's submits are in.
    mutating func holdIfRingBusy(_ client: ClientID?, ringQueuedBytes: Int, now: MonotonicInstant, into effects: inout [Effect]) {
        guard let client, backlog.count > 0 || ringQueuedBytes > Self.holdAboveBytes else { return }
        let index = heldClients.partitioningIndex(for: client)
        guard index == heldClients.count || heldClients[index] != client else { return }
        heldClients.insert(client, at: index)
        effects.append(.hold(client))
        effects.append(.armTimer(.release, at: now + Self.releaseCheckInterval))
    }

    /// Releases every held client once the backlog is empty and the ring's queue below
    /// `releaseBelowBytes`.
    mutating func releaseHeldClientsIfRingCaughtUp(ringQueuedBytes: Int, into effects: inout [Effect]) {
        guard !heldClients.isEmpty, backlog.isEmpty, ringQueuedBytes < Self.releaseBelowBytes else { return }
        effects.append(.release(heldClients))
        heldClients.removeAll(keepingCapacity: true)
        effects.append(.disarmTimer(.release))
    }

    private mutating func releaseTimerFired(now: MonotonicInstant, ringQueuedBytes: Int, into effects: inout [Effect]) {
        releaseHeldClientsIfRingCaughtUp(ringQueuedBytes: ringQueuedBytes, into: &effects)
        if !heldClients.isEmpty { effects.append(.armTimer(.release, at: now + Self.releaseCheckInterval)) }
    }
}

extension Array where Element: Comparable {
    /// The index of the first element not below `value` (the array ascending).
    func partitioningIndex(for value: Element) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if self[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
