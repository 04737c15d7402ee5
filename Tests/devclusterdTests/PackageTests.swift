// The Debian package as an administrator gets it: scripts/build-deb.sh builds it from a release
// build with dpkg-deb; the test unpacks it with dpkg-deb -x into a scratch directory and checks
// the layout, the control data, the checksums, the unit, the man pages, runs the unpacked
// binary's --version and --check-config on the shipped conffile, and runs lintian. The version
// everywhere is Devclusterd.version. Skipped (with the reason) without dpkg-deb, or without
// lintian unless DEVCLUSTER_REQUIRE_PACKAGE=1 (.ci/run) makes a missing tool a failure.
//
// Time: the script runs `swift build -c release` in .build/package; from scratch that took 2 min
// here (two busy cores), an up-to-date one a second; packing and the checks (lintian most) about
// 16 s. .ci/run runs the script before `swift test`, so the build is not done during the tests.

import Foundation
import Glibc
import Testing
@testable import devclusterd

enum PackageBuild {
    static let root = AsteriskTestbed.root
    static let script = root + "/scripts/build-deb.sh"
    static let required = ProcessInfo.processInfo.environment["DEVCLUSTER_REQUIRE_PACKAGE"] == "1"

    static func tool(_ name: String) -> String? {
        ["/usr/bin/", "/bin/", "/usr/sbin/"].map { $0 + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static let missing: [String] = ["dpkg-deb", "dpkg-shlibdeps", "lintian", "readelf"].filter { tool($0) == nil }

    /// Runs build-deb.sh, polling every 100 ms; past `timeout` its whole process group (the
    /// script and the swift build it started) is killed. Foundation's Process starts each child
    /// as the leader of a process group of its own, which its children join.
    static func runScript(_ arguments: [String], timeout: Duration) async -> ToolResult {
        var result = ToolResult(status: -1, output: "", error: "", timedOut: false)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script] + arguments
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        do {
            try process.run()
        } catch {
            result.error = "cannot run \(script): \(error)"
            return result
        }
        // Read both pipes while it runs, so a chatty build never blocks on a full pipe.
        let outputText = Task.detached { String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
        let errorText = Task.detached { String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        for _ in 0..<100_000 {
            guard process.isRunning, clock.now < deadline else { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        if process.isRunning {
            result.timedOut = true
            // The group is the script's own (pgid == its pid), never the test's.
            if getpgid(process.processIdentifier) == process.processIdentifier { kill(-process.processIdentifier, SIGKILL) }
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        result.status = process.terminationStatus
        result.output = await outputText.value
        result.error = await errorText.value
        return result
    }

    static let shouldRun: Bool = {
        if !missing.isEmpty && !required {
            print("Package tests SKIPPED: missing \(missing.joined(separator: ", ")) (apt-get install dpkg-dev lintian binutils; "
                + ".ci/run installs them and requires these tests)")
        }
        return missing.isEmpty || required
    }()
}

@Suite("Debian package", .serialized, .enabled(if: PackageBuild.shouldRun))
struct PackageTests {
    @Test func theBuiltPackageUnpacksIntoAWorkingInstallation() async throws {
        try #require(PackageBuild.missing.isEmpty, "the package test needs: \(PackageBuild.missing.joined(separator: ", "))")
        let base = try makeTemporaryDirectory()
        defer { removeDirectory(base) }
        let clock = ContinuousClock()
        let started = clock.now
        // A first release build on two busy cores can take a quarter of an hour.
        let build = await PackageBuild.runScript(["--output", base + "/out"], timeout: .seconds(1_800))
        try #require(build.succeeded, "build-deb.sh: \(build)")
        print("build-deb.sh took \(clock.now - started)")
        let package = try #require(build.output.split(separator: "\n").last.map(String.init))
        let version = Devclusterd.version + "-1"
        let architecture = try #require(await Tool.run("/usr/bin/dpkg", ["--print-architecture"]).output.split(separator: "\n").first)
        #expect(package == base + "/out/devcluster_\(version)_\(architecture).deb")

        // Control data.
        func field(_ name: String) async -> String {
            await Tool.run("/usr/bin/dpkg-deb", ["-f", package, name]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(await field("Package") == "devcluster")
        #expect(await field("Version") == version)
        #expect(await field("Architecture") == String(architecture))
        let depends = await field("Depends")
        #expect(depends.contains("libc6 (>="), "\(depends)")
        #expect(!depends.contains("swift"), "\(depends)")
        #expect(depends.hasSuffix(", procps"), "\(depends)")  // ExecReload's /bin/kill
        let control = base + "/control"
        #expect(await Tool.run("/usr/bin/dpkg-deb", ["-e", package, control]).succeeded)
        #expect(try String(contentsOfFile: control + "/conffiles", encoding: .utf8) == "/etc/devcluster/devcluster.conf\n")
        for script in ["postinst", "prerm", "postrm"] {
            #expect(FileManager.default.isExecutableFile(atPath: control + "/" + script), "\(script)")
            #expect(await Tool.run("/bin/sh", ["-n", control + "/" + script]).succeeded, "\(script) does not parse")
        }

        // Owned by root, with the modes Debian expects.
        let listing = await Tool.run("/usr/bin/dpkg-deb", ["-c", package]).output
        let entries = listing.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        #expect(!entries.isEmpty && entries.allSatisfy { $0.count >= 6 && $0[1] == "root/root" }, "\(listing)")
        func mode(_ path: String) -> String? { entries.first { $0.last == "./" + Substring(path) }.map { String($0[0]) } }
        #expect(mode("usr/sbin/devclusterd") == "-rwxr-xr-x")
        for file in ["lib/systemd/system/devclusterd.service", "etc/devcluster/devcluster.conf",
                     "usr/share/man/man8/devclusterd.8.gz", "usr/share/man/man5/devcluster.conf.5.gz",
                     "usr/share/doc/devcluster/copyright", "usr/share/doc/devcluster/changelog.Debian.gz"] {
            #expect(mode(file) == "-rw-r--r--", "\(file): \(String(describing: mode(file)))")
        }
        let moduleBuilt = FileManager.default.fileExists(atPath: PackageBuild.root + "/Integrations/asterisk/res_devcluster.so")
        #expect((mode("usr/lib/asterisk/modules/res_devcluster.so") != nil) == moduleBuilt, "module built: \(moduleBuilt)\n\(listing)")

        // Unpacked as dpkg would install it.
        let unpacked = base + "/root"
        #expect(await Tool.run("/usr/bin/dpkg-deb", ["-x", package, unpacked]).succeeded)
        let checksums = await Tool.run("/bin/sh", ["-c", "cd \(unpacked) && md5sum --check --strict --quiet \(control)/md5sums"])
        #expect(checksums.succeeded, "\(checksums)")
        let daemon = unpacked + "/usr/sbin/devclusterd"
        let versionRun = await Tool.run(daemon, ["--version"])
        #expect(versionRun.succeeded && versionRun.output == "devclusterd \(Devclusterd.version)\n", "\(versionRun)")
        let check = await Tool.run(daemon, ["--check-config", "--config", unpacked + "/etc/devcluster/devcluster.conf"])
        #expect(check.succeeded && check.output.contains("OK"), "\(check)")
        // The Swift runtime is inside the binary, not a library Debian lacks.
        let needed = await Tool.run(try #require(PackageBuild.tool("readelf")), ["-d", daemon]).output
        #expect(needed.contains("libc.so.6") && !needed.contains("libswift") && !needed.contains("libFoundation"), "\(needed)")
        for page in ["/usr/share/man/man8/devclusterd.8.gz", "/usr/share/man/man5/devcluster.conf.5.gz",
                     "/usr/share/doc/devcluster/changelog.Debian.gz"] {
            #expect(await Tool.run("/bin/gzip", ["-t", unpacked + page]).succeeded, "\(page)")
        }
        let changelog = await Tool.run("/bin/sh", ["-c", "gzip -dc \(unpacked)/usr/share/doc/devcluster/changelog.Debian.gz"]).output
        #expect(changelog.hasPrefix("devcluster (\(version)) unstable; urgency=medium\n"), "\(changelog)")

        // The unit runs what the package installs, as a notify service with a watchdog and the
        // directories the daemon uses by default.
        let unit = try String(contentsOfFile: unpacked + "/lib/systemd/system/devclusterd.service", encoding: .utf8)
        let settings = Set(unit.split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init))
        for expected in ["Type=notify", "ExecStart=/usr/sbin/devclusterd --foreground", "ExecReload=/bin/kill -HUP $MAINPID",
                         "RuntimeDirectory=devcluster", "StateDirectory=devcluster", "ProtectSystem=strict", "PrivateTmp=yes",
                         "ProtectHome=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=CAP_CHOWN", "Restart=on-failure"] {
            #expect(settings.contains(expected), "\(expected)")
        }
        #expect(settings.contains { $0.hasPrefix("WatchdogSec=") })
        // RuntimeDirectory and StateDirectory are where the shipped configuration puts the socket
        // and the state, on a host as the unit shows it to the daemon: root, and (ProtectSystem=
        // strict) only those two directories writable.
        let sandbox = HostEnvironment(userID: 0, variables: [:], hostName: "server1",
                                      isWritableDirectory: { ["/run/devcluster", "/var/lib/devcluster"].contains($0) },
                                      interfaceAddresses: loopbackHost.interfaceAddresses)
        let conffile = try String(contentsOfFile: unpacked + "/etc/devcluster/devcluster.conf", encoding: .utf8)
        let shipped = try DaemonConfiguration.parse(text: conffile, path: "devcluster.conf", host: sandbox).options
        #expect(shipped.controlSocket == "/run/devcluster/devclusterd.sock" && shipped.stateDirectory == "/var/lib/devcluster")
        if let analyze = PackageBuild.tool("systemd-analyze") {
            // `verify` checks the unit's syntax, that its commands exist and that the man pages it
            // names open (from the unpacked tree). Commands are looked up on this host, where
            // the package is not installed: a missing /usr/sbin/devclusterd (or /bin/kill, on a
            // host without procps) is the only complaint allowed.
            let verify = await Tool.run("/usr/bin/env", ["MANPATH=\(unpacked)/usr/share/man", analyze, "verify",
                                                         unpacked + "/lib/systemd/system/devclusterd.service"])
            let complaints = verify.error.split(separator: "\n").filter { line in
                !["/usr/sbin/devclusterd", "/bin/kill"].contains { command in
                    line == "devclusterd.service: Command \(command) is not executable: No such file or directory"
                        && !FileManager.default.isExecutableFile(atPath: command)
                }
            }
            #expect(!verify.timedOut && complaints.isEmpty, "\(verify)")
        }

        // lintian, with the tags it prints; errors and warnings fail.
        let lintian = await Tool.run(try #require(PackageBuild.tool("lintian")), ["--fail-on", "error,warning", "--tag-display-limit", "0", package],
                                     timeout: .seconds(300))
        #expect(lintian.succeeded, "\(lintian)")
        let serious = lintian.output.split(separator: "\n").filter { $0.hasPrefix("E:") || $0.hasPrefix("W:") }
        #expect(serious.isEmpty, "\(serious)")
        print("package test took \(clock.now - started); lintian: \(lintian.output.isEmpty ? "clean" : lintian.output)")
    }
}
