// One pipelining client connection: writes `event_publish` (or `devstate_set`) requests as fast
// as its window of unanswered requests allows, or paced at a rate, and keeps reading the
// responses on the same connection (the daemon stops reading a client that leaves >1 MiB of
// responses unread, and stops reading a publisher while the ring's backlog is long: that is the
// flow control). Ends with an END marker publish, as cpgbench does.

import DevclusterControl
import Glibc

struct PublisherConfiguration: Sendable {
    enum Operation: Sendable { case publish, deviceState }
    var socket: String
    var node: Int
    var size: Int
    /// Requests per second; 0 = as fast as the daemon accepts.
    var rate: Double
    var duration: Double
    var window: Int
    /// Monotonic time at which to start sending.
    var startAt: UInt64
    var operation: Operation = .publish
}

struct PublisherResult: Sendable {
    var sent = 0
    var accepted = 0
    var errors = 0
    var firstError: String?
    var firstSend: UInt64 = 0
    var lastResponse: UInt64 = 0
    var endAccepted = false
    var failure: String?
}

struct Publisher {
    let configuration: PublisherConfiguration
    private static let okMarker = Array("\"ok\":true".utf8)
    private static let states = ["INUSE", "NOT_INUSE"].map { Array($0.utf8) }
    /// `{"id":` ID `,"cmd":"event_publish","args":{"channel":"bench","type":"bench","payload":"` PAYLOAD `"}}`
    private static let publishTemplate = try! RequestTemplate(
        ControlCommands.EventPublish(channel: "bench", type: "bench", payload: "@PAYLOAD@"), placeholders: ["@PAYLOAD@"])
    /// `{"id":` ID `,"cmd":"devstate_set","args":{"device":"Custom:c` K `","state":"` STATE `"}}`
    private static let deviceStateTemplate = try! RequestTemplate(
        ControlCommands.DevstateSet(device: "Custom:c@DEVICE@", state: "@STATE@"), placeholders: ["@DEVICE@", "@STATE@"])

    /// The request for data message `sequence` (or, with `end`, the END marker carrying the count).
    func appendRequest(sequence: UInt64, end: Bool, to bytes: inout [UInt8]) {
        switch configuration.operation {
        case .publish:
            let template = Self.publishTemplate
            template.appendPiece(0, to: &bytes)
            appendDecimal(sequence, to: &bytes)
            template.appendPiece(1, to: &bytes)
            // The payload is plain text that needs no escape: "S" node ":" sequence ":" stamp ":" x...
            let payloadStart = bytes.count
            bytes.append(end ? 0x45 : 0x53)  // "E" or "S"
            appendDecimal(UInt64(configuration.node), to: &bytes)
            bytes.append(0x3A)
            appendDecimal(sequence, to: &bytes)
            bytes.append(0x3A)
            if !end {
                appendDecimal(monotonicNanoseconds(), to: &bytes)
                bytes.append(0x3A)
                let padding = configuration.size - (bytes.count - payloadStart)
                if padding > 0 { bytes.append(contentsOf: repeatElement(0x78, count: padding)) }
            }
            template.appendPiece(2, to: &bytes)
        case .deviceState:
            // Distinct devices, each round flipping the state, so every request is a real change.
            let template = Self.deviceStateTemplate
            template.appendPiece(0, to: &bytes)
            appendDecimal(sequence, to: &bytes)
            template.appendPiece(1, to: &bytes)
            appendDecimal(sequence % 1_000, to: &bytes)
            template.appendPiece(2, to: &bytes)
            bytes.append(contentsOf: Self.states[Int((sequence / 1_000) % 2)])
            template.appendPiece(3, to: &bytes)
        }
    }

