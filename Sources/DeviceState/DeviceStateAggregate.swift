// Combining several states of one device into one (reference §2.1,
// `ast_devstate_aggregate_{init,add,result}` since 1.8.10.1).

/// The aggregate of device states: of one device across servers, or of a hint's devices.
///
/// `add` follows Asterisk's incremental rule: RINGING sets the ringing flag; INUSE, ONHOLD or
/// BUSY set the in-use flag (RINGINUSE sets neither); when both flags are set the state becomes
/// RINGINUSE, otherwise a higher-ranked state (`DeviceStateValue.aggregationRank`) replaces the
/// current one. The result does not depend on the order of `add`s; the empty aggregate is INVALID.
public struct DeviceStateAggregate: Sendable, Equatable {
    private var ringing = false
    private var inUse = false
    /// The aggregate so far (INVALID when empty).
    public private(set) var result: DeviceStateValue = .invalid

    /// An empty aggregate (`ast_devstate_aggregate_init`).
    public init() {}

    /// Adds one state (`ast_devstate_aggregate_add`).
    public mutating func add(_ state: DeviceStateValue) {
        switch state {
        case .ringing: ringing = true
        case .inUse, .onHold, .busy: inUse = true
        default: break
        }
        if ringing && inUse {
            result = .ringInUse
        } else if state.aggregationRank > result.aggregationRank {
            result = state
        }
    }

    /// The aggregate of `states` (INVALID for none).
    public static func of(_ states: some Sequence<DeviceStateValue>) -> DeviceStateValue {
        var aggregate = DeviceStateAggregate()
        for state in states { aggregate.add(state) }
        return aggregate.result
    }
}
