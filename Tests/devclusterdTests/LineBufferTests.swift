// LineBuffer: what goes in comes out, across growth and reuse.

import Testing
@testable import devclusterd

@Suite("LineBuffer")
struct LineBufferTests {
    private func text(_ line: borrowing LineBuffer) -> String {
        line.withBytes { String(decoding: $0, as: UTF8.self) }
    }

    @Test("decimals of every width, constants, bytes and arrays, in order")
    func appendsInOrder() {
        var line = LineBuffer(capacity: 4)
        for value: UInt64 in [0, 7, 10, 99, 100, 1_234_567, UInt64.max] {
            line.appendDecimal(value)
            line.append(#","#)
        }
        line.append(UInt8(ascii: "x"))
        [UInt8]("yz".utf8).withUnsafeBufferPointer { line.append($0) }
        line.append([UInt8]("!".utf8))
        line.append([UInt8]())
        #expect(text(line) == "0,7,10,99,100,1234567,18446744073709551615,xyz!")
        #expect(line.count == text(line).utf8.count)
    }

    @Test("growth keeps the bytes; removeAll forgets them and shrinks a grown buffer")
    func growthAndReuse() {
        var line = LineBuffer(capacity: 8)
        let long = [UInt8]((0..<5_000).map { UInt8(ascii: "a") + UInt8($0 % 26) })
        line.append(long)
        line.append(long)
        #expect(line.withBytes { Array($0) } == long + long)
        line.removeAll(keepAtMost: 16)
        #expect(line.count == 0)
        line.append(#"after"#)
        #expect(text(line) == "after")
    }
}
