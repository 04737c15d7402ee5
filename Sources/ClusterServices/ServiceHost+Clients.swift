// Clients of the services' host: watchers (`watch`/`subscribe`, `unsubscribe`) and their count
// on the hints, a client's closing, and the daemon's stop.

import DeviceState
import Totem

extension ServiceHost {
    /// `watch` / `subscribe`: `client` is told of changes of `topics` from now on (replacing
    /// what it watched). A watcher of `extension` counts as a watcher of every hint (`hints`
    /// shows them, as Asterisk's `core show hints` counts extension-state subscriptions).
    ///
    /// - Parameters:
    ///   - topics: What to watch; none is `unsubscribe`.
    ///   - includeSnapshot: Whether the answer carries a `snapshot` to start from.
    public mutating func watch(_ topics: Set<WatchTopic>, client: ClientID, includeSnapshot: Bool) -> WatchResult {
        defer { checkInvariants() }
        guard !topics.isEmpty else {
            _ = unsubscribe(client: client)
            return WatchResult(topics: [], snapshot: includeSnapshot ? snapshot() : nil)
        }
        let previous = watchers.set(topics, for: client)
        countHintWatcher(was: previous?.contains(.extension) ?? false, isNow: topics.contains(.extension))
        return WatchResult(topics: WatchTopic.allCases.filter(topics.contains), snapshot: includeSnapshot ? snapshot() : nil)
    }

    /// `unsubscribe`: `client` watches nothing any more.
    ///
    /// - Returns: Whether it watched something.
    public mutating func unsubscribe(client: ClientID?) -> Bool {
        defer { checkInvariants() }
        guard let client, let previous = watchers.remove(client) else { return false }
        countHintWatcher(was: previous.contains(.extension), isNow: false)
        return true
    }

    /// Adds or removes one watcher on every hint when a client starts or stops watching
    /// extension states.
    private mutating func countHintWatcher(was: Bool, isNow: Bool) {
        guard was != isNow else { return }
        for key in deviceState.hintRows.map(\.key) {
            do {
                if isNow {
                    _ = try deviceState.addWatcher(to: key)
                } else {
                    try deviceState.removeWatcher(from: key)
                }
            } catch {
                preconditionFailure("hint \(key), one of the hint rows, is unknown: \(error)")
            }
        }
    }

    /// `client`'s connection closed: its watch, event subscriptions, adapter registration and
    /// hold end.
    public mutating func clientClosed(_ client: ClientID, into effects: inout [Effect]) {
        defer { checkInvariants() }
        _ = unsubscribe(client: client)
        for id in subscriptionOwners.removeAll(of: client) { deviceState.unsubscribeEvents(id) }
        if let adapter = adapters.removeValue(forKey: client) {
            Self.log(.notice, "adapter \(adapter.name) disconnected", into: &effects)
        }
        if let index = heldClients.firstIndex(of: client) { heldClients.remove(at: index) }
    }

    /// The daemon stops (the ring is still there): pending pings are answered `stopping`, the
    /// timers disarmed and held clients released.
    public mutating func stop(into effects: inout [Effect]) {
        defer { checkInvariants() }
        for id in pings.removeAll() { effects.append(.answerPing(id, .failure(.stopping))) }
        for timer in Timer.allCases { effects.append(.disarmTimer(timer)) }
        armedExpiry = nil
        if !heldClients.isEmpty {
            effects.append(.release(heldClients))
            heldClients.removeAll()
        }
    }
}
