// The wider fault model's hooks in the Simulator: overlapping network episodes, crashes during
// a ring sequence persist, and the count of late packets. FaultPlan says when; this applies.

import Totem

extension Simulator {
    /// How many packet copies the network made late so far (`NetworkConditions.late`).
    public var latePacketCount: Int { network.latePackets }

    /// Starts overlapping episode `id`: its links stay cut until `endEpisode(id)` or the heal,
    /// independently of partitions, cuts, network heals and other episodes. Starting an id
    /// that is active replaces it.
    public mutating func beginEpisode(_ id: Int, _ episode: NetworkEpisode) {
        endEpisode(id)
        let links = episode.cutLinks(among: nodeIDs).map { (from: index(of: $0.from), to: index(of: $0.to)) }
        for link in links { network.adjustEpisodeCut(by: 1, from: link.from, to: link.to) }
        episodeLinks[id] = links
    }

    /// Ends overlapping episode `id` (nothing if it is not active).
    public mutating func endEpisode(_ id: Int) {
        guard let links = episodeLinks.removeValue(forKey: id) else { return }
        for link in links { network.adjustEpisodeCut(by: -1, from: link.from, to: link.to) }
    }

    /// Ends every overlapping episode.
    public mutating func endEpisodes() {
        episodeLinks.removeAll()
        network.clearEpisodeCuts()
    }

    /// Arms a crash of `node` during its next `persistRingSequence`: the effects of that batch
    /// before the persist are executed, then the node crashes with its stored ring sequence
    /// unchanged and the rest of the batch is lost (see `FaultPlan`). Restart it with
    /// `restart(node:)`; `apply(.restart)` and `heal()` disarm a crash that has not happened.
    public mutating func crashDuringNextPersist(node: NodeID) {
        let index = index(of: node)
        guard isRunning(node) else { return }
        crashArmedAtPersist[index] = true
    }

    /// Whether `node`'s next persist will crash it.
    public func isArmedToCrashAtPersist(_ node: NodeID) -> Bool { crashArmedAtPersist[index(of: node)] }
}
