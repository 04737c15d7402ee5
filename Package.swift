// swift-tools-version: 6.2
// devcluster: a from-scratch Totem single-ring protocol with cluster services on top.
// No package dependencies, by product decision: only the Swift toolchain is used.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .treatAllWarnings(as: .error),
    // Release builds specialize and inline across the package's modules (generic codecs called
    // from another module otherwise run unspecialized) and leave out the run-time exclusivity
    // checks on class properties (measured in Benchmarks/ANALYSIS.md, "Steps taken"). The
    // compile-time checks still apply, and debug builds (every test run) keep the run-time ones,
    // so an overlapping access is still caught by the tests.
    .unsafeFlags(["-cross-module-optimization", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "devcluster",
    products: [
        .library(name: "Totem", targets: ["Totem"]),
        .library(name: "TotemRuntime", targets: ["TotemRuntime"]),
        .library(name: "TotemSimulation", targets: ["TotemSimulation"]),
        .library(name: "ClusterServices", targets: ["ClusterServices"]),
        .library(name: "ServiceSimulation", targets: ["ServiceSimulation"]),
        .library(name: "DevclusterControl", targets: ["DevclusterControl"]),
        .executable(name: "totem-sim", targets: ["totem-sim"]),
        .executable(name: "devclusterd", targets: ["devclusterd"]),
        .executable(name: "devcluster-bench", targets: ["devcluster-bench"]),
    ],
    targets: [
        // Headers Swift's Glibc module lacks (epoll, eventfd, recvmmsg): ours, not a dependency.
        .target(name: "CSystem"),
        // The pure core: wire codec, protocol, packing, crypto. No Glibc, no CSystem, no I/O:
        // everything above it that must stay deterministic (the services, the simulator)
        // depends on it alone.
        .target(name: "Totem", swiftSettings: strict),
        // The shell that runs the core on a real host: event loop, clocks, files, UDP transports.
        .target(name: "TotemRuntime", dependencies: ["Totem", "CSystem"], swiftSettings: strict),
        .target(name: "TotemSimulation", dependencies: ["Totem"], swiftSettings: strict),
        .executableTarget(name: "totem-sim", dependencies: ["TotemSimulation", "ServiceSimulation"], swiftSettings: strict),
        .target(name: "Membership", dependencies: ["Totem"], swiftSettings: strict),
        .target(name: "EventService", dependencies: ["Membership", "Totem"], swiftSettings: strict),
        .target(name: "DeviceState", dependencies: ["EventService", "Membership", "Totem"], swiftSettings: strict),
        // The services as one pure host: ring events, client commands and time in, effects out
        // (submit, persist, arm a timer, push, hold); the backlog, flow control, ping, watchers.
        .target(name: "ClusterServices", dependencies: ["DeviceState", "EventService", "Membership", "Totem"], swiftSettings: strict),
        // The cluster services on every node of the simulator, under its faults, with a checker
        // of what every node shows (issue 15, item 4); `totem-sim --services` is its command line.
        .target(
            name: "ServiceSimulation", dependencies: ["TotemSimulation", "ClusterServices", "Totem", "Membership", "EventService", "DeviceState"],
            swiftSettings: strict),
        // The control protocol, its one implementation for the daemon, its CLI, the benchmark, the
        // tests and the fuzz targets: JSON value, parser and encoder, messages (requests, responses,
        // pushed events, error codes), line framing, the Unix socket's client side and a client.
        .target(name: "DevclusterControl", dependencies: ["Totem", "EventService", "CSystem"], swiftSettings: strict),
        .executableTarget(
            name: "devclusterd",
            dependencies: ["Totem", "TotemRuntime", "CSystem", "Membership", "EventService", "DeviceState", "ClusterServices", "DevclusterControl"],
            swiftSettings: strict),
        .executableTarget(
            name: "DeviceStateBenchmark", dependencies: ["DeviceState", "EventService", "Membership", "Totem"],
            path: "Benchmarks/DeviceStateBenchmark", swiftSettings: strict),
        // Drives the real devclusterd binary in network namespaces (scripts/bench-compare.sh), through
        // the control library's client.
        .executableTarget(
            name: "devcluster-bench", dependencies: ["DevclusterControl"], path: "Benchmarks/DevclusterBench", swiftSettings: strict),
        // libFuzzer targets (scripts/fuzz.sh); a plain build replays saved inputs.
        .target(name: "FuzzingSupport", swiftSettings: strict),
        .executableTarget(name: "PacketFuzzer", dependencies: ["Totem", "FuzzingSupport"], swiftSettings: strict),
        .executableTarget(name: "JSONFuzzer", dependencies: ["DevclusterControl", "FuzzingSupport"], swiftSettings: strict),
        .executableTarget(
            name: "ServiceFuzzer", dependencies: ["DeviceState", "EventService", "Membership", "Totem", "FuzzingSupport"],
            swiftSettings: strict),
        // Test equipment: encodes one invalid packet so a test can see the encoder trap (in a child
        // process: Swift Testing's exit tests hung the suite, see WireCodecTests).
        .executableTarget(name: "wire-trap-probe", dependencies: ["Totem"], path: "Tests/WireTrapProbe", swiftSettings: strict),
        .testTarget(name: "TotemTests", dependencies: ["Totem", "TotemRuntime", "wire-trap-probe"], swiftSettings: strict),
        .testTarget(name: "TotemSimulationTests", dependencies: ["TotemSimulation", "Totem"], swiftSettings: strict),
        .testTarget(
            name: "ServiceSimulationTests", dependencies: ["ServiceSimulation", "TotemSimulation", "DeviceState", "Totem"],
            swiftSettings: strict),
        .testTarget(name: "DevclusterControlTests", dependencies: ["DevclusterControl", "Totem"], swiftSettings: strict),
        .testTarget(
            name: "devclusterdTests", dependencies: ["devclusterd", "Totem", "TotemRuntime", "Membership", "ClusterServices"], swiftSettings: strict),
        // Seeded generator and fuzz mutations shared by the service test targets.
        .target(name: "ServiceTestSupport", dependencies: ["Totem"], path: "Tests/ServiceTestSupport", swiftSettings: strict),
        .testTarget(name: "MembershipTests", dependencies: ["Membership", "Totem", "ServiceTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "EventServiceTests", dependencies: ["EventService", "Membership", "Totem", "ServiceTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "DeviceStateTests",
            dependencies: ["DeviceState", "EventService", "Membership", "Totem", "ServiceTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "ClusterServicesTests",
            dependencies: ["ClusterServices", "DeviceState", "EventService", "Membership", "Totem"],
            swiftSettings: strict),
    ]
)
