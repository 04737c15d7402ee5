// The configured nodes' addresses in the two forms the data path needs: values for matching the
// source of received datagrams, and kernel sockaddr structures for sendmmsg. Allocated once.

import Glibc
import Totem

/// Node ids with their addresses, kept in kernel form as well so sending needs no conversion.
///
/// Lookups scan linearly: a cluster has at most `WireLimits.maxNodes` nodes, and comparing a
/// few integers per entry beats hashing for such sizes. Confined to the event-loop thread.
final class NodeAddressTable {
    let ids: [NodeID]
    let addresses: [SocketAddress]
    /// `names[i]` is `addresses[i]` as a `sockaddr_in` or `sockaddr_in6`.
    let names: UnsafeMutablePointer<sockaddr_storage>
    let nameLengths: [socklen_t]

    init(_ nodes: [TransportConfiguration.Node]) {
        ids = nodes.map(\.id)
        addresses = nodes.map(\.address)
        names = .allocate(capacity: max(nodes.count, 1))
        var lengths: [socklen_t] = []
        for (index, node) in nodes.enumerated() {
            lengths.append(node.address.write(to: names + index))
        }
        nameLengths = lengths
    }

    deinit {
        names.deinitialize(count: ids.count)
        names.deallocate()
    }

    var count: Int { ids.count }

    /// The entry of node `id`, if listed.
    func index(of id: NodeID) -> Int? {
        for index in ids.indices where ids[index] == id { return index }
        return nil
    }

    /// The listed nodes at these addresses (address and port), in order, each once; addresses
    /// of no listed node are left out.
    func ids(at addresses: [SocketAddress]) -> [NodeID] {
        var found: [NodeID] = []
        for address in addresses {
            guard let index = self.addresses.firstIndex(of: address), !found.contains(ids[index]) else { continue }
            found.append(ids[index])
        }
        return found
    }

    /// Whether `source` is a listed node's address; with `matchingPort` false only the IP counts.
    func contains(source: SocketAddress, matchingPort: Bool) -> Bool {
        for address in addresses {
            if matchingPort ? address == source : address.hasSameIP(as: source) { return true }
        }
        return false
    }
}
