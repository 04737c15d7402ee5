// The cluster services under the simulator's faults (issue 15, item 4): a sweep of seeds that
// must come out clean, and planted bugs that the checker must catch, each next to the same
// scenario without the bug. Serialized: the sweep is CPU-bound and the machine has two cores.

import DeviceState
import Testing
import Totem
import TotemSimulation
@testable import ServiceSimulation

@Suite("Services under the simulator", .serialized)
struct ServiceSimulationTests {
    /// Seeds of the in-suite sweep (the command line sweeps 10,000: `totem-sim --services --sweep`).
    static let sweepSeeds: ClosedRange<UInt64> = 1...30

    @Test("every node converges on Asterisk's aggregate, MWI and retained events under the seed's faults",
          arguments: Array(sweepSeeds))
    func sweep(seed: UInt64) {
        let report = ServiceRun(options: ServiceSweep.options(seed: seed)).run()
        print("services sweep seed \(seed): \(report.summaryLine)")
        #expect(report.statistics.operations > 0, "seed \(seed): no client request was performed")
        #expect(report.quietAt != nil, "seed \(seed): never quiet")
        #expect(report.violations.isEmpty, "seed \(seed): \(report.summaryLine)\n\(report.failureDescription())")
    }

    @Test("the same seed gives the same run")
    func deterministic() {
        let first = ServiceRun(options: ServiceSweep.options(seed: 3)).run()
        let second = ServiceRun(options: ServiceSweep.options(seed: 3)).run()
        print("services determinism seed 3: \(first.summaryLine)")
        #expect(first.statistics == second.statistics)
        #expect(first.violations == second.violations)
        #expect(first.quietAt == second.quietAt)
    }

    // MARK: Planted bugs

    /// Three nodes, no faults, a 2 s phase: the scripted requests, optionally a bug in one node.
    static func scripted(_ script: [ScriptedOperation], departure: ServiceRunOptions.Departure? = nil,
                         plant: (node: NodeID, fault: PlantedServiceFault)? = nil) -> ServiceReport {
        var ring = SimulationOptions(seed: 11, nodes: 3)
        ring.durationMilliseconds = 2_000
        var options = ServiceRunOptions(ring: ring)
        options.departure = departure
        var run = ServiceRun(options: options)
        run.plan = FaultPlan.none
        run.script = script
        run.plantedFault = plant
        run.recordsTrace = true
        return run.run()
    }

    static func violations(_ report: ServiceReport, _ property: ServiceViolation.Property) -> [ServiceViolation] {
        report.violations.filter { $0.property == property }
    }

    /// The scripted run with the bug planted, after checking that without it the run is clean.
    static func planted(_ script: [ScriptedOperation], departure: ServiceRunOptions.Departure? = nil,
                        _ plant: (node: NodeID, fault: PlantedServiceFault)) -> ServiceReport {
        let clean = scripted(script, departure: departure)
        #expect(clean.violations.isEmpty, "without the planted bug: \(clean.failureDescription())")
        return scripted(script, departure: departure, plant: plant)
    }

    @Test("a node that skips a delivery shows another aggregate than Asterisk's (a)")
    func skippedDelivery() throws {
        let script = [ScriptedOperation(at: .milliseconds(500), node: NodeID(1), .setDevice("SIP/1001", .inUse))]
        let planted = Self.planted(script, (NodeID(3), .skipEventDelivery(1)))
        let found = Self.violations(planted, .aggregate)
        let first = try #require(found.first, "no aggregate violation: \(planted.failureDescription())")
        print("planted skipped delivery: \(first)")
        #expect(first.message.contains("node 3 shows SIP/1001 as INVALID, expected INUSE"))
    }

    @Test("a node that keeps a departed server's state is caught during the run and after the heal (b)")
    func departedServerKept() throws {
        let script = [ScriptedOperation(at: .milliseconds(300), node: NodeID(2), .setDevice("SIP/1002", .busy))]
        let departure = ServiceRunOptions.Departure(node: NodeID(2), at: .milliseconds(1_000))
        let planted = Self.planted(script, departure: departure, (NodeID(1), .keepDepartedServers))
        #expect(planted.statistics.departures == 1)
        let found = Self.violations(planted, .departed)
        print("planted departed server: \(found.map(\.description).joined(separator: "\n"))")
        #expect(found.contains { $0.message.contains("node 1 holds server 2's state BUSY of SIP/1002") }, "during the run")
        #expect(found.contains { $0.message.contains("node 1 still holds SIP/1002 = BUSY of server 2, which is down") }, "after the heal")
    }

    @Test("a node that shows a state no server set is caught when it shows it (e)")
    func inventedState() throws {
        let script = [ScriptedOperation(at: .milliseconds(400), node: NodeID(1), .setDevice("SIP/1001", .inUse))]
        let planted = Self.planted(script, (NodeID(2), .rewriteDeviceStates(.ringing)))
        let found = Self.violations(planted, .invented)
        let first = try #require(found.first, "no invented-state violation: \(planted.failureDescription())")
        print("planted invented state: \(first)")
        #expect(first.message.contains("node 2 shows server 1's state of SIP/1001 as RINGING, which server 1 never set (it set: INUSE)"))
        #expect(try #require(first.time) < planted.healedAt, "caught during the fault phase")
    }

