// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "switchboard",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "switchboard", targets: ["switchboard"]),
        .library(name: "SwitchboardCore", targets: ["SwitchboardCore"]),
        .library(name: "NFTModel", targets: ["NFTModel"]),
        .library(name: "Netfilter", targets: ["Netfilter"]),
        .library(name: "SwitchboardTesting", targets: ["SwitchboardTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // System-library shims; only Netfilter imports them.
        .systemLibrary(name: "CNFTables", pkgConfig: "libnftables", providers: [.apt(["libnftables-dev"])]),
        .systemLibrary(
            name: "CNetfilterConntrack", pkgConfig: "libnetfilter_conntrack",
            providers: [.apt(["libnetfilter-conntrack-dev"])]),
        .systemLibrary(name: "CIPSet", pkgConfig: "libipset", providers: [.apt(["libipset-dev"])]),
        // libnftnl + libmnl: set elements written as nf_tables netlink batches (NetlinkSetElements).
        .systemLibrary(name: "CNFTNL", pkgConfig: "libnftnl", providers: [.apt(["libnftnl-dev", "libmnl-dev"])]),
        // Pure network vocabulary shared by the Kubernetes side and the kernel side: addresses, prefixes,
        // IP families, L4 protocols, conntrack filters and the `ConntrackBackend` protocol.
        .target(name: "NetworkTypes"),
        // Pure nftables IR: render, plan transactions; the `NFTablesBackend` protocol.
        .target(name: "NFTModel"),
        // Pure: the kernel's JSON listing (`nft -j list`) read back into NFTModel's IR. Only what reads the
        // kernel's state needs it (Netfilter, `switchboard diff`), never the agent.
        .target(name: "NFTListing", dependencies: ["NFTModel"]),
        // Pure Kubernetes side: objects, ClusterState, compiler, Maglev.
        .target(
            name: "SwitchboardCore",
            dependencies: ["NetworkTypes", "NFTModel", .product(name: "Yams", package: "Yams")]),
        // The Kubernetes API: kubeconfig / in-cluster auth, list + watch.
        .target(
            name: "KubeAPI",
            dependencies: [
                "SwitchboardCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The node agent: controller loop, health / metrics servers. It reaches the kernel only through
        // protocols (NFTModel's `NFTablesBackend`, NetworkTypes' `ConntrackBackend`, ...), so it builds (and its
        // tests run) without the C libraries.
        .target(
            name: "SwitchboardAgent",
            dependencies: [
                "SwitchboardCore", "NetworkTypes", "NFTModel", "KubeAPI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // `UnixSignal` (the signals that end `Agent.run`), from ServiceLifecycle's own package.
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The kernel: libnftables, libnftnl, libnetfilter_conntrack and libipset in-process. NetworkTypes (pure)
        // for the conntrack filters and their addresses; nothing of the Kubernetes side.
        .target(
            name: "Netfilter",
            dependencies: ["NFTModel", "NFTListing", "NetworkTypes", "CNFTables", "CNFTNL", "CNetfilterConntrack", "CIPSet"]),
        // Shipped test support: network-namespace topologies with real traffic, fakes of the I/O protocols.
        .target(name: "SwitchboardTesting", dependencies: ["NetworkTypes", "NFTModel", "SwitchboardCore"]),
        // Swift Testing traits for the test targets only (`.exclusive`); kept out of SwitchboardTesting, which
        // the bench links and which imports no test framework.
        .target(name: "SwitchboardTestTraits"),
        .executableTarget(
            name: "switchboard",
            dependencies: [
                "SwitchboardCore", "NetworkTypes", "NFTModel", "NFTListing", "Netfilter", "KubeAPI", "SwitchboardAgent",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The bench's pure parts (statistics, options, results, Markdown, SVG), so they can be unit-tested.
        // SwitchboardCore (pure) for `GoDuration`: the churn flags parse durations exactly as `switchboard run`.
        .target(
            name: "BenchKit",
            dependencies: ["SwitchboardCore", .product(name: "Histogram", package: "hdrhistogram-swift")],
            path: "bench/Sources/BenchKit"
        ),
        .executableTarget(
            name: "switchboard-bench",
            dependencies: [
                "BenchKit", "SwitchboardCore", "NetworkTypes", "NFTModel", "Netfilter", "SwitchboardTesting",
                "SwitchboardAgent", "KubeAPI",
                // Churn and peer runs: the controller's logger, and writes to the API server.
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "bench/Sources/switchboard-bench"
        ),
        .testTarget(name: "NetworkTypesTests", dependencies: ["NetworkTypes"]),
        .testTarget(name: "NFTModelTests", dependencies: ["NFTModel"]),
        // SwitchboardTesting in the pure modules' tests for its fuzzer only (`FuzzTests`).
        .testTarget(
            name: "NFTListingTests", dependencies: ["SwitchboardTestTraits", "NFTListing", "NFTModel", "SwitchboardTesting"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "SwitchboardCoreTests", dependencies: ["SwitchboardTestTraits", "SwitchboardCore", "NetworkTypes", "NFTModel", "SwitchboardTesting"],
                    resources: [.copy("Fixtures")]),
        .testTarget(
            name: "SwitchboardAgentTests",
            dependencies: [
                "SwitchboardTestTraits", "SwitchboardAgent", "SwitchboardTesting", "NFTModel", "SwitchboardCore",
                "NetworkTypes",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .testTarget(name: "KubeAPITests", dependencies: ["SwitchboardTestTraits", "KubeAPI", "SwitchboardCore", "SwitchboardTesting"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "NetfilterTests", dependencies: ["SwitchboardTestTraits", "Netfilter", "NFTModel", "NetworkTypes", "SwitchboardCore", "SwitchboardTesting"]),
        .testTarget(name: "BenchKitTests", dependencies: ["BenchKit"], path: "bench/Tests/BenchKitTests"),
        .testTarget(name: "EndToEndTests", dependencies: ["SwitchboardTestTraits", "SwitchboardTesting", "NFTModel", "NetworkTypes", "SwitchboardCore", "Netfilter"]),
    ],
    swiftLanguageModes: [.v6]
)
