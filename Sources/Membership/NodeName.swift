// The rule for node names, shared by the configured node list and announcements.

import Totem

/// Node names: 1 to 64 printable ASCII characters without spaces, the rule the daemon's
/// configuration applies to node and channel names.
public enum NodeName {
    /// The longest name in bytes.
    public static let maxBytes = 64

    /// Whether `name` is a valid node name.
    public static func isValid(_ name: String) -> Bool {
        (1...maxBytes).contains(name.utf8.count) && name.utf8.allSatisfy { (0x21...0x7E).contains($0) }
    }

    /// The name shown for a node nobody named: `node<ID>`, as the daemon's default.
    public static func defaultName(for node: NodeID) -> String { "node\(node.rawValue)" }
}
