// The service messages' cursor: every integer width big-endian, slices without copies, and
// truncation reported before anything is read.

import Testing
@testable import Membership

@Suite("ServiceWireReader")
struct ServiceWireReaderTests {
    @Test("reads each width big-endian, one after another")
    func widths() throws {
        let bytes: [UInt8] = [0xAB, 0x01, 0x02, 0x01, 0x02, 0x03, 0x04, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
                              0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0xFF]
        var reader = ServiceWireReader(bytes)
        #expect(try reader.readUInt8() == 0xAB)
        #expect(try reader.readUInt16() == 0x0102)
        #expect(try reader.readUInt32() == 0x0102_0304)
        #expect(try reader.readUInt48() == 0x0102_0304_0506)
        #expect(try reader.readUInt64() == 0x0102_0304_0506_0708)
        #expect(reader.offset == 21 && reader.remaining == 1)
        #expect(throws: ServiceWireError.truncated(needed: 8, available: 1)) { try reader.readUInt64() }
        #expect(reader.offset == 21, "a failed read consumes nothing")
        #expect(try reader.readUInt8() == 0xFF)
        try reader.requireEnd()
    }

    @Test("an eight-byte read at an odd offset, and from a reader that starts past a prefix")
    func unalignedAndOffset() throws {
        let bytes: [UInt8] = [0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x01]
        var reader = ServiceWireReader(bytes, offset: 3)
        #expect(try reader.readUInt64() == 0x8000_0000_0000_0001)
        try reader.requireEnd()
    }

    @Test("a slice is the next bytes, in place; a short one throws")
    func slices() throws {
        let bytes: [UInt8] = [1, 2, 3, 4, 5]
        var reader = ServiceWireReader(bytes)
        _ = try reader.readUInt8()
        let slice = try reader.readSlice(count: 3)
        #expect(slice.startIndex == 1 && Array(slice) == [2, 3, 4])
        #expect(throws: ServiceWireError.truncated(needed: 2, available: 1)) { try reader.readSlice(count: 2) }
        #expect(try reader.readSlice(count: 1).elementsEqual([5]))
        #expect(try reader.readSlice(count: 0).isEmpty)
    }
}
