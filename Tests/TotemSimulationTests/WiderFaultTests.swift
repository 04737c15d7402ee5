// The wider fault model (issue 15, item 4): packets late past the token timeout, partitions
// into three or more groups, overlapping episodes, and the crash during a ring sequence persist
// (the disk one step behind). Each fault is checked to do what it says and to leave EVS intact.

import Testing
@testable import Totem
@testable import TotemSimulation

@Suite("Wider fault model")
struct WiderFaultTests {
    static func id(_ raw: UInt32) -> NodeID { NodeID(raw) }

    /// Heals, converges, settles, ends the trace; returns every violation.
    func finish(_ simulation: inout Simulator, within limit: Duration = .seconds(30)) -> [Violation] {
        simulation.heal()
        let converged = simulation.run(untilConvergedWithin: limit)
        if converged { simulation.run(for: .milliseconds(500)) }
        simulation.finish()
        var violations = simulation.checker.verify()
        if !converged { violations.append(Violation(.liveness, at: simulation.now, "did not converge")) }
        return violations
    }

    func load(_ simulation: inout Simulator, count: Int) {
        for index in 0..<count {
            let node = simulation.nodeIDs[index % simulation.nodeIDs.count]
            if simulation.isRunning(node) && !simulation.isPaused(node) {
                _ = try? simulation.submit(node: node, payload: Array(repeating: UInt8(index & 0xFF), count: 40))
            }
            simulation.run(for: .milliseconds(3))
        }
    }

    @Test("late packets arrive seconds late, into later rings and later incarnations, and EVS holds")
    func latePackets() {
        let seed: UInt64 = 41
        print("seed \(seed)")
        var simulation = Simulator(nodeCount: 4, seed: seed, recordsPayloads: false)
        let booted = simulation.run(untilConvergedWithin: .seconds(5))
        #expect(booted)
        let firstRing = simulation.currentConfiguration(of: Self.id(1))?.ringID
        var arrivals: [(time: MonotonicInstant, packet: Packet)] = []
        simulation.observer = { observation in
            if case .packet(let node, let time, let packet) = observation, node == Self.id(1) {
                arrivals.append((time, packet))
            }
        }
        simulation.networkConditions.late = 0.02
        // Late packets from one ring meet the next: a crash and a partition make new rings.
        load(&simulation, count: 300)
        simulation.crash(node: Self.id(4))
        simulation.partition([[Self.id(1), Self.id(2)], [Self.id(3), Self.id(4)]])
        load(&simulation, count: 300)
        simulation.restart(node: Self.id(4))
        simulation.healNetwork()
        let violations = finish(&simulation)
        #expect(simulation.latePacketCount > 0)
        #expect(violations.isEmpty, "seed \(seed): \(violations)")
        let finalRing = simulation.currentConfiguration(of: Self.id(1))?.ringID
        #expect(finalRing != firstRing)
        // Node 1 heard a multicast of its first ring after it had left that ring.
        let left = simulation.trace.events.first { event in
            if case .configuration(let node, let change) = event.kind { return node == Self.id(1) && change.ringID != firstRing && event.time > .zero }
            return false
        }?.time
        let stale = arrivals.contains { arrival in
            if case .multicast(let message) = arrival.packet, let left { return message.ringID == firstRing && arrival.time > left }
            return false
        }
        #expect(stale, "a late multicast of ring \(String(describing: firstRing)) reached node 1 in a later ring")
    }

