// Reference §2.1 and §3: the 81-pair aggregation table, the 81-pair extension-state table, the
// closed form, and the rows the reference states explicitly.

import Testing
@testable import DeviceState

/// The tables of `tests/test_devicestate.c` (`combined_results`, `exten_results`), written out
/// from the reference's closed form: row = first state, column = second state, both in enum
/// order (UNKNOWN, NOT_INUSE, INUSE, BUSY, INVALID, UNAVAILABLE, RINGING, RINGINUSE, ONHOLD),
/// index 9*a + b.
enum ReferenceTables {
    static let aggregate = """
        UNKNOWN     NOT_INUSE  INUSE      BUSY  UNKNOWN      UNAVAILABLE  RINGING    RINGINUSE  ONHOLD
        NOT_INUSE   NOT_INUSE  INUSE      BUSY  NOT_INUSE    NOT_INUSE    RINGING    RINGINUSE  ONHOLD
        INUSE       INUSE      INUSE      BUSY  INUSE        INUSE        RINGINUSE  RINGINUSE  INUSE
        BUSY        BUSY       BUSY       BUSY  BUSY         BUSY         RINGINUSE  RINGINUSE  BUSY
        UNKNOWN     NOT_INUSE  INUSE      BUSY  INVALID      UNAVAILABLE  RINGING    RINGINUSE  ONHOLD
        UNAVAILABLE NOT_INUSE  INUSE      BUSY  UNAVAILABLE  UNAVAILABLE  RINGING    RINGINUSE  ONHOLD
        RINGING     RINGING    RINGINUSE  RINGINUSE  RINGING  RINGING     RINGING    RINGINUSE  RINGINUSE
        RINGINUSE   RINGINUSE  RINGINUSE  RINGINUSE  RINGINUSE  RINGINUSE  RINGINUSE  RINGINUSE  RINGINUSE
        ONHOLD      ONHOLD     INUSE      BUSY  ONHOLD       ONHOLD       RINGINUSE  RINGINUSE  ONHOLD
        """

    static let extensions = """
        Idle           Idle           InUse          Busy           Idle           Unavailable    Ringing        InUse&Ringing  Hold
        Idle           Idle           InUse          Busy           Idle           Idle           Ringing        InUse&Ringing  Hold
        InUse          InUse          InUse          Busy           InUse          InUse          InUse&Ringing  InUse&Ringing  InUse
        Busy           Busy           Busy           Busy           Busy           Busy           InUse&Ringing  InUse&Ringing  Busy
        Idle           Idle           InUse          Busy           Unavailable    Unavailable    Ringing        InUse&Ringing  Hold
        Unavailable    Idle           InUse          Busy           Unavailable    Unavailable    Ringing        InUse&Ringing  Hold
        Ringing        Ringing        InUse&Ringing  InUse&Ringing  Ringing        Ringing        Ringing        InUse&Ringing  InUse&Ringing
        InUse&Ringing  InUse&Ringing  InUse&Ringing  InUse&Ringing  InUse&Ringing  InUse&Ringing  InUse&Ringing  InUse&Ringing  InUse&Ringing
        Hold           Hold           InUse          Busy           Hold           Hold           InUse&Ringing  InUse&Ringing  Hold
        """

    static func cells(_ table: String) -> [String] {
        table.split(whereSeparator: \.isWhitespace).map(String.init)
    }

    static let aggregateCells = cells(aggregate)
    static let extensionCells = cells(extensions)

    /// An independent restatement of the closed form (reference §2.1), used as a differential
    /// oracle: RINGING together with INUSE, BUSY or ONHOLD is RINGINUSE; otherwise the highest
    /// rank wins; nothing is INVALID.
    static func closedForm(_ states: [DeviceStateValue]) -> DeviceStateValue {
        let order: [DeviceStateValue] = [.invalid, .unknown, .unavailable, .notInUse, .onHold, .ringing, .inUse, .busy, .ringInUse]
        if states.contains(.ringing) && states.contains(where: { [.inUse, .busy, .onHold].contains($0) }) { return .ringInUse }
        return states.max { order.firstIndex(of: $0)! < order.firstIndex(of: $1)! } ?? .invalid
    }
}

@Suite("Aggregation (reference §2.1) and extension states (§3)")
struct AggregationTableTests {
    @Test("the tables have 81 cells each")
    func tableShape() {
        #expect(ReferenceTables.aggregateCells.count == 81)
        #expect(ReferenceTables.extensionCells.count == 81)
        #expect(DeviceStateValue.allCases.count == 9)
    }

