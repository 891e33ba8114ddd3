// swift-tools-version:6.0
import PackageDescription

// Targets by job (README "Layout"):
//   ControlPlane     pure Swift protocol logic, no kernel
//   DataPlane        the kernel library: syscall wrapper, libbpf objects, maps, links, TC, ring buffer,
//                    netlink, sockets; the product BPF objects (bpf/) embedded by the BPFBuilder plugin
//   Mip6Daemon       the daemons on one event loop: home agent, mobile node (ServiceLifecycle services)
//   Mip6CLI, mip6    the one binary: a subcommand per role and the inspection commands
//   Mip6Store        the shared binding store: etcd over gRPC (or its JSON gateway), binding records (issue 12)
//   Mip6TestSupport  fixture tables and scratch namespaces: only tests and benchmarks depend on it
//   Mip6Bench        benchmarks (perf/run drives the `mip6-bench` binary); perf/bpf/ programs embedded there only
let package = Package(
    name: "mip6",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "mip6", targets: ["mip6"]),
        .executable(name: "mip6-bench", targets: ["mip6-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // Already under async-http-client; named for etcd's gRPC API (Mip6Store/EtcdGRPC.swift).
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
    ],
    targets: [
        // The one C header shared with bpf/ (map structs, names, counters) and the few libbpf helpers Swift cannot import.
        .target(
            name: "CMip6",
            path: "Sources/CMip6",
            linkerSettings: [.linkedLibrary("bpf"), .linkedLibrary("elf"), .linkedLibrary("z")]
        ),
        // Pure Swift: Mobility Header codec, binding cache, BU processing. No kernel needed to test it.
        .target(
            name: "ControlPlane",
            dependencies: [.product(name: "Logging", package: "swift-log"), .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The kernel library: every raw call behind Syscall (typed errors), BPF objects and maps, links,
        // TC, ring buffer, netlink, sockets; typed views of each program's maps and pins.
        .target(
            name: "DataPlane",
            dependencies: ["CMip6", "ControlPlane", .product(name: "Logging", package: "swift-log"),
                           .product(name: "Crypto", package: "swift-crypto")],
            plugins: ["BPFBuilder"]
        ),
        // The daemons: one event loop, punt records, start-up checks, state files; HomeAgent/ and MobileNode/.
        .target(
            name: "Mip6Daemon",
            dependencies: [
                "CMip6", "ControlPlane", "DataPlane", "Mip6Store",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // What `mip6` and `mip6-bench` share: --json, tables, log set-up, argument types.
        .target(
            name: "Mip6CommandSupport",
            dependencies: [
                "ControlPlane", "DataPlane",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // One file per subcommand.
        .target(
            name: "Mip6CLI",
            dependencies: [
                "ControlPlane", "DataPlane", "Mip6Daemon", "Mip6HTTP", "Mip6CommandSupport", "Mip6Store",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "mip6", dependencies: ["Mip6CLI"]),
        // --http-listen: /healthz, /readyz and Prometheus /metrics as a ServiceLifecycle service, served by
        // Hummingbird (SwiftNIO), which imports no FoundationNetworking: a static binary links no libcurl.
        // Knows nothing of the maps: the daemon hands it snapshots and health closures.
        .target(
            name: "Mip6HTTP",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The shared binding store (issue 12): an etcd v3 client over its JSON gateway and the binding
        // records the replicas and forwarders share. No kernel: testable against a real etcd.
        .target(
            name: "Mip6Store",
            dependencies: [
                "ControlPlane",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Fixture tables, fixture environments and scratch network namespaces: tests and benchmarks only.
        .target(name: "Mip6TestSupport", dependencies: ["CMip6", "ControlPlane", "DataPlane"]),
        // Benchmarks and their BPF programs (perf/bpf/), in a binary of their own: `mip6` links none of it.
        .target(name: "CMip6Bench", path: "Sources/CMip6Bench"),
        .target(
            name: "Mip6Bench",
            dependencies: [
                "CMip6", "CMip6Bench", "ControlPlane", "DataPlane", "Mip6TestSupport", "Mip6CommandSupport",
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["BPFBuilder"]
        ),
        .executableTarget(name: "mip6-bench", dependencies: ["Mip6Bench"]),
        // Build-time helper: compiles BPF C with clang -target bpf and embeds the object as base64 Swift.
        .executableTarget(name: "Mip6Embed", path: "Sources/Mip6Embed"),
        .plugin(name: "BPFBuilder", capability: .buildTool(), dependencies: ["Mip6Embed"]),
        .testTarget(name: "ControlPlaneTests", dependencies: ["ControlPlane"]),
        .testTarget(name: "Mip6StoreTests", dependencies: ["Mip6Store", "ControlPlane"]),
        // The daemons' pure parts: state files and lists written on request.
        .testTarget(name: "Mip6DaemonTests", dependencies: ["Mip6Daemon", "ControlPlane"]),
        .testTarget(name: "Mip6HTTPTests", dependencies: [
            "Mip6HTTP",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Swift 5 mode: the tests hop threads into network namespaces, which strict Sendable checking cannot express.
        .testTarget(name: "DataPlaneTests", dependencies: ["DataPlane", "Mip6Daemon", "Mip6TestSupport", "CMip6", "ControlPlane",
                                                   .product(name: "Logging", package: "swift-log")],
                    swiftSettings: [.swiftLanguageMode(.v5)]),
        // libFuzzer harness (fuzz/run builds it with -sanitize=fuzzer -DMIP6_FUZZ); a plain build prints usage, exit 2.
        .executableTarget(name: "Mip6Fuzz", dependencies: ["ControlPlane", .product(name: "Logging", package: "swift-log")],
                          path: "Sources/Mip6Fuzz"),
    ]
)