    func run() -> PublisherResult {
        var result = PublisherResult()
        let connection: ControlClient
        do {
            connection = try connectControl(path: configuration.socket, timeout: 5)
        } catch {
            result.failure = "\(error)"
            return result
        }
        let startAt = configuration.startAt
        while monotonicNanoseconds() < startAt { usleep(UInt32(min(100_000, max(1, (startAt &- monotonicNanoseconds()) / 1_000)))) }
        let stopAt = startAt + UInt64(configuration.duration * 1e9)
        let giveUpAt = stopAt + 90_000_000_000
        let gap = configuration.rate > 0 ? 1e9 / configuration.rate : 0
        var sequence: UInt64 = 0
        var outstanding = 0
        var pending: [UInt8] = []
        pending.reserveCapacity(1 << 20)
        var written = 0
        var endQueued = false
        var endSequence: UInt64 = .max
        var iterations = 0
        result.firstSend = monotonicNanoseconds()
        // Bounded: by the give-up time, and by a generous iteration count.
        while iterations < 500_000_000 {
            iterations += 1
            let now = monotonicNanoseconds()
            if now > giveUpAt {
                result.failure = "gave up 90 s after the end with \(outstanding) responses outstanding"
                break
            }
            var waitNanoseconds: UInt64 = 100_000_000
            if !endQueued {
                if now >= stopAt {
                    if configuration.operation == .publish {
                        endSequence = sequence
                        appendRequest(sequence: sequence, end: true, to: &pending)
                        outstanding += 1
                    }
                    endQueued = true
                } else if written == pending.count || pending.count - written < 65_536 {
                    var budget = min(configuration.window - outstanding, 64)
                    while budget > 0 {
                        if gap > 0 {
                            let due = startAt + UInt64(gap * Double(sequence))
                            let current = monotonicNanoseconds()
                            if current < due {
                                waitNanoseconds = min(100_000_000, due - current)
                                break
                            }
                        }
                        appendRequest(sequence: sequence, end: false, to: &pending)
                        sequence += 1
                        outstanding += 1
                        budget -= 1
                        waitNanoseconds = 0
                    }
                    if outstanding >= configuration.window { waitNanoseconds = 100_000_000 }
                }
            }
            if written < pending.count {
                do {
                    written += try pending.withUnsafeBytes { bytes throws(ControlClientError) in
                        try connection.sendAvailable(UnsafeRawBufferPointer(rebasing: bytes[written...]))
                    }
                } catch {
                    result.failure = "\(error)"
                    break
                }
                if written == pending.count {
                    pending.removeAll(keepingCapacity: true)
                    written = 0
                }
            }
            if endQueued && outstanding == 0 && written == pending.count { break }
            var poller = pollfd(fd: connection.descriptor, events: Int16(POLLIN) | (written < pending.count ? Int16(POLLOUT) : 0), revents: 0)
            // Paced senders sleep in ppoll until the next message is due; saturating ones only
            // look for responses; a sender whose socket is full sleeps until it drains.
            if written < pending.count || outstanding >= configuration.window || endQueued { waitNanoseconds = 100_000_000 }
            // Sub-millisecond waits sleep exactly, then look without waiting (poll counts whole ms).
            if waitNanoseconds > 0 && waitNanoseconds < 1_000_000 {
                var pause = timespec(tv_sec: 0, tv_nsec: Int(waitNanoseconds))
                nanosleep(&pause, nil)
                waitNanoseconds = 0
            }
            if poll(&poller, 1, Int32(waitNanoseconds / 1_000_000)) > 0 && poller.revents & Int16(POLLIN) != 0 {
                let open = (try? connection.receiveAvailable { line in
                    outstanding -= 1
                    result.lastResponse = monotonicNanoseconds()
                    if contains(line, Self.okMarker) {
                        result.accepted += 1
                    } else {
                        result.errors += 1
                        if result.firstError == nil { result.firstError = String(decoding: line, as: UTF8.self) }
                    }
                    // The END marker's response: its id is endSequence, and it is the last one.
                    if endQueued && outstanding == 0 && endSequence != .max { result.endAccepted = contains(line, Self.okMarker) }
                }) ?? false
                if !open {
                    result.failure = "daemon closed the connection"
                    break
                }
            }
        }
        result.sent = Int(sequence)
        return result
    }
}
