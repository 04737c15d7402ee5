// Issue 14, findings 5 and 6 on real daemons and real file systems (as root): a state directory
// on a frozen ext4 (fsfreeze) delays neither the token nor any answer; a full tmpfs makes the
// answers say "not persisted", status degraded, retries with backoff that succeed once space is
// freed, one log line instead of one per request, and a daemon that starts anyway; kill -9 while
// changes stream in restarts with a prefix of them. Mounts, loop devices, freezes and daemons are
// undone in `defer`, also when a check fails.

import DeviceState
import Foundation
import Glibc
import Testing
import Totem
import TotemRuntime
@testable import devclusterd

/// A small ext4 image on a loop device, mounted; `remove()` thaws, unmounts and detaches
/// whatever was done, also after a failed step.
final class Ext4Mount {
    let mountPoint: String
    private var loopDevice: String?
    private var mounted = false
    private(set) var frozen = false

    init(image: String, mountPoint: String) throws {
        self.mountPoint = mountPoint
        do {
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
            try #require(PersistenceDiskTests.tool(["truncate", "-s", "32M", image])?.status == 0)
            try #require(PersistenceDiskTests.tool(["mkfs.ext4", "-q", image])?.status == 0, "mkfs.ext4 failed")
            let attached = try #require(PersistenceDiskTests.tool(["losetup", "--find", "--show", image]))
            try #require(attached.status == 0, "losetup: \(attached.error)")
            let device = attached.output.trimmingCharacters(in: .whitespacesAndNewlines)
            loopDevice = device
            try #require(PersistenceDiskTests.tool(["mount", device, mountPoint])?.status == 0, "mount failed")
            mounted = true
            try #require(chmod(mountPoint, 0o700) == 0)
        } catch {
            remove()
            throw error
        }
    }

    func freeze() throws {
        try #require(PersistenceDiskTests.tool(["fsfreeze", "-f", mountPoint])?.status == 0, "fsfreeze failed")
        frozen = true
    }

    func thaw() {
        guard frozen else { return }
        PersistenceDiskTests.tool(["fsfreeze", "-u", mountPoint])
        frozen = false
    }

    func remove() {
        thaw()
        if mounted { PersistenceDiskTests.tool(["umount", mountPoint]) }
        mounted = false
        if let loopDevice { PersistenceDiskTests.tool(["losetup", "-d", loopDevice]) }
        loopDevice = nil
    }
}

@Suite("Persistence on stalled and full disks", .serialized)
struct PersistenceDiskTests {
    /// Runs a system tool through env (PATH), returning whether it exited 0.
    @discardableResult
    static func tool(_ arguments: [String]) -> CommandResult? {
        try? runProcess("/usr/bin/env", arguments)
    }

    static func call(_ node: TestNode, _ command: String, _ arguments: JSONObject = [:]) throws -> (JSONValue, Duration) {
        let client = try ControlClient(path: node.socket, timeout: .seconds(5))
        let clock = ContinuousClock()
        let started = clock.now
        let result = try client.call(command, arguments: arguments)
        let elapsed = clock.now - started
        switch result {
        case .success(let value): return (value, elapsed)
        case .failure(let error): throw TestFailure("\(command) failed: \(error)")
        }
    }

    static func persistence(_ node: TestNode) -> JSONValue? {
        (try? call(node, "status"))?.0["persistence"]
    }

    /// The state another node reports for `device` (nil: unknown there).
    static func state(of device: String, on node: TestNode) -> String? {
        (try? call(node, "devstate_get", ["device": .string(device)]))?.0["state"]?.stringValue
    }

    /// Writes zeros into `path` until the file system is full (bounded: 4096 chunks of 64 KiB).
    static func fill(_ path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try #require(descriptor >= 0, "cannot create \(path)")
        defer { _ = close(descriptor) }
        let chunk = [UInt8](repeating: 0, count: 64 << 10)
        for _ in 0..<4_096 {
            let written = chunk.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < chunk.count { return }
        }
        throw TestFailure("\(path) did not fill the file system")
    }

