// Tests of devcluster.conf: the INI reader, the typed model, every class of error with its exact
// text and line, derivations (multicast address, node id, paths) and the embedded default.

import Foundation
import Testing
import DeviceState
import Totem
import TotemRuntime
@testable import devclusterd

// MARK: - Fixtures

/// A non-root user with a runtime directory, on a server whose eth0 is 10.19.2.255/16.
private let testHost = HostEnvironment(
    userID: 1000,
    variables: ["XDG_RUNTIME_DIR": "/run/user/1000"],
    hostName: "server1",
    isWritableDirectory: { $0 == "/run/user/1000" },
    interfaceAddresses: {
        [
            HostEnvironment.InterfaceAddress(address: address("127.0.0.1"), prefixLength: 8, isLoopback: true),
            HostEnvironment.InterfaceAddress(address: address("10.19.2.255"), prefixLength: 16),
            HostEnvironment.InterfaceAddress(address: address("fe80::1"), prefixLength: 64),
        ]
    },
    lookUpUser: { ["asterisk": 110, "zabbix": 120][$0] },
    lookUpGroup: { ["asterisk": 110, "monitoring": 130][$0] })

private func address(_ text: String) -> DaemonConfiguration.IPAddress {
    guard let address = DaemonConfiguration.IPAddress(text) else {
        Issue.record("test fixture \(text) is not an address")
        return DaemonConfiguration.IPAddress(bytes: [0, 0, 0, 0])!
    }
    return address
}

private func parse(_ text: String, host: HostEnvironment = testHost) throws(ConfigurationErrors) -> DaemonConfiguration {
    try DaemonConfiguration.parse(text: text, path: "devcluster.conf", host: host)
}

/// The rendered errors of a text that must not parse.
private func errors(_ text: String, host: HostEnvironment = testHost) -> [String] {
    do {
        let configuration = try DaemonConfiguration.parse(text: text, path: "devcluster.conf", host: host)
        Issue.record("expected errors, got \(configuration)")
        return []
    } catch {
        return error.errors.map(\.description)
    }
}

/// The example of the file format, as documented (line numbers matter to the tests below).
private let fullExample = """
    [totem]
    cluster_name = pbx          ; packets of another cluster are ignored
    transport = udp             ; udp | udpu
    bindnetaddr = 10.19.0.0     ; udp: the network to bind on
    mcastaddr = 239.192.94.1    ; udp
    mcastport = 5405
    token = 1000                ; ms; the other timers derive from it (totem-spec)
    keyfile = /etc/devcluster/authkey

    [node]                      ; repeated; required for udpu, names the nodes for udp
    nodeid = 1
    name = server1
    addr = 10.19.2.255

    [options]
    nodeid = 1                  ; this server (else derived from its address)
    entity_id = 01:23:45:67:89:ab   ; else derived from a MAC address
    control_socket = /run/devcluster/devclusterd.sock
    state_dir = /var/lib/devcluster

    [device_state]              ; event channels, as in the seed's ais.conf
    type = event_channel
    publish_event = device_state
    subscribe_event = device_state

    [hints]
    1234@devstate_test = Custom:mystate

    """

/// A valid udp `[totem]` to which tests append lines (3 lines).
private let udpTotem = "[totem]\ncluster_name = pbx\nbindnetaddr = 10.19.0.0\n"

/// A valid udpu header to which tests append sections (5 lines).
private let udpuTotem = """
    [totem]
    cluster_name = pbx
    transport = udpu

    [node]
    """

// MARK: - Whole files

@Test func fullExampleParsesToTheModel() throws {
    let configuration = try parse(fullExample)
    var settings = DaemonConfiguration.defaultTotemSettings
    settings.token = .milliseconds(1000)
    settings.configuredNodeCount = 1
    let expected = DaemonConfiguration(
        totem: .init(clusterName: "pbx",
                     transport: .udp(bindNetwork: address("10.19.0.0"), multicastAddress: address("239.192.94.1")),
                     port: 5405, netMTU: 1500, crypto: .hmacSHA256(keyFile: "/etc/devcluster/authkey"), settings: settings),
        nodes: [.init(id: NodeID(1), name: "server1", address: address("10.19.2.255"))],
        options: .init(nodeID: NodeID(1), entityID: .init(octets: [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB]),
                       controlSocket: "/run/devcluster/devclusterd.sock", controlSocketGroup: nil,
                       stateDirectory: "/var/lib/devcluster", logLevel: .info),
        eventChannels: [.init(name: "device_state", publishes: [.deviceState], subscribes: [.deviceState])],
        hints: [.init(exten: "1234", context: "devstate_test", devices: ["Custom:mystate"])])
    #expect(configuration == expected)
    #expect(configuration.localNode?.name == "server1")
    #expect(configuration.options.entityID?.description == "01:23:45:67:89:ab")
}

/// The seed's openais.conf interface block and ais.conf channels, with no node list: the node id
/// is derived from the IPv4 address of the interface in bindnetaddr's network, as corosync does
/// (the seed's CLI shows node 10.19.2.255 as ID 0xa1302ff).
@Test func seedLikeMinimalConfiguration() throws {
    let configuration = try parse("""
        [totem]
        cluster_name = asterisk
        bindnetaddr = 10.19.0.0
        mcastaddr = 226.94.1.1
        mcastport = 5405
        # The seed ran openais without a key; devcluster wants that said.
        crypto = none

        [device_state]
        type=event_channel
        publish_event=device_state
        subscribe_event=device_state

        [mwi]
        type=event_channel
        publish_event=mwi
        subscribe_event=mwi
        """)
    #expect(configuration.options.nodeID == NodeID(0x0A13_02FF))
    #expect(configuration.totem.transport == .udp(bindNetwork: address("10.19.0.0"), multicastAddress: address("226.94.1.1")))
    #expect(configuration.totem.crypto == .none)
    // corosync's timers; window_size 160 and max_messages 80 instead of its 50 and 17.
    #expect(configuration.totem.settings == DaemonConfiguration.defaultTotemSettings)
    #expect(configuration.totem.settings.token == TotemSettings().token)
    #expect(configuration.totem.settings.windowSize == 160 && configuration.totem.settings.maxMessages == 80)
    #expect(configuration.totem.segmentationOffload)
    #expect(configuration.nodes.isEmpty)
    #expect(configuration.eventChannels.map(\.name) == ["device_state", "mwi"])
    #expect(configuration.eventChannels[1].publishes == [.mwi])
    #expect(configuration.options.controlSocket == "/run/user/1000/devcluster/devclusterd.sock")
    #expect(configuration.options.stateDirectory == "/tmp/devcluster-1000/state")
    #expect(configuration.options.logLevel == .info)
}

