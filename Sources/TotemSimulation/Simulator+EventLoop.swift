// The simulator's event loop: one event at a time from the queue (arrivals, timers, resumes),
// the cores' effects executed (sends through the simulated network, timers, deliveries and
// configuration changes recorded in the trace), and the stall watch. Simulator.swift holds
// the state, the running and inspecting API and the faults.

import Totem

extension Simulator {
    mutating func step() {
        guard let (time, event) = queue.removeFirst() else { return }
        now = MonotonicInstant(nanoseconds: time)
        watchForStall(event)
        handle(event)
    }

    /// Counts events per window of virtual time; a window with more than `stallEventLimit`
    /// events means the nodes keep each other busy without time passing.
    mutating func watchForStall(_ event: SimulationEvent) {
        if now.nanoseconds - windowStart >= stallWindow.totalNanoseconds {
            windowStart = now.nanoseconds
            windowEvents = 0
            busyInputs.removeAll()
        }
        windowEvents += 1
        guard windowEvents > stallEventLimit / 2 else { return }
        busyInputs[describe(event), default: 0] += 1
        guard windowEvents > stallEventLimit else { return }
        let top = busyInputs.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(4)
            .map { "\($0.value)× \($0.key)" }.joined(separator: ", ")
        stall = "more than \(stallEventLimit) events within \(stallWindow.totalMilliseconds) ms of virtual time at \(now) (most frequent: \(top))"
    }

    func describe(_ event: SimulationEvent) -> String {
        switch event {
        case .arrival(let index, _, let packet):
            let kind = switch packet {
            case .token: "token"
            case .multicast: "multicast"
            case .mergeDetect: "merge detect"
            case .join(let join): join.isLeave ? "leave" : "join"
            case .commitToken: "commit token"
            case .tokenHoldCancel: "token hold cancel"
            case .livenessProbe: "liveness probe"
            case .livenessReply: "liveness reply"
            }
            return "\(kind) from \(packet.sender) to \(nodes[index].id)"
        case .timer(let index, _, let timer, _):
            return "\(timer) timer of \(nodes[index].id)"
        case .resume(let index, _):
            return "resume of \(nodes[index].id)"
        case .unreachable(let index, _, let node):
            return "unreachable report of \(node) to \(nodes[index].id)"
        case .multicastRead(let index, _, _):
            return "unread multicast to \(nodes[index].id)"
        }
    }

    mutating func handle(_ event: SimulationEvent) {
        switch event {
        case .arrival(let index, let incarnation, let packet):
            guard incarnation == Self.anyIncarnation || nodes[index].incarnation == incarnation,
                  nodes[index].status == .running else { return }
            if nodes[index].isPaused {
                nodes[index].backlog.append(event)
                return
            }
            if drainsMulticastsBeforeTokens && packet.waitsForMulticastSocket && multicastSockets.hasWaiting(at: index) {
                drainMulticastSocket(at: index)
                guard nodes[index].status == .running else { return }
            }
            observer?(.packet(node: nodes[index].id, time: now, packet))
            let effects = nodes[index].core.receive(packet, now: now)
            execute(effects, at: index)
        case .timer(let index, let incarnation, let timer, let generation):
            guard nodes[index].incarnation == incarnation, nodes[index].status == .running,
                  nodes[index].timerGenerations[Int(timer.rawValue)] == generation else { return }
            if nodes[index].isPaused {
                nodes[index].backlog.append(event)
                return
            }
            // The timer is no longer pending: a stale copy can never fire.
            nodes[index].timerGenerations[Int(timer.rawValue)] &+= 1
            observer?(.timer(node: nodes[index].id, time: now, timer))
            let effects = nodes[index].core.timerExpired(timer, now: now)
            execute(effects, at: index)
        case .resume(let index, let pause):
            guard nodes[index].pauseNumber == pause else { return }
            resume(at: index)
        case .unreachable(let index, let incarnation, let node):
            guard nodes[index].incarnation == incarnation, nodes[index].status == .running else { return }
            if nodes[index].isPaused {
                nodes[index].backlog.append(event)
                return
            }
            let effects = nodes[index].core.peerUnreachable(node, now: now)
            execute(effects, at: index)
        case .multicastRead(let index, let incarnation, let id):
            guard nodes[index].incarnation == incarnation, nodes[index].status == .running else {
                _ = multicastSockets.take(id, at: index)  // died with its incarnation
                return
            }
            if nodes[index].isPaused {
                nodes[index].backlog.append(event)
                return
            }
            guard let packet = multicastSockets.take(id, at: index) else { return }
            observer?(.packet(node: nodes[index].id, time: now, packet))
            execute(nodes[index].core.receive(packet, now: now), at: index)
        }
    }

    /// Reads, before a token, every multicast waiting unread in node `index`'s socket.
    mutating func drainMulticastSocket(at index: Int) {
        for packet in multicastSockets.drain(at: index, incarnation: nodes[index].incarnation, now: now.nanoseconds) {
            // A crash during a persist (FaultAction.crashDuringNextPersist) ends the drain.
            guard nodes[index].status == .running else { return }
            observer?(.packet(node: nodes[index].id, time: now, packet))
            execute(nodes[index].core.receive(packet, now: now), at: index)
        }
    }