    @Test(.enabled(if: geteuid() == 0, "mount, losetup and fsfreeze need root (CI runs as root)"))
    func aFrozenDiskDelaysNeitherTheTokenNorAnyAnswer() async throws {
        let nodes = try TestNodes(2)
        let mountPoint = nodes.nodes[0].state
        var disk: Ext4Mount?
        defer {
            disk?.thaw()
            nodes.children.killAll()
            disk?.remove()
            nodes.tearDown()
        }
        disk = try Ext4Mount(image: nodes.base + "/state.img", mountPoint: mountPoint)

        let (one, two) = (nodes.nodes[0], nodes.nodes[1])
        _ = try await startRing(nodes.nodes, children: nodes.children)
        let (first, _) = try Self.call(one, "devstate_set", ["device": "Custom:before", "state": "INUSE"])
        #expect(first["persistence"] == "queued")
        let settled = await eventually(within: .seconds(5)) { Self.persistence(one)?["unpersisted_changes"] == 0 }
        #expect(settled, "\(String(describing: Self.persistence(one)))")
        let ring = try #require(membership(one)?.ring)

        try #require(disk).freeze()
        // The first change after the freeze: answered at once, while its write blocks.
        let (set1, time1) = try Self.call(one, "devstate_set", ["device": "Custom:frozen1", "state": "RINGING"])
        #expect(time1 < .milliseconds(200), "devstate_set took \(time1) on a frozen disk")
        #expect(set1["state"] == "RINGING")
        try await Task.sleep(for: .milliseconds(800))
        // The writer has been stuck for longer than its stall threshold: status says so, at once.
        let (status, statusTime) = try Self.call(one, "status")
        #expect(statusTime < .milliseconds(200), "status took \(statusTime) on a frozen disk")
        #expect(status["persistence"]?["health"] == "stalled" && status["persistence"]?["degraded"] == true, "\(status)")
        let (set2, time2) = try Self.call(one, "devstate_set", ["device": "Custom:frozen2", "state": "BUSY"])
        #expect(time2 < .milliseconds(200), "devstate_set took \(time2) on a frozen disk")
        #expect(set2["persistence"] == "not_persisted", "\(set2)")
        #expect(set2["persistence_error"]?.stringValue?.contains("has not completed a write") == true, "\(set2)")
        let cli = try runCommand(["--socket", one.socket, "devstate", "set", "Custom:frozen3", "INUSE"])
        #expect(cli.status == 0 && cli.output.contains("NOT PERSISTED: the disk of"), "\(cli.output)\(cli.error)")
        let statusText = try runCommand(["--socket", one.socket, "status"])
        #expect(statusText.output.contains("Persistence: DEGRADED (stalled)") || statusText.output.contains("DEGRADED (stalled)"),
                "\(statusText.output)")
        // The other node has every change, and the ring never re-formed (the token kept moving).
        let seen = await eventually(within: .seconds(3)) {
            Self.state(of: "Custom:frozen1", on: two) == "RINGING" && Self.state(of: "Custom:frozen2", on: two) == "BUSY"
                && Self.state(of: "Custom:frozen3", on: two) == "INUSE"
        }
        #expect(seen, "node 2 did not see the changes made on the frozen node")
        try await Task.sleep(for: .milliseconds(500))
        #expect(membership(one)?.ring == ring && membership(two)?.ring == ring, "the ring re-formed while the disk was frozen")
        #expect(membership(one)?.members == [1, 2])