@Test func everyOptionMapsOntoTheModel() throws {
    let configuration = try parse("""
        [totem]
        cluster_name = pbx
        transport = UDPU
        mcastport = 6000
        netmtu = 9000
        segmentation_offload = no
        port_unreachable = no
        token = 2000
        token_coefficient = 0
        token_retransmit = 400
        token_retransmits_before_loss_const = 3
        hold = 300
        join = 60
        consensus = 2500
        merge = 250
        window_size = 100
        max_messages = 20
        miss_count_const = 6
        fail_recv_const = 3000
        seqno_unchanged_const = 40
        cancel_token_hold_on_retransmit = yes
        keyfile = /etc/devcluster/authkey
        crypto = chacha20-poly1305

        [node]
        nodeid = 1
        addr = 10.19.2.255
        [node]
        nodeid = 2
        addr = 10.19.6.187

        [options]
        control_socket_group = asterisk
        log_level = Debug

        [control]
        groups = asterisk
        """)
    var settings = TotemSettings()
    settings.token = .milliseconds(2000)
    settings.tokenCoefficient = .zero
    settings.tokenRetransmitOverride = .milliseconds(400)
    settings.tokenRetransmitsBeforeLoss = 3
    settings.holdOverride = .milliseconds(300)
    settings.join = .milliseconds(60)
    settings.consensusOverride = .milliseconds(2500)
    settings.merge = .milliseconds(250)
    settings.windowSize = 100
    settings.maxMessages = 20
    settings.missCountConstant = 6
    settings.failToReceiveConstant = 3000
    settings.sequenceUnchangedConstant = 40
    settings.cancelHoldOnRetransmit = true
    settings.configuredNodeCount = 2
    var totem = DaemonConfiguration.TotemSection(clusterName: "pbx", transport: .udpu, port: 6000, netMTU: 9000,
                                                 crypto: .chaCha20Poly1305(keyFile: "/etc/devcluster/authkey"), settings: settings)
    totem.segmentationOffload = false
    totem.portUnreachable = false
    #expect(configuration.totem == totem)
    // No [options] nodeid: this server is the [node] whose address is one of its own.
    #expect(configuration.options.nodeID == NodeID(1))
    #expect(configuration.nodes.map(\.name) == ["node1", "node2"])
    #expect(configuration.options.controlSocketGroup == "asterisk")
    #expect(configuration.options.logLevel == .debug)
    #expect(configuration.options.entityID == nil)
}

@Test func fileTextReadsBackToTheSameConfiguration() throws {
    let original = try parse(fullExample + "\n[mwi]\ntype = event_channel\nsubscribe_event = mwi\n")
    #expect(try parse(original.fileText) == original)
}

// MARK: - INI syntax

@Test func commentsAndWhitespaceVariants() throws {
    let configuration = try parse("""
        # a whole-line comment
           ; an indented comment

        \t[ Totem ]\t# header comment
        CLUSTER_NAME=pbx\\;east\t; an escaped ";" stays in the value
        Transport   =   udpu#comment without space
        \t
        [node]
        nodeid=1;
        addr=127.0.0.1
        name = a\\#b
        """)
    #expect(configuration.totem.clusterName == "pbx;east")
    #expect(configuration.totem.transport == .udpu)
    #expect(configuration.nodes.map(\.name) == ["a#b"])
}

@Test func crlfAndCarriageReturnLineEndingsAreAccepted() throws {
    let expected = try parse(fullExample)
    let crlf = fullExample.replacingOccurrences(of: "\n", with: "\r\n")
    #expect(try parse(crlf) == expected)
    #expect(try parse("\u{FEFF}" + crlf) == expected)
    #expect(try parse(fullExample.replacingOccurrences(of: "\n", with: "\r")) == expected)
    // Line numbers count CRLF once.
    #expect(errors("[totem]\r\ncluster_name = pbx\r\nbindnetaddr = 10.19.0.0\r\nbogus\r\n") == [
        "devcluster.conf:4: expected \"[section]\", \"key = value\" or a comment, got \"bogus\""
    ])
}

@Test func iniReaderKeepsLinesAndRepeatedSections() {
    let result = INIParser.parse("[node]\nnodeid = 1\n\n[node]\nNodeID = 2\n")
    #expect(result.errors.isEmpty)
    #expect(result.document.sections == [
        INISection(name: "node", line: 1, entries: [INIEntry(key: "nodeid", value: "1", line: 2)]),
        INISection(name: "node", line: 4, entries: [INIEntry(key: "NodeID", value: "2", line: 5)]),
    ])
    #expect(result.document.sections[1].entry("nodeid")?.value == "2")
}

@Test func rejectsALineThatIsNeitherHeaderNorEntry() {
    #expect(errors(udpTotem + "mcastport 5405\n") == [
        "devcluster.conf:4: expected \"[section]\", \"key = value\" or a comment, got \"mcastport 5405\""
    ])
}

@Test func rejectsBrokenSectionHeaders() {
    // Entries below a broken header are skipped, not reported one by one.
    #expect(errors(udpTotem + "[options\nnodeid = 1\nbogus = 2\n") == [
        "devcluster.conf:4: expected \"]\" to close the section header, got \"[options\""
    ])
    #expect(errors(udpTotem + "[]\n[options] extra\n") == [
        "devcluster.conf:4: expected a section name between \"[\" and \"]\"",
        "devcluster.conf:5: expected only a comment after [options], got \"extra\"",
    ])
    // Without any [totem], its required option is reported without a line.
    #expect(errors("[totem\ncluster_name = pbx\nbindnetaddr = 10.19.0.0\n") == [
        "devcluster.conf:1: expected \"]\" to close the section header, got \"[totem\"",
        "devcluster.conf: [totem] cluster_name: missing; expected 1-64 printable ASCII characters naming the cluster",
        "devcluster.conf: [totem] bindnetaddr: missing; expected the network to bind on "
            + "(udp needs bindnetaddr or a [node] list naming this server)",
    ])
}

@Test func rejectsKeysOutsideSectionsAndEmptyKeys() {
    #expect(errors("cluster_name = pbx\n" + udpTotem + " = 5\n") == [
        "devcluster.conf:1: \"cluster_name\" appears before any [section] header",
        "devcluster.conf:5: expected a key before \"=\", got \"= 5\"",
    ])
}

@Test func rejectsADuplicateKeyInOneSection() {
    #expect(errors(udpTotem + "mcastport = 5405\nMcastPort = 5406\n") == [
        "devcluster.conf:5: [totem] McastPort: set twice in one section (first at line 4)"
    ])
}

// MARK: - Sections and options

@Test func rejectsAnUnknownSection() {
    #expect(errors(fullExample + "[foo]\nbar = 1\n") == [
        "devcluster.conf:28: unknown section [foo]; expected one of [totem], [node], [options], [control], [metrics], [hints], "
            + "or an event channel (a section with \"type = event_channel\")"
    ])
}

