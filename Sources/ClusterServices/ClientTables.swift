// Which clients want what: the watchers' topics and the owners of event subscriptions. Tables
// only; what to push and when is ServiceHost's.

import EventService

/// The clients watching (`watch`, `subscribe`) and their topics.
struct WatcherTable: Sendable {
    private var topicsByClient: [ClientID: Set<WatchTopic>] = [:]
    /// Each topic's watchers (by `WatchTopic.index`), ascending: rebuilt when a watch changes, read
    /// with every notification.
    private var byTopic: [[ClientID]] = Array(repeating: [], count: WatchTopic.allCases.count)

    /// Clients watching.
    var count: Int { topicsByClient.count }

    /// What `client` watches, if anything.
    func topics(of client: ClientID) -> Set<WatchTopic>? { topicsByClient[client] }

    /// The watchers of `topic`, ascending.
    func clients(watching topic: WatchTopic) -> [ClientID] { byTopic[topic.index] }

    /// Sets what `client` watches (replacing what it watched); returns what it watched before.
    mutating func set(_ topics: Set<WatchTopic>, for client: ClientID) -> Set<WatchTopic>? {
        precondition(!topics.isEmpty, "\(client) watches no topic")
        let previous = topicsByClient.updateValue(topics, forKey: client)
        if previous != topics { rebuild() }
        return previous
    }

    /// Forgets `client`; returns what it watched.
    mutating func remove(_ client: ClientID) -> Set<WatchTopic>? {
        guard let previous = topicsByClient.removeValue(forKey: client) else { return nil }
        rebuild()
        return previous
    }

    private mutating func rebuild() {
        let clients = topicsByClient.keys.sorted()
        byTopic = WatchTopic.allCases.map { topic in clients.filter { topicsByClient[$0]?.contains(topic) == true } }
    }

    func checkInvariants() {
        precondition(byTopic.count == WatchTopic.allCases.count, "\(byTopic.count) topic lists")
        for list in byTopic {
            precondition(list.count <= topicsByClient.count, "\(list.count) watchers of a topic, \(topicsByClient.count) in all")
        }
    }
}

/// Which client owns each event subscription it opened.
struct SubscriptionOwners: Sendable {
    private var owners: [SubscriptionID: ClientID] = [:]
    private var byClient: [ClientID: [SubscriptionID]] = [:]
    /// The subscription looked up last and its owner (one of `owners`, dropped with it): a busy
    /// channel's events mostly go to the same subscriber, without hashing its id each time.
    private var last: (id: SubscriptionID, client: ClientID)?

    /// Subscriptions open.
    var count: Int { owners.count }

    /// Subscriptions `client` holds.
    func count(of client: ClientID) -> Int { byClient[client]?.count ?? 0 }

    /// The owner of `id`, if open.
    func owner(of id: SubscriptionID) -> ClientID? {
        if let last, last.id == id { return last.client }
        return owners[id]
    }

    /// The owner of `id`, remembered for the next lookup.
    mutating func lookUpOwner(of id: SubscriptionID) -> ClientID? {
        if let last, last.id == id { return last.client }
        guard let client = owners[id] else { return nil }
        last = (id, client)
        return client
    }

    /// Records `id` as `client`'s.
    mutating func add(_ id: SubscriptionID, for client: ClientID) {
        precondition(owners[id] == nil, "subscription \(id) opened twice")
        owners[id] = client
        byClient[client, default: []].append(id)
    }

    /// Forgets `id` if `client` owns it; returns whether it did.
    mutating func remove(_ id: SubscriptionID, for client: ClientID) -> Bool {
        guard owners[id] == client else { return false }
        owners.removeValue(forKey: id)
        byClient[client]?.removeAll { $0 == id }
        if byClient[client]?.isEmpty == true { byClient.removeValue(forKey: client) }
        if last?.id == id { last = nil }
        return true
    }

    /// Forgets every subscription of `client`; returns them, in the order they opened.
    mutating func removeAll(of client: ClientID) -> [SubscriptionID] {
        let ids = byClient.removeValue(forKey: client) ?? []
        for id in ids { owners.removeValue(forKey: id) }
        if let last, last.client == client { self.last = nil }
        return ids
    }

    func checkInvariants() {
        precondition(byClient.count <= owners.count, "\(byClient.count) owners of \(owners.count) subscriptions")
        // A hash per input: checked in debug builds only (the lookup cache saves it on deliveries).
        if let last { assert(owners[last.id] == last.client, "stale lookup of subscription \(last.id)") }
    }
}
