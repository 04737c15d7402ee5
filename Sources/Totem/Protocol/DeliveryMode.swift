// The two delivery services of Totem (spec §1.5).

/// How a message is delivered: agreed (total order, no gaps) or safe (additionally, only once
/// every member of the configuration is known to hold it).
public enum DeliveryMode: UInt8, Sendable, Hashable {
    /// Delivered once this node holds every earlier message of the ring.
    case agreed = 0
    /// Delivered once every member is known to hold it: `seq <= min(token aru now, aru a rotation ago)`.
    case safe = 1
}
