// Channel names and event types: built from received bytes exactly as from text.

import Testing
@testable import EventService

@Suite("Channel names and event types")
struct NameTests {
    static let samples = ["device_state", "mwi", "a", "bench", "Sales-Queue.1", "has space", "", "caf\u{E9}", "x9_", "9x", "_x",
                          "UPPER", String(repeating: "c", count: 32), String(repeating: "c", count: 33),
                          String(repeating: "n", count: 64), String(repeating: "n", count: 65), "tab\there", "quote\"d"]

    @Test("from bytes and from text agree, for valid and invalid names")
    func bytesAndTextAgree() {
        for text in Self.samples {
            let bytes = Array(text.utf8)
            let channel = bytes.withUnsafeBufferPointer { ChannelName(utf8: $0) }
            let type = bytes.withUnsafeBufferPointer { EventType(utf8: $0) }
            #expect(channel == ChannelName(text), "channel \(text)")
            #expect(type == EventType(text), "type \(text)")
        }
        #expect([UInt8]([0xC3]).withUnsafeBufferPointer { ChannelName(utf8: $0) } == nil)
    }
}
