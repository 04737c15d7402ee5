// Helpers shared by the Totem test files: a seedable generator and hex decoding of RFC vectors.

import Totem

/// Test helpers on the package's generator (Totem.SplitMix64).
extension SplitMix64 {
    /// A value in `0..<bound`.
    mutating func int(below bound: Int) -> Int { below(bound) }

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
