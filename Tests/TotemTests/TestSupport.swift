// Helpers shared by the Totem test files: a seedable generator and hex decoding of RFC vectors.

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny, seedable generator for reproducible tests.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<bound`.
    mutating func int(below bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// True with probability `percent` / 100.
    mutating func chance(percent: Int) -> Bool { int(below: 100) < percent }
}

/// Bytes from hex digits, ignoring spaces, newlines and colons (as RFCs print them).
func hexBytes(_ text: String) -> [UInt8] {
    var nibbles: [UInt8] = []
    for scalar in text.unicodeScalars {
        switch scalar {
        case "0"..."9": nibbles.append(UInt8(scalar.value - 48))
        case "a"..."f": nibbles.append(UInt8(scalar.value - 87))
        case "A"..."F": nibbles.append(UInt8(scalar.value - 55))
        case " ", "\n", ":": continue
        default: preconditionFailure("not a hex digit: \(scalar)")
        }
    }
    precondition(nibbles.count % 2 == 0, "odd number of hex digits")
    return stride(from: 0, to: nibbles.count, by: 2).map { nibbles[$0] << 4 | nibbles[$0 + 1] }
}
