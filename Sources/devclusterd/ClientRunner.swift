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
            return fail(code: "no_daemon", "\(error)", json: invocation.json)
        }
        if invocation.command == .watch { return watch(path: path, json: invocation.json) }
        let outcome: Result<JSONValue, ControlError>
        do {
            let client = try ControlClient(path: path)
            let request = invocation.command.request
            outcome = try client.call(request.command, arguments: request.arguments)
        } catch {
            return fail(code: "no_daemon", "\(error)", json: invocation.json)
        }
        switch outcome {
        case .success(let result):
            // status: 2 when this partition is not quorate, so scripts can tell.
            let exitStatus: Int32 = invocation.command == .status && result["quorum"]?["quorate"]?.boolValue == false ? 2 : 0
            if invocation.json {
                Console.output(result.encoded + "\n")
                return exitStatus
            }
            do {
                Console.output(try OutputFormatter.format(invocation.command, result: result))
                return exitStatus
            } catch {
                return fail(code: "internal", "\(invocation.command.name): \(error)", json: false)
            }
        case .failure(let error):
            if invocation.json { return fail(code: error.code.rawValue, error.message, json: true) }
            Console.error("devclusterd: \(invocation.command.name): \(error.message) (\(error.code.rawValue))\n")
            return 1
        }
    }

    /// Reports a failure and returns 1: as text on standard error and, with `--json`, also as
    /// one line on standard output, `{"ok":false,"error":{"code":...,"message":...}}` (the
    /// daemon's error codes, or `no_daemon` when it cannot be reached), so a script piping to a
    /// JSON parser gets JSON.
    static func fail(code: String, _ message: String, json: Bool, exitStatus: Int32 = 1) -> Int32 {
        if json { Console.output(errorObject(code: code, message).encoded + "\n") }
        Console.error("devclusterd: \(message)\n")
        return exitStatus
    }

    /// `{"ok":false,"error":{"code":...,"message":...}}`.
    static func errorObject(code: String, _ message: String) -> JSONValue {
        .object(["ok": .bool(false), "error": .object(["code": .string(code), "message": .string(message)])])
    }

    /// `watch`: subscribes and prints one line per change until interrupted or the daemon goes.
    private static func watch(path: String, json: Bool) -> Int32 {
        // Runs until Ctrl-C or kill: make sure those can end it (exit by the signal, 130 / 143).
        SignalWatcher.unblock([SIGINT, SIGTERM, SIGHUP])
        var isStreaming = false
        do {
            let client = try ControlClient(path: path)
            switch try client.call("watch") {
            case .success: break
            case .failure(let error):
                if json { return fail(code: error.code.rawValue, error.message, json: true) }
                Console.error("devclusterd: watch: \(error.message) (\(error.code.rawValue))\n")
                return 1
            }
            isStreaming = true
            // Bounded only by the daemon: each pass waits for a line or the receive timeout.
            while true {
                guard let line = try client.nextLine() else { continue }
                guard case .event(let event) = try? ControlMessage.decode(line: line) else { continue }
                if json {
                    Console.output(event.json.encoded + "\n")
                } else if let text = OutputFormatter.watchLine(event: event.name, data: event.data) {
                    Console.output(text + "\n")
                }
            }
        } catch {
            if isStreaming, error.isClosed {
                return fail(code: "connection_closed", "watch: the daemon at \(path) closed the connection (it stopped or restarted)", json: json)
            }
            return fail(code: "no_daemon", "watch: \(error)", json: json)
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
