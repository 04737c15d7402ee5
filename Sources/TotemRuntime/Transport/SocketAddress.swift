// An IPv4 or IPv6 address with a UDP port, as a small value: parsing, printing, and conversion to
// and from the kernel's sockaddr structures. Owns no socket and resolves no host names.

import Glibc
import Totem

/// An IPv4 or IPv6 address and a UDP port.
///
/// Stored as plain integers so that comparing the source address of every received datagram with
/// the configured node list costs a few instructions and no allocation.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address family.
    public enum Family: Sendable, Hashable {
        case ipv4
        case ipv6
    }

    public let family: Family
    /// The UDP port, in host byte order.
    public let port: UInt16
    /// The address bytes in network order: IPv4 uses the first four, IPv6 all sixteen.
    private let addressBytes: (UInt64, UInt64)
    /// The IPv6 scope (interface index) for link-local addresses; 0 otherwise.
    public let scopeID: UInt32

    /// Parses a numeric IPv4 (`192.0.2.1`) or IPv6 (`2001:db8::1`, `fe80::1%eth0`) address.
    ///
    /// - Returns: `nil` if `ip` is neither; host names are not resolved.
    public init?(ip: String, port: UInt16) {
        var ipv4 = in_addr()
        if inet_pton(AF_INET, ip, &ipv4) == 1 {
            self.init(ipv4: ipv4, port: port)
            return
        }
        var text = Substring(ip)
        var scope: UInt32 = 0
        if let percent = ip.firstIndex(of: "%") {
            text = ip[..<percent]
            let interface = String(ip[ip.index(after: percent)...])
            scope = UInt32(interface) ?? if_nametoindex(interface)
            guard scope != 0 else { return nil }
        }
        var ipv6 = in6_addr()
        guard inet_pton(AF_INET6, String(text), &ipv6) == 1 else { return nil }
        self.init(ipv6: ipv6, port: port, scopeID: scope)
    }

    /// Wraps a kernel IPv4 address.
    public init(ipv4 address: in_addr, port: UInt16) {
        family = .ipv4
        self.port = port
        addressBytes = (UInt64(address.s_addr), 0)
        scopeID = 0
    }

    /// Wraps a kernel IPv6 address.
    public init(ipv6 address: in6_addr, port: UInt16, scopeID: UInt32 = 0) {
        family = .ipv6
        self.port = port
        var bytes: (UInt64, UInt64) = (0, 0)
        withUnsafeBytes(of: address) { source in
            withUnsafeMutableBytes(of: &bytes) { $0.copyMemory(from: source) }
        }
        addressBytes = bytes
        self.scopeID = scopeID
    }

    /// Reads a source address filled in by the kernel (`recvmsg`'s `msg_name`).
    ///
    /// - Returns: `nil` for a family other than IPv4 or IPv6, or a length too short for it.
    public init?(_ storage: UnsafeRawPointer, length: Int) {
        guard length >= MemoryLayout<sa_family_t>.size else { return nil }
        let family = storage.loadUnaligned(as: sa_family_t.self)
        if Int32(family) == AF_INET, length >= MemoryLayout<sockaddr_in>.size {
            let address = storage.loadUnaligned(as: sockaddr_in.self)
            self.init(ipv4: address.sin_addr, port: UInt16(bigEndian: address.sin_port))
        } else if Int32(family) == AF_INET6, length >= MemoryLayout<sockaddr_in6>.size {
            let address = storage.loadUnaligned(as: sockaddr_in6.self)
            self.init(ipv6: address.sin6_addr, port: UInt16(bigEndian: address.sin6_port), scopeID: address.sin6_scope_id)
        } else {
            return nil
        }
    }

    /// The same address with another port.
    public func with(port: UInt16) -> SocketAddress {
        SocketAddress(family: family, port: port, addressBytes: addressBytes, scopeID: scopeID)
    }

    private init(family: Family, port: UInt16, addressBytes: (UInt64, UInt64), scopeID: UInt32) {
        self.family = family
        self.port = port
        self.addressBytes = addressBytes
        self.scopeID = scopeID
    }

    /// The kernel IPv4 address; meaningful only when `family == .ipv4`.
    public var ipv4Address: in_addr { in_addr(s_addr: UInt32(truncatingIfNeeded: addressBytes.0)) }

    /// The kernel IPv6 address; meaningful only when `family == .ipv6`.
    public var ipv6Address: in6_addr {
        var address = in6_addr()
        withUnsafeBytes(of: addressBytes) { source in
            withUnsafeMutableBytes(of: &address) { $0.copyMemory(from: source) }
        }
        return address
    }

    /// Whether this is a multicast group address (224.0.0.0/4 or ff00::/8).
    public var isMulticast: Bool {
        switch family {
        case .ipv4: (UInt32(bigEndian: ipv4Address.s_addr) >> 28) == 0xE
        case .ipv6: withUnsafeBytes(of: addressBytes) { $0[0] == 0xFF }
        }
    }

    /// The wildcard address of `family` (`0.0.0.0` or `::`).
    public static func any(_ family: Family, port: UInt16) -> SocketAddress {
        switch family {
        case .ipv4: SocketAddress(ipv4: in_addr(s_addr: 0), port: port)
        case .ipv6: SocketAddress(ipv6: in6_addr(), port: port)
        }
    }

    /// The numeric address without the port.
    public var ip: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch family {
        case .ipv4:
            var address = ipv4Address
            _ = inet_ntop(AF_INET, &address, &text, socklen_t(text.count))
        case .ipv6:
            var address = ipv6Address
            _ = inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
        }
        let ip = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return scopeID == 0 ? ip : "\(ip)%\(scopeID)"
    }

    /// `192.0.2.1:5405` or `[2001:db8::1]:5405`.
    public var description: String {
        switch family {
        case .ipv4: "\(ip):\(port)"
        case .ipv6: "[\(ip)]:\(port)"
        }
    }

    /// Writes the kernel form of this address into `storage`.
    ///
    /// - Returns: the length of the written structure, for `bind`, `sendto` or `msg_namelen`.
    @discardableResult
    func write(to storage: UnsafeMutablePointer<sockaddr_storage>) -> socklen_t {
        storage.initialize(to: sockaddr_storage())
        let raw = UnsafeMutableRawPointer(storage)
        switch family {
        case .ipv4:
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr = ipv4Address
            raw.storeBytes(of: address, as: sockaddr_in.self)
            return socklen_t(MemoryLayout<sockaddr_in>.size)
        case .ipv6:
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            address.sin6_addr = ipv6Address
            address.sin6_scope_id = scopeID
            raw.storeBytes(of: address, as: sockaddr_in6.self)
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }

    /// Calls `body` with the kernel form of this address.
    func withSocketAddress<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        var storage = sockaddr_storage()
        let length = write(to: &storage)
        return withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    public static func == (lhs: SocketAddress, rhs: SocketAddress) -> Bool {
        lhs.family == rhs.family && lhs.port == rhs.port && lhs.scopeID == rhs.scopeID
            && lhs.addressBytes.0 == rhs.addressBytes.0 && lhs.addressBytes.1 == rhs.addressBytes.1
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(family)
        hasher.combine(port)
        hasher.combine(addressBytes.0)
        hasher.combine(addressBytes.1)
        hasher.combine(scopeID)
    }

    /// Whether `other` has the same address, ignoring the port.
    public func hasSameIP(as other: SocketAddress) -> Bool {
        family == other.family && addressBytes.0 == other.addressBytes.0 && addressBytes.1 == other.addressBytes.1
            && scopeID == other.scopeID
    }
}
