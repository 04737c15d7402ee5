// How a DaemonConfiguration is resolved from the per-section drafts: what depends on several
// sections (node ids, transport, crypto, the Totem settings), and the value parsers and spelling
// suggestions the readers share. Every problem becomes a ConfigurationError with its file, line
// and option.

import Totem

// MARK: - Reading: what depends on several sections

extension ConfigurationReader {
    mutating func resolve(
        totem: TotemDraft, nodeList: NodeList, options: OptionsDraft,
        channels: [Model.EventChannel], hints: [Model.Hint]
    ) -> DaemonConfiguration? {
        let nodes = nodeList.nodes
        if !totem.hasClusterNameEntry {
            fail(totem.sectionLine, "totem", "cluster_name", .missingOption(expected: "1-64 printable ASCII characters naming the cluster"))
        }
        checkUniqueness(of: nodes)
        checkAddressFamilies(totem: totem, nodes: nodes)
        let localID = nodeList.isComplete ? resolveLocalNodeID(totem: totem, nodes: nodes, options: options) : nil
        let transport = nodeList.isComplete ? resolveTransport(totem: totem, nodes: nodes, localID: localID) : nil
        let settings = resolveSettings(totem, nodeCount: nodes.count)
        let crypto = resolveCrypto(totem, nodes: nodes)
        let paths = host.defaultPaths()
        guard errors.isEmpty, let clusterName = totem.clusterName, let localID, let transport, let crypto,
              let port = UInt16(exactly: totem.port.value)
        else { return nil }
        var modelOptions = Model.Options(nodeID: localID, entityID: options.entityID,
                                         controlSocket: options.controlSocket ?? paths.controlSocket,
                                         controlSocketGroup: options.controlSocketGroup,
                                         stateDirectory: options.stateDirectory ?? paths.stateDirectory,
                                         logLevel: options.logLevel)
        if let maxDevices = options.maxDevices { modelOptions.maxDevices = maxDevices }
        if let maxMailboxes = options.maxMailboxes { modelOptions.maxMailboxes = maxMailboxes }
        if let maxRetainedBytes = options.maxRetainedBytes { modelOptions.maxRetainedBytes = maxRetainedBytes }
        var totemSection = Model.TotemSection(clusterName: clusterName, transport: transport, port: port,
                                              netMTU: totem.netMTU, crypto: crypto, settings: settings)
        totemSection.segmentationOffload = totem.segmentationOffload
        if let ttl = totem.multicastTTL { totemSection.multicastTTL = ttl.value }
        totemSection.portUnreachable = totem.portUnreachable
        return DaemonConfiguration(
            totem: totemSection,
            nodes: nodes.map { Model.Node(id: $0.id.value, name: $0.name.value, address: $0.address.value) },
            options: modelOptions,
            eventChannels: channels, hints: hints)
    }

    /// Node ids, names and addresses are unique; each duplicate names the earlier line.
    private mutating func checkUniqueness(of nodes: [NodeDraft]) {
        for (index, node) in nodes.enumerated() {
            let earlier = nodes[..<index]
            if let first = earlier.first(where: { $0.id.value == node.id.value }) {
                fail(node.id.line, "node", "nodeid", .duplicateValue("node id \(node.id.value)", firstLine: first.id.line))
            }
            if let first = earlier.first(where: { $0.name.value == node.name.value }) {
                fail(node.name.line, "node", "name", .duplicateValue("name \"\(node.name.value)\"", firstLine: first.name.line))
            }
            if let first = earlier.first(where: { $0.address.value == node.address.value }) {
                fail(node.address.line, "node", "addr", .duplicateValue("address \(node.address.value)", firstLine: first.address.line))
            }
        }
    }

    /// One cluster speaks one address family: every address must match the first one given.
    private mutating func checkAddressFamilies(totem: TotemDraft, nodes: [NodeDraft]) {
        var addresses: [(option: String, section: String, address: Located<Model.IPAddress>)] =
            nodes.map { ("addr", "node", $0.address) }
        if let bind = totem.bindNetwork { addresses.append(("bindnetaddr", "totem", bind)) }
        if let group = totem.multicastAddress { addresses.append(("mcastaddr", "totem", group)) }
        guard let anchor = addresses.first else { return }
        for other in addresses.dropFirst() where other.address.value.isIPv4 != anchor.address.value.isIPv4 {
            let reference = anchor.section == "node" ? "the [node] addr \(anchor.address.value)" : "\(anchor.option) \(anchor.address.value)"
            fail(other.address.line, other.section, other.option, .addressFamilyMismatch(
                address: other.address.value.description, reference: reference, referenceLine: anchor.address.line))
        }
    }

