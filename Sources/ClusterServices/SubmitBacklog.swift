// The ring submits that wait for room in the ring's send queue: a bounded FIFO that drops its
// oldest when full and takes refused messages back at its head. The policy around it (when to
// retry, what to log) is ServiceHost+FlowControl.swift's.

/// Ring messages waiting, oldest first, at most `limit`.
struct SubmitBacklog: Sendable {
    /// Slots before `head` are spent (emptied, so they hold no memory).
    private var messages: [[UInt8]] = []
    private var head = 0
    /// The most messages kept.
    let limit: Int
    /// Messages dropped because the backlog was full, since the start.
    private(set) var dropped = 0

    init(limit: Int) {
        precondition(limit > 0, "backlog limit \(limit)")
        self.limit = limit
    }

    /// Messages waiting.
    var count: Int { messages.count - head }
    var isEmpty: Bool { head == messages.count }

    /// Appends `message`, dropping the oldest when full (counted in `dropped`).
    mutating func append(_ message: [UInt8]) {
        if count >= limit { dropOldest() }
        messages.append(message)
    }

    /// Puts messages the ring refused back at the head, in order (they were handed out before
    /// everything still waiting), then drops the oldest beyond `limit` (counted in `dropped`).
    mutating func putBack(_ refused: [[UInt8]]) {
        if head >= refused.count {
            head -= refused.count
            for (offset, message) in refused.enumerated() { messages[head + offset] = message }
        } else {
            messages.replaceSubrange(0..<head, with: refused)
            head = 0
        }
        while count > limit { dropOldest() }
    }

    /// Takes up to `maximum` messages from the head, oldest first.
    mutating func takeFront(upTo maximum: Int) -> [[UInt8]] {
        let end = head + min(maximum, count)
        // A copy, not a slice: a slice would share the storage, and emptying the slots below
        // would then copy the whole backlog.
        let taken = Array(messages[head..<end])
        for index in head..<end { messages[index] = [] }
        head = end
        if head == messages.count {
            messages.removeAll(keepingCapacity: false)
            head = 0
        } else if head > 1_024 && head * 2 > messages.count {
            messages.removeSubrange(0..<head)
            head = 0
        }
        return taken
    }

    private mutating func dropOldest() {
        messages[head] = []
        head += 1
        dropped += 1
    }
}
