// Start-up of the cluster services, before the loop exists: the incarnation counter and the local
// state table in state_dir, and the services' host (Membership and DeviceState inside) built from
// the daemon's configuration. Files only; the host runs in ClusterHub.

import ClusterServices
import DeviceState
import EventService
import Membership
import Totem
import TotemRuntime

/// The cluster services as built at start, handed to the loop.
struct ClusterSetup: Sendable {
    /// The services, in their host.
    var host: ServiceHost
    /// This process's incarnation (greater at every start of this node).
    var incarnation: UInt64
    /// Where the local state table is written.
    var stateFilePath: String
    /// Devices and mailboxes restored from the state file.
    var restoredDevices: Int
    var restoredMailboxes: Int

    /// The file in state_dir holding the incarnation counter, `N` and a newline.
    static let incarnationFileName = "incarnation"
    /// The file in state_dir holding the local state table's snapshot (`LocalStateTable` format;
    /// its change log is this name with `.log`, in `LocalStateLog` format).
    static let stateFileName = "local_state"

    /// Why the cluster services cannot start.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Reads and advances the incarnation, restores the local state table and builds the services.
    ///
    /// - Parameter warn: told about a state file that could not be used, and what was used
    ///   instead (its kept copy, or an empty table).
    static func make(configuration: DaemonConfiguration, entityID: DaemonConfiguration.EntityID,
                     warn: (String) -> Void) throws(Failure) -> ClusterSetup {
        let directory = configuration.options.stateDirectory
        let incarnation = try nextIncarnation(in: directory, warn: warn)
        let statePath = directory + "/" + stateFileName
        let restored = loadLocalState(path: statePath, warn: warn)
        guard let entity = EntityID(octets: entityID.octets) else {
            throw Failure("the entity id \(entityID) does not have six octets")
        }
        let localID = configuration.options.nodeID
        let nodes = configuration.nodes.map { node in
            ConfiguredNode(id: node.id, name: node.name, addresses: NodeAddress(bytes: node.address.bytes).map { [$0] } ?? [])
        }
        let local = nodes.first { $0.id == localID }
            ?? ConfiguredNode(id: localID, name: DaemonConfiguration.defaultNodeName(localID), addresses: [])
        let membership: MembershipService
        do {
            membership = try MembershipService(localNode: local, entityID: entity, configuredNodes: nodes)
        } catch {
            throw Failure("membership: \(error)")
        }
        var channels: [ChannelConfiguration] = []
        for channel in configuration.eventChannels {
            guard let name = ChannelName(channel.name) else { throw Failure("invalid event channel name \"\(channel.name)\"") }
            let publishes = channel.publishes.compactMap { EventType($0.rawValue) }
            let subscribes = channel.subscribes.compactMap { EventType($0.rawValue) }
            channels.append(ChannelConfiguration(name: name, publishes: publishes, subscribes: subscribes))
        }
        var hints: [Hint] = []
        for hint in configuration.hints {
            do {
                hints.append(try Hint(parsingKey: "\(hint.exten)@\(hint.context)", devices: hint.devices.joined(separator: "&")))
            } catch {
                throw Failure("[hints] \(hint.exten)@\(hint.context): \(error)")
            }
        }
        let deviceState: DeviceStateService
        do {
            deviceState = try DeviceStateService(configuration: DeviceStateConfiguration(
                localNode: localID, entityID: entity, incarnation: incarnation, channels: channels, hints: hints,
                restoredLocalState: restored,
                limits: DeviceStateLimits(maxDevices: configuration.options.maxDevices, maxMailboxes: configuration.options.maxMailboxes),
                retainedEventBytes: configuration.options.maxRetainedBytes))
        } catch {
            throw Failure("device state: \(error)")
        }
        let entityIDOrigin = configuration.options.entityID == nil
            ? "derived at first start and kept in \(configuration.options.stateDirectory)/entity_id"
            : "from [options] entity_id"
        let host = ServiceHost(membership: membership, deviceState: deviceState,
                               nodeNames: Dictionary(configuration.nodes.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first }),
                               entityIDOrigin: entityIDOrigin)
        return ClusterSetup(host: host, incarnation: incarnation, stateFilePath: statePath, restoredDevices: restored.devices.count,
                            restoredMailboxes: restored.mailboxes.count)
    }

    /// Reads the counter, adds one and stores it (in the file and then its kept copy, each
    /// atomically) before the ring starts, so that no two runs of this node share an incarnation.
    ///
    /// The file is `incarnation`, its kept copy `incarnation.prev` (`KeptCopyFile.sameContent`:
    /// written after the file, so it never holds less than an incarnation that was used). A
    /// missing or unusable file falls back to the copy (with a warning); both missing is a first
    /// start (0); both unusable refuses to start, saying what to do.
    static func nextIncarnation(in directory: String, warn: (String) -> Void = { _ in }) throws(Failure) -> UInt64 {
        let file = KeptCopyFile(path: directory + "/" + incarnationFileName, policy: .sameContent)
        let previous: UInt64
        switch file.read(limit: 64, decode: decodeCounter) {
        case .absent:
            previous = 0
        case .file(let value):
            previous = value
        case .copy(let value, let fileProblem):
            previous = value
            // The write below puts the next value into the file again.
            let aside = file.setAside().first
            warn("the incarnation counter \(file.path) is \(fileProblem); using its kept copy \(file.copyPath) (\(value))"
                + (aside.map { "; the unusable file is kept as \($0)" } ?? ""))
        case .unusable(let fileProblem, let copyProblem):
            throw Failure("the incarnation counter \(file.path) is \(fileProblem) and its kept copy \(file.copyPath) is "
                + "\(copyProblem); this node must not reuse an incarnation of an earlier run. Write a number above any it "
                + "used into \(file.path) (the time in seconds, `date +%s`, is far above the count of starts), or remove both "
                + "files to start over at 1 once every other node has restarted since this node last ran")
        }
        guard previous < UInt64.max else {
            throw Failure("the incarnation counter \(file.path) is at its maximum; remove it and \(file.copyPath) to start over at 1")
        }
        do {
            try file.write(Array("\(previous + 1)\n".utf8), mode: 0o600)
        } catch {
            throw Failure("cannot update the incarnation counter: \(error)")
        }
        return previous + 1
    }

    /// A decimal counter and an optional newline or spaces.
    struct MalformedCounter: Error, CustomStringConvertible {
        var text: String
        var description: String { "not a decimal counter: \"\(text.prefix(30))\"" }
    }

    static func decodeCounter(_ bytes: [UInt8]) throws -> UInt64 {
        let text = String(decoding: bytes, as: UTF8.self).trimmingWhitespace
        guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let value = UInt64(text) else {
            throw MalformedCounter(text: text)
        }
        return value
    }

    /// The table of a previous run: the snapshot (else its kept copy) with the valid prefix of
    /// its change log replayed, else empty (see `LocalStateFiles.restore`); each problem goes to
    /// `warn`.
    static func loadLocalState(path: String, warn: (String) -> Void) -> LocalStateTable {
        let restored = LocalStateFiles.restore(snapshotPath: path)
        for warning in restored.warnings { warn(warning) }
        return restored.table
    }
}

extension String {
    /// Without leading and trailing spaces, tabs and newlines.
    fileprivate var trimmingWhitespace: String {
        let isSpace = { (character: Character) in character == " " || character == "\t" || character == "\n" || character == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
