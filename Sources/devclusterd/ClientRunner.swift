// The client commands (status, members, channels, settings, debug on|off): find the daemon's
// socket, ask, and print the answer for people or, with --json, for scripts.

import Glibc

/// The client commands.
enum ClientRunner {
    /// Asks the daemon and prints its answer (human or `--json`); returns 0, or 1 on failure.
    static func run(_ invocation: ClientInvocation) -> Int32 {
        let path: String
        do {
            path = try socketPath(for: invocation.target)
        } catch {
            Console.error("devclusterd: \(error)\n")
            return 1
        }
        let outcome: Result<JSONValue, ControlError>
        do {
            let client = try ControlClient(path: path)
            let request = invocation.command.request
            outcome = try client.call(request.command, arguments: request.arguments)
        } catch {
            Console.error("devclusterd: \(error)\n")
            return 1
        }
        switch outcome {
        case .success(let result):
            if invocation.json {
                Console.output(result.encoded + "\n")
                return 0
            }
            do {
                Console.output(try OutputFormatter.format(invocation.command, result: result))
                return 0
            } catch {
                Console.error("devclusterd: \(invocation.command.name): \(error)\n")
                return 1
            }
        case .failure(let error):
            Console.error("devclusterd: \(invocation.command.name): \(error.message) (\(error.code.rawValue))\n")
            return 1
        }
    }

    /// The control socket: given, or `[options] control_socket` of the file, or the default.
    ///
    /// Only that one option is read from the file: a client does not need the rest to be valid.
    static func socketPath(for target: ClientInvocation.Target, host: HostEnvironment = .current) throws(ControlClientError) -> String {
        let file: String
        switch target {
        case .socket(let path):
            return path
        case .configuration(let path):
            file = path
        case .defaultConfiguration:
            guard access(DaemonConfiguration.defaultPath, F_OK) == 0 else { return host.defaultPaths().controlSocket }
            file = DaemonConfiguration.defaultPath
        }
        let bytes: [UInt8]?
        do {
            bytes = try FileSystem.readFile(file, limit: DaemonConfiguration.maximumFileBytes)
        } catch {
            throw ControlClientError("cannot read the configuration: \(error)")
        }
        guard let bytes else { throw ControlClientError("cannot read the configuration: \(file): no such file") }
        let document = INIParser.parse(String(decoding: bytes, as: UTF8.self)).document
        let options = document.sections.last { $0.normalizedName == "options" }
        guard let entry = options?.entry("control_socket") else { return host.defaultPaths().controlSocket }
        return entry.value
    }
}