        disk?.thaw()
        let written = await eventually(within: .seconds(10)) {
            let report = Self.persistence(one)
            return report?["health"] == "ok" && report?["unpersisted_changes"] == 0
        }
        #expect(written, "\(String(describing: Self.persistence(one)))")
        let onDisk = LocalStateFiles.restore(snapshotPath: mountPoint + "/local_state")
        let expected: [DeviceName: DeviceStateValue] = [
            try DeviceName(parsing: "Custom:before"): .inUse, try DeviceName(parsing: "Custom:frozen1"): .ringing,
            try DeviceName(parsing: "Custom:frozen2"): .busy, try DeviceName(parsing: "Custom:frozen3"): .inUse,
        ]
        #expect(onDisk.table.devices == expected, "\(onDisk.table.devices) \(onDisk.warnings)")
    }

    /// A writer stuck in a write queues at most `queueLimit` changes; then the whole table
    /// replaces the queue, and all of it is written once the disk thaws.
    @Test(.enabled(if: geteuid() == 0, "mount, losetup and fsfreeze need root (CI runs as root)"))
    func aWriterStuckOnAFrozenDiskKeepsItsQueueBounded() throws {
        let base = try makeTemporaryDirectory()
        let disk = try Ext4Mount(image: base + "/state.img", mountPoint: base + "/state")
        let path = disk.mountPoint + "/local_state"
        let writer = try LocalStateWriter(snapshotPath: path, table: LocalStateTable(), queueLimit: 10, log: { _ in })
        defer {
            disk.thaw()
            writer.finish(timeout: .seconds(5))
            disk.remove()
            removeDirectory(base)
        }
        #expect(LocalStateWriterTests.settle(writer))
        try disk.freeze()
        var table = LocalStateTable()
        for index in 0..<55 {
            let change = LocalStateChange.device(try DeviceName(parsing: "Custom:f\(index)"), .ringing)
            table.apply(change)
            writer.record(change, table: table)
            if index == 0 { usleep(100_000) }  // the writer takes the first one and blocks in its write
        }
        usleep(600_000)
        let stuck = writer.report
        #expect(stuck.health == .stalled && stuck.unpersisted == 55, "\(stuck)")
        disk.thaw()
        #expect(LocalStateWriterTests.settle(writer))
        let written = writer.report
        #expect(written.compactions == 2 && written.unpersisted == 0, "the replacement table is written by a compaction: \(written)")
        #expect(LocalStateFiles.restore(snapshotPath: path).table == table)
    }

    @Test(.enabled(if: geteuid() == 0, "mounting a tmpfs needs root (CI runs as root)"))
    func aFullDiskIsToldRetriedRecoveredAndDoesNotStopAStart() async throws {
        let nodes = try TestNodes(2)
        let mountPoint = nodes.nodes[0].state
        var mounted = false
        defer {
            nodes.children.killAll()
            if mounted { _ = umount2(mountPoint, Int32(MNT_DETACH)) }
            nodes.tearDown()
        }
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try #require(mount("tmpfs", mountPoint, "tmpfs", 0, "size=256k,mode=0700") == 0, "mount tmpfs: \(errno)")
        mounted = true
        let filler = mountPoint + "/filler"
        let (one, two) = (nodes.nodes[0], nodes.nodes[1])
        var processes = try await startRing(nodes.nodes, children: nodes.children)

        _ = try Self.call(one, "devstate_set", ["device": "Custom:a", "state": "INUSE"])
        try Self.fill(filler)
        // The log's last page still has room for some records: change until the writer fails.
        var index = 0
        let failing = await eventually(within: .seconds(10)) {
            for _ in 0..<50 {
                _ = try? Self.call(one, "devstate_set", ["device": .string("Custom:fill\(index)"), "state": "INUSE"])
                index += 1
            }
            return Self.persistence(one)?["health"] == "failing"
        }
        try #require(failing, "the writer never failed on a full disk: \(String(describing: Self.persistence(one)))")
        let report = try #require(Self.persistence(one))
        #expect(report["last_error"]?.stringValue?.contains("No space left on device") == true, "\(report)")
        #expect((report["persistence_failures"]?.integerValue ?? 0) >= 1)
        let (answer, _) = try Self.call(one, "devstate_set", ["device": "Custom:b", "state": "RINGING"])
        #expect(answer["persistence"] == "not_persisted" && answer["persistence_error"]?.stringValue?.contains("No space left") == true,
                "\(answer)")
        let (mwi, _) = try Self.call(one, "mwi_set", ["mailbox": "100@default", "new": 2, "old": 0])
        #expect(mwi["persistence"] == "not_persisted", "\(mwi)")
        let cli = try runCommand(["--socket", one.socket, "devstate", "set", "Custom:c", "BUSY"])
        #expect(cli.status == 0 && cli.output.contains("NOT PERSISTED") && cli.output.contains("No space left on device"), "\(cli.output)")
        let statusText = try runCommand(["--socket", one.socket, "status"]).output
        #expect(statusText.contains("DEGRADED (failing)"), "\(statusText)")
        let seen = await eventually(within: .seconds(3)) { Self.state(of: "Custom:b", on: two) == "RINGING" }
        #expect(seen, "node 2 did not see a change made on the full node")
        // Retried with backoff (100 ms doubling): more failures a moment later; one log line for all of it.
        let failuresBefore = report["persistence_failures"]?.integerValue ?? 0
        try await Task.sleep(for: .milliseconds(1_600))
        let failuresAfter = Self.persistence(one)?["persistence_failures"]?.integerValue ?? 0
        #expect(failuresAfter > failuresBefore && failuresAfter < failuresBefore + 12, "\(failuresBefore) -> \(failuresAfter)")
        let logLines = one.logText.split(separator: "\n")
        #expect(logLines.filter { $0.contains("persistence degraded") }.count == 1, "\(one.logText)")
        #expect(logLines.filter { $0.contains("answered but not persisted") }.count <= 1, "\(one.logText)")

        // Space freed: a retry writes everything.
        #expect(unlink(filler) == 0)
        let recovered = await eventually(within: .seconds(10)) {
            let report = Self.persistence(one)
            return report?["health"] == "ok" && report?["unpersisted_changes"] == 0
        }
        #expect(recovered, "\(String(describing: Self.persistence(one)))")
        #expect(one.logText.contains("persistence recovered"))
        let onDisk = LocalStateFiles.restore(snapshotPath: mountPoint + "/local_state").table
        let (deviceB, deviceC) = (try DeviceName(parsing: "Custom:b"), try DeviceName(parsing: "Custom:c"))
        #expect(onDisk.devices[deviceB] == .ringing && onDisk.devices[deviceC] == .busy)
        #expect(onDisk.devices.count == index + 3 && onDisk.mailboxes.count == 1)

        // A start on a full disk: the daemon starts, says so, serves the cluster, and catches up.
        kill(processes[0].processIdentifier, SIGKILL)
        _ = await nodes.children.waitForExit(processes[0], timeout: .seconds(5))
        try Self.fill(filler)
        processes[0] = try nodes.children.start(["--foreground", "--config", one.configuration], log: one.log)
        let rejoined = await eventually(within: .seconds(20)) { formed(nodes.nodes, members: [1, 2]) }
        try #require(rejoined, "the node did not start on a full disk: \(one.logText)")
        #expect(one.logText.contains("persistence degraded at start"), "\(one.logText)")
        #expect(Self.persistence(one)?["health"] == "failing")
        let (restarted, _) = try Self.call(one, "devstate_set", ["device": "Custom:d", "state": "ONHOLD"])
        #expect(restarted["persistence"] == "not_persisted", "\(restarted)")
        #expect(await eventually(within: .seconds(3)) { Self.state(of: "Custom:d", on: two) == "ONHOLD" })
        #expect(unlink(filler) == 0)
        let caughtUp = await eventually(within: .seconds(10)) { Self.persistence(one)?["health"] == "ok" }
        #expect(caughtUp, "\(String(describing: Self.persistence(one)))")
        let afterStart = LocalStateFiles.restore(snapshotPath: mountPoint + "/local_state").table
        let deviceD = try DeviceName(parsing: "Custom:d")
        #expect(afterStart.devices[deviceD] == .onHold && afterStart.devices.count == index + 4)
    }

    @Test func killDashNineWhileChangesStreamRestartsWithAPrefixOfThem() async throws {
        let nodes = try TestNodes(1)
        defer { nodes.tearDown() }
        let node = nodes.nodes[0]
        var processes = try await startRing(nodes.nodes, children: nodes.children)
        for index in 0..<200 { _ = try Self.call(node, "devstate_set", ["device": .string("Custom:early\(index)"), "state": "BUSY"]) }
        #expect(await eventually(within: .seconds(5)) { Self.persistence(node)?["unpersisted_changes"] == 0 })

        // 3,000 changes written on one connection in chunks of 300, the answers read only between
        // the first eight chunks; kill -9 right after the last one.
        let socket = try UnixSocket.connect(to: node.socket)
        defer { _ = close(socket) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        for chunk in 0..<10 {
            var requests: [UInt8] = []
            for index in chunk * 300..<(chunk + 1) * 300 {
                requests += Array("{\"id\":\(index),\"cmd\":\"devstate_set\",\"args\":{\"device\":\"Custom:late\(index)\",\"state\":\"INUSE\"}}\n".utf8)
            }
            try writeFully(requests, to: socket, operation: "write requests")
            guard chunk < 8 else { continue }
            usleep(20_000)
            var reads = 0
            while reads < 1_000, recv(socket, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 { reads += 1 }
        }
        kill(processes[0].processIdentifier, SIGKILL)
        _ = await nodes.children.waitForExit(processes[0], timeout: .seconds(5))

        let restored = LocalStateFiles.restore(snapshotPath: node.state + "/local_state")
        let late = (0..<3_000).filter { restored.table.devices[try! DeviceName(parsing: "Custom:late\($0)")] != nil }
        #expect(late == Array(0..<late.count), "not a prefix: \(late.prefix(20))...")
        #expect(restored.table.devices.count == 200 + late.count)
        #expect((0..<200).allSatisfy { restored.table.devices[try! DeviceName(parsing: "Custom:early\($0)")] == .busy })
        // And the daemon starts from it.
        processes[0] = try nodes.children.start(["--foreground", "--config", node.configuration], log: node.log)
        let back = await eventually(within: .seconds(20)) {
            (try? Self.call(node, "status"))?.0["device_state"]?["local_devices"]?.integerValue == Int64(200 + late.count)
        }
        #expect(back, "\(node.logText)")
    }
}
