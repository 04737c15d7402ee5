// Sizes in the configuration file (`max_retained_bytes = 32M`): a number of bytes, optionally
// with a 1024-based unit. Reading and writing them; what range a size may take is the caller's.

import ClusterServices

/// A size written as bytes or with a unit: `33554432`, `32768K`, `32M`, `32 MiB`, `1G`.
enum ByteSize {
    /// What the configuration accepts, for error messages.
    static let syntax = "a number of bytes, or of K, M or G (KiB, MiB, GiB: 1024-based), like 32M"

    /// The size `text` names, or `nil` when it is not a size or falls outside `range`.
    static func parse(_ text: String, in range: ClosedRange<Int>) -> Int? {
        let digits = text.prefix { ("0"..."9").contains($0) }
        let unit = text.dropFirst(digits.count).drop { $0 == " " }.lowercased()
        let shift: Int
        switch unit {
        case "", "b": shift = 0
        case "k", "kb", "kib": shift = 10
        case "m", "mb", "mib": shift = 20
        case "g", "gb", "gib": shift = 30
        default: return nil
        }
        // Checked before shifting: at most 18 digits fit an Int, and the shift must not overflow.
        guard let number = ConfigurationReader.decimal(String(digits), in: 0...(Int.max >> 30)) else { return nil }
        let value = number << shift
        return range.contains(value) ? value : nil
    }

    /// `size` in the largest unit that divides it (`32M`), for the effective configuration.
    static func format(_ size: Int) -> String {
        for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] where size > 0 && size % (1 << shift) == 0 {
            return "\(size >> shift)\(unit)"
        }
        return String(size)
    }

    /// `size` for people: `32 MiB`, `1.5 MiB`, `900 bytes` (as the services' log lines write it).
    static func describe(_ size: Int) -> String { ByteCountText.describe(size) }
}
