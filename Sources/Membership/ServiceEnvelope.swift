// The one-byte envelope that lets one ring carry every cluster service. Owns the service ids (the
// one registry of ring message tags) and demultiplexing; each service owns the layout of the
// bytes after its id.

/// The services multiplexed over the one Totem ring. The raw value is the first byte of every
/// application message the daemon submits.
///
/// Fixed for the life of the wire format: a daemon ignores (and counts) ids it does not know, so
/// a newer service can be rolled out one node at a time.
public enum ServiceID: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// `MembershipService` announcements (node id, entity id, name, addresses).
    case membership = 1
    /// `EventChannelService` events (device state and MWI travel as events).
    case event = 2
    /// The ring `ping` of the services' host (`RingPing` in ClusterServices): requests and
    /// replies that time a round through the ring. Not a cluster service of its own.
    case ping = 3

    public var description: String {
        switch self {
        case .membership: "membership"
        case .event: "event"
        case .ping: "ping"
        }
    }
}

/// Routing of ring messages to services.
///
/// Layout of every application message on the ring:
///
/// ```
/// offset 0   u8   service id (ServiceID)
/// offset 1   ...  the service's own format, which starts with its own version byte
/// ```
///
/// The daemon reads the first byte with `service(of:)` and hands the *whole* payload, envelope
/// byte included, to that service's `delivered(payload:from:)`; each service checks the byte again.
public enum ServiceEnvelope {
    /// The longest message any service accepts, checked before parsing (Totem's own message limit).
    public static let maxMessageBytes = 1 << 20

    /// The service a ring payload is addressed to.
    ///
    /// - Throws: `empty` for no bytes, `oversized` above `maxMessageBytes`, `unknownService` for an
    ///   id this build does not know (a newer peer, or garbage).
    public static func service(of payload: [UInt8]) throws(ServiceWireError) -> ServiceID {
        guard let first = payload.first else { throw .empty }
        guard payload.count <= maxMessageBytes else { throw .oversized(size: payload.count, limit: maxMessageBytes) }
        guard let service = ServiceID(rawValue: first) else { throw .unknownService(first) }
        return service
    }

    /// Rebuilds a whole ring payload from a service id and the bytes after it, for a caller
    /// that strips the envelope byte while routing (the inverse of `dropFirst()`).
    public static func message(for service: ServiceID, body: some Collection<UInt8>) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(body.count + 1)
        bytes.append(service.rawValue)
        bytes.append(contentsOf: body)
        return bytes
    }

    /// Checks that `payload` is addressed to `expected` and returns a reader positioned after the
    /// service byte.
    package static func open(_ payload: [UInt8], expecting expected: ServiceID) throws(ServiceWireError) -> ServiceWireReader {
        guard let first = payload.first else { throw .empty }
        guard payload.count <= maxMessageBytes else { throw .oversized(size: payload.count, limit: maxMessageBytes) }
        guard first == expected.rawValue else { throw .wrongService(expected: expected, actual: first) }
        return ServiceWireReader(payload, offset: 1)
    }
}