    @Test("overlapping episodes compose: a link works only while no episode and no partition cuts it")
    func overlappingEpisodesCompose() {
        var simulation = Simulator(nodeCount: 5, seed: 1)
        let (one, two, three, four, five) = (Self.id(1), Self.id(2), Self.id(3), Self.id(4), Self.id(5))
        simulation.beginEpisode(1, .split([[one, two], [three], [four, five]]))
        simulation.beginEpisode(2, .deafen(one))
        #expect(!simulation.isReachable(from: two, to: one))
        #expect(simulation.isReachable(from: one, to: two))
        #expect(!simulation.isReachable(from: two, to: three))
        #expect(simulation.isReachable(from: four, to: five))
        simulation.endEpisode(1)
        #expect(simulation.isReachable(from: two, to: three))
        #expect(!simulation.isReachable(from: two, to: one), "episode 2 still cuts it")
        // A network heal ends partitions and cuts, not episodes.
        simulation.cut(from: three, to: four)
        simulation.healNetwork()
        #expect(simulation.isReachable(from: three, to: four))
        #expect(!simulation.isReachable(from: five, to: one))
        simulation.beginEpisode(3, .mute(five))
        #expect(!simulation.isReachable(from: five, to: two))
        #expect(simulation.isReachable(from: two, to: five))
        simulation.endEpisode(2)
        simulation.endEpisode(3)
        simulation.endEpisode(3)
        for from in simulation.nodeIDs {
            for to in simulation.nodeIDs { #expect(simulation.isReachable(from: from, to: to)) }
        }
    }

    @Test("a split into three groups forms three rings; overlapping cuts during it; one ring after the heal")
    func threeGroups() {
        let seed: UInt64 = 5
        print("seed \(seed)")
        var simulation = Simulator(nodeCount: 6, seed: seed, recordsPayloads: false)
        let booted = simulation.run(untilConvergedWithin: .seconds(5))
        #expect(booted)
        let groups = [[Self.id(1), Self.id(4)], [Self.id(2), Self.id(5)], [Self.id(3), Self.id(6)]]
        simulation.partition(groups)
        load(&simulation, count: 200)
        simulation.run(for: .seconds(3))
        for group in groups {
            for node in group {
                let configuration = simulation.currentConfiguration(of: node)
                #expect(configuration?.kind == .regular && configuration?.members == group, "node \(node): \(String(describing: configuration))")
            }
        }
        // An episode that outlives the partition's heal: node 1 hears no one for a while.
        simulation.beginEpisode(1, .deafen(Self.id(1)))
        simulation.healNetwork()
        load(&simulation, count: 200)
        simulation.endEpisode(1)
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "seed \(seed): \(violations)")
    }

    @Test("a crash during the persist keeps the previous ring sequence and sends nothing after it",
          arguments: [1, 2] as [UInt32])
    func crashDuringPersist(victim: UInt32) {
        let seed: UInt64 = 17 + UInt64(victim)
        print("seed \(seed)")
        var simulation = Simulator(nodeCount: 4, seed: seed, recordsPayloads: false)
        let booted = simulation.run(untilConvergedWithin: .seconds(5))
        #expect(booted)
        let node = Self.id(victim)
        let before = simulation.persistedRingSequence(of: node)
        #expect(before != nil)
        var sentAfterPersist = false
        var crashedAtPersist = false
        simulation.observer = { observation in
            guard case .effects(let sender, _, let effects) = observation, sender == node, !crashedAtPersist else { return }
            if let persist = effects.firstIndex(where: { if case .persistRingSequence = $0 { true } else { false } }) {
                crashedAtPersist = true
                sentAfterPersist = effects[persist...].contains { effect in
                    switch effect {
                    case .unicast, .multicast: true
                    default: false
                    }
                }
            }
        }
        simulation.crashDuringNextPersist(node: node)
        #expect(simulation.isArmedToCrashAtPersist(node))
        // Node 4 leaves the others' view: nodes 1-3 form a new ring, node `victim` persists.
        simulation.partition([[Self.id(1), Self.id(2), Self.id(3)], [Self.id(4)]])
        let crashed = simulation.run(within: .seconds(5)) { !$0.isRunning(node) }
        #expect(crashed)
        #expect(crashedAtPersist)
        #expect(sentAfterPersist, "the batch had sends after the persist, which the crash suppressed")
        let running = simulation.isRunning(node)
        #expect(!running)
        #expect(simulation.persistCrashCount == 1)
        #expect(simulation.persistedRingSequence(of: node) == before, "the disk is one step behind")
        let stillArmed = simulation.isArmedToCrashAtPersist(node)
        #expect(!stillArmed)
        simulation.run(for: .seconds(1))
        simulation.restart(node: node)
        load(&simulation, count: 100)
        let violations = finish(&simulation)
        #expect(violations.isEmpty, "seed \(seed): \(violations)")
        #expect((simulation.persistedRingSequence(of: node) ?? 0) > (before ?? 0))
    }

