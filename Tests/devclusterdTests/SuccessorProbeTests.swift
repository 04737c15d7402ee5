// The successor probe (RingNode): on an idle ring the representative holds the token, so when it
// is the one that crashes its predecessor sends it nothing until the token retransmit timeout.
// The probe re-sends the last token while none leaves, and the crashed daemon's host answers
// with "port unreachable" at once. With a long token (retransmit 7.1 s) the crash must be seen
// well before that timeout (without the probe it takes 5.6 s here).

import Foundation
import Glibc
import Testing
@testable import devclusterd

@Suite("End to end: the successor probe", .serialized)
struct SuccessorProbeTests {
    @Test func aCrashedRepresentativeHoldingTheTokenIsSeenBeforeTheTokenRetransmit() async throws {
        let cluster = try TestNodes(3)
        defer { cluster.tearDown() }
        let (children, nodes) = (cluster.children, cluster.nodes)
        // token 30 s: token retransmit 30000 / 4.2 = 7.1 s, hold 5.7 s, token loss 30 s.
        for node in nodes {
            let text = try String(contentsOfFile: node.configuration, encoding: .utf8)
                .replacingOccurrences(of: "token = \(EndToEndTests.tokenMilliseconds)\n", with: "token = 30000\n")
            try text.write(toFile: node.configuration, atomically: true, encoding: .utf8)
        }
        let processes = try await startRing(nodes, children: children)
        let settings = try #require(cliJSON(["--socket", nodes[2].socket, "settings"]))
        let retransmit = try #require(settings["token_retransmit_ms"]?.integerValue, "\(settings.encoded)")
        #expect(retransmit > 7_000, "\(settings.encoded)")
        // Let the ring go idle: node 1, the representative, holds the token.
        try await Task.sleep(for: .milliseconds(1_500))
        let probesBefore = cliJSON(["--socket", nodes[2].socket, "status"])?["counters"]?["successor_probes"]?.integerValue ?? -1
        #expect(probesBefore > 0, "an idle ring's nodes probe their successors")

        let clock = ContinuousClock()
        let logBeforeKill = nodes[2].logText.utf8.count
        let killedAt = clock.now
        let killedAtWall = Date()
        kill(processes[0].processIdentifier, SIGKILL)
        let seen = await eventually(within: .seconds(15), every: .milliseconds(10)) { formed(Array(nodes[1...2]), members: [2, 3]) }
        let polled = clock.now - killedAt
        try #require(seen, "the crash of node 1 was not seen: \(nodes.dropFirst().map(membership))")
        // Timed by node 3's own log ("ring ... formed"), not by this test's polling, which CPU-bound
        // test cases on a two-core machine delay by seconds.
        let afterKill = String(decoding: nodes[2].logText.utf8.dropFirst(logBeforeKill), as: UTF8.self)
        let formedAt = afterKill.split(separator: "\n").first { $0.contains(" formed: ") }.flatMap { EndToEndTests.logTimestamp(String($0)) }
        let detection = try #require(formedAt.map { Duration.milliseconds(Int64(($0.timeIntervalSince(killedAtWall) * 1_000).rounded())) },
                                     "node 3 logged no new ring:\n\(afterKill.suffix(1_500)) (polled \(polled))")
        print("successor probe: a crashed, idle representative seen after \(detection) (token retransmit \(retransmit) ms)")
        // Well before the token retransmit; the slack covers a starved machine under the whole suite.
        #expect(detection < .milliseconds(3_000), "took \(detection)")
        #expect(nodes[2].logText.contains("nothing listens at node 1's address"), "node 3's log:\n\(nodes[2].logText)")
        #expect(nodes[2].logText.contains("its successor answered none of 3 liveness probes"), "node 3's log:\n\(nodes[2].logText)")
    }
}
