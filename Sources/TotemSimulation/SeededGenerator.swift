// The simulation's only source of randomness: xoshiro256** seeded through SplitMix64.
// Owns the bit generator and a few bounded helpers; it knows nothing about nodes or packets.

import Totem

/// A deterministic random number generator (xoshiro256**, seeded with SplitMix64).
///
/// Every random choice of a simulation flows from one `UInt64` seed. Each purpose (network,
/// partitions, crashes, the load of each node) draws from its own generator, derived from the
/// seed with `init(seed:stream:)`, so that changing one knob (say the message rate) does not
/// perturb the other schedules. The bounded helpers are written here rather than taken from the
/// standard library so that a trace does not change with the toolchain's sampling algorithm.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    /// Creates the generator for `seed`.
    public init(seed: UInt64) {
        self.init(seed: seed, stream: 0)
    }

    /// Creates the generator of one purpose (`stream`) of `seed`. Different streams of one seed
    /// are independent for every practical purpose.
    public init(seed: UInt64, stream: UInt64) {
        var splitMix = SplitMix64(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
        state = (splitMix.next(), splitMix.next(), splitMix.next(), splitMix.next())
        // xoshiro's state must not be all zero; SplitMix64 outputs make that practically
        // impossible, but the check costs nothing.
        if state == (0, 0, 0, 0) { state.0 = 0x9E37_79B9_7F4A_7C15 }
    }

    /// The next 64 random bits (xoshiro256**, Blackman and Vigna 2018).
    public mutating func next() -> UInt64 {
        let result = rotateLeft(state.1 &* 5, by: 7) &* 9
        let shifted = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= shifted
        state.3 = rotateLeft(state.3, by: 45)
        return result
    }

    private func rotateLeft(_ value: UInt64, by count: UInt64) -> UInt64 {
        (value << count) | (value >> (64 - count))
    }
}

extension SeededGenerator {
    /// A uniformly distributed double in `0 ..< 1` (53 random bits).
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// True with probability `probability` (never for 0, always for 1). Draws nothing when the
    /// probability is 0 or 1, so a disabled fault leaves the stream untouched.
    public mutating func chance(_ probability: Double) -> Bool {
        if probability <= 0 { return false }
        if probability >= 1 { return true }
        return nextUnit() < probability
    }

    /// A uniformly distributed integer in `0 ..< bound` (multiply-shift; the bias of at most
    /// `bound / 2^64` is irrelevant here). `bound` must be positive.
    public mutating func index(below bound: Int) -> Int {
        precondition(bound > 0, "bound \(bound) must be positive")
        return Int(next().multipliedFullWidth(by: UInt64(bound)).high)
    }

    /// A uniformly distributed integer in `range`.
    public mutating func integer(in range: ClosedRange<Int64>) -> Int64 {
        let width = UInt64(bitPattern: range.upperBound &- range.lowerBound)
        if width == UInt64.max { return Int64(bitPattern: next()) }
        let offset = next().multipliedFullWidth(by: width + 1).high
        return range.lowerBound &+ Int64(bitPattern: offset)
    }

    /// A uniformly distributed duration in `range`, at nanosecond resolution.
    public mutating func duration(in range: ClosedRange<Duration>) -> Duration {
        .nanoseconds(integer(in: range.lowerBound.totalNanoseconds...range.upperBound.totalNanoseconds))
    }

    /// The elements of `elements` in a uniformly random order (Fisher–Yates).
    public mutating func shuffled<Element>(_ elements: [Element]) -> [Element] {
        var result = elements
        var remaining = result.count
        while remaining > 1 {
            let pick = index(below: remaining)
            remaining -= 1
            result.swapAt(pick, remaining)
        }
        return result
    }
}

/// The independent random streams of one simulation seed.
public enum RandomStream: UInt64, Sendable {
    case network = 1
    case partitions = 2
    case crashes = 3
    case overlappingEpisodes = 4
    /// The load of node `i` uses stream `load + i`.
    case load = 1_000
}