    /// This server's node id (spec of `Options.nodeID`); `nil` after reporting why it is unknown.
    private mutating func resolveLocalNodeID(totem: TotemDraft, nodes: [NodeDraft], options: OptionsDraft) -> NodeID? {
        if let configured = options.nodeID {
            if !nodes.isEmpty && !nodes.contains(where: { $0.id.value == configured.value }) {
                fail(configured.line, "options", "nodeid",
                     .nodeNotListed(configured.value.rawValue, listed: nodes.map(\.id.value.rawValue)))
            }
            return configured.value
        }
        if !nodes.isEmpty {
            let interfaces = host.interfaceAddresses()
            let local = nodes.filter { node in interfaces.contains { $0.owns(node.address.value) } }
            switch local.count {
            case 1: return local[0].id.value
            case 0: fail(options.sectionLine, "options", "nodeid",
                         .localNodeNotFound(localAddresses: interfaces.map(\.address.description)))
            default: fail(options.sectionLine, "options", "nodeid",
                          .localNodeAmbiguous(candidates: local.map(\.id.value.rawValue)))
            }
            return nil
        }
        // No node list: udpu is reported by the transport check; udp derives the id, as
        // corosync does, from the IPv4 address of the interface in bindnetaddr's network.
        guard !totem.isUnicast, let bind = totem.bindNetwork else { return nil }
        guard bind.value.isIPv4 else {
            fail(bind.line, "totem", "bindnetaddr", .cannotDeriveNodeID(fromAddress: bind.value.description))
            return nil
        }
        let interfaces = host.interfaceAddresses()
        guard let interface = interfaces.first(where: { $0.address.sharesPrefix(with: bind.value, length: $0.prefixLength) }) else {
            fail(bind.line, "totem", "bindnetaddr", .noInterfaceInNetwork(
                network: bind.value.description, localAddresses: interfaces.map(\.address.description)))
            return nil
        }
        guard let raw = interface.address.ipv4Value, raw != UInt32.max, let id = NodeID(rawValue: raw) else {
            fail(bind.line, "totem", "bindnetaddr", .cannotDeriveNodeID(fromAddress: interface.address.description))
            return nil
        }
        return id
    }

    private mutating func resolveTransport(totem: TotemDraft, nodes: [NodeDraft], localID: NodeID?) -> Model.Transport? {
        if totem.isTransportInvalid { return nil }
        if totem.isUnicast {
            if nodes.isEmpty { fail(totem.transportLine ?? totem.sectionLine, "totem", "transport", .unicastWithoutNodes) }
            if let bind = totem.bindNetwork { fail(bind.line, "totem", "bindnetaddr", .onlyForMulticastTransport) }
            if let group = totem.multicastAddress { fail(group.line, "totem", "mcastaddr", .onlyForMulticastTransport) }
            if let ttl = totem.multicastTTL { fail(ttl.line, "totem", "ttl", .onlyForMulticastTransport) }
            return .udpu
        }
        if totem.port.value < 2 {
            fail(totem.port.line, "totem", "mcastport", .invalidValue(
                got: String(totem.port.value), expected: "a port number 2-65535 (udp also sends from the port below)"))
        }
        let localAddress = nodes.first { $0.id.value == localID }?.address.value
        guard let bindNetwork = totem.bindNetwork?.value ?? localAddress else {
            if nodes.isEmpty {
                fail(totem.sectionLine, "totem", "bindnetaddr", .missingOption(
                    expected: "the network to bind on (udp needs bindnetaddr or a [node] list naming this server)"))
            }
            return nil
        }
        let group = totem.multicastAddress?.value ?? Model.defaultMulticastAddress(
            clusterName: totem.clusterName ?? "", ipv6: !bindNetwork.isIPv4)
        return .udp(bindNetwork: bindNetwork, multicastAddress: group)
    }