    @Test("combined_results: aggregate of every ordered pair", arguments: 0..<81)
    func aggregatePair(index: Int) throws {
        let first = try #require(DeviceStateValue(rawValue: UInt8(index / 9)))
        let second = try #require(DeviceStateValue(rawValue: UInt8(index % 9)))
        var aggregate = DeviceStateAggregate()
        aggregate.add(first)
        aggregate.add(second)
        #expect(aggregate.result.name == ReferenceTables.aggregateCells[index], "\(first) + \(second)")
        #expect(DeviceStateAggregate.of([first, second]) == aggregate.result)
    }

    @Test("exten_results: extension state of every ordered pair", arguments: 0..<81)
    func extensionPair(index: Int) throws {
        let first = try #require(DeviceStateValue(rawValue: UInt8(index / 9)))
        let second = try #require(DeviceStateValue(rawValue: UInt8(index % 9)))
        #expect(ExtensionState.of([first, second]).name == ReferenceTables.extensionCells[index], "\(first) & \(second)")
    }

    @Test("the written tables agree with an independent restatement of the closed form")
    func tablesMatchClosedForm() throws {
        for index in 0..<81 {
            let pair = [DeviceStateValue(rawValue: UInt8(index / 9))!, DeviceStateValue(rawValue: UInt8(index % 9))!]
            #expect(ReferenceTables.closedForm(pair).name == ReferenceTables.aggregateCells[index])
        }
    }

    @Test("rows the reference states explicitly")
    func explicitRows() {
        #expect(DeviceStateAggregate.of([.ringing, .busy]) == .ringInUse)
        #expect(DeviceStateAggregate.of([.ringing, .onHold]) == .ringInUse)
        #expect(DeviceStateAggregate.of([.ringing, .inUse]) == .ringInUse)
        for weaker in [DeviceStateValue.unavailable, .unknown, .invalid] {
            #expect(DeviceStateAggregate.of([.notInUse, weaker]) == .notInUse)
            #expect(DeviceStateAggregate.of([weaker, .notInUse]) == .notInUse)
        }
        #expect(DeviceStateAggregate.of([.unknown, .invalid]) == .unknown)
        // Current algorithm: INVALID + INVALID is INVALID (the legacy one gave UNKNOWN).
        #expect(DeviceStateAggregate.of([.invalid, .invalid]) == .invalid)
        #expect(DeviceStateAggregate.of([DeviceStateValue]()) == .invalid)
        #expect(ExtensionState.of([DeviceStateValue]()) == .unavailable)
        for state in DeviceStateValue.allCases {
            #expect(DeviceStateAggregate.of([state, state]) == state)
            #expect(DeviceStateAggregate.of([state]) == state)
        }
        // RINGINUSE sets neither flag, so it does not combine with RINGING into anything else.
        #expect(DeviceStateAggregate.of([.ringInUse, .ringing]) == .ringInUse)
    }

    @Test("order does not matter: every triple equals the closed form, in all six orders")
    func triples() {
        for a in DeviceStateValue.allCases {
            for b in DeviceStateValue.allCases {
                for c in DeviceStateValue.allCases {
                    let expected = ReferenceTables.closedForm([a, b, c])
                    for order in [[a, b, c], [a, c, b], [b, a, c], [b, c, a], [c, a, b], [c, b, a]] {
                        #expect(DeviceStateAggregate.of(order) == expected)
                    }
                }
            }
        }
    }

    @Test("ast_devstate_to_extenstate, and the extension-state names and values")
    func extensionMapping() {
        let expected: [(DeviceStateValue, ExtensionState)] = [
            (.notInUse, .idle), (.unknown, .idle), (.inUse, .inUse), (.busy, .busy), (.unavailable, .unavailable),
            (.invalid, .unavailable), (.ringing, .ringing), (.ringInUse, .inUseRinging), (.onHold, .onHold),
        ]
        for (device, extensionState) in expected { #expect(ExtensionState(device) == extensionState) }
        #expect(ExtensionState.allCases.map(\.rawValue) == [0, 1, 2, 4, 8, 9, 16, 17])
        #expect(ExtensionState.allCases.map(\.name) == ["Idle", "InUse", "Busy", "Unavailable", "Ringing", "InUse&Ringing", "Hold", "InUse&Hold"])
    }
}
