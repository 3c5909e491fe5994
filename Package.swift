// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "swift-model-registry",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "registry", targets: ["registry"]),
        .library(name: "RegistryCore", targets: ["RegistryCore"]),
        .library(name: "RegistrySQLite", targets: ["RegistrySQLite"]),
        .library(name: "RegistryPostgres", targets: ["RegistryPostgres"]),
        .library(name: "RegistryBlobStorage", targets: ["RegistryBlobStorage"]),
        .library(name: "RegistryFileStore", targets: ["RegistryFileStore"]),
        .library(name: "RegistryS3", targets: ["RegistryS3"]),
        .library(name: "RegistryService", targets: ["RegistryService"]),
        .library(name: "RegistryAPI", targets: ["RegistryAPI"]),
        .library(name: "RegistryServer", targets: ["RegistryServer"]),
        .library(name: "RegistryClient", targets: ["RegistryClient"]),
        .library(name: "RegistryTesting", targets: ["RegistryTesting"]),
        .library(name: "ModelServing", targets: ["ModelServing"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        .target(
            name: "RegistryCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "RegistrySQLite",
            dependencies: [
                "RegistryCore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "RegistryPostgres",
            dependencies: [
                "RegistryCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "RegistryBlobStorage",
            dependencies: [
                "RegistryCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "RegistryFileStore",
            dependencies: [
                "RegistryCore", "RegistryBlobStorage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "RegistryS3",
            dependencies: [
                "RegistryCore", "RegistryBlobStorage",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .target(name: "RegistryService", dependencies: ["RegistryCore"]),
        .target(name: "RegistryAPI", dependencies: ["RegistryCore"]),
        .target(
            name: "RegistryServer",
            dependencies: [
                "RegistryCore", "RegistryAPI", "RegistryService",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "RegistryClient",
            dependencies: [
                "RegistryCore", "RegistryAPI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "ModelServing",
            dependencies: [
                "RegistryCore", "RegistryAPI", "RegistryClient",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "RegistryTesting",
            dependencies: [
                "RegistryCore", "RegistryBlobStorage", "RegistryServer", "RegistrySQLite", "RegistryFileStore",
                "RegistryPostgres",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .executableTarget(
            name: "registry",
            dependencies: [
                "RegistryCore", "RegistrySQLite", "RegistryPostgres", "RegistryFileStore", "RegistryS3",
                "RegistryServer", "RegistryClient",
                "ModelServing",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "RegistryBenchmark",
            dependencies: [
                "RegistryCore", "RegistrySQLite", "RegistryFileStore", "RegistryServer", "RegistryPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/RegistryBenchmark"
        ),
        .executableTarget(
            name: "ToyServing",
            dependencies: [
                "ModelServing", "RegistryClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            path: "Examples/ToyServing"
        ),
        .executableTarget(
            name: "ServingBenchmark",
            dependencies: [
                "ModelServing", "RegistryClient", "RegistryCore", "RegistryTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            path: "Benchmarks/ServingBenchmark"
        ),
        .executableTarget(
            name: "TransferBenchmark",
            dependencies: [
                "RegistryCore", "RegistryClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Benchmarks/TransferBenchmark"
        ),
        .testTarget(
            name: "RegistryProcessTests",
            dependencies: [
                "registry", "RegistryCore", "RegistryTesting", "RegistryClient",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .testTarget(
            name: "RegistryS3Tests",
            dependencies: [
                "RegistryClient", "RegistryCore", "RegistryBlobStorage", "RegistryS3", "RegistryTesting", "registry",
            ]
        ),
        .testTarget(
            name: "ModelServingTests",
            dependencies: [
                "ModelServing", "RegistryClient", "RegistryCore", "RegistryTesting", "registry",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "RegistryCoreTests", dependencies: ["RegistryCore", "RegistryTesting"]),
        .testTarget(
            name: "RegistryServiceTests",
            dependencies: ["RegistryCore", "RegistryService", "RegistrySQLite", "RegistryTesting"]
        ),
        .testTarget(
            name: "RegistrySQLiteTests",
            dependencies: ["RegistrySQLite", "RegistryTesting", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "RegistryPostgresTests",
            dependencies: [
                "RegistryPostgres", "RegistryTesting",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "RegistryFileStoreTests", dependencies: ["RegistryFileStore", "RegistryTesting"]),
        .testTarget(
            name: "RegistryCLITests",
            dependencies: [
                "registry", "RegistryCore", "RegistryClient", "RegistrySQLite", "RegistryFileStore", "RegistryServer",
                "RegistryTesting",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "RegistryServerTests",
            dependencies: [
                "RegistryCore", "RegistryAPI", "RegistryServer", "RegistryClient", "RegistryTesting",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
    ]
)

for target in package.targets {
    var settings = target.swiftSettings ?? []
    settings.append(.swiftLanguageMode(.v6))
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    target.swiftSettings = settings
}
