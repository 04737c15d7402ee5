// A small ordered set of node ids: the proc, fail, consensus and member sets of the membership
// protocol. Deliberately an ascending array: rings are small and order must be deterministic.

/// An ascending, duplicate-free set of node ids.
///
/// Equality is set equality (spec pitfall P9: comparisons must not depend on insertion order),
/// and iteration is always ascending, so effects built from it are deterministic.
public struct NodeSet: Sendable, Equatable, Sequence, CustomStringConvertible {
    public private(set) var elements: [NodeID] = []

    public init() {}

    public init(_ nodes: some Sequence<NodeID>) {
        elements = Array(Set(nodes)).sorted()
    }

    public var count: Int { elements.count }
    public var isEmpty: Bool { elements.isEmpty }
    /// The lowest id: the representative of a ring formed from this set.
    public var lowest: NodeID? { elements.first }

    public func contains(_ node: NodeID) -> Bool {
        binarySearch(node).found
    }

    public mutating func insert(_ node: NodeID) {
        let (found, index) = binarySearch(node)
        if !found { elements.insert(node, at: index) }
    }

    public mutating func formUnion(_ other: some Sequence<NodeID>) {
        for node in other { insert(node) }
    }

    public mutating func remove(_ node: NodeID) {
        let (found, index) = binarySearch(node)
        if found { elements.remove(at: index) }
    }

    public func subtracting(_ other: NodeSet) -> NodeSet {
        var result = NodeSet()
        result.elements = elements.filter { !other.contains($0) }
        return result
    }

    public func isSubset(of other: NodeSet) -> Bool {
        elements.allSatisfy { other.contains($0) }
    }

    public func makeIterator() -> IndexingIterator<[NodeID]> { elements.makeIterator() }

    public var description: String { "{" + elements.map(\.description).joined(separator: ",") + "}" }

    private func binarySearch(_ node: NodeID) -> (found: Bool, index: Int) {
        var low = 0
        var high = elements.count
        while low < high {
            let middle = (low + high) / 2
            if elements[middle] < node { low = middle + 1 } else { high = middle }
        }
        return (low < elements.count && elements[low] == node, low)
    }
}
