// The systemd unit's capability set is the one the daemon needs: run as root with only the
// capabilities packaging/devclusterd.service keeps (setpriv --bounding-set, no new privileges), a
// daemon that gives its control socket to a group starts, forms its ring and answers; with none,
// it cannot give the socket away and says so. Needs root and setpriv (CI runs as root).

import Foundation
import Glibc
import Testing
@testable import devclusterd

@Suite("systemd unit", .serialized)
struct ServiceUnitTests {
    static let unit = AsteriskTestbed.root + "/packaging/devclusterd.service"
    static let setpriv = "/usr/bin/setpriv"

    /// `CapabilityBoundingSet=` of the unit, as setpriv's list: `-all,+chown`.
    static func boundingSet() throws -> String {
        let text = try String(contentsOfFile: unit, encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("CapabilityBoundingSet=") })
        let names = line.dropFirst("CapabilityBoundingSet=".count).split(separator: " ")
        #expect(!names.isEmpty && names.allSatisfy { $0.hasPrefix("CAP_") }, "\(line)")
        return (["-all"] + names.map { "+" + $0.dropFirst(4).lowercased() }).joined(separator: ",")
    }

    /// Runs the daemon through setpriv with `bounding`; returns its exit status (after SIGTERM
    /// once `whileRunning` returns, or by itself), killed by PID at the latest after 30 s.
    private static func run(bounding: String, node: TestNode, whileRunning: () async -> Void) async throws -> Int32? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: setpriv)
        process.arguments = ["--bounding-set", bounding, "--inh-caps", "-all", "--no-new-privs",
                             try #require(daemonExecutable), "--foreground", "--config", node.configuration]
        _ = FileManager.default.createFile(atPath: node.log, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: node.log))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        defer {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        await whileRunning()
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let exited = await eventually(within: .seconds(30), every: .milliseconds(10)) { !process.isRunning }
        return exited ? process.terminationStatus : nil
    }

    @Test func theUnitsCapabilitiesAreEnoughAndNeeded() async throws {
        try #require(daemonExecutable != nil, "devclusterd was not found next to the test binary; build it with swift build")
        try #require(geteuid() == 0, "this test runs the daemon as root with fewer capabilities")
        try #require(FileManager.default.isExecutableFile(atPath: Self.setpriv), "\(Self.setpriv) (util-linux) is needed")
        let group = "nogroup"
        let groupID = try #require(UnixSocket.groupID(named: group), "no group \(group) on this host")
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let node = try makeNode(1, of: 1, in: base, port: randomPort(), extra: "\n[control]\ngroups = \(group)\n",
                                options: "control_socket_group = \(group)")

        // The unit's set: starts, gives the socket to the group, answers.
        var answered: JSONValue?
        var socketGroup: gid_t?
        let status = try await Self.run(bounding: try Self.boundingSet(), node: node) {
            _ = await eventually(within: .seconds(20)) { formed([node], members: [1]) }
            answered = cliJSON(["--socket", node.socket, "status"])
            var info = stat()
            if stat(node.socket, &info) == 0 { socketGroup = info.st_gid }
        }
        #expect(answered?["state"]?.stringValue == "operational", "log:\n\(node.logText)")
        #expect(socketGroup == groupID)
        #expect(status == 0, "log:\n\(node.logText)")

        // Without CAP_CHOWN the socket cannot be given to the group: the daemon stops and says why.
        removeDirectory(node.directory + "/run")
        let refused = try await Self.run(bounding: "-all", node: node) {
            _ = await eventually(within: .seconds(10)) { node.logText.contains("not started") }
        }
        #expect(refused == 1, "log:\n\(node.logText)")
        #expect(node.logText.contains("chown"), "log:\n\(node.logText)")
    }
}