    @Test("the fault plan draws three-group splits, overlapping episodes and persist crashes")
    func planDrawsWiderFaults() {
        var groupCounts: Set<Int> = []
        var overlaps = false
        var persistCrashes = 0
        for seed: UInt64 in 0..<30 {
            let plan = FaultPlan.random(
                seed: seed, nodeCount: 6, settings: .simulation, faultPhase: .seconds(10), partitions: true,
                crashes: true, maxGroups: 4, overlapping: true, persistCrashes: true)
            var active = 0
            var down: Set<NodeID> = []
            for fault in plan.faults {
                switch fault.action {
                case .partition(let groups): groupCounts.insert(groups.count)
                case .beginEpisode:
                    active += 1
                    if active > 1 { overlaps = true }
                case .endEpisode: active -= 1
                case .crash(let node), .crashDuringNextPersist(let node):
                    if case .crashDuringNextPersist = fault.action { persistCrashes += 1 }
                    down.insert(node)
                case .restart(let node): down.remove(node)
                default: break
                }
                #expect(down.count <= 5, "seed \(seed) at \(fault.time)")
            }
            // Plans without the wider faults are what they were before.
            let narrow = FaultPlan.random(
                seed: seed, nodeCount: 6, settings: .simulation, faultPhase: .seconds(10), partitions: true, crashes: true)
            #expect(!narrow.faults.contains { fault in
                switch fault.action {
                case .beginEpisode, .endEpisode, .crashDuringNextPersist: true
                case .partition(let groups): groups.count > 2
                default: false
                }
            })
        }
        #expect(groupCounts.isSuperset(of: [2, 3, 4]))
        #expect(overlaps)
        #expect(persistCrashes > 0)
    }

    @Test("the wider options parse, replay, and a sweep can leave each out")
    func options() throws {
        var options = SimulationOptions(seed: 3, nodes: 6)
        options.late = 0.01
        options.partitions = true
        options.maxGroups = 4
        options.overlapping = true
        options.crashes = true
        options.persistCrashes = true
        options.readLag = 0.1
        let words = options.replayCommand.split(separator: " ").map(String.init)
        #expect(try SimulationOptions.parse(Array(words.dropFirst(5))) == .run(options))
        #expect(try SimulationOptions.parse(["--sweep", "1-5", "--without", "late,persist-crashes"])
            == .sweep(seeds: 1...5, nodes: 3...9, without: [.late, .persistCrashes]))
        #expect(throws: SimulationOptions.ArgumentError.self) {
            try SimulationOptions.parse(["--sweep", "1-5", "--without", "loss"])
        }
        #expect(throws: SimulationOptions.ArgumentError.self) {
            try SimulationOptions.parse(["--seed", "1", "--nodes", "3", "--without", "late"])
        }
        var drawn = Set<SweepFault>()
        for seed: UInt64 in 0..<100 {
            let full = SeedSweep.options(seed: seed, nodes: 3...7)
            if full.late > 0 { drawn.insert(.late) }
            if full.maxGroups > 2 { drawn.insert(.groups) }
            if full.overlapping { drawn.insert(.overlapping) }
            if full.persistCrashes { drawn.insert(.persistCrashes) }
            if full.readLag > 0 { drawn.insert(.readLag) }
            let narrow = SeedSweep.options(seed: seed, nodes: 3...7, without: Set(SweepFault.allCases))
            #expect(narrow.late == 0 && narrow.maxGroups == 2 && !narrow.overlapping && !narrow.persistCrashes && narrow.readLag == 0)
            var widened = narrow
            widened.late = full.late
            widened.maxGroups = full.maxGroups
            widened.overlapping = full.overlapping
            widened.persistCrashes = full.persistCrashes
            widened.readLag = full.readLag
            #expect(widened == full, "leaving the wider faults out changes nothing else (seed \(seed))")
        }
        #expect(drawn == Set(SweepFault.allCases), "the sweep turns every wider fault on for some seeds")
    }

    @Test("a run's failure description shows the wider faults that happened and the plan")
    func describesFaults() {
        var options = SimulationOptions(seed: 12, nodes: 5)
        print("seed \(options.seed)")
        options.durationMilliseconds = 6_000
        options.late = 0.05
        options.partitions = true
        options.maxGroups = 3
        options.overlapping = true
        options.crashes = true
        options.persistCrashes = true
        options.rate = 20
        let report = RandomizedRun(options: options).run()
        #expect(report.violations.isEmpty, "\(report.failureDescription())")
        #expect(report.latePackets > 0)
        #expect(report.plan.faults.count == report.faultCount)
        let lines = report.faultDescription(limit: 5)
        #expect(lines.first == "faults: \(report.latePackets) late packets, \(report.persistCrashes) crashes during a persist, \(report.faultCount) planned")
        #expect(lines.dropFirst().first?.hasPrefix("  at ") == true)
        let description = report.failureDescription()
        #expect(description.contains("--late 0.05 --partitions --max-groups 3 --overlapping --crashes --persist-crashes"))
        #expect(description.contains(lines[0]))
    }
}
