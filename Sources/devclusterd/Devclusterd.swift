// The entry point: parses the command line and runs the daemon, a configuration check, key
// generation or a client command. Exit status 0 success, 1 failure, 2 usage error.

import Glibc
import Totem
import TotemRuntime
// The JSON value and parser, and the line limit, for every file of the daemon (and its tests).
@_exported import DevclusterControl

@main
enum Devclusterd {
    /// The daemon's version, reported by `--version`, `status` and `hello`.
    static let version = "0.1.0"

    static func main() {
        exit(run(Array(CommandLine.arguments.dropFirst())))
    }

    /// Runs one invocation and returns its exit status.
    static func run(_ arguments: [String]) -> Int32 {
        let invocation: Invocation
        do {
            invocation = try CommandLineParser.parse(arguments)
        } catch {
            // A script that asked for JSON gets JSON on standard output, also for a usage mistake.
            if arguments.contains("--json") {
                Console.output(ClientRunner.errorObject(code: "usage", error.message).encoded + "\n")
            }
            Console.error("devclusterd: \(error.message)\n\(CommandLineParser.synopsis)\nRun \"devclusterd --help\" for details.\n")
            return 2
        }
        switch invocation {
        case .help:
            Console.output(CommandLineParser.help)
            return 0
        case .version:
            Console.output("devclusterd \(version)\n")
            return 0
        case .foreground(let configPath, let debug):
            return ForegroundDaemon.run(configPath: configPath, debug: debug)
        case .checkConfig(let configPath):
            return ConfigurationCheck.run(configPath: configPath)
        case .keygen(let output, let force):
            return KeyGeneration.run(output: output, force: force)
        case .client(let client):
            return ClientRunner.run(client)
        }
    }
}

/// Standard output and error, each text written with `write(2)` (no buffering to flush at exit).
enum Console {
    static func output(_ text: String) { write(text, to: STDOUT_FILENO) }
    static func error(_ text: String) { write(text, to: STDERR_FILENO) }

    /// Writes `text` with as many `write(2)` calls as it takes, at most `attempts`; gives up on
    /// an error other than EINTR.
    static func write(_ text: String, to descriptor: Int32, attempts limit: Int = 10_000) {
        try? writeFully(Array(text.utf8), to: descriptor, operation: "write", attempts: limit)
    }
}