    @Test("a node that misses the last MWI write shows another record than the last write in ring order (c)")
    func missedMailboxWrite() throws {
        let script = [
            ScriptedOperation(at: .milliseconds(300), node: NodeID(1), .setMailbox("1001@default", MailboxCounts(newMessages: 2, oldMessages: 1))),
            ScriptedOperation(at: .milliseconds(600), node: NodeID(2), .setMailbox("1001@default", MailboxCounts(newMessages: 5, oldMessages: 0))),
        ]
        let planted = Self.planted(script, (NodeID(3), .skipEventDelivery(2)))
        let first = try #require(Self.violations(planted, .mwi).first, "no MWI violation: \(planted.failureDescription())")
        print("planted missed MWI write: \(first)")
        #expect(first.message.contains("node 3 shows MWI 1001@default as 2/1"))
        #expect(first.message.contains("expected the last write in ring order 5/0"))
    }

    @Test("a node that misses a retained alert lacks it after the heal (d)")
    func missedRetainedAlert() throws {
        let script = [ScriptedOperation(at: .milliseconds(300), node: NodeID(1), .publishAlert(retention: .seconds(60)))]
        let planted = Self.planted(script, (NodeID(2), .skipEventDelivery(1)))
        let first = try #require(Self.violations(planted, .retained).first, "no retained violation: \(planted.failureDescription())")
        print("planted missed alert: \(first)")
        #expect(first.message.contains("node 2 lacks 1 retained, unexpired alert(s): 1.1.1"))
    }

    @Test("a full send queue: the services' submits wait in order and still reach every node")
    func backlog() {
        let states: [DeviceStateValue] = [.inUse, .busy, .onHold, .ringing, .notInUse, .unavailable]
        let script = (0..<60).map { step in
            ScriptedOperation(at: .milliseconds(500), node: NodeID(1),
                              .setDevice(ServiceWorkload.devices[step % 6], states[(step / 6 + step) % states.count]))
        }
        var ring = SimulationOptions(seed: 12, nodes: 3)
        ring.durationMilliseconds = 2_000
        var options = ServiceRunOptions(ring: ring)
        options.sendQueueBytes = 1_024
        var run = ServiceRun(options: options)
        run.plan = FaultPlan.none
        run.script = script
        let report = run.run()
        print("services backlog: \(report.summaryLine), \(report.statistics.submitRetries) retries")
        #expect(report.statistics.submitRetries > 0, "the send queue never filled")
        #expect(report.violations.isEmpty, "\(report.failureDescription())")
    }

    @Test("the replay trace tells the service events of a run")
    func replayTrace() {
        let script = [ScriptedOperation(at: .milliseconds(500), node: NodeID(1), .setDevice("Custom:alpha", .onHold))]
        let report = Self.scripted(script)
        #expect(report.trace.contains { $0.contains("node 1: client: set Custom:alpha ONHOLD") })
        #expect(report.trace.contains { $0.contains("node 2: deliver from 1: event 1.1.") && $0.contains("device states Custom:alpha=ONHOLD") })
        #expect(report.trace.contains { $0.contains("node 3: device Custom:alpha: UNKNOWN -> ONHOLD") })
    }
}

@Suite("totem-sim --services")
struct ServiceCommandTests {
    @Test("--services with --sweep or --seed parses; the replay command names the seed")
    func parses() throws {
        #expect(try ServiceCommand.parse(["--services", "--sweep", "1-10000"]) == .sweep(seeds: 1...10_000, nodes: 3...7, without: []))
        #expect(try ServiceCommand.parse(["--services", "--seed=42", "--max-nodes", "9", "--without", "late"])
            == .replay(seed: 42, nodes: 3...9, without: [.late]))
        #expect(ServiceCommand.isRequested(["--sweep", "1-2", "--services"]))
        #expect(!ServiceCommand.isRequested(["--sweep", "1-2"]))
        #expect(ServiceSweep.options(seed: 42).replayCommand == "swift run -c release totem-sim --services --seed 42")
        #expect(ServiceSweep.options(seed: 42, nodes: 3...9, without: [.late]).replayCommand
            == "swift run -c release totem-sim --services --seed 42 --max-nodes 9 --without late")
    }

    @Test("bad --services arguments are refused with a specific message")
    func refuses() {
        for (arguments, expected) in [
            (["--services"], "--services needs --sweep FIRST-LAST or --seed S (see --help)"),
            (["--services", "--sweep", "1-2", "--seed", "3"], "--services takes --sweep FIRST-LAST or --seed S, not both"),
            (["--services", "--sweep", "9-3"], "--sweep takes a seed range FIRST-LAST with FIRST <= LAST, not '9-3'"),
            (["--services", "--seed", "1", "--loss", "0.1"], "unknown argument '--loss' with --services (see --help)"),
        ] {
            #expect(throws: ServiceCommand.ArgumentError(message: expected)) { try ServiceCommand.parse(arguments) }
        }
    }

    @Test("a seed's options derive from the seed alone; departures and disk crashes occur across seeds")
    func optionsFromSeed() {
        let options = (1...200 as ClosedRange<UInt64>).map { ServiceSweep.options(seed: $0) }
        #expect(options == (1...200 as ClosedRange<UInt64>).map { ServiceSweep.options(seed: $0) })
        #expect(options.contains { $0.departure != nil })
        #expect(options.contains { $0.serviceDiskCrashes })
        #expect(options.allSatisfy { (3...7).contains($0.ring.nodes) })
        #expect(Set(options.map(\.operationsPerSecond)) == [2, 5, 10])
    }
}
