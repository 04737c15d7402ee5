// Helpers for AsteriskTests: the prerequisites (root, ip, Asterisk built by
// scripts/asterisk-build.sh, res_devcluster built against it, python3), bounded runs of
// scripts/asterisk-testbed.sh and of Asterisk's CLI on a server, and parsers for what that CLI
// prints (`core show hints`, `dialplan eval function`).

import Foundation
import Glibc
import Testing
@testable import devclusterd

enum AsteriskTestbed {
    /// The repository's root (this file is Tests/devclusterdTests/AsteriskTestbedSupport.swift).
    static let root = FileSystem.parentDirectory(of: FileSystem.parentDirectory(of: FileSystem.parentDirectory(of: #filePath)))
    static let script = root + "/scripts/asterisk-testbed.sh"
    static let probe = root + "/scripts/ami-probe.py"
    static let module = root + "/Integrations/asterisk/res_devcluster.so"
    /// Where scripts/asterisk-build.sh installs Asterisk (its default cache).
    static let prefix: String = {
        let cache = ProcessInfo.processInfo.environment["DEVCLUSTER_TESTBED_CACHE"] ?? "/var/cache/devcluster-testbed"
        return cache + "/asterisk-22.10.1/prefix"
    }()
    /// `.ci/run` sets DEVCLUSTER_REQUIRE_ASTERISK=1 after building Asterisk: then a missing
    /// prerequisite fails the tests instead of skipping them.
    static let required = ProcessInfo.processInfo.environment["DEVCLUSTER_REQUIRE_ASTERISK"] == "1"

    /// Server I's address inside the test bed.
    static func address(_ server: Int) -> String { "10.214.0.\(server)" }

    /// What this host lacks for the Asterisk tests, in words.
    static let missing: [String] = {
        var missing: [String] = []
        if getuid() != 0 { missing.append("root (network namespaces)") }
        if NamespacePrerequisites.ip == nil { missing.append("ip (apt-get install iproute2)") }
        if !FileManager.default.fileExists(atPath: prefix + "/.devcluster-built") {
            missing.append("Asterisk built by scripts/asterisk-build.sh (\(prefix))")
        }
        if !FileManager.default.fileExists(atPath: module) { missing.append("res_devcluster.so (scripts/asterisk-build.sh builds it)") }
        if !FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") { missing.append("python3") }
        if daemonExecutable == nil { missing.append("devclusterd (swift build)") }
        return missing
    }()

    /// Whether the suite runs: everything is there, or it is required (and then fails loudly).
    static let shouldRun: Bool = {
        if !missing.isEmpty && !required {
            print("Asterisk tests SKIPPED: missing \(missing.joined(separator: "; ")); run scripts/asterisk-build.sh as root "
                + "(or .ci/run, which does and then requires them)")
        }
        return missing.isEmpty || required
    }()

    /// Runs the test-bed script with `arguments`, killed at `timeout`.
    static func run(_ arguments: [String], timeout: Duration = .seconds(30)) async -> ToolResult {
        var environment = ["DEVCLUSTERD=\(daemonExecutable ?? "")"]
        if let cache = ProcessInfo.processInfo.environment["DEVCLUSTER_TESTBED_CACHE"] { environment.append("DEVCLUSTER_TESTBED_CACHE=\(cache)") }
        return await Tool.run("/usr/bin/env", environment + ["bash", script] + arguments, timeout: timeout)
    }

    /// `up N` (devcluster) and a check that it worked; every test pairs it with `down` in a defer.
    static func up(_ servers: Int) async throws {
        try #require(missing.isEmpty, "Asterisk tests need: \(missing.joined(separator: "; "))")
        _ = await run(["down"], timeout: .seconds(60))
        let started = await run(["up", "\(servers)"], timeout: .seconds(240))
        try #require(started.succeeded, "asterisk-testbed.sh up \(servers): \(started)")
    }

    /// `down`, blocking (for defer).
    static func down() {
        let environment = ["DEVCLUSTERD=\(daemonExecutable ?? "")"]
        let result = Tool.runBlocking("/usr/bin/env", environment + ["bash", script, "down"], timeout: .seconds(60))
        if !result.succeeded { print("asterisk-testbed.sh down: \(result)") }
    }

    /// Asterisk's CLI on server I; the output ("" when the command failed).
    static func rx(_ server: Int, _ command: String) async -> String {
        let result = await run(["rx", "\(server)", command], timeout: .seconds(15))
        return result.succeeded ? result.output : ""
    }

    /// `core show hints` on server I: hint (`1234@devstate_test`) -> state (`InUse`).
    static func hints(_ server: Int) async -> [String: String] {
        parseHints(await rx(server, "core show hints"))
    }

    /// What `DEVICE_STATE(device)` reads on server I, through the dialplan.
    static func deviceState(_ server: Int, _ device: String) async -> String? {
        parseFunctionResult(await rx(server, "dialplan eval function DEVICE_STATE(\(device))"))
    }

    /// Lines like `   1234@devstate_test       : Custom:mystate   State:InUse   Presence:not_set   Watchers  0`.
    static func parseHints(_ text: String) -> [String: String] {
        var hints: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let key = words.first, key.contains("@"), let state = words.first(where: { $0.hasPrefix("State:") }) else { continue }
            hints[String(key)] = String(state.dropFirst("State:".count))
        }
        return hints
    }

    /// `Return Value: Success (0)` / `Result: INUSE`: the result, or nil.
    static func parseFunctionResult(_ text: String) -> String? {
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("Result:") { return trimmed.dropFirst("Result:".count).trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }

    /// Runs scripts/ami-probe.py in server I's namespace with `arguments`; its JSON answer.
    static func probe(from server: Int, _ arguments: [String], timeout: Duration = .seconds(20)) async -> (ToolResult, JSONValue?) {
        let result = await run(["exec", "\(server)", "python3", probe] + arguments, timeout: timeout)
        let line = result.output.split(separator: "\n").last.map(String.init) ?? ""
        return (result, try? JSONParser.parse(line))
    }

    /// Polls `condition` every 50 ms for at most `timeout`; how long it took, or nil.
    static func waitFor(within timeout: Duration, _ condition: () async -> Bool) async -> Duration? {
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<10_000 {
            if await condition() { return clock.now - start }
            if clock.now - start > timeout { return nil }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// Records an issue when `took` is nil (a wait timed out), with `context()` computed then
    /// (Swift Testing's comments cannot await).
    static func check(_ took: Duration?, sourceLocation: SourceLocation = #_sourceLocation, _ context: () async -> String) async {
        guard took == nil else { return }
        let text = await context()
        Issue.record("timed out: \(text)", sourceLocation: sourceLocation)
    }

    /// As `check`, and stops the test.
    static func require(_ took: Duration?, sourceLocation: SourceLocation = #_sourceLocation, _ context: () async -> String) async throws {
        guard took == nil else { return }
        let text = await context()
        throw TestFailure("timed out: \(text)")
    }

    /// Server I's Asterisk log (`log/messages`).
    static func log(_ server: Int) -> String {
        let run = ProcessInfo.processInfo.environment["DEVCLUSTER_TESTBED_RUN"] ?? "/tmp/devcluster-testbed"
        return (try? String(contentsOfFile: "\(run)/server\(server)/log/messages", encoding: .utf8)) ?? ""
    }
}
