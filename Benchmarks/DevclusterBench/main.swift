// devcluster-bench: drives real devclusterd daemons in network namespaces and prints one JSON
// line per figure (README of scripts/bench-compare.sh: the side-by-side run with corosync).

import Dispatch
import Foundation
import Glibc

signal(SIGPIPE, SIG_IGN)

let options: BenchOptions
do {
    options = try BenchOptions(Array(CommandLine.arguments.dropFirst()))
} catch {
    progress("\(error)")
    exit(2)
}

// SIGINT / SIGTERM: stop the daemons and delete the namespaces, then exit.
signal(SIGINT, SIG_IGN)
signal(SIGTERM, SIG_IGN)
let signalQueue = DispatchQueue(label: "devcluster-bench.signals")
let signalSources = [SIGINT, SIGTERM].map { number in
    let source = DispatchSource.makeSignalSource(signal: number, queue: signalQueue)
    source.setEventHandler {
        progress("signal \(number): cleaning up")
        CleanupRegistry.shared.cleanUpNow()
        _exit(130)
    }
    source.resume()
    return source
}

let figures = FigureWriter(outPath: options.out)
let cpuAtStart = ownCPUSeconds()
var exitStatus: Int32 = 0
do {
    try runScenario(options, figures: figures)
} catch {
    progress("FAILED: \(error)")
    exitStatus = 1
}
CleanupRegistry.shared.cleanUpNow()
progress(String(format: "bench process CPU time: %.2f s", ownCPUSeconds() - cpuAtStart))
withExtendedLifetime(signalSources) {}
exit(exitStatus)
