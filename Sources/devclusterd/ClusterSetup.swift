// Start-up of the cluster services, before the loop exists: the incarnation counter and the local
// state table in state_dir, and the Membership and DeviceState state machines built from the
// daemon's configuration. Files only; the services run in ClusterHub.

import DeviceState
import EventService
import Membership
import Totem

/// The cluster services as built at start, handed to the loop.
struct ClusterSetup: Sendable {
    var membership: MembershipService
    var deviceState: DeviceStateService
    /// This process's incarnation (greater at every start of this node).
    var incarnation: UInt64
    /// Where the local state table is written.
    var stateFilePath: String
    /// Devices and mailboxes restored from the state file.
    var restoredDevices: Int
    var restoredMailboxes: Int

    /// The file in state_dir holding the incarnation counter, `N` and a newline.
    static let incarnationFileName = "incarnation"
    /// The file in state_dir holding the local state table (`LocalStateTable` format).
    static let stateFileName = "local_state"

    /// Why the cluster services cannot start.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Reads and advances the incarnation, restores the local state table and builds the services.
    ///
    /// - Parameter warn: told about a state file that could not be read (the daemon starts
    ///   with an empty table, and keeps the unreadable file aside as `local_state.bad`).
    static func make(configuration: DaemonConfiguration, entityID: DaemonConfiguration.EntityID,
                     warn: (String) -> Void) throws(Failure) -> ClusterSetup {
        let directory = configuration.options.stateDirectory
        let incarnation = try nextIncarnation(in: directory)
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
                limits: DeviceStateLimits(maxDevices: configuration.options.maxDevices, maxMailboxes: configuration.options.maxMailboxes)))
        } catch {
            throw Failure("device state: \(error)")
        }
        return ClusterSetup(membership: membership, deviceState: deviceState, incarnation: incarnation,
                            stateFilePath: statePath, restoredDevices: restored.devices.count,
                            restoredMailboxes: restored.mailboxes.count)
    }

    /// Reads the counter (0 when absent), adds one and stores it atomically before the ring
    /// starts, so that no two runs of this node share an incarnation.
    static func nextIncarnation(in directory: String) throws(Failure) -> UInt64 {
        let path = directory + "/" + incarnationFileName
        var previous: UInt64 = 0
        do {
            if let bytes = try FileSystem.readFile(path, limit: 64) {
                let text = String(decoding: bytes, as: UTF8.self).trimmingWhitespace
                guard let value = UInt64(text), value < UInt64.max else {
                    throw Failure("\(path) does not hold a counter (\"\(text.prefix(30))\"); remove it to start over at 1")
                }
                previous = value
            }
            try FileSystem.writeAtomically(Array("\(previous + 1)\n".utf8), to: path, mode: 0o600)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure("cannot update the incarnation counter: \(error)")
        }
        return previous + 1
    }

    /// The table of a previous run; empty on a first start or when the file is unusable.
    static func loadLocalState(path: String, warn: (String) -> Void) -> LocalStateTable {
        let bytes: [UInt8]?
        do {
            bytes = try FileSystem.readFile(path, limit: LocalStateTable.maxBytes)
        } catch {
            warn("cannot read the local state file: \(error); starting with no local states")
            return LocalStateTable()
        }
        guard let bytes else { return LocalStateTable() }
        do {
            return try LocalStateTable(decoding: bytes)
        } catch {
            let aside = path + ".bad"
            try? FileSystem.writeAtomically(bytes, to: aside, mode: 0o600)
            warn("\(path) is not a valid local state file (\(error)); starting with no local states (kept as \(aside))")
            return LocalStateTable()
        }
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
