// A fuzz target for everything a datagram from the network reaches: authentication (HMAC-SHA-256
// and ChaCha20-Poly1305), the freshness check, the wire decoder and the protocol core. Built with
// libFuzzer by scripts/fuzz.sh; a plain build is a replay tool that runs saved inputs (crash
// reproducers, a corpus) through the same entry point.

import FuzzingSupport
import Totem

/// The input is a sequence of records `mode u8 | length u16 big-endian | bytes` (FuzzingSupport).
/// Mode bit 0 set: the bytes are sealed first (bit 1 chooses ChaCha20-Poly1305 over HMAC-SHA-256,
/// bit 2 seals them as a unicast for this node rather than for every node, bit 3 flips one bit of
/// the sealed datagram, which must then be refused), so the fuzzer reaches the decoder through
/// the authenticator and the freshness check; clear: the bytes are offered to both
/// authenticators as received (they must refuse them) and then decoded without one, as a
/// cluster without a key would. Every decoded packet is fed to one protocol core, started
/// fresh for each input, so sequences of hostile but well-formed packets exercise its handlers.
@_cdecl("LLVMFuzzerTestOneInput")
public func packetFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var harness = FuzzHarness()
    for (mode, bytes) in records(in: UnsafeBufferPointer(start: data, count: size)) {
        harness.offer(bytes, mode: mode)
    }
    return 0
}

/// One node's receive path: authenticators, freshness check, codec and core, with a clock that
/// only moves forward.
struct FuzzHarness {
    static let codec = WireCodec(clusterName: "fuzz")
    static let key: ClusterKey = {
        do { return try ClusterKey(bytes: Array(repeating: 0x5A, count: 32)) } catch { preconditionFailure("\(error)") }
    }()
    /// The peers' sealing side (node 1's), one per protected mode.
    var sealers = [
        PacketAuthenticator(mode: .hmacSHA256, key: FuzzHarness.key, clusterName: "fuzz", nodeID: NodeID(1), epoch: 9, counterStart: 1),
        PacketAuthenticator(mode: .chaCha20Poly1305, key: FuzzHarness.key, clusterName: "fuzz", nodeID: NodeID(1), epoch: 9, counterStart: 1),
    ]
    /// This node's (node 2's) opening side.
    static let openers = [
        PacketAuthenticator(mode: .hmacSHA256, key: FuzzHarness.key, clusterName: "fuzz", nodeID: NodeID(2), epoch: 7, counterStart: 5),
        PacketAuthenticator(mode: .chaCha20Poly1305, key: FuzzHarness.key, clusterName: "fuzz", nodeID: NodeID(2), epoch: 7, counterStart: 5),
    ]
    var replayGuard = ReplayGuard(node: NodeID(2), nonceSeed: 0x100)
    /// A started core, copied for each input: the copy shares its large queues until a packet
    /// writes to them, so most inputs allocate nothing big.
    static let started: SingleRingProtocol = {
        var core = SingleRingProtocol(nodeID: NodeID(2), settings: .simulation, persistedRingSequence: 7)
        _ = core.start(now: .zero)
        return core
    }()
    var core = FuzzHarness.started
    var now = MonotonicInstant.zero

    mutating func offer(_ datagram: [UInt8], mode: UInt8) {
        now = now + .milliseconds(1)
        var bytes = datagram
        if mode & 1 == 1 && bytes.count >= WireLimits.headerBytes {
            let which = Int(mode >> 1 & 1)
            sealers[which].seal(&bytes, destination: mode & 4 == 0 ? 0 : 2)
            if mode & 8 != 0 {
                let bit = datagram.count * 8 % (bytes.count * 8)
                bytes[bit / 8] ^= 1 << UInt8(bit % 8)
                if case .accepted = Self.openers[which].open(bytes) {
                    preconditionFailure("a sealed datagram with bit \(bit) flipped passed authentication")
                }
                return
            }
            guard case .accepted(let opened, let stamp?) = Self.openers[which].open(bytes) else {
                preconditionFailure("a datagram sealed with our own key was rejected")
            }
            bytes = opened
            check(bytes, stamp: stamp)
        } else {
            for opener in Self.openers {
                // A random datagram that carries a valid code or tag: only possible by breaking the MAC.
                if case .accepted = opener.open(bytes) { preconditionFailure("an unsealed datagram passed \(opener.mode)") }
            }
        }
        guard let packet = try? Self.codec.decode(bytes) else { return }
        _ = core.receive(packet, now: now)
        // Let a timer fire now and then, so the core moves between states.
        if bytes.count % 7 == 0 {
            _ = core.timerExpired(RingTimer.allCases[bytes.count % RingTimer.allCases.count], now: now)
        }
    }

