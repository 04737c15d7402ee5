// The encoder asserts what the decoder validates (STYLE §7): encoding a packet the decoder would
// reject is a programmer error and must trap. Each case runs in a child process
// (Tests/WireTrapProbe), not as a Swift Testing exit test: the exit-test monitor waits on any
// child and raced Foundation.Process's reaping of the daemons and tools other suites of this one
// test binary start (a full run hung). The decoder's side of each rule is in WireCodecTests.

import Foundation
import Glibc
import Testing

@Suite("Encoder traps")
struct EncoderTrapTests {
    /// The probe built next to the test binary (both in the build's products directory), or `nil`.
    static let probe: String? = {
        var candidates: [String] = []
        if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append((executable as NSString).deletingLastPathComponent + "/wire-trap-probe")
        }
        // Tests/TotemTests/EncoderTrapTests.swift -> <package>/.build/debug/wire-trap-probe
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        candidates.append(package + "/.build/debug/wire-trap-probe")
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    struct Outcome {
        var reason: Process.TerminationReason
        var status: Int32
        var output: String
        var error: String
    }

    /// Runs the probe on `name` and waits at most 30 s (then ends it by its PID: a failure).
    static func run(_ name: String) throws -> Outcome {
        let probe = try #require(Self.probe, "wire-trap-probe not built next to the tests")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("trap-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let outputURL = directory.appendingPathComponent("out"), errorURL = directory.appendingPathComponent("err")
        try #require(FileManager.default.createFile(atPath: outputURL.path, contents: nil))
        try #require(FileManager.default.createFile(atPath: errorURL.path, contents: nil))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: probe)
        process.arguments = [name]
        // No crash backtrace: the message line is enough, and the trap comes at once.
        process.environment = ["SWIFT_BACKTRACE": "enable=no", "PATH": "/usr/bin:/bin"]
        process.standardOutput = try FileHandle(forWritingTo: outputURL)
        process.standardError = try FileHandle(forWritingTo: errorURL)
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            Issue.record("wire-trap-probe \(name) still ran after 30 s")
        }
        process.waitUntilExit()
        return Outcome(reason: process.terminationReason, status: process.terminationStatus,
                       output: (try? String(contentsOf: outputURL, encoding: .utf8)) ?? "",
                       error: (try? String(contentsOf: errorURL, encoding: .utf8)) ?? "")
    }

    @Test("A well-formed packet encodes: the probe itself works")
    func validPacketEncodes() throws {
        let outcome = try Self.run("valid")
        #expect(outcome.reason == .exit)
        #expect(outcome.status == 0)
        #expect(outcome.output.hasPrefix("encoded valid: "))
    }

    @Test("Encoding a packet the decoder would reject traps, with the rule's message",
          arguments: [
              ("unsorted-commit-members", "members not ascending"),
              ("join-sender-outside", "join sender 9 not in processors"),
              ("too-many-requests", "31 retransmit requests exceed 30"),
              ("nested-encapsulation", "nested encapsulation"),
          ])
    func invalidPacketTraps(name: String, message: String) throws {
        let outcome = try Self.run(name)
        #expect(outcome.reason == .uncaughtSignal, "exit status \(outcome.status), output: \(outcome.output)")
        #expect([SIGILL, SIGTRAP].contains(outcome.status), "signal \(outcome.status)")
        #expect(outcome.error.contains(message), "stderr: \(outcome.error)")
        #expect(outcome.output.isEmpty, "it encoded: \(outcome.output)")
    }
}
