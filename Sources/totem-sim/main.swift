// totem-sim: one randomized simulation run from the command line (see `--help`).
// Parsing and running live in TotemSimulation; this file only does the process's I/O.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ServiceSimulation
import TotemSimulation

/// Prints `text` to standard error.
func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { bytes in _ = write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
}

let arguments = Array(CommandLine.arguments.dropFirst())
if ServiceCommand.isRequested(arguments) && !arguments.contains(where: { $0 == "-h" || $0 == "--help" }) {
    runServices(arguments)
}

let command: SimulationOptions.Command
do {
    command = try SimulationOptions.parse(arguments)
} catch {
    printError("totem-sim: \(error.message)")
    exit(2)
}

let options: SimulationOptions
switch command {
case .help:
    print(SimulationOptions.usage + "\n\n" + ServiceCommand.usage)
    exit(0)
case .sweep(let seeds, let nodes, let without):
    var runs = 0
    var failed = 0
    for seed in seeds {
        let report = RandomizedRun(options: SeedSweep.options(seed: seed, nodes: nodes, without: without)).run()
        runs += 1
        if !report.violations.isEmpty {
            failed += 1
            print(report.summaryLine)
            print(report.failureDescription(limit: 5))
        }
    }
    let leftOut = without.isEmpty ? "" : " without=" + without.map(\.rawValue).sorted().joined(separator: ",")
    print("sweep seeds=\(seeds.lowerBound)-\(seeds.upperBound) nodes=\(nodes.lowerBound)-\(nodes.upperBound)\(leftOut) runs=\(runs) failed=\(failed)")
    exit(failed == 0 ? 0 : 1)
case .run(let runOptions):
    options = runOptions
}

// Open the trace file before running, so that a bad path fails fast.
var traceFile: UnsafeMutablePointer<FILE>?
if let path = options.tracePath {
    guard let file = fopen(path, "w") else {
        printError("totem-sim: cannot open trace file '\(path)': \(String(cString: strerror(errno)))")
        exit(2)
    }
    traceFile = file
}

let report = RandomizedRun(options: options).run()

if let traceFile {
    let text = report.trace.renderJSONLines()
    let written = text.utf8.withContiguousStorageIfAvailable { bytes in
        fwrite(bytes.baseAddress, 1, bytes.count, traceFile)
    } ?? 0
    if written != text.utf8.count || fclose(traceFile) != 0 {
        printError("totem-sim: writing the trace failed: \(String(cString: strerror(errno)))")
        exit(1)
    }
}

if !report.violations.isEmpty {
    print(report.failureDescription(limit: 20))
}
let convergence = report.convergedAt.map { "converged at \($0.milliseconds) ms" } ?? "did not converge"
var wider = ""
if report.latePackets > 0 { wider += ", \(report.latePackets) late packets" }
if report.persistCrashes > 0 { wider += ", \(report.persistCrashes) crashes during a persist" }
if report.multicastsReadBeforeTokens > 0 { wider += ", \(report.multicastsReadBeforeTokens) multicasts read before a token" }
print("heal at \(report.healedAt.milliseconds) ms, \(convergence), \(report.faultCount) faults planned\(wider)")
print(report.summaryLine)
exit(report.violations.isEmpty ? 0 : 1)

/// `totem-sim --services ...`: a sweep of service runs, or one seed's run with its trace.
func runServices(_ arguments: [String]) -> Never {
    let command: ServiceCommand
    do {
        command = try ServiceCommand.parse(arguments)
    } catch {
        printError("totem-sim: \(error.message)")
        exit(2)
    }
    let clock = ContinuousClock()
    let started = clock.now
    switch command {
    case .sweep(let seeds, let nodes, let without):
        let (runs, failures, totals) = ServiceSweep.run(seeds: seeds, nodes: nodes, without: without) { report in
            print(report.summaryLine)
            print(report.failureDescription(limit: 5))
        }
        let leftOut = without.isEmpty ? "" : " without=" + without.map(\.rawValue).sorted().joined(separator: ",")
        let seconds = Double((clock.now - started).components.seconds)
        print("services sweep seeds=\(seeds.lowerBound)-\(seeds.upperBound) nodes=\(nodes.lowerBound)-\(nodes.upperBound)\(leftOut) "
            + "runs=\(runs) failed=\(failures) seconds=\(Int(seconds))")
        print("services sweep totals: \(totals.description)")
        exit(failures == 0 ? 0 : 1)
    case .replay(let seed, let nodes, let without):
        var run = ServiceRun(options: ServiceSweep.options(seed: seed, nodes: nodes, without: without))
        run.recordsTrace = true
        let report = run.run()
        for line in report.trace { print(line) }
        if !report.violations.isEmpty { print(report.failureDescription(limit: 20)) }
        let quiet = report.quietAt.map { "quiet at \($0.milliseconds) ms" } ?? "never quiet"
        print("heal at \(report.healedAt.milliseconds) ms, \(quiet), \(report.plan.faults.count) faults planned")
        print(report.summaryLine)
        exit(report.violations.isEmpty ? 0 : 1)
    }
}
