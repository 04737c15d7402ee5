// totem-sim: one randomized simulation run from the command line (see `--help`).
// Parsing and running live in TotemSimulation; this file only does the process's I/O.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TotemSimulation

/// Prints `text` to standard error.
func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { bytes in _ = write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
}

let command: SimulationOptions.Command
do {
    command = try SimulationOptions.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    printError("totem-sim: \(error.message)")
    exit(2)
}

let options: SimulationOptions
switch command {
case .help:
    print(SimulationOptions.usage)
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
