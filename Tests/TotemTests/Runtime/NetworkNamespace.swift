// A throw-away network namespace for tests: created with `ip netns add`, loopback up, no other
// interface and no route out. Event loops are started inside it by a helper thread that enters
// the namespace (setns) first: threads inherit their creator's namespace, and the sockets the
// loops open belong to it.

import Foundation
import Glibc
@testable import Totem
@testable import TotemRuntime

struct NetworkNamespace {
    let name: String

    private static let ipCommand = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// Root, an `ip` command, and the kernel's setns.
    static var isAvailable: Bool {
        geteuid() == 0 && ipCommand != nil && setNamespace != nil
    }

    typealias SetNamespace = @convention(c) (Int32, Int32) -> Int32

    /// setns(2), looked up at run time: Swift's Glibc module hides it (_GNU_SOURCE).
    static let setNamespace: SetNamespace? = {
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "setns") else { return nil }
        return unsafeBitCast(symbol, to: SetNamespace.self)
    }()

    static let cloneNewNetwork: Int32 = 0x4000_0000

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func create() throws -> NetworkNamespace {
        let name = "totemrt-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        try run(["netns", "add", name])
        let namespace = NetworkNamespace(name: name)
        do {
            try run(["-n", name, "link", "set", "lo", "up"])
        } catch {
            namespace.delete()
            throw error
        }
        return namespace
    }

    func delete() {
        _ = try? Self.run(["netns", "delete", name])
    }

    /// Starts `count` event loops whose threads live in this namespace.
    func makeEventLoops(count: Int) throws -> [EventLoop] {
        let result = Shared<Result<[EventLoop], Failure>?>(nil)
        let path = "/run/netns/\(name)"
        let thread = Thread {
            result.update { $0 = Self.startLoops(count: count, namespacePath: path) }
        }
        thread.start()
        for _ in 0..<1_000 {
            if let outcome = result.value { return try outcome.get() }
            usleep(5_000)
        }
        throw Failure(description: "event loops in \(name) did not start")
    }

    /// Runs on a throw-away thread: enters the namespace, then creates the loops.
    private static func startLoops(count: Int, namespacePath: String) -> Result<[EventLoop], Failure> {
        guard let setNamespace else { return .failure(Failure(description: "setns unavailable")) }
        let descriptor = open(namespacePath, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return .failure(Failure(description: "open \(namespacePath): errno \(errno)")) }
        defer { close(descriptor) }
        guard setNamespace(descriptor, cloneNewNetwork) == 0 else {
            return .failure(Failure(description: "setns: errno \(errno)"))
        }
        do {
            return .success(try (0..<count).map { try EventLoop(name: "netns-loop-\($0)") })
        } catch {
            return .failure(Failure(description: "\(error)"))
        }
    }

    @discardableResult
    private static func run(_ arguments: [String]) throws -> String {
        guard let ipCommand else { throw Failure(description: "no ip command") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ipCommand)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw Failure(description: "ip \(arguments.joined(separator: " ")) failed: \(text)")
        }
        return text
    }
}