@Test func rejectsARepeatedSingleSection() {
    #expect(errors(fullExample + "[Totem]\n") == [
        "devcluster.conf:28: [Totem]: section repeated (first at line 1); only [node] may appear more than once"
    ])
}

@Test func segmentationOffloadTakesYesOrNo() throws {
    #expect(try parse(udpTotem + "crypto = none\nsegmentation_offload = off\n").totem.segmentationOffload == false)
    #expect(errors(udpTotem + "segmentation_offload = sometimes\n") == [
        "devcluster.conf:4: [totem] segmentation_offload: expected yes or no, got \"sometimes\""
    ])
}

@Test func portUnreachableTakesYesOrNo() throws {
    #expect(try parse(udpTotem + "crypto = none\n").totem.portUnreachable == true)
    #expect(try parse(udpTotem + "crypto = none\nport_unreachable = no\n").totem.portUnreachable == false)
    #expect(errors(udpTotem + "port_unreachable = maybe\n") == [
        "devcluster.conf:4: [totem] port_unreachable: expected yes or no, got \"maybe\""
    ])
}

@Test func unknownOptionListsValidOptionsAndSuggestsTheClosest() {
    #expect(errors(udpTotem + "mcastprot = 5405\n") == [
        "devcluster.conf:4: [totem] mcastprot: unknown option (did you mean \"mcastport\"?); valid options: "
            + "cluster_name, transport, bindnetaddr, mcastaddr, mcastport, ttl, netmtu, segmentation_offload, port_unreachable, token, "
            + "token_coefficient, "
            + "token_retransmit, token_retransmits_before_loss_const, hold, join, consensus, merge, window_size, "
            + "max_messages, miss_count_const, fail_recv_const, seqno_unchanged_const, "
            + "cancel_token_hold_on_retransmit, keyfile, crypto"
    ])
    #expect(errors(udpuTotem + "\nnodeid = 1\naddr = 127.0.0.1\nport = 5\n") == [
        "devcluster.conf:8: [node] port: unknown option; valid options: nodeid, name, addr"
    ])
}

@Test func rejectsMalformedAndOutOfRangeNumbers() {
    #expect(errors(udpTotem + "token = 10s\njoin = -5\nwindow_size = 99999999999999999999999\n") == [
        "devcluster.conf:4: [totem] token: expected a whole number of milliseconds 30-600000, got \"10s\"",
        "devcluster.conf:5: [totem] join: expected a whole number of milliseconds 1-600000, got \"-5\"",
        "devcluster.conf:6: [totem] window_size: expected a whole number 1-16384, got \"99999999999999999999999\"",
    ])
}

@Test func rejectsAPortOutOfRange() {
    #expect(errors(udpTotem + "mcastport = 70000\nnetmtu = 100\n") == [
        "devcluster.conf:4: [totem] mcastport: expected a port number 1-65535, got \"70000\"",
        "devcluster.conf:5: [totem] netmtu: expected a whole number of bytes 576-65535, got \"100\"",
    ])
    #expect(errors(udpTotem + "mcastport = 54x05\n") == [
        "devcluster.conf:4: [totem] mcastport: expected a port number 1-65535, got \"54x05\""
    ])
}

@Test func rejectsAMulticastAddressThatIsNotMulticast() {
    #expect(errors("[totem]\ncluster_name = pbx\nbindnetaddr = 10.19.0.0\nmcastaddr = 10.19.1.1\n") == [
        "devcluster.conf:4: [totem] mcastaddr: expected a multicast address (224.0.0.0-239.255.255.255 or ff00::/8), "
            + "got \"10.19.1.1\""
    ])
}

@Test func rejectsReservedNodeIDs() {
    for reserved in ["0", "4294967295", "4294967296"] {
        #expect(errors(udpuTotem + "\nnodeid = \(reserved)\naddr = 127.0.0.1\n") == [
            "devcluster.conf:6: [node] nodeid: expected a node id 1-4294967294 (0 and 4294967295 are reserved), "
                + "got \"\(reserved)\""
        ])
    }
}