    /// The freshness check, as the runtime runs it (the packet reaches the core whatever it says,
    /// so that the core is fuzzed as much as before).
    mutating func check(_ plain: [UInt8], stamp: PacketAuthenticator.Stamp) {
        if case .livenessReply(let reply)? = try? Self.codec.decode(plain), replayGuard.answer(nonce: reply.nonce, stamp: stamp, now: now) {
            return
        }
        _ = replayGuard.check(stamp, now: now)
    }
}

#if FUZZING
/// SwiftPM links an executable's entry point under this name; in a fuzzing build it hands
/// control to libFuzzer.
@_cdecl("PacketFuzzer_main")
func packetFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, size in packetFuzzerTestOneInput(data, size) }
}
#else
/// Replays saved fuzz inputs: `PacketFuzzer FILE...`; `PacketFuzzer --write-seeds DIR` writes
/// a seed corpus of well-formed exchanges for the fuzzer to mutate.
@main
struct PacketFuzzerReplay {
    static func main() {
        runReplayTool(name: "PacketFuzzer", arguments: Array(CommandLine.arguments.dropFirst()), seeds: SeedCorpus.inputs) {
            data, size in packetFuzzerTestOneInput(data, size)
        }
    }
}
#endif

/// Well-formed exchanges a node 2 of cluster "fuzz" could see: a JOIN from node 1, then the
/// commit token and tokens of ring 1.12 with data, retransmission requests and a LEAVE, so that
/// mutations start from packets the decoder and the core accept.
enum SeedCorpus {
    static func inputs() -> [[UInt8]] {
        let one = NodeID(1), two = NodeID(2), three = NodeID(3)
        let ring = RingID(representative: one, sequence: 12)
        let old = RingID(representative: one, sequence: 4)
        let frame: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 65, 66, 67]
        let data = DataMessage(sender: one, ringID: ring, sequence: SequenceNumber(1), originator: one, delivery: .agreed, content: .frame(frame))
        let entries = [CommitTokenEntry(oldRingID: old, aru: SequenceNumber(3), highDelivered: SequenceNumber(3), receivedFlag: true), .empty, .empty]
        let packets: [Packet] = [
            .join(JoinMessage(sender: one, ringSequence: 8, processors: [one, two, three], failed: [])),
            .join(JoinMessage(sender: three, ringSequence: 8, processors: [one, two, three], failed: [])),
            .commitToken(CommitToken(sender: one, ringID: ring, tokenSequence: 1, memberIndex: 1, members: [one, two, three], entries: entries)),
            .commitToken(CommitToken(sender: three, ringID: ring, tokenSequence: 3, memberIndex: 3, members: [one, two, three], entries: entries)),
            .token(Token(sender: one, ringID: ring, tokenSequence: 0, sequence: .zero, aru: .nothingReceived, aruSetter: one,
                         flowControlCount: 0, backlog: 0, retransmitFlag: false, retransmitRequests: [])),
            .multicast(data),
            .multicast(DataMessage(sender: three, ringID: ring, sequence: SequenceNumber(2), originator: three, delivery: .agreed,
                                   content: .encapsulated(DataMessage(sender: three, ringID: old, sequence: SequenceNumber(4), originator: three, delivery: .safe, content: .frame(frame))))),
            .token(Token(sender: one, ringID: ring, tokenSequence: 5, sequence: SequenceNumber(3), aru: SequenceNumber(1), aruSetter: three,
                         flowControlCount: 2, backlog: 4, retransmitFlag: true, retransmitRequests: [RetransmitRequest(ringID: ring, sequence: SequenceNumber(2))])),
            .mergeDetect(MergeDetect(sender: three, ringID: RingID(representative: three, sequence: 20))),
            .tokenHoldCancel(TokenHoldCancel(sender: one, ringID: ring)),
            .join(JoinMessage(sender: three, ringSequence: 12, processors: [one, two], failed: [three], isLeave: true)),
        ]
        let datagrams = packets.map { FuzzHarness.codec.encode($0) }
        func input(_ selected: [[UInt8]], mode: UInt8) -> [UInt8] {
            selected.flatMap { record(mode, $0) }
        }
        var result = datagrams.map { input([$0], mode: 0) }
        // Unsealed, HMAC, ChaCha20-Poly1305, ChaCha20-Poly1305 as unicasts, and with flipped bits.
        for mode: UInt8 in [0, 1, 3, 7, 9, 11] { result.append(input(datagrams, mode: mode)) }
        return result
    }
}
