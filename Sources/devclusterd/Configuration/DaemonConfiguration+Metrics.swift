// `[metrics]`: where the Prometheus endpoint listens, when it is wanted (opt-in). The model, its
// reading from the file and its writing back; the HTTP side lives in MetricsServer.

extension DaemonConfiguration {
    /// `[metrics]`: the Prometheus text endpoint (`GET /metrics`). Absent: no endpoint.
    public struct Metrics: Sendable, Equatable {
        /// `listen`: the TCP address and port, `127.0.0.1:9405` or `[::1]:9405`.
        public var listen: Endpoint

        public init(listen: Endpoint) {
            self.listen = listen
        }
    }

    /// A TCP address and port, written `ADDRESS:PORT` (IPv4) or `[ADDRESS]:PORT` (IPv6).
    public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
        public var address: IPAddress
        public var port: UInt16

        public init(address: IPAddress, port: UInt16) {
            self.address = address
            self.port = port
        }

        /// Parses `192.0.2.1:9405` or `[2001:db8::1]:9405`; `nil` for anything else (no host
        /// names, no port 0, no bare IPv6 address without brackets).
        public init?(parsing text: String) {
            let addressText: Substring
            let portText: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]") else { return nil }
                addressText = text[text.index(after: text.startIndex)..<close]
                let rest = text[text.index(after: close)...]
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
                guard let address = IPAddress(String(addressText)), !address.isIPv4 else { return nil }
                self.address = address
            } else {
                guard let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon else { return nil }
                addressText = text[..<colon]
                portText = text[text.index(after: colon)...]
                guard let address = IPAddress(String(addressText)), address.isIPv4 else { return nil }
                self.address = address
            }
            guard let port = ConfigurationReader.decimal(String(portText), in: 1...65_535) else { return nil }
            self.port = UInt16(port)
        }

        /// `127.0.0.1:9405`, `[::1]:9405`.
        public var description: String {
            address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
        }
    }
}

extension ConfigurationKeys {
    static let metrics = ["listen"]
}

extension ConfigurationReader {
    /// Reads `[metrics]`: `listen` is required (the section exists to turn the endpoint on).
    mutating func readMetrics(_ section: INISection) -> DaemonConfiguration.Metrics? {
        rejectUnknownKeys(in: section, named: "metrics", valid: ConfigurationKeys.metrics)
        let expected = "ADDRESS:PORT to serve Prometheus metrics on, e.g. 127.0.0.1:9405 or [::1]:9405 (no host names)"
        guard let entry = section.entry("listen") else {
            fail(section.line, "metrics", "listen", .missingOption(expected: expected))
            return nil
        }
        guard let endpoint = DaemonConfiguration.Endpoint(parsing: entry.value) else {
            invalid(entry, "metrics", expected)
            return nil
        }
        return DaemonConfiguration.Metrics(listen: endpoint)
    }
}

extension DaemonConfiguration.Metrics {
    /// The section as file lines.
    var fileLines: [String] {
        ["", "[metrics]", "listen = \(listen)"]
    }
}