@Test func duplicateNodeValuesNameBothLines() {
    #expect(errors(udpuTotem + """

        nodeid = 1
        name = a
        addr = 127.0.0.1
        [node]
        nodeid = 1
        name = a
        addr = 127.0.0.1
        [options]
        nodeid = 1
        """) == [
        "devcluster.conf:10: [node] nodeid: node id 1 is already used by the [node] at line 6",
        "devcluster.conf:11: [node] name: name \"a\" is already used by the [node] at line 7",
        "devcluster.conf:12: [node] addr: address 127.0.0.1 is already used by the [node] at line 8",
    ])
}

@Test func aDefaultNodeNameCanCollideWithAnExplicitOne() {
    #expect(errors(udpuTotem + "\nnodeid = 1\nname = node2\naddr = 127.0.0.1\n[node]\nnodeid = 2\naddr = 127.0.0.2\n[options]\nnodeid = 1\n") == [
        "devcluster.conf:9: [node] name: name \"node2\" is already used by the [node] at line 7"
    ])
}

@Test func rejectsMoreNodesThanARingHolds() {
    var text = "[totem]\ncluster_name = pbx\ntransport = udpu\n[options]\nnodeid = 1\n"
    for id in 1...33 { text += "[node]\nnodeid = \(id)\naddr = 10.0.0.\(id)\n" }
    // Lines: 5 of header, then 3 per node; the 33rd [node] starts at line 5 + 32·3 + 1.
    #expect(errors(text) == ["devcluster.conf:102: [node]: 33 [node] sections, but a ring has at most 32 nodes"])
}

@Test func rejectsMixedAddressFamilies() {
    #expect(errors(udpuTotem + "\nnodeid = 1\naddr = 10.19.2.255\n[node]\nnodeid = 2\naddr = fe80::2\n") == [
        "devcluster.conf:10: [node] addr: fe80::2 is not of the address family of the [node] addr 10.19.2.255 (line 7); "
            + "one cluster uses either IPv4 or IPv6"
    ])
}

// MARK: - Transport and this node

@Test func udpuWithoutNodesIsRejected() {
    #expect(errors("[totem]\ncluster_name = pbx\ntransport = udpu\n[options]\nnodeid = 1\n") == [
        "devcluster.conf:3: [totem] transport: udpu needs at least one [node] section listing the peers"
    ])
}

@Test func anUnknownTransportIsReportedWithoutFollowOnErrors() {
    #expect(errors("[totem]\ncluster_name = pbx\ntransport = tcp\n") == [
        "devcluster.conf:3: [totem] transport: expected \"udp\" (multicast) or \"udpu\" (unicast to each [node]), got \"tcp\""
    ])
}

@Test func udpuRejectsMulticastOptions() {
    #expect(errors(udpuTotem.replacingOccurrences(of: "transport = udpu", with: "transport = udpu\nmcastaddr = 239.1.1.1")
                   + "\nnodeid = 1\naddr = 127.0.0.1\n") == [
        "devcluster.conf:4: [totem] mcastaddr: only used with transport = udp; remove it for udpu"
    ])
}

@Test func optionsNodeIDMustBeInTheNodeList() {
    #expect(errors(udpuTotem + "\nnodeid = 1\naddr = 10.0.0.1\n[node]\nnodeid = 2\naddr = 10.0.0.2\n[options]\nnodeid = 7\n") == [
        "devcluster.conf:12: [options] nodeid: node 7 is not in the [node] list (1, 2)"
    ])
}

@Test func thisNodeMustBeFoundAmongLocalAddresses() {
    #expect(errors(udpuTotem + "\nnodeid = 1\naddr = 10.0.0.1\n[options]\nlog_level = info\n") == [
        "devcluster.conf:8: [options] nodeid: none of the [node] addresses is an address of this server "
            + "(local: 127.0.0.1, 10.19.2.255, fe80::1); set [options] nodeid"
    ])
    // All of 127.0.0.0/8 is local, so two loopback nodes are ambiguous.
    #expect(errors(udpuTotem + "\nnodeid = 1\naddr = 127.0.0.1\n[node]\nnodeid = 2\naddr = 127.0.0.2\n") == [
        "devcluster.conf: [options] nodeid: several [node] addresses are addresses of this server (nodes 1, 2); "
            + "set [options] nodeid"
    ])
}

@Test func udpDerivesBindNetworkAndMulticastAddress() throws {
    let configuration = try parse("[totem]\ncluster_name = pbx\ncrypto = none\n[node]\nnodeid = 3\naddr = 10.19.2.255\n")
    #expect(configuration.options.nodeID == NodeID(3))
    #expect(configuration.totem.transport == .udp(bindNetwork: address("10.19.2.255"), multicastAddress: address("239.192.2.254")))
    #expect(configuration.totem.port == 5405)
}

@Test func udpWithoutNodesNeedsBindnetaddrInALocalNetwork() {
    #expect(errors("[totem]\ncluster_name = pbx\n") == [
        "devcluster.conf:1: [totem] bindnetaddr: missing; expected the network to bind on "
            + "(udp needs bindnetaddr or a [node] list naming this server)"
    ])
    #expect(errors("[totem]\ncluster_name = pbx\nbindnetaddr = 192.168.0.0\n") == [
        "devcluster.conf:3: [totem] bindnetaddr: no address of this server is in the network of bindnetaddr "
            + "192.168.0.0 (local: 127.0.0.1, 10.19.2.255, fe80::1); fix bindnetaddr or set [options] nodeid"
    ])
    #expect(errors("[totem]\ncluster_name = pbx\nbindnetaddr = fe80::\n") == [
        "devcluster.conf:3: [totem] bindnetaddr: cannot derive a node id from fe80:: (only from an IPv4 address); "
            + "set [options] nodeid"
    ])
}

/// Spec §6.2: `id = Σ (id << 1) + byte`, `& 0xFFFF`; `239.192.(id >> 8).(id % 255)` or `ff15::<id>`.
/// By hand: "pbx" = p 112, b 98, x 120: 112 → 2·112 + 98 = 322 → 2·322 + 120 = 764 = 2·256 + 252;
/// 764 % 255 = 254. "devcluster": 100, 301, 720, 1539, 3186, 6489, 13093, 26302, 52705, 105524;
/// 105524 & 0xFFFF = 39988 = 0x9C34 = 156·256 + 52; 39988 % 255 = 208.
@Test func defaultMulticastAddressFollowsTheClusterName() throws {
    #expect(DaemonConfiguration.defaultMulticastAddress(clusterName: "pbx", ipv6: false) == address("239.192.2.254"))
    #expect(DaemonConfiguration.defaultMulticastAddress(clusterName: "devcluster", ipv6: false) == address("239.192.156.208"))
    #expect(DaemonConfiguration.defaultMulticastAddress(clusterName: "devcluster", ipv6: true) == address("ff15::9c34"))
    #expect(DaemonConfiguration.defaultMulticastAddress(clusterName: "", ipv6: false) == address("239.192.0.0"))
    let ipv6 = try parse("[totem]\ncluster_name = devcluster\nbindnetaddr = fe80::\ncrypto = none\n[options]\nnodeid = 9\n")
    #expect(ipv6.totem.transport == .udp(bindNetwork: address("fe80::"), multicastAddress: address("ff15::9c34")))
}

// MARK: - Crypto, timers, options

/// Issue 14, finding 3: one forged JOIN from a listed address broke a keyless ring. Off
/// loopback, no key is an error unless the file says `crypto = none`; on loopback (the built-in
/// default, test clusters on one machine) no key is still fine.
@Test func aClusterOffLoopbackNeedsAKeyOrAnExplicitCryptoNone() throws {
    let exposed = "[totem]\ncluster_name = pbx\ntransport = udpu\n[node]\nnodeid = 1\naddr = 10.19.2.255\n[node]\nnodeid = 2\naddr = 10.19.2.1\n"
    let reported = errors(exposed)
    #expect(reported.count == 1)
    let message = try #require(reported.first)
    #expect(message.hasPrefix("devcluster.conf:1: [totem] crypto: no cluster key, and the cluster is not on loopback (10.19.2.255, 10.19.2.1)"))
    #expect(message.contains("devclusterd keygen") && message.contains("crypto = none"))
    // udp: the bind network counts too.
    #expect(errors(udpTotem).first?.contains("not on loopback (10.19.0.0)") == true)
    // Said explicitly: accepted, unauthenticated.
    let explicit = try parse(exposed.replacingOccurrences(of: "transport = udpu\n", with: "transport = udpu\ncrypto = none\n"))
    #expect(explicit.totem.crypto == .none)
    // A key: accepted.
    let keyed = try parse(exposed.replacingOccurrences(of: "transport = udpu\n", with: "transport = udpu\nkeyfile = /etc/devcluster/authkey\n"))
    #expect(keyed.totem.crypto == .hmacSHA256(keyFile: "/etc/devcluster/authkey"))
    // Every node on loopback (IPv4 127/8 or ::1): no key needed.
    let local = try parse("[totem]\ncluster_name = pbx\ntransport = udpu\n[node]\nnodeid = 1\naddr = 127.0.0.1\n[node]\nnodeid = 2\naddr = 127.0.0.2\n[options]\nnodeid = 1\n")
    #expect(local.totem.crypto == .none)
    let local6 = try parse("[totem]\ncluster_name = pbx\ntransport = udpu\n[node]\nnodeid = 1\naddr = ::1\n[options]\nnodeid = 1\n")
    #expect(local6.totem.crypto == .none)
    // One node off loopback is enough to need the key.
    #expect(errors("[totem]\ncluster_name = pbx\ntransport = udpu\n[node]\nnodeid = 1\naddr = 127.0.0.1\n[node]\nnodeid = 2\naddr = 10.0.0.2\n[options]\nnodeid = 1\n")
        .first?.contains("not on loopback (10.0.0.2)") == true)
}

@Test func cryptoAndKeyfileMustAgree() {
    #expect(errors(udpuTotem.replacingOccurrences(of: "transport = udpu", with: "transport = udpu\ncrypto = hmac-sha256")
                   + "\nnodeid = 1\naddr = 127.0.0.1\n") == [
        "devcluster.conf:4: [totem] crypto: \"hmac-sha256\" needs a keyfile in [totem]"
    ])
    #expect(errors(udpuTotem.replacingOccurrences(of: "transport = udpu", with: "transport = udpu\nkeyfile = /k\ncrypto = none")
                   + "\nnodeid = 1\naddr = 127.0.0.1\n") == [
        "devcluster.conf:5: [totem] crypto: \"none\" contradicts the keyfile at line 4; remove one of them"
    ])
    #expect(errors(udpTotem + "crypto = aes256\nkeyfile = etc/key\n") == [
        "devcluster.conf:4: [totem] crypto: expected \"hmac-sha256\", \"chacha20-poly1305\" or \"none\", got \"aes256\"",
        "devcluster.conf:5: [totem] keyfile: expected an absolute path, got \"etc/key\"",
    ])
}

@Test func timerProblemsFromTotemSettingsAreReported() {
    #expect(errors(udpuTotem.replacingOccurrences(of: "transport = udpu", with: "transport = udpu\ntoken_retransmit = 200\nhold = 300")
                   + "\nnodeid = 1\naddr = 127.0.0.1\n") == [
        "devcluster.conf:5: [totem] hold: hold must be shorter than token_retransmit"
    ])
    // Problems with derived values (from token 40) are placed on the [totem] header.
    #expect(errors(udpuTotem.replacingOccurrences(of: "transport = udpu", with: "transport = udpu\ntoken = 40")
                   + "\nnodeid = 1\naddr = 127.0.0.1\n") == [
        "devcluster.conf:1: [totem]: consensus (0.048 seconds) must not be shorter than join (0.05 seconds)",
        "devcluster.conf:1: [totem]: hold must be shorter than token_retransmit",
    ])
}

@Test func rejectsABadEntityID() {
    for bad in ["01:23:45:67:89", "01:23:45:67:89:ab:cd", "01:23:45:67:89:zz", "1:23:45:67:89:ab", "01-23-45-67-89-ab"] {
        #expect(errors(udpuTotem + "\nnodeid = 1\naddr = 127.0.0.1\n[options]\nentity_id = \(bad)\n") == [
            "devcluster.conf:9: [options] entity_id: expected six hex octets separated by \":\" "
                + "(like 01:23:45:67:89:ab), got \"\(bad)\""
        ])
    }
}

@Test func rejectsBadOptionValues() {
    let longPath = "/" + String(repeating: "s", count: 107)
    #expect(errors(udpuTotem + """

        nodeid = 1
        addr = 127.0.0.1
        [options]
        control_socket = \(longPath)
        state_dir = var/lib
        log_level = verbose
        control_socket_group = two words
        """) == [
        "devcluster.conf:9: [options] control_socket: expected an absolute path of at most 107 bytes "
            + "(a Unix socket address), got \"\(longPath)\"",
        "devcluster.conf:10: [options] state_dir: expected an absolute path, got \"var/lib\"",
        "devcluster.conf:11: [options] log_level: expected one of debug, info, notice, warning, error, got \"verbose\"",
        "devcluster.conf:12: [options] control_socket_group: expected a group name, got \"two words\"",
    ])
}

// MARK: - Event channels and hints

@Test func rejectsAnInvalidEventTypeAndTakesClientTypes() throws {
    #expect(errors(fullExample.replacingOccurrences(of: "publish_event = device_state", with: "publish_event = device_state, 9lives")) == [
        "devcluster.conf:23: [device_state] publish_event: expected event types separated by commas (device_state, mwi, "
            + "or names of 1-32 characters a-z, 0-9, _ starting with a letter), got \"9lives\""
    ])
    let configuration = try parse(fullExample + "[alerts]\ntype = event_channel\npublish_event = Alarm, note\n")
    #expect(configuration.eventChannels.last?.publishes.map(\.rawValue) == ["alarm", "note"])
}

@Test func eventTypeListsIgnoreWhitespaceAroundCommas() throws {
    let configuration = try parse(fullExample + "[all]\ntype = Event_Channel\npublish_event = mwi ,device_state\nsubscribe_event=  mwi  \n")
    #expect(configuration.eventChannels.last == .init(name: "all", publishes: [.mwi, .deviceState], subscribes: [.mwi]))
    #expect(errors(fullExample + "[all]\ntype = event_channel\npublish_event = mwi, mwi\n") == [
        "devcluster.conf:30: [all] publish_event: \"mwi\" is listed twice"
    ])
}

@Test func aSectionWithAnotherTypeIsRejected() {
    #expect(errors(fullExample + "[queue]\ntype = queue\npublish_event = mwi\n") == [
        "devcluster.conf:29: [queue] type: expected \"event_channel\", got \"queue\""
    ])
    #expect(errors(fullExample + "[queue]\ntype = event_channel\nsubscribe_events = mwi\n") == [
        "devcluster.conf:30: [queue] subscribe_events: unknown option (did you mean \"subscribe_event\"?); "
            + "valid options: type, publish_event, subscribe_event"
    ])
}

@Test func hintsKeepTheirOrderAndAreChecked() throws {
    let configuration = try parse(fullExample + "2000@sales = SIP/2000 & Custom:two\n1000@Sales = DAHDI/1\n")
    #expect(configuration.hints == [
        .init(exten: "1234", context: "devstate_test", devices: ["Custom:mystate"]),
        .init(exten: "2000", context: "sales", devices: ["SIP/2000", "Custom:two"]),
        .init(exten: "1000", context: "Sales", devices: ["DAHDI/1"]),
    ])
    #expect(errors(fullExample + "2000 = SIP/2000\n3000@sales = SIP/3000&&SIP/3001\n@x = SIP/1\n") == [
        "devcluster.conf:28: [hints] 2000: expected a hint key EXTEN@CONTEXT (like 1234@devstate_test), got \"2000\"",
        "devcluster.conf:29: [hints] 3000@sales: expected devices separated by \"&\" (like SIP/1234&Custom:mystate), "
            + "got \"SIP/3000&&SIP/3001\"",
        "devcluster.conf:30: [hints] @x: expected a hint key EXTEN@CONTEXT (like 1234@devstate_test), got \"@x\"",
    ])
}

// MARK: - Several errors, files

@Test func everyErrorOfAFileIsReportedInLineOrder() {
    #expect(errors("""
        [totem]
        cluster_name = pbx
        transport = udpu
        mcastport = 54x05
        tokn = 1000
        [node]
        nodeid = 0
        addr = 10.0.0.1
        [node]
        nodeid = 2
        addr = 10.0.0.1
        [options]
        nodeid = 2
        entity_id = nope
        [device_state]
        type = event_channel
        publish_event = devicestate
        garbage line
        """) == [
        "devcluster.conf:4: [totem] mcastport: expected a port number 1-65535, got \"54x05\"",
        "devcluster.conf:5: [totem] tokn: unknown option (did you mean \"token\"?); valid options: "
            + "cluster_name, transport, bindnetaddr, mcastaddr, mcastport, ttl, netmtu, segmentation_offload, port_unreachable, token, "
            + "token_coefficient, "
            + "token_retransmit, token_retransmits_before_loss_const, hold, join, consensus, merge, window_size, "
            + "max_messages, miss_count_const, fail_recv_const, seqno_unchanged_const, "
            + "cancel_token_hold_on_retransmit, keyfile, crypto",
        "devcluster.conf:7: [node] nodeid: expected a node id 1-4294967294 (0 and 4294967295 are reserved), got \"0\"",
        "devcluster.conf:14: [options] entity_id: expected six hex octets separated by \":\" (like 01:23:45:67:89:ab), "
            + "got \"nope\"",
        "devcluster.conf:17: [device_state] publish_event: expected \"device_state\" (a type this close to a built-in "
            + "one is taken for a typo of it), got \"devicestate\"",
        "devcluster.conf:18: expected \"[section]\", \"key = value\" or a comment, got \"garbage line\"",
    ])
}

@Test func errorsCarryTheirFacts() throws {
    do {
        _ = try parse(udpTotem + "mcastport = 0\n")
        Issue.record("expected an error")
    } catch {
        #expect(error.errors == [ConfigurationError(
            file: "devcluster.conf", line: 4, section: "totem", option: "mcastport",
            reason: .invalidValue(got: "0", expected: "a port number 1-65535"))])
    }
}

@Test func loadReadsAFileAndReportsUnreadableOnes() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("devcluster-config-\(getpid())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let good = directory.appendingPathComponent("devcluster.conf").path
    try fullExample.write(toFile: good, atomically: true, encoding: .utf8)
    #expect(try DaemonConfiguration.load(path: good, host: testHost) == parse(fullExample))

    let missing = directory.appendingPathComponent("missing.conf").path
    #expect(throws: ConfigurationErrors([ConfigurationError(
        file: missing, line: nil, section: nil, option: nil, reason: .unreadableFile("No such file or directory"))])) {
        try DaemonConfiguration.load(path: missing, host: testHost)
    }
    let binary = directory.appendingPathComponent("binary.conf").path
    try Data([0x5B, 0xFF, 0xFE, 0x5D]).write(to: URL(fileURLWithPath: binary))
    do {
        _ = try DaemonConfiguration.load(path: binary, host: testHost)
        Issue.record("expected an error")
    } catch {
        #expect(error.description == "\(binary): the file is not UTF-8 text")
    }
}

// MARK: - Embedded default and paths

@Test func embeddedDefaultIsAValidSingleNodeOnLoopback() throws {
    let embedded = DaemonConfiguration.embeddedDefault(host: testHost)
    #expect(embedded.totem.clusterName == "devcluster")
    #expect(embedded.totem.transport == .udpu)
    #expect(embedded.totem.port == 5405)
    #expect(embedded.nodes == [.init(id: NodeID(1), name: "server1", address: address("127.0.0.1"))])
    #expect(embedded.options.nodeID == NodeID(1))
    #expect(embedded.options.controlSocket == "/run/user/1000/devcluster/devclusterd.sock")
    #expect(embedded.options.stateDirectory == "/tmp/devcluster-1000/state")
    #expect(embedded.eventChannels == [
        .init(name: "device_state", publishes: [.deviceState], subscribes: [.deviceState]),
        .init(name: "mwi", publishes: [.mwi], subscribes: [.mwi]),
    ])
    #expect(embedded.totem.settings.validate().isEmpty)
    // Valid: written out as a file it passes every check and reads back equal.
    #expect(try parse(embedded.fileText) == embedded)

    var unnamed = testHost
    unnamed.hostName = "has space"
    #expect(DaemonConfiguration.embeddedDefault(host: unnamed).nodes.first?.name == "node1")
    unnamed.hostName = nil
    #expect(DaemonConfiguration.embeddedDefault(host: unnamed).nodes.first?.name == "node1")
}

@Test func runtimeDirectoryFollowsUserAndEnvironment() {
    typealias Paths = HostEnvironment.DefaultPaths
    let everythingWritable: (String) -> Bool = { _ in true }
    #expect(HostEnvironment.defaultPaths(userID: 0, environment: [:], isWritableDirectory: everythingWritable)
            == Paths(controlSocket: "/run/devcluster/devclusterd.sock", stateDirectory: "/var/lib/devcluster"))
    // Root without a writable /run (a container) falls back like any user.
    #expect(HostEnvironment.defaultPaths(userID: 0, environment: [:], isWritableDirectory: { _ in false })
            == Paths(controlSocket: "/tmp/devcluster-0/devclusterd.sock", stateDirectory: "/tmp/devcluster-0/state"))
    #expect(HostEnvironment.defaultPaths(userID: 1000, environment: ["XDG_RUNTIME_DIR": "/run/user/1000/"],
                                         isWritableDirectory: everythingWritable)
            == Paths(controlSocket: "/run/user/1000/devcluster/devclusterd.sock", stateDirectory: "/tmp/devcluster-1000/state"))
    // An unwritable or relative XDG_RUNTIME_DIR is ignored; TMPDIR is honoured.
    #expect(HostEnvironment.defaultPaths(userID: 1000, environment: ["XDG_RUNTIME_DIR": "/run/user/1000", "TMPDIR": "/var/tmp/"],
                                         isWritableDirectory: { _ in false })
            == Paths(controlSocket: "/var/tmp/devcluster-1000/devclusterd.sock", stateDirectory: "/var/tmp/devcluster-1000/state"))
    #expect(HostEnvironment.defaultPaths(userID: 1000, environment: ["XDG_RUNTIME_DIR": "run/user"],
                                         isWritableDirectory: everythingWritable)
            == Paths(controlSocket: "/tmp/devcluster-1000/devclusterd.sock", stateDirectory: "/tmp/devcluster-1000/state"))
    // A runtime directory too long for a socket address is skipped.
    let deep = "/" + String(repeating: "d", count: 100)
    #expect(HostEnvironment.defaultPaths(userID: 7, environment: ["XDG_RUNTIME_DIR": deep], isWritableDirectory: everythingWritable)
            .controlSocket == "/tmp/devcluster-7/devclusterd.sock")
}

@Test func editDistanceCountsTranspositionsOnce() {
    #expect(ConfigurationReader.editDistance(Array("mcastprot"), Array("mcastport")) == 1)
    #expect(ConfigurationReader.editDistance(Array("tokn"), Array("token")) == 1)
    #expect(ConfigurationReader.closest(to: "zzz", among: ConfigurationKeys.node) == nil)
}

// MARK: - Robustness


/// STYLE §4: bad input gives errors, never a trap. Mutated files must parse or throw, and every
/// error must carry a line inside the file (or none).
@Test func mutatedFilesParseOrThrowButNeverTrap() {
    var random = SplitMix64(seed: 0xDEC1_C05E)
    let alphabet = Array("[]=;#\\@&,:. \t\r\n0123456789abcdefxyz".utf8) + [0x00, 0xFF, 0xE2]
    let original = Array((fullExample + "[mwi]\ntype = event_channel\npublish_event = mwi\n").utf8)
    for _ in 0..<400 {
        var bytes = original
        for _ in 0..<(1 + random.below(6)) {
            let position = random.below(bytes.count)
            switch random.below(3) {
            case 0: bytes[position] = alphabet[random.below(alphabet.count)]
            case 1: bytes.remove(at: position)
            default: bytes.insert(alphabet[random.below(alphabet.count)], at: position)
            }
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let lineCount = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }.count
        do {
            _ = try DaemonConfiguration.parse(text: text, path: "fuzz.conf", host: testHost)
        } catch {
            for problem in error.errors {
                #expect(problem.line.map { (1...lineCount).contains($0) } ?? true, "\(problem)")
            }
        }
    }
}

@Test func currentHostListsLoopback() {
    let interfaces = HostEnvironment.current.interfaceAddresses()
    #expect(interfaces.contains { $0.isLoopback && $0.owns(address("127.0.0.2")) })
}

// MARK: - Runtime

@Test func multicastsLoopBackOnlyWhenAnotherNodeListensOnThisHost() throws {
    func loop(_ addresses: [String], local: [String]) throws -> Bool {
        var text = "[totem]\ncluster_name = pbx\ntransport = udp\nbindnetaddr = 10.0.0.0\ncrypto = none\n"
        for (index, address) in addresses.enumerated() {
            text += "[node]\nnodeid = \(index + 1)\naddr = \(address)\n"
        }
        text += "[options]\nnodeid = 1\n"
        let configuration = try parse(text)
        let runtime = try configuration.runtimeConfiguration(
            file: "devcluster.conf", authentication: .none, key: nil,
            localAddresses: local.compactMap { DaemonConfiguration.IPAddress($0) }, log: { _, _ in })
        return runtime.transport.multicastLoop
    }
    // One node per host (production, the namespace harness): off, as corosync has it.
    #expect(try loop(["10.0.0.1", "10.0.0.2", "10.0.0.3"], local: ["10.0.0.1"]) == false)
    // Another node's address is on this host, or on loopback: on, or they would not hear us.
    #expect(try loop(["10.0.0.1", "10.0.0.2", "10.0.0.3"], local: ["10.0.0.1", "10.0.0.3"]) == true)
    #expect(try loop(["127.0.0.1", "127.0.0.2"], local: []) == true)
}

@Test func segmentationOffloadAndPortUnreachableReachTheTransport() throws {
    for (value, offload, unreachable) in [("", true, true), ("segmentation_offload = no\n", false, true),
                                          ("port_unreachable = no\n", true, false)] {
        let text = "[totem]\ncluster_name = pbx\ntransport = udpu\ncrypto = none\n" + value + "[node]\nnodeid = 1\naddr = 10.0.0.1\n[options]\nnodeid = 1\n"
        let configuration = try parse(text)
        let runtime = try configuration.runtimeConfiguration(
            file: "devcluster.conf", authentication: .none, key: nil, localAddresses: [], log: { _, _ in })
        #expect(runtime.transport.segmentationOffload == offload, "\(value)")
        #expect(runtime.transport.reportsUnreachable == unreachable, "\(value)")
    }
}

// MARK: - Caps and names (issue 14, items 11 and 13)

@Test func capsOnDevicesAndMailboxesAreReadAndChecked() throws {
    let defaults = try parse(fullExample)
    #expect(defaults.options.maxDevices == 100_000 && defaults.options.maxMailboxes == 100_000)
    #expect(DaemonConfiguration.Options.maximumEntries == LocalStateTable.maxEntries)
    let options = "[options]\nnodeid = 1"
    let set = try parse(fullExample.replacingOccurrences(of: options, with: options + "\nmax_devices = 250\nmax_mailboxes = 1000000"))
    #expect(set.options.maxDevices == 250 && set.options.maxMailboxes == 1_000_000)
    #expect(errors(udpuTotem + """

        nodeid = 1
        addr = 127.0.0.1
        [options]
        max_devices = 0
        max_mailboxes = 1000001
        """) == [
        "devcluster.conf:9: [options] max_devices: expected a number of entries 1-1000000, got \"0\"",
        "devcluster.conf:10: [options] max_mailboxes: expected a number of entries 1-1000000, got \"1000001\"",
    ])
    var changed = defaults
    changed.options.maxDevices = 10
    #expect(defaults.restartRequiredChanges(to: changed) == ["[options] max_devices (100000 -> 10)"])
}

@Test func theCapOnRetainedEventBytesIsReadWithUnitsAndChecked() throws {
    let defaults = try parse(fullExample)
    #expect(defaults.options.maxRetainedBytes == 32 << 20)
    let options = "[options]\nnodeid = 1"
    for (text, bytes) in [("8M", 8 << 20), ("8 MiB", 8 << 20), ("2048k", 2 << 20), ("1G", 1 << 30), ("1048576", 1 << 20), ("64GiB", 1 << 36)] {
        let set = try parse(fullExample.replacingOccurrences(of: options, with: options + "\nmax_retained_bytes = \(text)"))
        #expect(set.options.maxRetainedBytes == bytes, "\(text)")
    }
    let expected = "expected a size 1 MiB-64 GiB: a number of bytes, or of K, M or G (KiB, MiB, GiB: 1024-based), like 32M"
    for bad in ["0", "1048575", "65G", "8 MB x", "-1M", "8T", "M", "99999999999999999999G"] {
        #expect(errors(udpuTotem + """

            nodeid = 1
            addr = 127.0.0.1
            [options]
            max_retained_bytes = \(bad)
            """) == ["devcluster.conf:9: [options] max_retained_bytes: \(expected), got \"\(bad)\""], "\(bad)")
    }
    var changed = defaults
    changed.options.maxRetainedBytes = 8 << 20
    #expect(defaults.restartRequiredChanges(to: changed) == ["[options] max_retained_bytes (32M -> 8M)"])
    #expect(ByteSize.format(3 << 19) == "1536K" && ByteSize.describe(3 << 19) == "1.5 MiB" && ByteSize.describe(900) == "900 bytes")
}

@Test func hintsWithControlOrFormatCharactersAreRefusedNamingTheCodePoint() {
    #expect(errors(fullExample + "2000@sales = SIP/20\u{202E}00\n") == [
        "devcluster.conf:28: [hints] 2000@sales: expected a valid hint (device name contains U+202E (a bidirectional control "
            + "character): \"SIP/20\\u{202E}00\"), got \"SIP/20\\u{202E}00\"",
    ])
    #expect(errors(fullExample + "2000@sa\u{200B}les = SIP/2000\n") == [
        "devcluster.conf:28: [hints] 2000@sa\\u{200B}les: expected a valid hint (hint context contains U+200B (a zero-width "
            + "character): \"sa\\u{200B}les\"), got \"SIP/2000\"",
    ])
}

// MARK: - [control]

private let oneNode = """
    [totem]
    cluster_name = c
    transport = udpu
    [node]
    nodeid = 1
    addr = 127.0.0.1

    """

@Test func readsTheControlAllowListWithIDsAndLimits() throws {
    let configuration = try parse(oneNode + """
        [options]
        control_socket_group = asterisk

        [control]
        users = asterisk, 1001
        read_only_users = zabbix
        read_only_groups = monitoring
        idle_timeout = 0
        max_connections = 64
        max_connections_per_user = 4
        """)
    let control = configuration.control
    #expect(control.users == [.init(name: "asterisk", id: 110), .init(name: "1001", id: 1001)])
    #expect(control.groups.isEmpty)
    #expect(control.readOnlyUsers == [.init(name: "zabbix", id: 120)])
    #expect(control.readOnlyGroups == [.init(name: "monitoring", id: 130)])
    #expect(control.idleTimeoutSeconds == 0 && control.maximumConnections == 64 && control.maximumConnectionsPerUser == 4)
    // Written back and read again: the same configuration.
    #expect(try parse(configuration.fileText) == configuration)
    // Without [control]: nobody but root and the daemon's user, 300 s idle timeout, 128 and 32.
    let plain = try parse(oneNode)
    #expect(plain.control == DaemonConfiguration.Control())
    #expect(!plain.control.allowsOtherUsers && plain.control.idleTimeoutSeconds == 300)
}

@Test func rejectsUnknownUsersAndGroupsAndAGroupThatIsAllowedNothing() {
    #expect(errors(oneNode + """
        [control]
        users = asterisk, nosuchuser
        groups = wheel
        read_only_users = zabbix, zabbix
        idle_timeout = 1h
        max_connections = 0
        """) == [
        "devcluster.conf:8: [control] users: \"nosuchuser\" is not a user on this host",
        "devcluster.conf:9: [control] groups: \"wheel\" is not a group on this host",
        "devcluster.conf:10: [control] read_only_users: \"zabbix\" is listed twice",
        "devcluster.conf:11: [control] idle_timeout: expected a whole number of seconds 0-86400 (0: never), got \"1h\"",
        "devcluster.conf:12: [control] max_connections: expected a whole number 1-4096, got \"0\"",
    ])
    #expect(errors(oneNode + "[options]\ncontrol_socket_group = nosuchgroup\n") == [
        "devcluster.conf:8: [options] control_socket_group: \"nosuchgroup\" is not a group on this host",
    ])
    #expect(errors(oneNode + "[options]\ncontrol_socket_group = asterisk\n") == [
        "devcluster.conf:8: [options] control_socket_group: members of \"asterisk\" can reach the control socket but [control] "
            + "allows them nothing; add \"groups = asterisk\" (full control) or \"read_only_groups = asterisk\" to [control], "
            + "or list its users there",
    ])
    #expect(errors(oneNode + "[control]\nuser = asterisk\n").first?.hasPrefix(
        "devcluster.conf:8: [control] user: unknown option (did you mean \"users\"?)") == true)
}

@Test func theAllowListDecidesEachCallersRole() throws {
    let control = try parse(oneNode + """
        [control]
        users = asterisk
        groups = 500
        read_only_users = zabbix
        read_only_groups = monitoring
        """).control
    let access = ControlAccess(control: control, daemonUserID: 999)
    func peer(_ uid: UInt32, _ gid: UInt32, _ groups: [UInt32] = []) -> PeerCredentials {
        PeerCredentials(processID: 1, userID: uid, groupID: gid, supplementaryGroups: groups)
    }
    #expect(access.role(of: peer(0, 0)) == .full)
    #expect(access.role(of: peer(999, 999)) == .full)
    #expect(access.role(of: peer(110, 110)) == .full)
    #expect(access.role(of: peer(2000, 500)) == .full)
    #expect(access.role(of: peer(2000, 2000, [7, 500])) == .full)
    #expect(access.role(of: peer(120, 120)) == .readOnly)
    #expect(access.role(of: peer(2001, 2001, [130])) == .readOnly)
    #expect(access.role(of: peer(65_534, 65_534)) == nil)
    #expect(access.isPrivileged(peer(0, 0)) && access.isPrivileged(peer(999, 1)) && !access.isPrivileged(peer(110, 110)))
    for command in ["status", "members", "devstate_get", "devstate_list", "hints", "mwi_get", "mwi_list", "watch",
                    "subscribe", "snapshot", "ping", "event_subscribe", "channels", "settings", "hello"] {
        #expect(ControlAccess.isReadOnly(command: command), "\(command)")
    }
    for command in ["devstate_set", "devstate_clear", "mwi_set", "event_publish", "adapter_register", "debug", "future_command"] {
        #expect(!ControlAccess.isReadOnly(command: command), "\(command)")
    }
}

@Test func reloadReportsASocketModeChangeAsNeedingARestart() throws {
    let running = try parse(oneNode)
    let reloaded = try parse(oneNode + "[control]\nread_only_users = zabbix\n")
    #expect(running.restartRequiredChanges(to: reloaded) == ["[control] users and groups (the socket's mode) (0600 -> 0666)"])
    let limitsOnly = try parse(oneNode + "[control]\nidle_timeout = 5\n")
    #expect(running.restartRequiredChanges(to: limitsOnly).isEmpty)
}