    /// Executes one batch of effects of node `index`, in order (the contract in `Effect`).
    mutating func execute(_ effects: [Effect], at index: Int) {
        observer?(.effects(node: nodes[index].id, time: now, effects))
        for effect in effects {
            switch effect {
            case .multicast(let packet):
                for destination in nodes.indices { transmit(packet, from: index, to: destination) }
            case .unicast(let packet, let destination):
                let target = Int(destination.rawValue) - 1
                guard nodes.indices.contains(target) else {
                    anomalies.append("\(now): node \(nodes[index].id) unicast to unknown node \(destination)")
                    continue
                }
                transmit(packet, from: index, to: target)
                if reportsUnreachable && nodes[target].status == .crashed {
                    // The ICMP answer comes back after about one network delay.
                    queue.schedule(.unreachable(index: index, incarnation: nodes[index].incarnation, node: destination),
                                   at: now.nanoseconds + Self.unreachableReportDelay)
                }
            case .deliver(let message):
                recordDelivery(message, at: index)
            case .configurationChanged(let change):
                nodes[index].configurations.append(change)
                nodes[index].lastConfiguration = change
                if change.kind == .regular { nodes[index].deliveriesSinceRegular = 0 }
                trace.append(TraceEvent(time: now, kind: .configuration(node: nodes[index].id, change)))
                convergenceMayHaveChanged = true
            case .armTimer(let timer, let deadline):
                nodes[index].timerGenerations[Int(timer.rawValue)] &+= 1
                let event = SimulationEvent.timer(
                    index: index, incarnation: nodes[index].incarnation, timer: timer,
                    generation: nodes[index].timerGenerations[Int(timer.rawValue)])
                queue.schedule(event, at: max(deadline.nanoseconds, now.nanoseconds))
            case .cancelTimer(let timer):
                nodes[index].timerGenerations[Int(timer.rawValue)] &+= 1
            case .persistRingSequence(let sequence):
                if crashArmedAtPersist[index] {
                    // The node dies during the write: the disk keeps the previous value and
                    // nothing after the write in this batch happens (Effect rule 1).
                    crashArmedAtPersist[index] = false
                    persistCrashCount += 1
                    crash(node: nodes[index].id)
                    return
                }
                nodes[index].persistedRingSequence = sequence
            case .stateChanged(let state, _):
                nodes[index].membershipState = state
                convergenceMayHaveChanged = true
            }
        }
    }

    mutating func recordDelivery(_ message: DeliveredMessage, at index: Int) {
        let payload = message.payload
        let id = MessageEnvelope.id(of: payload)
        let record = DeliveryRecord(
            id: id, sender: message.sender, ringID: message.ringID, delivery: message.delivery,
            size: payload.count, digest: MessageEnvelope.digest(payload))
        trace.append(TraceEvent(time: now, kind: .deliver(node: nodes[index].id, record)))
        nodes[index].deliveries.append(SimulatedDelivery(
            time: now, id: id, sender: message.sender, ringID: message.ringID, delivery: message.delivery,
            payload: recordsPayloads ? Array(MessageEnvelope.body(of: payload)) : nil))
        nodes[index].deliveriesSinceRegular += 1
        if let id, id.node == nodes[index].id, id.incarnation == nodes[index].incarnation {
            nodes[index].ownDelivered += 1
        }
        convergenceMayHaveChanged = true
    }

    /// Sends one copy of `packet` from node `from` to node `to` through the filter and network.
    mutating func transmit(_ packet: Packet, from: Int, to: Int) {
        guard nodes[to].status == .running else { return }
        var extraDelay: Int64 = 0
        if let packetFilter {
            let inFlight = PacketInFlight(from: nodes[from].id, to: nodes[to].id, packet: packet, sentAt: now)
            switch packetFilter(inFlight) {
            case .pass: break
            case .drop: return
            case .delay(let delay): extraDelay = max(0, delay.totalNanoseconds)
            }
        }
        network.route(from: from, to: to, now: now.nanoseconds, extraDelay: extraDelay, arrivals: &arrivals, late: &late)
        // A late packet reaches whichever incarnation of its destination runs when it arrives
        // (a restarted process listens on the same port); others die with the incarnation.
        if let first = arrivals.0 { scheduleArrival(packet, from: from, to: to, at: first, late: late.0) }
        if let second = arrivals.1 { scheduleArrival(packet, from: from, to: to, at: second, late: late.1) }
    }

    /// Schedules the reading of one copy arriving at `time`: at once, or, for a multicast that
    /// waits unread in its destination's socket (`NetworkConditions.multicastReadLag`), later.
    mutating func scheduleArrival(_ packet: Packet, from: Int, to: Int, at time: Int64, late: Bool) {
        let incarnation = late ? Self.anyIncarnation : nodes[to].incarnation
        if !late, from != to, packet.travelsOnMulticastSocket, let lag = network.multicastReadLagNanoseconds() {
            let id = multicastSockets.hold(packet, at: to, incarnation: incarnation, arrival: time)
            queue.schedule(.multicastRead(index: to, incarnation: incarnation, id: id), at: time + lag)
        } else {
            queue.schedule(.arrival(index: to, incarnation: incarnation, packet: packet), at: time)
        }
    }
}
