// swift-tools-version:6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

// Shared state is guarded by NIOLockedValueBox (a pthread mutex), not Synchronization.Mutex: on Linux the latter is a
// bare futex that ThreadSanitizer cannot see, so every access it guards would be reported as a race.
let locks: Target.Dependency = .product(name: "NIOConcurrencyHelpers", package: "swift-nio")

// Linux only: the controller builds on FoundationEssentials (no ICU), which Darwin's toolchains do not ship as a
// module of its own, so no Apple platform is claimed.
let package = Package(
    name: "kube-node-dns",
    products: [
        .executable(name: "kube-node-dns", targets: ["kube-node-dns"]),
        .executable(name: "kube-node-dns-demo", targets: ["kube-node-dns-demo"]),
        .executable(name: "kube-api-emulator", targets: ["kube-api-emulator"]),
        .executable(name: "cloudflare-emulator", targets: ["cloudflare-emulator"]),
        .executable(name: "swift-www-example", targets: ["swift-www-example"]),
        .executable(name: "kube-node-dns-bench", targets: ["kube-node-dns-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0", traits: []),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
        // Test-only: the kubeconfig corpus is checked against Yams; the controller reads YAML with its own reader.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.0"..<"5.0.0"),
    ],
    targets: [
        // Pure domain: standard library only.
        .target(name: "NodeDNSCore", swiftSettings: strict),
        .target(
            name: "KubernetesAPI",
            dependencies: [
                locks,
                "NodeDNSCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "CloudflareDNS",
            dependencies: [
                locks,
                "NodeDNSCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // RFC 2136 dynamic updates with TSIG: the DNS wire format, over SwiftNIO.
        .target(
            name: "RFC2136DNS",
            dependencies: [
                locks,
                "NodeDNSCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Active health checks: a fresh TCP (and TLS) connection and one HTTP GET per node address, over SwiftNIO.
        .target(
            name: "HealthChecks",
            dependencies: [
                locks,
                "NodeDNSCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "KubeNodeDNS",
            dependencies: [
                locks,
                "NodeDNSCore", "KubernetesAPI", "CloudflareDNS", "RFC2136DNS", "HealthChecks",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "kube-node-dns", dependencies: ["KubeNodeDNS", "KubernetesAPI", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "Emulators",
            dependencies: [
                locks,
                "NodeDNSCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "kube-api-emulator",
            dependencies: [
                "Emulators", .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "cloudflare-emulator", dependencies: ["Emulators", .product(name: "Logging", package: "swift-log")], swiftSettings: strict
        ),
        .executableTarget(
            name: "kube-node-dns-demo",
            dependencies: ["KubeNodeDNS", "KubernetesAPI", "NodeDNSCore", "Emulators", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "kube-node-dns-bench",
            dependencies: ["Emulators", "RFC2136DNS", "NodeDNSCore", "KubeNodeDNS", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // The article's hello-world web app.
        .target(
            name: "WWWExample",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "swift-www-example",
            dependencies: ["WWWExample", .product(name: "NIOCore", package: "swift-nio"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WWWExampleTests",
            dependencies: [
                "WWWExample", "Emulators", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "NodeDNSCoreTests", dependencies: ["NodeDNSCore"], swiftSettings: strict),
        .testTarget(
            name: "KubernetesAPITests",
            dependencies: [
                "KubernetesAPI", "Emulators", locks, .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["kubeconfigs"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RFC2136DNSTests",
            dependencies: ["RFC2136DNS", "NodeDNSCore", "Emulators", .product(name: "Logging", package: "swift-log")], swiftSettings: strict
        ),
        .testTarget(name: "HealthChecksTests", dependencies: ["HealthChecks", "NodeDNSCore", "Emulators", locks], swiftSettings: strict),
        .testTarget(
            name: "CloudflareDNSTests",
            dependencies: ["CloudflareDNS", "NodeDNSCore", "Emulators", locks, .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .testTarget(
            name: "KubeNodeDNSTests",
            dependencies: [
                "KubeNodeDNS", "KubernetesAPI", "NodeDNSCore", "Emulators", locks,
                .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
    ]
)

// The libFuzzer targets (Fuzz/): only `scripts/fuzz` builds them, with KUBE_NODE_DNS_FUZZ=1, the fuzzer and address
// sanitizers, and a scratch path of their own. A user's `swift build` neither sees nor builds them.
if Context.environment["KUBE_NODE_DNS_FUZZ"] != nil {
    package.targets.append(
        .executableTarget(
            name: "kube-node-dns-fuzz",
            dependencies: [
                "NodeDNSCore", "KubernetesAPI", "CloudflareDNS", "RFC2136DNS",
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Fuzz/Sources",
            // libFuzzer supplies `main`; the target only defines LLVMFuzzerTestOneInput.
            swiftSettings: strict + [.unsafeFlags(["-parse-as-library"])]
        ))
    package.products.append(.executable(name: "kube-node-dns-fuzz", targets: ["kube-node-dns-fuzz"]))
}
