// ReplayGuard: the three rules of docs/wire-format.md's freshness check, one test per way a
// datagram is refused, and a seeded run of reordered, duplicated and replayed datagrams.

import Testing
@testable import Totem

@Suite("ReplayGuard")
struct ReplayGuardTests {
    typealias Stamp = PacketAuthenticator.Stamp
    let me = NodeID(1)
    let peer: UInt32 = 2

    func stamp(epoch: UInt32 = 0xAAAA, counter: UInt64, to destination: UInt32 = 0, from sealer: UInt32 = 2) -> Stamp {
        Stamp(sealer: sealer, destination: destination, epoch: epoch, counter: counter)
    }

    func at(_ milliseconds: Int64) -> MonotonicInstant { .milliseconds(milliseconds) }

    /// A guard to which `peer` proved epoch 0xAAAA with an answer stamped `counter`.
    func proved(counter: UInt64 = 100, at time: Int64 = 0) throws -> ReplayGuard {
        var guardian = ReplayGuard(node: me, nonceSeed: 500)
        let verdict = guardian.check(stamp(counter: counter - 1), now: at(time))
        let nonce = try #require(challenge(in: verdict))
        #expect(guardian.answer(nonce: nonce, stamp: stamp(counter: counter, to: 1), now: at(time)) == true)
        return guardian
    }

    func challenge(in verdict: ReplayGuard.Verdict) -> UInt64? {
        if case .refuse(.unprovedEpoch, let challenge) = verdict { return challenge }
        return nil
    }

    @Test("a sender's first datagram is refused and challenges it, at most once per interval")
    func firstContactChallenges() {
        var guardian = ReplayGuard(node: me, nonceSeed: 500)
        #expect(guardian.check(stamp(counter: 7), now: at(0)) == .refuse(.unprovedEpoch, challenge: 500))
        #expect(guardian.check(stamp(counter: 8), now: at(99)) == .refuse(.unprovedEpoch, challenge: nil))
        #expect(guardian.check(stamp(counter: 9), now: at(100)) == .refuse(.unprovedEpoch, challenge: 501))
        #expect(guardian.challengesSent == 2)
        #expect(guardian.provedEpoch(of: peer) == nil)
    }

    @Test("only an answer echoing the open challenge's nonce, sealed for us, proves the epoch")
    func answersMustMatch() {
        var guardian = ReplayGuard(node: me, nonceSeed: 500)
        _ = guardian.check(stamp(counter: 7), now: at(0))
        #expect(guardian.answer(nonce: 499, stamp: stamp(counter: 20, to: 1), now: at(1)) == false)
        #expect(guardian.answer(nonce: 500, stamp: stamp(counter: 20, to: 3), now: at(1)) == false)
        #expect(guardian.answer(nonce: 500, stamp: stamp(counter: 20, to: 1, from: 3), now: at(1)) == false)
        #expect(guardian.provedEpoch(of: peer) == nil)
        #expect(guardian.answer(nonce: 500, stamp: stamp(counter: 20, to: 1), now: at(1)) == true)
        #expect(guardian.provedEpoch(of: peer) == 0xAAAA)
        // The nonce is spent: the same answer again (a replay of it) proves nothing.
        #expect(guardian.answer(nonce: 500, stamp: stamp(counter: 20, to: 1), now: at(2)) == false)
    }

    @Test("after the answer, only datagrams sent after it are accepted, each once")
    func freshAfterAnswer() throws {
        var guardian = try proved(counter: 1_000)
        // Sent before the answer (what triggered the challenge, or a replay): refused.
        #expect(guardian.check(stamp(counter: 999), now: at(1)) == .refuse(.duplicate, challenge: nil))
        #expect(guardian.check(stamp(counter: 1_000), now: at(1)) == .refuse(.duplicate, challenge: nil))
        #expect(guardian.check(stamp(counter: 10), now: at(1)) == .refuse(.stale, challenge: nil))
        #expect(guardian.check(stamp(counter: 1_001), now: at(2)) == .accept)
        #expect(guardian.check(stamp(counter: 1_001), now: at(2)) == .refuse(.duplicate, challenge: nil))
    }

    @Test("reordering within the window is accepted once; below it, or over a second late, it is stale")
    func window() throws {
        var guardian = try proved(counter: 100)
        #expect(guardian.check(stamp(counter: 300), now: at(10)) == .accept)
        // 300 − 127 is the oldest counter the window still holds.
        #expect(guardian.check(stamp(counter: 173), now: at(10)) == .accept)
        #expect(guardian.check(stamp(counter: 173), now: at(10)) == .refuse(.duplicate, challenge: nil))
        #expect(guardian.check(stamp(counter: 172), now: at(10)) == .refuse(.stale, challenge: nil))
        #expect(guardian.check(stamp(counter: 250), now: at(1_010)) == .accept)
        #expect(guardian.check(stamp(counter: 251), now: at(1_011)) == .refuse(.stale, challenge: nil))
    }

