// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "mip6",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "mip6", targets: ["mip6"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.0"..<"5.0.0"),
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
        // Kernel-facing: libbpf wrappers, embedded BPF objects, sockets, the daemon loop.
        .target(
            name: "DataPlane",
            dependencies: ["CMip6", "ControlPlane", .product(name: "Logging", package: "swift-log")],
            plugins: ["BPFBuilder"]
        ),
        // One file per subcommand.
        .target(
            name: "Mip6CLI",
            dependencies: [
                "ControlPlane", "DataPlane",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "mip6", dependencies: ["Mip6CLI"]),
        // Build-time helper: compiles bpf/*.bpf.c with clang -target bpf and embeds the object as base64 Swift.
        .executableTarget(name: "Mip6Embed", path: "Sources/Mip6Embed"),
        .plugin(name: "BPFBuilder", capability: .buildTool(), dependencies: ["Mip6Embed"]),
        .testTarget(name: "ControlPlaneTests", dependencies: ["ControlPlane"]),
        // Swift 5 mode: the tests hop threads into network namespaces, which strict Sendable checking cannot express.
        .testTarget(name: "DataPlaneTests", dependencies: ["DataPlane", "CMip6", "ControlPlane"],
                    swiftSettings: [.swiftLanguageMode(.v5)]),
        // libFuzzer harness (fuzz/run builds it with -sanitize=fuzzer -DMIP6_FUZZ); a plain build prints usage, exit 2.
        .executableTarget(name: "Mip6Fuzz", dependencies: ["ControlPlane", .product(name: "Logging", package: "swift-log")],
                          path: "Sources/Mip6Fuzz"),
    ]
)
