// Reference §1: the nine states, their names and texts; parsing; device names (§2.3).

import Testing
import ServiceTestSupport
@testable import DeviceState

@Suite("Device states and names")
struct DeviceStateValueTests {
    @Test("values, DEVICE_STATE names and human texts as in the reference table")
    func table() {
        let expected: [(UInt8, String, String)] = [
            (0, "UNKNOWN", "Unknown"), (1, "NOT_INUSE", "Not in use"), (2, "INUSE", "In use"), (3, "BUSY", "Busy"),
            (4, "INVALID", "Invalid"), (5, "UNAVAILABLE", "Unavailable"), (6, "RINGING", "Ringing"), (7, "RINGINUSE", "Ring+Inuse"),
            (8, "ONHOLD", "On Hold"),
        ]
        #expect(DeviceStateValue.allCases.map { ($0.rawValue, $0.name, $0.text) }.elementsEqual(expected) { $0 == $1 })
        #expect(DeviceStateValue(rawValue: 9) == nil)
    }

    @Test("names parse ignoring case", arguments: DeviceStateValue.allCases)
    func parsesAnyCase(state: DeviceStateValue) throws {
        #expect(try DeviceStateValue(parsing: state.name) == state)
        #expect(try DeviceStateValue(parsing: state.name.lowercased()) == state)
        let mixed = String(state.name.enumerated().map { $0.offset % 2 == 0 ? Character($0.element.lowercased()) : $0.element })
        #expect(try DeviceStateValue(parsing: mixed) == state)
    }

    @Test("the reference's conversion examples: onhold is ONHOLD")
    func referenceExamples() throws {
        #expect(try DeviceStateValue(parsing: "onhold") == .onHold)
    }

    @Test("unknown names are errors listing the nine valid names",
          arguments: ["FOO", "", "IN_USE", "Not in use", " INUSE", "INUSE ", "RING+INUSE", "ON HOLD"])
    func rejectsUnknown(text: String) {
        let valid = ["UNKNOWN", "NOT_INUSE", "INUSE", "BUSY", "INVALID", "UNAVAILABLE", "RINGING", "RINGINUSE", "ONHOLD"]
        #expect(throws: DeviceStateError.unknownStateName(text, valid: valid)) { try DeviceStateValue(parsing: text) }
        #expect(DeviceStateError.unknownStateName(text, valid: valid).description
            == "unknown device state \"\(text)\"; valid states: UNKNOWN, NOT_INUSE, INUSE, BUSY, INVALID, UNAVAILABLE, RINGING, RINGINUSE, ONHOLD")
    }

    @Test("device names: tech part upper-cased, Custom: prefix normalized, the rest exact")
    func deviceNames() throws {
        #expect(try DeviceName(parsing: "sip/1000").rawValue == "SIP/1000")
        #expect(try DeviceName(parsing: "Sip/alice").rawValue == "SIP/alice")
        #expect(try DeviceName(parsing: "pjsip/Alice/extra").rawValue == "PJSIP/Alice/extra")
        #expect(try DeviceName(parsing: "Custom:mystate").rawValue == "Custom:mystate")
        #expect(try DeviceName(parsing: "CUSTOM:mystate").rawValue == "Custom:mystate")
        #expect(try DeviceName(parsing: "custom:a/b").rawValue == "Custom:a/b")
        #expect(try DeviceName(parsing: "Custom:MyState") != DeviceName(parsing: "Custom:mystate"))
        #expect(try DeviceName(parsing: "Queue:sales_avail").rawValue == "Queue:sales_avail")
        #expect(try DeviceName(parsing: "queue:sales_avail") != DeviceName(parsing: "Queue:sales_avail"))
        #expect(try DeviceName(parsing: "SIP/1000") == DeviceName(parsing: "sip/1000"))
        #expect(try DeviceName(parsing: "Custom:x").isCustom)
        #expect(try !DeviceName(parsing: "SIP/x").isCustom)
    }

    @Test("device names order by their UTF-8 bytes (the state file's order): differential against lexicographicallyPrecedes")
    func orderIsByteOrder() throws {
        var generator = SeededGenerator(seed: 7)
        // Short names over a small alphabet, so that equal names and prefixes are common; multibyte
        // characters, where byte order and Swift's String order can differ.
        let alphabet = ["a", "b", "Z", "0", "/", ":", "é", "ü", "Ω", "\u{1F600}", "e\u{301}"]
        func randomName() throws -> DeviceName {
            let length = Int.random(in: 1...4, using: &generator)
            let rest = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }.joined()
            return try DeviceName(parsing: (Bool.random(using: &generator) ? "SIP/" : "Custom:") + rest)
        }
        for _ in 0..<20_000 {
            let (left, right) = (try randomName(), try randomName())
            #expect((left < right) == left.rawValue.utf8.lexicographicallyPrecedes(right.rawValue.utf8), "\(left) < \(right)")
        }
        #expect(try DeviceName(parsing: "SIP/a") < DeviceName(parsing: "SIP/ab"))
        #expect(!(try DeviceName(parsing: "SIP/ab") < DeviceName(parsing: "SIP/ab")))
    }

    @Test("invalid device names are refused with a reason",
          arguments: ["", "SIP", "Custom:", "/1000", "SIP/", "SIP/10 00", "SIP/a&b", "SIP/a,b", "SIP/\u{7}", String(repeating: "x", count: 250) + "/12345x"])
    func rejectsDeviceNames(text: String) {
        #expect(throws: DeviceStateError.self) { try DeviceName(parsing: text) }
    }
}
