// Spec §6.2 `receiveFlush`, pitfall P1: a token read before the multicasts its sender sent ahead
// of it. The simulator models udp mode's two sockets (multicasts wait unread in the group socket,
// `NetworkConditions.multicastReadLag`) and the runtime's rule (a token first drains that socket).

import Testing
@testable import Totem
@testable import TotemSimulation

@Suite("Token held behind the multicast socket (P1)")
struct TokenHoldTests {
    /// What one loaded run with every multicast copy lagging in its socket showed.
    struct Outcome {
        /// Tokens forwarded with a retransmission request (a node believed it missed a message).
        var tokensWithRequests = 0
        /// Data messages multicast again, for a request.
        var retransmissions = 0
        /// Tokens read while a multicast sent before them by their sender still waited unread.
        var tokensAheadOfTheirMulticasts = 0
        var deliveries: [[MessageID?]] = []
        var violations: [Violation] = []
    }

    func run(drainingBeforeTokens: Bool, seed: UInt64 = 7) -> Outcome {
        var simulation = Simulator(nodeCount: 3, seed: seed, recordsPayloads: false)
        simulation.drainsMulticastsBeforeTokens = drainingBeforeTokens
        let booted = simulation.run(untilConvergedWithin: .seconds(5))
        #expect(booted)
        var outcome = Outcome()
        // Per node: the multicasts sent to it and not yet handed to its core, with their send order.
        var sent: [NodeID: [(sender: NodeID, index: Int)]] = [:]
        var sendCount = 0
        var seen = Set<String>()
        simulation.observer = { observation in
            switch observation {
            case .effects(let node, _, let effects):
                for effect in effects {
                    guard case .unicast(.token(let token), _) = effect else {
                        if case .multicast(.multicast(let message)) = effect {
                            let key = "\(message.ringID) \(message.sequence)"
                            if !seen.insert(key).inserted { outcome.retransmissions += 1 }
                            sendCount += 1
                            for destination in [NodeID(1), NodeID(2), NodeID(3)] where destination != node {
                                sent[destination, default: []].append((node, sendCount))
                            }
                        }
                        continue
                    }
                    if !token.retransmitRequests.isEmpty { outcome.tokensWithRequests += 1 }
                }
            case .packet(let node, _, let packet):
                switch packet {
                case .multicast(let message):
                    if let position = sent[node]?.firstIndex(where: { $0.sender == message.sender }) {
                        sent[node]?.remove(at: position)
                    }
                case .token(let token):
                    if sent[node]?.contains(where: { $0.sender == token.sender }) == true {
                        outcome.tokensAheadOfTheirMulticasts += 1
                    }
                default:
                    break
                }
            case .timer:
                break
            }
        }
        // Every multicast copy to another node waits 2-4 ms in its socket: several rotations of
        // a three-node ring, longer than `missCountConstant` visits.
        simulation.networkConditions.multicastReadLag = 1
        simulation.networkConditions.multicastReadLagDelay = .milliseconds(2) ... .milliseconds(4)
        for index in 0..<600 {
            let node = simulation.nodeIDs[index % 3]
            _ = try? simulation.submit(node: node, payload: Array(repeating: UInt8(index & 0xFF), count: 60))
            simulation.run(for: .microseconds(500))
        }
        simulation.observer = nil
        simulation.heal()
        let converged = simulation.run(untilConvergedWithin: .seconds(10))
        #expect(converged)
        simulation.finish()
        outcome.deliveries = simulation.nodeIDs.map { simulation.deliveries(of: $0).map(\.id) }
        outcome.violations = simulation.checker.verify()
        print("drain before tokens \(drainingBeforeTokens): \(outcome.tokensAheadOfTheirMulticasts) tokens ahead of their "
              + "multicasts, \(outcome.tokensWithRequests) with retransmit requests, \(outcome.retransmissions) retransmissions")
        return outcome
    }

    @Test("§6.2, P1: a token read first drains the multicast socket, so no message held there is asked for again")
    func drainBeforeToken() {
        let outcome = run(drainingBeforeTokens: true)
        #expect(outcome.violations.isEmpty, "\(outcome.violations)")
        #expect(outcome.tokensAheadOfTheirMulticasts == 0)
        #expect(outcome.tokensWithRequests == 0)
        #expect(outcome.retransmissions == 0)
        #expect(outcome.deliveries.allSatisfy { $0.count == 600 })
    }

    @Test("P1 without the rule: tokens overtake their multicasts and the ring retransmits what every node holds")
    func withoutTheRule() {
        let outcome = run(drainingBeforeTokens: false)
        // Still correct (EVS holds, everything delivered), only wasteful: this is what the rule saves.
        #expect(outcome.violations.isEmpty, "\(outcome.violations)")
        #expect(outcome.deliveries.allSatisfy { $0.count == 600 })
        #expect(outcome.tokensAheadOfTheirMulticasts > 100, "\(outcome.tokensAheadOfTheirMulticasts)")
        #expect(outcome.tokensWithRequests > 0, "\(outcome.tokensWithRequests)")
        #expect(outcome.retransmissions > 0, "\(outcome.retransmissions)")
    }
}
