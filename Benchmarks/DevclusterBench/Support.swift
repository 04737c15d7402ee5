// Small shared pieces of the bench: the monotonic clock, progress on stderr, the figure lines on
// stdout (and --out), percentiles and medians. No cluster logic lives here.

import DevclusterControl
import Foundation
import Glibc
import Synchronization

/// CLOCK_MONOTONIC in nanoseconds: one kernel clock for every namespace on this host, so a
/// stamp taken by a sender and a receive time taken by a subscriber are comparable.
func monotonicNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
}

/// Seconds between two `monotonicNanoseconds()` readings.
func seconds(from start: UInt64, to end: UInt64) -> Double {
    end >= start ? Double(end - start) / 1e9 : 0
}

/// Human-readable progress, on stderr only (stdout carries nothing but figures).
func progress(_ text: String) {
    let line = "devcluster-bench: " + text + "\n"
    line.utf8CString.withUnsafeBufferPointer { buffer in
        _ = write(STDERR_FILENO, buffer.baseAddress, buffer.count - 1)
    }
}

/// A failure that ends the run (after cleanup) with a message.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The parameters every figure of one run carries, so lines from different runs can be grouped.
struct FigureContext: Sendable {
    var scenario: String
    var nodes: Int
    var size: Int
    var senders: Int
    var rate: Double
    var transport: String
    var rep: Int
}

/// Writes one JSON line per figure to stdout and appends it to `--out`.
final class FigureWriter: Sendable {
    private let outPath: String?
    private let lock = Mutex<Void>(())

    init(outPath: String?) { self.outPath = outPath }

    func emit(_ context: FigureContext, metric: String, value: Double, unit: String) {
        let rate: JSONValue = context.rate == context.rate.rounded() ? .integer(Int64(context.rate)) : .double(context.rate)
        let figure: JSONValue = [
            "scenario": .string(context.scenario), "nodes": .number(context.nodes), "size": .number(context.size),
            "senders": .number(context.senders), "rate": rate, "transport": .string(context.transport), "rep": .number(context.rep),
            "metric": .string(metric), "value": Self.format(value), "unit": .string(unit),
        ]
        let line = figure.encoded + "\n"
        lock.withLock { _ in
            FileHandle.standardOutput.write(Data(line.utf8))
            if let outPath {
                if let handle = FileHandle(forWritingAtPath: outPath) {
                    handle.seekToEndOfFile()
                    handle.write(Data(line.utf8))
                    try? handle.close()
                } else {
                    _ = FileManager.default.createFile(atPath: outPath, contents: Data(line.utf8))
                }
            }
        }
    }

    /// JSON has no NaN or infinity: a figure that could not be measured is written as -1. Whole
    /// numbers are integers; others are rounded to 4 decimals.
    static func format(_ value: Double) -> JSONValue {
        guard value.isFinite else { return .integer(-1) }
        if value == value.rounded() && abs(value) < 1e15 { return .integer(Int64(value)) }
        return .double((value * 10_000).rounded() / 10_000)
    }
}

enum Statistics {
    /// The `fraction` percentile of `sorted` by nearest rank below (as cpgbench's `pct`).
    static func percentile(_ sorted: [UInt32], _ fraction: Double) -> UInt32 {
        guard !sorted.isEmpty else { return 0 }
        return sorted[Int(fraction * Double(sorted.count - 1))]
    }

    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}

/// CPU time (user + system) this process has used so far, in seconds.
func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// Runs `body` on a new thread (not the shared Dispatch pool, whose width is the core count:
/// blocking connection loops must not starve each other). `group` is left when it returns.
func startThread(_ group: DispatchGroup, _ body: @escaping @Sendable () -> Void) {
    group.enter()
    let thread = Thread {
        body()
        group.leave()
    }
    thread.stackSize = 1 << 20
    thread.start()
}

/// A value written by one thread and read by another after `DispatchGroup.wait`.
final class Shared<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { storage = Mutex(value) }
    func set(_ value: Value) { storage.withLock { $0 = value } }
    func update(_ body: (inout Value) -> Void) { storage.withLock { body(&$0) } }
    var value: Value { storage.withLock { $0 } }
}
