// A fuzz target for everything a datagram from the network reaches: authentication, the wire
// decoder and the protocol core. Built with libFuzzer by scripts/fuzz.sh; a plain build is a
// replay tool that runs saved inputs (crash reproducers, a corpus) through the same entry point.

import Totem

/// The input is a sequence of datagrams, each `length u16 big-endian | mode u8 | bytes`.
/// Mode bit 0 set: the bytes are sealed with HMAC-SHA-256 under a fixed key first, so the
/// fuzzer also reaches the decoder through the authenticator; clear: the bytes are offered to
/// the authenticator as received (almost always rejected) and then decoded without it, as a
/// cluster without a key would. Every decoded packet is fed to one protocol core, started
/// fresh for each input, so sequences of hostile but well-formed packets exercise its handlers.
@_cdecl("LLVMFuzzerTestOneInput")
public func packetFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    var harness = FuzzHarness()
    var offset = 0
    while offset + 3 <= input.count {
        let length = Int(input[offset]) << 8 | Int(input[offset + 1])
        let mode = input[offset + 2]
        offset += 3
        let end = min(input.count, offset + length)
        harness.offer(Array(input[offset..<end]), sealed: mode & 1 == 1)
        offset = end
    }
    return 0
}

/// One node's receive path: authenticator, codec and core, with a clock that only moves forward.
struct FuzzHarness {
    static let codec = WireCodec(clusterName: "fuzz")
    static let key: ClusterKey = {
        do { return try ClusterKey(bytes: Array(repeating: 0x5A, count: 32)) } catch { preconditionFailure("\(error)") }
    }()
    var authenticator = PacketAuthenticator(
        mode: .hmacSHA256, key: FuzzHarness.key, clusterName: "fuzz", nodeID: NodeID(2), epoch: 9, counterStart: 1)
    /// A started core, copied for each input: the copy shares its large queues until a packet
    /// writes to them, so most inputs allocate nothing big.
    static let started: SingleRingProtocol = {
        var core = SingleRingProtocol(nodeID: NodeID(2), settings: .simulation, persistedRingSequence: 7)
        _ = core.start(now: .zero)
        return core
    }()
    var core = FuzzHarness.started
    var now = MonotonicInstant.zero

    mutating func offer(_ datagram: [UInt8], sealed: Bool) {
        now = now + .milliseconds(1)
        var bytes = datagram
        if sealed && bytes.count >= WireLimits.headerBytes {
            authenticator.seal(&bytes)
            guard case .accepted(let opened, _) = authenticator.open(bytes) else {
                preconditionFailure("a datagram sealed with our own key was rejected")
            }
            bytes = opened
        } else if case .accepted = authenticator.open(bytes) {
            // A random datagram that carries a valid code: only possible by breaking HMAC.
            preconditionFailure("an unsealed datagram passed authentication")
        }
        guard let packet = try? Self.codec.decode(bytes) else { return }
        _ = core.receive(packet, now: now)
        // Let a timer fire now and then, so the core moves between states.
        if bytes.count % 7 == 0 {
            _ = core.timerExpired(RingTimer.allCases[bytes.count % RingTimer.allCases.count], now: now)
        }
    }
}

#if FUZZING
/// libFuzzer's driver (exported by its runtime since LLVM 12).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// SwiftPM links an executable's entry point under this name; in a fuzzing build it hands
/// control to libFuzzer.
@_cdecl("PacketFuzzer_main")
func packetFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in packetFuzzerTestOneInput(data, size) }
}
#else
#if canImport(Glibc)
import Glibc
#endif

/// The whole content of the file at `path`, or `nil` when it cannot be read.
func readFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count > 0 { bytes.append(contentsOf: buffer[0..<count]) }
        if count < buffer.count { break }
    }
    return ferror(file) == 0 ? bytes : nil
}

/// Replays saved fuzz inputs: `PacketFuzzer FILE...`; `PacketFuzzer --write-seeds DIR` writes
/// a seed corpus of well-formed exchanges for the fuzzer to mutate.
@main
struct PacketFuzzerReplay {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--write-seeds", arguments.count == 2 {
            for (index, seed) in SeedCorpus.inputs().enumerated() {
                let path = "\(arguments[1])/seed-\(index)"
                guard let file = fopen(path, "wb") else {
                    print("PacketFuzzer: cannot write \(path)")
                    exit(1)
                }
                _ = seed.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
                fclose(file)
            }
            print("PacketFuzzer: wrote \(SeedCorpus.inputs().count) seeds to \(arguments[1])")
            return
        }
        var count = 0
        for path in arguments {
            guard let bytes = readFile(path) else {
                print("PacketFuzzer: cannot read \(path)")
                continue
            }
            bytes.withUnsafeBufferPointer { buffer in
                _ = packetFuzzerTestOneInput(buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!, buffer.count)
            }
            count += 1
        }
        print("PacketFuzzer: ran \(count) input(s)")
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
        func input(_ selected: [[UInt8]], sealed: Bool) -> [UInt8] {
            var bytes: [UInt8] = []
            for datagram in selected {
                bytes += [UInt8(datagram.count >> 8), UInt8(datagram.count & 0xFF), sealed ? 1 : 0] + datagram
            }
            return bytes
        }
        var result = datagrams.map { input([$0], sealed: false) }
        result.append(input(datagrams, sealed: false))
        result.append(input(datagrams, sealed: true))
        return result
    }
}
