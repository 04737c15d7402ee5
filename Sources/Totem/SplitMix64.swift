// The one seedable generator of the package: the simulator seeds its xoshiro256** with it, and
// every seeded test and fuzz mutation draws from it, so a printed seed replays a run.

/// SplitMix64 (Steele, Lea and Flood 2014): 64 bits of state, fast, and good enough for test
/// schedules and seeding; not for anything secret (the runtime reads /dev/urandom for those).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<bound` (modulo bias is irrelevant for tests).
    /// - Precondition: `bound > 0`.
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "bound \(bound) must be positive")
        return Int(next() % UInt64(bound))
    }
}
