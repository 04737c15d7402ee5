// This server's entity id (the device-state layer tags every local state with it): from the
// configuration, else the one stored in state_dir, else a MAC address (mixed with the node id when
// several configured nodes run on this host), else random, and stored so that it survives
// restarts and hardware changes. Reads /sys and /dev/urandom; nothing else.

import Foundation
import Glibc
import Totem
import TotemRuntime

/// Chooses and persists this server's entity id.
struct EntityIdentity {
    typealias EntityID = DaemonConfiguration.EntityID

    /// Where the id came from (for the start-up log).
    enum Source: Equatable, CustomStringConvertible {
        case configuration
        case stateFile(String)
        case macAddress(interface: String)
        /// The MAC address made distinct per node: several configured nodes run on this host.
        case macAddressAndNodeID(interface: String, node: NodeID)
        case random

        var description: String {
            switch self {
            case .configuration: "from [options] entity_id"
            case .stateFile(let path): "from \(path)"
            case .macAddress(let interface): "derived from the MAC address of \(interface)"
            case .macAddressAndNodeID(let interface, let node):
                "derived from the MAC address of \(interface) and node id \(node) (several configured nodes run on this host)"
            case .random: "random (no usable MAC address found)"
            }
        }
    }

    /// The file in the state directory holding the id: `01:23:45:67:89:ab` and a newline.
    static let fileName = "entity_id"

    var stateDirectory: String
    /// Where network interfaces are listed (`/sys/class/net`; tests pass their own).
    var interfacesDirectory = "/sys/class/net"
    /// Six random bytes (tests pass a fixed source).
    var randomBytes: () -> [UInt8]? = EntityIdentity.urandom
    /// Set when several configured nodes run on this host (`sharesHost`): their MAC address is
    /// the same, so this node's id is mixed into the derived entity id to keep them apart.
    var sharedHostNodeID: NodeID?

    var filePath: String { stateDirectory + "/" + Self.fileName }

    /// The id to use, where it came from, and a warning when the stored file was unusable.
    ///
    /// The file has a kept copy, `entity_id.prev` (`KeptCopyFile.sameContent`): a missing or
    /// unusable file falls back to it (with a warning, and the file is restored from it). A
    /// derived or random id is written to both when neither is usable.
    /// - Throws: `FileSystemError` when a new id cannot be stored.
    func resolve(configured: EntityID?) throws(FileSystemError) -> (id: EntityID, source: Source, warning: String?) {
        if let configured { return (configured, .configuration, nil) }
        let file = KeptCopyFile(path: filePath, policy: .sameContent)
        var warning: String?
        switch file.read(limit: 64, decode: Self.decode) {
        case .absent:
            break
        case .file(let stored):
            return (stored, .stateFile(filePath), nil)
        case .copy(let stored, let fileProblem):
            var message = "the entity id file \(filePath) is \(fileProblem); using its kept copy \(file.copyPath) (\(stored))"
            do {
                if let aside = try file.restoreFromCopy(mode: 0o644) { message += "; the unusable file is kept as \(aside)" }
            } catch {
                message += "; cannot restore the file from the copy (\(error))"
            }
            return (stored, .stateFile(file.copyPath), message)
        case .unusable(let fileProblem, let copyProblem):
            warning = "the entity id file \(filePath) is \(fileProblem) and its kept copy \(file.copyPath) is \(copyProblem) "
                + "(an entity id is like 01:23:45:67:89:ab); replacing both"
        }
        let id: EntityID
        let source: Source
        if let (mac, interface) = firstMACAddress() {
            if let node = sharedHostNodeID {
                (id, source) = (Self.mixing(node, into: mac), .macAddressAndNodeID(interface: interface, node: node))
            } else {
                (id, source) = (mac, .macAddress(interface: interface))
            }
        } else {
            (id, source) = (try randomID(), .random)
        }
        do {
            try file.write(Array("\(id)\n".utf8), mode: 0o644)
        } catch {
            throw FileSystemError(filePath, error.description)
        }
        return (id, source, warning)
    }

    /// `mac` with the node id XORed into its last four octets and the locally administered bit
    /// set (and the multicast bit cleared): distinct for distinct node ids on one MAC address,
    /// and never a real (universally administered) MAC address.
    static func mixing(_ node: NodeID, into mac: EntityID) -> EntityID {
        var octets = mac.octets
        octets[0] = (octets[0] | 0x02) & 0xFE
        for index in 0..<4 { octets[2 + index] ^= UInt8(truncatingIfNeeded: node.rawValue >> UInt32(24 - 8 * index)) }
        return EntityID(octets: octets) ?? mac
    }

    /// Whether several `[node]`s of `configuration` run on this host: their addresses are
    /// loopback addresses or addresses of its interfaces.
    static func sharesHost(_ configuration: DaemonConfiguration, localAddresses: [DaemonConfiguration.IPAddress]) -> Bool {
        configuration.nodes.count { $0.address.isLoopback || localAddresses.contains($0.address) } > 1
    }

    /// An id like `01:23:45:67:89:ab`, with optional surrounding whitespace.
    static func decode(_ bytes: [UInt8]) throws -> EntityID {
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let id = EntityID(parsing: text) else { throw MalformedEntityID() }
        return id
    }

    struct MalformedEntityID: Error, CustomStringConvertible {
        var description: String { "not an entity id" }
    }

    /// The address of the first interface, by name, that is not loopback and not all zeros.
    func firstMACAddress() -> (EntityID, String)? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: interfacesDirectory) else { return nil }
        for name in names.sorted() where name != "lo" {
            guard let bytes = try? FileSystem.readFile("\(interfacesDirectory)/\(name)/address", limit: 128) else { continue }
            let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let id = EntityID(parsing: text), id.octets.contains(where: { $0 != 0 }) else { continue }
            return (id, name)
        }
        return nil
    }

    private func randomID() throws(FileSystemError) -> EntityID {
        guard var bytes = randomBytes(), bytes.count == 6 else { throw FileSystemError("/dev/urandom", "cannot read random bytes") }
        // A locally administered, unicast address: it cannot collide with a real MAC address.
        bytes[0] = (bytes[0] | 0x02) & 0xFE
        guard let id = EntityID(octets: bytes) else { throw FileSystemError("/dev/urandom", "cannot read random bytes") }
        return id
    }

    /// Six bytes from /dev/urandom.
    static func urandom() -> [UInt8]? {
        guard let handle = fopen("/dev/urandom", "rb") else { return nil }
        defer { fclose(handle) }
        var bytes = [UInt8](repeating: 0, count: 6)
        guard fread(&bytes, 1, 6, handle) == 6 else { return nil }
        return bytes
    }
}