    @Test("a unicast sealed for another node is refused, whatever its epoch")
    func misaddressed() throws {
        var guardian = try proved(counter: 100)
        #expect(guardian.check(stamp(counter: 101, to: 3), now: at(1)) == .refuse(.misaddressed, challenge: nil))
        #expect(guardian.check(stamp(counter: 101, to: 1), now: at(1)) == .accept)
        #expect(!guardian.isAddressedHere(stamp(counter: 1, to: 3)))
        #expect(guardian.isAddressedHere(stamp(counter: 1, to: 0)))
    }

    @Test("a restarted sender proves its new epoch; its old life's datagrams stay refused")
    func restart() throws {
        var guardian = try proved(counter: 100)
        let newLife = stamp(epoch: 0xBBBB, counter: 5)
        let nonce = try #require(challenge(in: guardian.check(newLife, now: at(1_000))))
        #expect(guardian.answer(nonce: nonce, stamp: stamp(epoch: 0xBBBB, counter: 6, to: 1), now: at(1_001)) == true)
        #expect(guardian.check(stamp(epoch: 0xBBBB, counter: 7), now: at(1_002)) == .accept)
        // The old life's datagrams: refused, and they only ask the sender again (rate-limited).
        let old = guardian.check(stamp(counter: 101), now: at(1_003))
        let again = try #require(challenge(in: old))
        #expect(guardian.check(stamp(counter: 102), now: at(1_004)) == .refuse(.unprovedEpoch, challenge: nil))
        // The answer confirms the new epoch and keeps its window: a datagram sent before the
        // answer, still in flight, is accepted.
        #expect(guardian.answer(nonce: again, stamp: stamp(epoch: 0xBBBB, counter: 20, to: 1), now: at(1_005)) == true)
        #expect(guardian.check(stamp(epoch: 0xBBBB, counter: 19), now: at(1_006)) == .accept)
        #expect(guardian.provedEpoch(of: peer) == 0xBBBB)
        #expect(guardian.epochsProved == 2)
    }

    @Test("counters wrap past 2^64 without a gap")
    func wrap() throws {
        var guardian = try proved(counter: UInt64.max - 1)
        #expect(guardian.check(stamp(counter: UInt64.max), now: at(1)) == .accept)
        #expect(guardian.check(stamp(counter: 1), now: at(1)) == .accept)
        #expect(guardian.check(stamp(counter: 0), now: at(1)) == .accept)
        #expect(guardian.check(stamp(counter: UInt64.max), now: at(1)) == .refuse(.duplicate, challenge: nil))
    }

    @Test("the sender table is bounded")
    func boundedSenders() {
        var guardian = ReplayGuard(node: me, nonceSeed: 0)
        for sender in 2...UInt32(ReplayGuard.maximumSenders + 1) {
            #expect(challenge(in: guardian.check(stamp(counter: 1, from: sender), now: at(0))) != nil)
        }
        let overflow = UInt32(ReplayGuard.maximumSenders + 2)
        #expect(guardian.check(stamp(counter: 1, from: overflow), now: at(0)) == .refuse(.unprovedEpoch, challenge: nil))
    }

    @Test("seeded: reordered and duplicated traffic plus replays of anything recorded; each counter accepted at most once")
    func seededReplays() throws {
        for seed in UInt64(1)...20 {
            print("ReplayGuard seeded run: seed \(seed)")
            var random = SplitMix64(seed: seed)
            var guardian = try proved(counter: 1_000)
            var accepted = Set<UInt64>()
            var recorded: [UInt64] = []
            var sent: UInt64 = 1_000
            var now: Int64 = 1
            for _ in 0..<2_000 {
                now += Int64(random.next() % 3)
                switch random.next() % 4 {
                case 0, 1:
                    // A burst from the sender, delivered slightly out of order.
                    var burst = (1...UInt64(1 + random.next() % 40)).map { sent + $0 }
                    sent += UInt64(burst.count)
                    burst.shuffle(using: &random)
                    for counter in burst {
                        recorded.append(counter)
                        if guardian.check(stamp(counter: counter), now: at(now)) == .accept {
                            #expect(accepted.insert(counter).inserted, "seed \(seed): counter \(counter) accepted twice")
                        }
                    }
                default:
                    // The attacker replays something recorded.
                    guard let counter = recorded.randomElement(using: &random) else { continue }
                    let verdict = guardian.check(stamp(counter: counter), now: at(now))
                    #expect(verdict != .accept || accepted.insert(counter).inserted, "seed \(seed): replay of \(counter) accepted")
                }
            }
            // Every datagram of the shuffled bursts was accepted (the window covers a burst), once.
            #expect(accepted.count == recorded.count, "seed \(seed)")
            #expect(recorded.count == Int(sent - 1_000), "seed \(seed)")
        }
    }
}
