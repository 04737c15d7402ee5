// Tests of the command line: every mode, command and option, and a specific message for each kind
// of mistake.

import Foundation
import Testing
@testable import devclusterd

private func parse(_ line: String) throws(UsageError) -> Invocation {
    try CommandLineParser.parse(line.split(separator: " ").map(String.init))
}

private func usageError(_ line: String) -> String? {
    do {
        let invocation = try parse(line)
        Issue.record("\"\(line)\" parsed as \(invocation)")
        return nil
    } catch {
        return error.message
    }
}

@Suite("Command line")
struct CommandLineTests {
    @Test func foregroundWithAndWithoutOptions() throws {
        #expect(try parse("--foreground") == .foreground(configPath: nil, debug: false))
        #expect(try parse("--foreground --config /etc/x.conf --debug") == .foreground(configPath: "/etc/x.conf", debug: true))
        #expect(try parse("--debug --config=/etc/x.conf --foreground") == .foreground(configPath: "/etc/x.conf", debug: true))
    }

    @Test func checkConfig() throws {
        #expect(try parse("--check-config") == .checkConfig(configPath: nil))
        #expect(try parse("--check-config --config a.conf") == .checkConfig(configPath: "a.conf"))
    }

    @Test func keygen() throws {
        #expect(try parse("keygen") == .keygen(output: "/etc/devcluster/authkey", force: false))
        #expect(try parse("keygen --output /tmp/k --force") == .keygen(output: "/tmp/k", force: true))
        #expect(try parse("--force keygen --output=/tmp/k") == .keygen(output: "/tmp/k", force: true))
    }

    @Test(arguments: [
        ("status", ClientCommand.status), ("members", .members), ("channels", .channels),
        ("settings", .settings), ("debug on", .debug(enabled: true)), ("debug off", .debug(enabled: false)),
    ])
    func clientCommands(line: String, command: ClientCommand) throws {
        #expect(try parse(line) == .client(ClientInvocation(target: .defaultConfiguration, command: command, json: false)))
        #expect(try parse(line + " --json") == .client(ClientInvocation(target: .defaultConfiguration, command: command, json: true)))
        #expect(try parse("--socket /run/x.sock " + line)
            == .client(ClientInvocation(target: .socket("/run/x.sock"), command: command, json: false)))
        #expect(try parse(line + " --config /etc/d.conf --json")
            == .client(ClientInvocation(target: .configuration("/etc/d.conf"), command: command, json: true)))
    }

    @Test func helpAndVersionWin() throws {
        #expect(try parse("--help") == .help)
        #expect(try parse("-h") == .help)
        #expect(try parse("members --help") == .help)
        #expect(try parse("--version") == .version)
    }

    @Test func requestsOfClientCommands() {
        #expect(ClientCommand.members.request == ControlRequest(id: 1, command: "members"))
        #expect(ClientCommand.debug(enabled: false).request == ControlRequest(id: 1, command: "debug", arguments: ["enabled": false]))
    }

    @Test func rejectsAnEmptyCommandLine() {
        #expect(usageError("")?.hasPrefix("no command given; run the daemon with --foreground") == true)
    }

    @Test func rejectsUnknownCommandsWithASuggestion() {
        #expect(usageError("memebrs") == "unknown command \"memebrs\" (did you mean \"members\"?); commands: status, members, channels, settings, debug, devstate, hints, mwi, watch, ping, keygen")
        #expect(usageError("frobnicate")?.hasPrefix("unknown command \"frobnicate\"; commands:") == true)
    }

    @Test func rejectsUnknownOptionsWithASuggestion() {
        #expect(usageError("--forground") == "unknown option \"--forground\" (did you mean \"--foreground\"?)")
        #expect(usageError("members --xyz") == "unknown option \"--xyz\"")
        #expect(usageError("members -j") == "unknown option \"-j\"")
    }

    @Test func rejectsMissingAndEmptyValues() {
        #expect(usageError("members --config") == "option --config needs a value (FILE)")
        #expect(usageError("members --socket") == "option --socket needs a value (PATH)")
        #expect(usageError("members --socket=") == "option --socket needs a non-empty PATH")
        #expect(usageError("--json=yes members") == "option --json takes no value")
    }

    @Test func rejectsRepeatedOptions() {
        #expect(usageError("members --json --json") == "option --json given twice")
        #expect(usageError("members --config a --config b") == "option --config given twice")
    }

    @Test func rejectsOptionsOutsideTheirMode() {
        #expect(usageError("--foreground --json") == "option --json cannot be used with --foreground")
        #expect(usageError("--foreground --socket /x") == "option --socket cannot be used with --foreground")
        #expect(usageError("--check-config --debug") == "option --debug cannot be used with --check-config")
        #expect(usageError("members --debug") == "option --debug cannot be used with \"members\"")
        #expect(usageError("members --force") == "option --force cannot be used with \"members\"")
        #expect(usageError("keygen --json") == "option --json cannot be used with keygen")
        #expect(usageError("keygen --config a") == "option --config cannot be used with keygen")
        #expect(usageError("--foreground --check-config") == "--foreground and --check-config cannot be combined")
        #expect(usageError("members --config a --socket b") == "--config and --socket cannot be combined: give one way to find the daemon")
    }

    @Test func rejectsStrayArguments() {
        #expect(usageError("--foreground members") == "--foreground takes no command, got \"members\"")
        #expect(usageError("--check-config x") == "--check-config takes no command, got \"x\"")
        #expect(usageError("members extra") == "unexpected argument \"extra\" after members")
        #expect(usageError("keygen extra") == "unexpected argument \"extra\" after keygen")
        #expect(usageError("debug on off") == "unexpected argument \"off\" after debug")
    }

    @Test func debugNeedsOnOrOff() {
        #expect(usageError("debug") == "debug needs \"on\" or \"off\"")
        #expect(usageError("debug maybe") == "debug takes \"on\" or \"off\", got \"maybe\"")
    }

    @Test func theClientFindsTheSocketInTheConfiguration() throws {
        let directory = try makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let host = HostEnvironment(userID: 1000, variables: ["TMPDIR": "/tmp/x"])
        #expect(try ClientRunner.socketPath(for: .socket("/s"), host: host) == "/s")
        // Only control_socket matters to a client; the rest of the file may be broken.
        let file = directory + "/c.conf"
        try "[totem]\nbogus = 1\n[options]\ncontrol_socket = /run/x/y.sock\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try ClientRunner.socketPath(for: .configuration(file), host: host) == "/run/x/y.sock")
        let bare = directory + "/bare.conf"
        try "[totem]\ncluster_name = a\n".write(toFile: bare, atomically: true, encoding: .utf8)
        #expect(try ClientRunner.socketPath(for: .configuration(bare), host: host) == "/tmp/x/devcluster-1000/devclusterd.sock")
        #expect(throws: ControlClientError("cannot read the configuration: \(directory)/none.conf: no such file")) {
            try ClientRunner.socketPath(for: .configuration(directory + "/none.conf"), host: host)
        }
    }

    @Test func usageErrorsExitWithStatusTwo() {
        #expect(Devclusterd.run(["--bogus"]) == 2)
        #expect(Devclusterd.run(["members", "extra"]) == 2)
        #expect(Devclusterd.run([]) == 2)
    }
}
