// Shared by the service test targets: a deterministic random source for the seeded fuzz tests
// (SplitMix64) and the mutations those tests apply to valid encodings.

import Totem

/// The package's generator, under the name the service tests use.
public typealias SeededGenerator = SplitMix64

/// Mutations a fuzz test applies to a valid encoding: truncation, bit flips, byte overwrites
/// (including 0xFF runs that turn counts and lengths into their maximum), insertion, extension.
public enum Mutation {
    public static func mutate(_ bytes: [UInt8], using generator: inout SeededGenerator) -> [UInt8] {
        var result = bytes
        let rounds = Int.random(in: 1...3, using: &generator)
        for _ in 0..<rounds {
            switch Int.random(in: 0..<6, using: &generator) {
            case 0 where !result.isEmpty:
                result.removeLast(Int.random(in: 1...result.count, using: &generator))
            case 1 where !result.isEmpty:
                let index = Int.random(in: 0..<result.count, using: &generator)
                result[index] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &generator)
            case 2 where !result.isEmpty:
                let index = Int.random(in: 0..<result.count, using: &generator)
                result[index] = UInt8.random(in: 0...255, using: &generator)
            case 3 where !result.isEmpty:
                let index = Int.random(in: 0..<result.count, using: &generator)
                let run = min(Int.random(in: 1...8, using: &generator), result.count - index)
                for offset in 0..<run { result[index + offset] = 0xFF }
            case 4:
                let index = Int.random(in: 0...result.count, using: &generator)
                result.insert(UInt8.random(in: 0...255, using: &generator), at: index)
            default:
                result += (0..<Int.random(in: 1...16, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            }
        }
        return result
    }
}
