// failover: kill -9 the last node's daemon, time until node 1 pushes a membership view without
// it; restart it, time (from the spawn) until node 1 pushes a view of all N and until the
// restarted node itself reports all N operational. idle: CPU and RSS of quiet daemons.

import DevclusterControl
import Foundation
import Glibc

/// Member ids of a `{"event":"membership","data":{"change":"view",...}}` line, else nil.
private func viewMembers(_ line: UnsafeBufferPointer<UInt8>) -> [Int]? {
    guard contains(line, viewMarker), case .event(let event) = try? ControlMessage.decode(line: line),
          case .membership(change: "view", let data) = event.typed, let members = data["members"]?.arrayValue
    else { return nil }
    return members.compactMap { $0.integerValue.map(Int.init) }.sorted()
}

private let viewMarker = Array("\"change\":\"view\"".utf8)

func runFailover(cluster: BenchCluster, rep: Int, context: FigureContext, figures: FigureWriter) throws {
    let count = cluster.nodeCount
    let victim = count
    let everyone = Array(1...count)
    let control = try connectControl(path: cluster.socket(1))
    let settings = try requireResult(control, ControlCommands.Plain("settings"))
    let tokenMilliseconds = settings["token_ms"]?.doubleValue ?? .nan
    if rep == 1 {
        progress("effective token_ms \(Int(tokenMilliseconds)), consensus_ms \(settings["consensus_ms"]?.encoded ?? "?")")
        figures.emit(context, metric: "token_ms", value: tokenMilliseconds, unit: "ms")
    }
    let watcher = try connectControl(path: cluster.socket(1))
    _ = try requireResult(watcher, ControlCommands.Watch(topics: ["membership"]))
    sleep(2)
    _ = try? watcher.receiveLines(timeoutMilliseconds: 0) { _ in }

    // Failure detection.
    let killedAt = monotonicNanoseconds()
    cluster.killHard(victim)
    var detectedAt: UInt64 = 0
    let detectDeadline = killedAt + 60_000_000_000
    for _ in 0..<100_000 {
        guard detectedAt == 0 && monotonicNanoseconds() < detectDeadline else { break }
        let open = try watcher.receiveLines(timeoutMilliseconds: 10) { line in
            if detectedAt == 0, let members = viewMembers(line), !members.contains(victim) { detectedAt = monotonicNanoseconds() }
        }
        if !open { throw BenchError("node 1 closed its membership subscription") }
    }
    guard detectedAt != 0 else { throw BenchError("node 1 did not report a ring without node \(victim) within 60 s") }
    let killDetected = seconds(from: killedAt, to: detectedAt)
    progress(String(format: "rep %d: kill -9 of node %d detected by node 1 after %.3f s", rep, victim, killDetected))
    figures.emit(context, metric: "kill_detected_s", value: killDetected, unit: "s")

    sleep(2)
    _ = try? watcher.receiveLines(timeoutMilliseconds: 0) { _ in }
    // Rejoin: from the spawn of the restarted daemon.
    let startedAt = try cluster.start(victim)
    var nodeOneSawAll: UInt64 = 0
    var victimSawAll: UInt64 = 0
    var lastPoll: UInt64 = 0
    let rejoinDeadline = startedAt + 60_000_000_000
    for _ in 0..<100_000 {
        guard (nodeOneSawAll == 0 || victimSawAll == 0) && monotonicNanoseconds() < rejoinDeadline else { break }
        let open = try watcher.receiveLines(timeoutMilliseconds: 5) { line in
            if nodeOneSawAll == 0, let members = viewMembers(line), members == everyone { nodeOneSawAll = monotonicNanoseconds() }
        }
        if !open { throw BenchError("node 1 closed its membership subscription") }
        let now = monotonicNanoseconds()
        if victimSawAll == 0 && now - lastPoll >= 10_000_000 {
            lastPoll = now
            if let connection = try? connectControl(path: cluster.socket(victim), timeout: 0, requestTimeout: 1, bufferBytes: 1 << 16),
               let members = try? requireResult(connection, ControlCommands.members), members["state"]?.stringValue == "operational",
               let list = members["members"]?.arrayValue,
               list.filter({ $0["member"]?.boolValue == true }).count == count {
                victimSawAll = monotonicNanoseconds()
            }
        }
    }
    guard nodeOneSawAll != 0, victimSawAll != 0 else {
        throw BenchError("node \(victim) not back in the ring within 60 s of its restart (node 1: \(nodeOneSawAll != 0), itself: \(victimSawAll != 0))")
    }
    let toMember = seconds(from: startedAt, to: nodeOneSawAll)
    let selfMember = seconds(from: startedAt, to: victimSawAll)
    progress(String(format: "rep %d: restarted node %d: member at node 1 after %.3f s, sees all %d itself after %.3f s",
                    rep, victim, toMember, count, selfMember))
    figures.emit(context, metric: "restart_to_member_s", value: toMember, unit: "s")
    figures.emit(context, metric: "restart_self_member_s", value: selfMember, unit: "s")
    _ = try cluster.waitForRing(timeout: 30)
}

/// utime + stime of `pid`, in clock ticks, from /proc/PID/stat (fields 14 and 15).
private func cpuTicks(_ pid: pid_t) -> UInt64? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After ")": field 3 (state) is fields[0], so field 14 is fields[11].
    guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
    return user + system
}

/// VmRSS of `pid` in MiB.
private func residentMegabytes(_ pid: pid_t) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else { return nil }
    return kilobytes / 1_024
}

func runIdle(cluster: BenchCluster, duration: Double, context: FigureContext, figures: FigureWriter) throws {
    sleep(2)
    let pids = cluster.pids.sorted { $0.key < $1.key }
    let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    let before = pids.map { cpuTicks($0.value) ?? 0 }
    let startedAt = monotonicNanoseconds()
    usleep(UInt32(duration * 1e6))
    let elapsed = seconds(from: startedAt, to: monotonicNanoseconds())
    var cpu: [Double] = []
    var rss: [Double] = []
    for (offset, entry) in pids.enumerated() {
        guard let after = cpuTicks(entry.value), let resident = residentMegabytes(entry.value) else {
            throw BenchError("node \(entry.key) daemon (pid \(entry.value)) is gone")
        }
        let percent = Double(after - before[offset]) / ticksPerSecond / elapsed * 100
        cpu.append(percent)
        rss.append(resident)
        progress(String(format: "  node %d: idle CPU %.2f%% of one core, VmRSS %.1f MiB", entry.key, percent, resident))
    }
    figures.emit(context, metric: "idle_cpu_percent", value: cpu.max() ?? .nan, unit: "%")
    figures.emit(context, metric: "rss_mb", value: rss.max() ?? .nan, unit: "MiB")
}
