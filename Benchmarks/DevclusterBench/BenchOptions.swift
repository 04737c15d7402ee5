// The command line of devcluster-bench: one scenario and its parameters.

import Foundation

struct BenchOptions: Sendable {
    static let scenarios = ["throughput", "latency", "order", "failover", "idle", "devstate", "client"]
    static let usage = """
        usage: devcluster-bench <scenario> [--nodes N] [--size BYTES] [--senders K] [--rate R] [--duration S]
                                [--transport udp|udpu] [--reps N] [--token MS] [--daemon PATH] [--out FILE]
                                [--window N] [--op publish|devstate] [--keep-logs DIR]
        (tables: scripts/bench-report.py; the side-by-side run with corosync: scripts/bench-compare.sh)
        scenarios: \(scenarios.joined(separator: ", "))
        environment: DCB_TOTEM="key = value;..." adds [totem] lines to every node's configuration;
                     DCB_WRAP="N:command ..." runs node N's daemon under a command (valgrind, perf)
        """

    var scenario = ""
    var nodes = 3
    var size: Int?
    var senders = 1
    var rate: Double?
    var duration: Double?
    var transport = "udp"
    var reps = 1
    var token: Int?
    var daemon: String?
    var out: String?
    /// Requests a sender may have unanswered at once (its pipelining depth).
    var window = 1_000
    /// `client` scenario: what the client pipelines.
    var operation = "publish"
    var keepLogs: String?

    init(_ arguments: [String]) throws {
        var rest = arguments[...]
        guard let first = rest.popFirst() else { throw BenchError(Self.usage) }
        scenario = first
        guard Self.scenarios.contains(scenario) else {
            throw BenchError("unknown scenario \"\(scenario)\"\n" + Self.usage)
        }
        for _ in 0..<arguments.count {
            guard let option = rest.popFirst() else { break }
            guard let value = rest.popFirst() else { throw BenchError("\(option) needs a value\n" + Self.usage) }
            func number() throws -> Double {
                guard let parsed = Double(value), parsed.isFinite, parsed >= 0 else { throw BenchError("\(option): not a number: \(value)") }
                return parsed
            }
            switch option {
            case "--nodes": nodes = Int(try number())
            case "--size": size = Int(try number())
            case "--senders": senders = Int(try number())
            case "--rate": rate = try number()
            case "--duration": duration = try number()
            case "--transport":
                guard value == "udp" || value == "udpu" else { throw BenchError("--transport: udp or udpu") }
                transport = value
            case "--reps": reps = max(1, Int(try number()))
            case "--token": token = Int(try number())
            case "--daemon": daemon = value
            case "--out": out = value
            case "--window": window = max(1, Int(try number()))
            case "--op":
                guard value == "publish" || value == "devstate" else { throw BenchError("--op: publish or devstate") }
                operation = value
            case "--keep-logs": keepLogs = value
            default: throw BenchError("unknown option \(option)\n" + Self.usage)
            }
        }
        guard nodes >= 2 else { throw BenchError("--nodes must be at least 2") }
        guard (1...nodes).contains(senders) else { throw BenchError("--senders must be 1...\(nodes)") }
    }

    /// The daemon: --daemon, else devclusterd next to this executable.
    func daemonPath() throws -> String {
        if let daemon {
            guard FileManager.default.isExecutableFile(atPath: daemon) else { throw BenchError("--daemon \(daemon): not an executable file") }
            return daemon
        }
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let candidate = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("devclusterd").path
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw BenchError("devclusterd not found at \(candidate): run `swift build -c release --product devclusterd` (or pass --daemon PATH)")
        }
        return candidate
    }
}
