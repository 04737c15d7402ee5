// The byte scans of JSON strings, vectorised: where a string's text must be escaped (the encoder)
// or stops being plain (the parser), and whether a payload goes into a push as it is. Only the
// control protocol's JSON uses them.

/// Scans of text bound for, or read from, a JSON string.
package enum JSONText {
    /// Whether every byte is printable ASCII other than a quote or a backslash (0x20...0x7E
    /// without 0x22 and 0x5C): text that goes into a JSON string as it is. One pass, sixty-four
    /// bytes per test. The usual event payload is such text: it then needs neither the UTF-8
    /// validation nor the escape scan.
    package static func isPlain(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let raw = UnsafeRawPointer(base)
        let count = bytes.count
        var index = 0
        let quote = SIMD16<Int8>(repeating: 0x22)
        let backslash = SIMD16<Int8>(repeating: 0x5C)
        let one = SIMD16<Int8>(repeating: 1)
        let spaceAndOne = SIMD16<Int8>(repeating: 0x21)
        @inline(__always) func special(at offset: Int) -> SIMDMask<SIMD16<Int8>> {
            let chunk = raw.loadUnaligned(fromByteOffset: offset, as: SIMD16<Int8>.self)
            // One signed compare for three kinds: chunk + 1 (wrapping) is below 0x21 exactly for
            // the bytes below 0x20, for 0x7F (which wraps to -128), and for 0x80 and above.
            return ((chunk &+ one) .< spaceAndOne) .| (chunk .== quote) .| (chunk .== backslash)
        }
        // `any(mask)` reduces lane by lane (it was most of the cost of a vector); a mask lane is
        // all ones or all zeros and the mask is its sixteen lanes, so OR its two halves instead.
        @inline(__always) func anySet(_ mask: SIMDMask<SIMD16<Int8>>) -> Bool {
            let halves = unsafeBitCast(mask, to: SIMD2<UInt64>.self)
            return halves[0] | halves[1] != 0
        }
        // Four vectors per test: one branch per 64 bytes (Benchmarks/ANALYSIS.md, "Steps taken").
        while index + 64 <= count {
            if anySet(special(at: index) .| special(at: index + 16) .| special(at: index + 32) .| special(at: index + 48)) {
                return false
            }
            index += 64
        }
        while index + 16 <= count {
            if anySet(special(at: index)) { return false }
            index += 16
        }
        while index < count {
            let byte = base[index]
            if byte < 0x20 || byte >= 0x7F || byte == 0x22 || byte == 0x5C { return false }
            index += 1
        }
        return true
    }

    /// The index of the first byte at or after `start` that JSON treats specially in a string:
    /// a quote, a backslash, a control character (below 0x20), and with `delete` also 0x7F
    /// (which the encoder escapes); `bytes.count` if there is none.
    ///
    /// Sixteen bytes at a time in SIMD registers: half the time of the eight-byte word tricks this
    /// replaced (165 -> 77 ns for 1 KiB of plain text); the control socket's JSON parser and
    /// encoder run it over every string. Wider vectors were slower on the baseline x86-64 target.
    package static func firstSpecialByte(in bytes: UnsafeBufferPointer<UInt8>, from start: Int, delete: Bool = false) -> Int {
        guard let base = bytes.baseAddress else { return bytes.count }
        let raw = UnsafeRawPointer(base)
        let count = bytes.count
        var index = start
        let space = SIMD16<UInt8>(repeating: 0x20)
        let quote = SIMD16<UInt8>(repeating: 0x22)
        let backslash = SIMD16<UInt8>(repeating: 0x5C)
        // Without `delete`, 0x7F is ordinary: compare against the quote a second time instead.
        let deleteOrQuote = SIMD16<UInt8>(repeating: delete ? 0x7F : 0x22)
        while index + 16 <= count {
            let chunk = raw.loadUnaligned(fromByteOffset: index, as: SIMD16<UInt8>.self)
            if any((chunk .< space) .| (chunk .== quote) .| (chunk .== backslash) .| (chunk .== deleteOrQuote)) { break }
            index += 16
        }
        while index < count {
            let byte = base[index]
            if byte < 0x20 || byte == 0x22 || byte == 0x5C || (delete && byte == 0x7F) { return index }
            index += 1
        }
        return count
    }
}
