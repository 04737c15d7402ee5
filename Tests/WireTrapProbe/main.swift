// wire-trap-probe: encodes one packet the wire decoder would reject, so that a test can check the
// encoder traps on it (STYLE §7: the encoder asserts what the decoder validates). The test runs
// this program as a child process and expects it to die of the precondition; it is test
// equipment, built with the tests and never installed.
//
// usage: wire-trap-probe CASE
//   valid                    a well-formed commit token (must encode and exit 0)
//   unsorted-commit-members  a commit token whose members are not ascending
//   join-sender-outside      a join whose sender is not among its processors
//   too-many-requests        a token with one retransmit request more than the wire allows
//   nested-encapsulation     a multicast whose encapsulated message is itself encapsulated
// Exit status: 0 when the packet encoded (wrong for every case but `valid`), 2 for a usage error;
// a trap ends it with SIGILL or SIGTRAP.

import Glibc
import Totem

let codec = WireCodec(clusterName: "trap-probe")

func ring(_ representative: UInt32, _ sequence: UInt64) -> RingID {
    RingID(representative: NodeID(representative), sequence: sequence)
}

func commit(members: [UInt32]) -> CommitToken {
    CommitToken(sender: NodeID(members[0]), ringID: ring(members[0], 44), tokenSequence: 5, memberIndex: 0,
                members: members.map { NodeID($0) }, entries: members.map { _ in .empty })
}

func token(requests: Int) -> Token {
    Token(sender: NodeID(2), ringID: ring(1, 8), tokenSequence: 9, sequence: SequenceNumber(100), aru: SequenceNumber(99),
          aruSetter: NodeID(3), flowControlCount: 1, backlog: 0, retransmitFlag: false,
          retransmitRequests: (0..<requests).map { RetransmitRequest(ringID: ring(1, 8), sequence: SequenceNumber(UInt32(100 - $0 % 100))) })
}

func encapsulated(_ inner: DataMessage) -> DataMessage {
    DataMessage(sender: NodeID(3), ringID: ring(3, 12), sequence: SequenceNumber(1), originator: NodeID(3), delivery: .safe,
                content: .encapsulated(inner))
}

let frame = DataMessage(sender: NodeID(5), ringID: ring(1, 8), sequence: SequenceNumber(7), originator: NodeID(5), delivery: .agreed,
                        content: .frame([1, 2, 3]))

let arguments = CommandLine.arguments.dropFirst()
guard arguments.count == 1, let name = arguments.first else {
    print("usage: wire-trap-probe valid|unsorted-commit-members|join-sender-outside|too-many-requests|nested-encapsulation")
    exit(2)
}
let packet: Packet
switch name {
case "valid":
    packet = .commitToken(commit(members: [3, 6, 9]))
case "unsorted-commit-members":
    packet = .commitToken(commit(members: [6, 3, 9]))
case "join-sender-outside":
    packet = .join(JoinMessage(sender: NodeID(9), ringSequence: 1, processors: [NodeID(1)], failed: []))
case "too-many-requests":
    packet = .token(token(requests: WireLimits.maxRetransmitRequests + 1))
case "nested-encapsulation":
    packet = .multicast(encapsulated(encapsulated(frame)))
default:
    print("wire-trap-probe: unknown case \"\(name)\"")
    exit(2)
}
let bytes = codec.encode(packet)
print("encoded \(name): \(bytes.count) bytes")
