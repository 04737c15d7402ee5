// Seeded fuzzing of the wire decoder (STYLE §6.5): whatever arrives, decode returns a packet or
// throws a WireError; it never traps. Every accepted datagram is canonical: re-encoding it
// gives back exactly the bytes received.

import Testing
@testable import Totem


@Suite("Wire decoder fuzzing (spec §2.3, STYLE §6.5)")
struct WireFuzzTests {
    let codec = WireFixtures.codec
    /// Valid encodings small enough to mutate byte by byte (the two 64 KiB ones are left out).
    let samples = WireFixtures.encodings.filter { $0.count <= 2_000 }

    /// Decodes `bytes`; when accepted, requires that the packet re-encodes to exactly `bytes`.
    /// Returns whether the datagram was accepted.
    @discardableResult
    func decodeOrThrow(_ bytes: [UInt8], context: @autoclosure () -> String) -> Bool {
        do throws(WireError) {
            let packet = try codec.decode(bytes)
            let reencoded = codec.encode(packet)
            #expect(reencoded == bytes, "accepted a non-canonical datagram: \(context())")
            return true
        } catch {
            return false
        }
    }

    @Test("(a) Every truncation of every valid encoding is rejected")
    func truncationsAreRejected() {
        var generator = SplitMix64(seed: 0xA)
        for (sampleIndex, encoding) in WireFixtures.encodings.enumerated() {
            // Every prefix of small encodings; for the 64 KiB ones, every prefix through the
            // fixed fields and inner header plus a few hundred random lengths.
            let lengths: [Int] = encoding.count <= 2_000
                ? Array(0..<encoding.count)
                : Array(0..<200) + (0..<300).map { _ in Int.random(in: 200..<encoding.count, using: &generator) }
            for length in lengths {
                do throws(WireError) {
                    let packet = try codec.decode(Array(encoding[0..<length]))
                    Issue.record("sample \(sampleIndex) cut to \(length) bytes decoded as \(packet)")
                } catch {
                    continue
                }
            }
        }
    }

    @Test("(b) Random bit flips and byte overwrites decode canonically or are rejected")
    func mutationsDecodeCanonicallyOrThrow() {
        let seed: UInt64 = 0xB0B
        var generator = SplitMix64(seed: seed)
        let interesting: [UInt8] = [0x00, 0x01, 0x02, 0x1E, 0x1F, 0x20, 0x21, 0x7F, 0x80, 0xFE, 0xFF]
        var accepted = 0
        var rejected = 0
        for iteration in 0..<20_000 {
            let sampleIndex = Int.random(in: 0..<samples.count, using: &generator)
            var bytes = samples[sampleIndex]
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                // Aim half of the mutations at the header and fixed fields, where the checks are.
                let end = Bool.random(using: &generator) ? min(bytes.count, 64) : bytes.count
                let position = Int.random(in: 0..<end, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[position] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &generator)
                case 1: bytes[position] = UInt8.random(in: 0...UInt8.max, using: &generator)
                default: bytes[position] = interesting[Int.random(in: 0..<interesting.count, using: &generator)]
                }
            }
            if decodeOrThrow(bytes, context: "seed \(seed), iteration \(iteration), sample \(sampleIndex)") {
                accepted += 1
            } else {
                rejected += 1
            }
        }
        // Both outcomes must be exercised, or the mutations are not reaching the checks.
        #expect(accepted > 1_000)
        #expect(rejected > 1_000)
    }

    @Test("(c) Counts and lengths of 0xFF, 0xFFFF and 0xFFFFFFFF are rejected before any arithmetic")
    func maximalCountsAreRejected() {
        let f = WireFixtures.self
        let e = WireFixtures.encodings
        func expectError(_ bytes: [UInt8], _ expected: WireError, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(throws: expected, sourceLocation: sourceLocation) { try codec.decode(bytes) }
        }
        // Token rtr_count (u8).
        expectError(f.patch(e[0], at: 53, [0xFF]), .countOutOfRange(field: "retransmit requests", count: 0xFF, limit: 30))
        // JOIN proc_count and fail_count (u16).
        expectError(f.patch(e[17], at: 24, [0xFF, 0xFF]), .countOutOfRange(field: "processors", count: 0xFFFF, limit: 32))
        expectError(f.patch(e[17], at: 26, [0xFF, 0xFF]), .countOutOfRange(field: "failed", count: 0xFFFF, limit: 32))
        // Commit token n and memb_index (u16).
        expectError(f.patch(e[23], at: 34, [0xFF, 0xFF]), .countOutOfRange(field: "members", count: 0xFFFF, limit: 32))
        expectError(f.patch(e[23], at: 32, [0xFF, 0xFF]), .memberIndexOutOfRange(0xFFFF, count: 5))
        // MCAST payload_len (u32): 41 + 0xFFFFFFFF must not overflow anything.
        for length: UInt32 in [0xFFFF_FFFF, 0xFFFF_FFFE, 0x8000_0000, 0x7FFF_FFFF, 0x0001_0000] {
            expectError(
                f.patch(e[6], at: 37, f.be32(length)), .lengthMismatch(expected: 41 + Int(length), actual: 42))
            // The same in the inner datagram of an encapsulated MCAST (inner payload_len at 41 + 37).
            expectError(
                f.patch(e[10], at: 78, f.be32(length)),
                .invalidInnerMessage(.lengthMismatch(expected: 41 + Int(length), actual: 44)))
        }
        // And at every offset of every sample: 0xFFFF and 0xFFFFFFFF written anywhere never trap.
        for (sampleIndex, sample) in samples.enumerated() where sample.count <= 200 {
            for offset in 0..<sample.count {
                for pattern: [UInt8] in [[0xFF, 0xFF], [0xFF, 0xFF, 0xFF, 0xFF]] where offset + pattern.count <= sample.count {
                    decodeOrThrow(
                        f.patch(sample, at: offset, pattern),
                        context: "sample \(sampleIndex), \(pattern.count) bytes of 0xFF at \(offset)")
                }
            }
        }
    }

    @Test("(d) Random byte strings, many behind a valid header, never trap")
    func randomDatagramsNeverTrap() {
        let seed: UInt64 = 0xD
        var generator = SplitMix64(seed: seed)
        let header = WireFixtures.header(type: 0, sender: 1)
        for iteration in 0..<20_000 {
            let length = Int.random(in: 0...200, using: &generator)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...UInt8.max, using: &generator) }
            if Bool.random(using: &generator) {
                // A valid header prefix of a random type, flags 0..3 and a small sender.
                var prefix = header
                prefix[3] = UInt8.random(in: 0...6, using: &generator)
                prefix[4] = UInt8.random(in: 0...3, using: &generator)
                prefix[15] = UInt8.random(in: 0...8, using: &generator)
                bytes.replaceSubrange(0..<min(length, prefix.count), with: prefix[0..<min(length, prefix.count)])
            }
            decodeOrThrow(bytes, context: "seed \(seed), iteration \(iteration)")
        }
    }
}