    private mutating func resolveCrypto(_ totem: TotemDraft, nodes: [NodeDraft]) -> Model.Crypto? {
        switch (totem.crypto?.value, totem.keyFile) {
        case (nil, nil):
            // Unauthenticated only where nobody else can send: every address on loopback (the
            // built-in one-node default, test clusters on one machine). Elsewhere it takes an
            // explicit `crypto = none`.
            let addresses = nodes.map(\.address.value) + [totem.bindNetwork?.value].compactMap { $0 }
            // Reported last, once the rest of the file is valid: with other errors the addresses
            // may be incomplete, and the fix (a key, or crypto = none) is the same either way.
            let exposed = addresses.filter { !$0.isLoopback }
            if !exposed.isEmpty && errors.isEmpty {
                fail(totem.sectionLine, "totem", "crypto", .keyRequired(addresses: exposed.map(\.description)))
                return nil
            }
            return Model.Crypto.none
        case (nil, let keyFile?), ("hmac-sha256", let keyFile?): return .hmacSHA256(keyFile: keyFile.value)
        case ("chacha20-poly1305", let keyFile?): return .chaCha20Poly1305(keyFile: keyFile.value)
        case ("none", nil): return Model.Crypto.none
        case ("none", let keyFile?):
            fail(totem.crypto?.line, "totem", "crypto", .keyFileWithoutCrypto(keyFileLine: keyFile.line))
            return nil
        case (let name?, nil):
            fail(totem.crypto?.line, "totem", "crypto", .cryptoNeedsKeyFile(crypto: name))
            return nil
        case (_?, _?):
            return nil  // An unknown name was reported while reading [totem].
        }
    }

    /// Applies the node count and turns each `TotemSettings.validate()` problem into an error,
    /// placed on the line of the option it starts with when the file sets that option.
    private mutating func resolveSettings(_ totem: TotemDraft, nodeCount: Int) -> TotemSettings {
        var settings = totem.settings
        settings.configuredNodeCount = nodeCount
        for problem in settings.validate() {
            let firstWord = String(problem.prefix { $0.isLetter || $0 == "_" })
            if let line = totem.numericOptionLines[firstWord] {
                fail(line, "totem", firstWord, .totemSettings(problem))
            } else {
                fail(totem.sectionLine, "totem", nil, .totemSettings(problem))
            }
        }
        return settings
    }
}

// MARK: - Reading: values

extension ConfigurationReader {
    /// A decimal number without sign in `range`, or `nil`.
    static func decimal(_ text: String, in range: ClosedRange<Int>) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        let significant = text.drop { $0 == "0" }
        // At most 18 digits fit an Int without overflow; longer is out of any range we use.
        guard significant.utf8.count <= 18 else { return nil }
        guard let value = significant.isEmpty ? 0 : Int(significant), range.contains(value) else { return nil }
        return value
    }

    static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "yes", "on", "true", "1": true
        case "no", "off", "false", "0": false
        default: nil
        }
    }

    static func isAbsolutePath(_ text: String) -> Bool { text.hasPrefix("/") && !text.utf8.contains(0) }

    static func isValidClusterName(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy { (0x20...0x7E).contains($0) }
    }

    /// Non-empty and without whitespace.
    static func isWord<Text: StringProtocol>(_ text: Text) -> Bool {
        !text.isEmpty && !text.contains { $0.isWhitespace }
    }

    /// The built-in event type a client type is a near miss of (`devicestate`, `mwl`), if any:
    /// within edit distance 2 of `device_state` or 1 of `mwi`, and not equal to it.
    static func builtInTypeNear(_ type: Model.EventType) -> String? {
        let word = Array(type.rawValue)
        for (builtIn, distance) in [(Model.EventType.deviceState, 2), (.mwi, 1)] where type != builtIn {
            if editDistance(word, Array(builtIn.rawValue)) <= distance { return builtIn.rawValue }
        }
        return nil
    }

    /// The candidate within edit distance 2 of `word` (transpositions count 1), closest first.
    static func closest(to word: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(Array(word), Array($0))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2 else { return nil }
        return best.0
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and adjacent
    /// transpositions each cost 1.
    static func editDistance(_ left: [Character], _ right: [Character]) -> Int {
        if left.isEmpty { return right.count }
        if right.isEmpty { return left.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: right.count + 1), count: left.count + 1)
        for i in 0...left.count { table[i][0] = i }
        for j in 0...right.count { table[0][j] = j }
        for i in 1...left.count {
            for j in 1...right.count {
                let cost = left[i - 1] == right[j - 1] ? 0 : 1
                var distance = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, left[i - 1] == right[j - 2], left[i - 2] == right[j - 1] {
                    distance = min(distance, table[i - 2][j - 2] + 1)
                }
                table[i][j] = distance
            }
        }
        return table[left.count][right.count]
    }
}
