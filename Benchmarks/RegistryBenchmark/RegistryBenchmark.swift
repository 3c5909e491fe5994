import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import RegistryCore
import RegistryFileStore
import RegistryPostgres
import RegistrySQLite
import RegistryServer

/// Measures the control plane over real HTTP on loopback against the embedded default (SQLite + files), or against
/// several in-process instances sharing one PostgreSQL database (`--database`, `--instances`).
@main
struct RegistryBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registry-benchmark",
        abstract: "Control-plane latency and throughput over HTTP on loopback.")

    @Option(help: "Models to seed.") var models = 300
    @Option(help: "Versions per model to seed.") var versions = 10
    @Option(help: "Requests per operation and concurrency level.") var requests = 2000
    @Option(help: "Concurrency levels, comma separated.") var concurrency = "1,8"
    @Option(help: "Operations to measure, comma separated (get,resolve,list,create,promote); all by default.")
    var operations = "get,resolve,list,create,promote"
    @Option(help: "Unrecorded requests per operation before measuring, so the read caches are warm (0: measure cold).")
    var warmup = 3000
    @Option(help: "Directory for the registry's data (a fresh temporary one by default).") var dataDir: String?
    @Option(
        help: "Instead of the operations: the cost of one rollout report at these fleet sizes, comma separated.")
    var reportFleet: String?
    @Option(help: "Reports measured at each fleet size (with --report-fleet).") var reportSamples = 300
    @Option(help: "Keep metadata in this PostgreSQL database instead of SQLite (postgres://…; it must be empty).")
    var database: String?
    @Option(help: "Registry instances sharing --database; workers and requests are spread over them.")
    var instances = 1
    @Option(help: "Promotions on one instance timed until a resolve watch on another sees them (with --instances 2+).")
    var propagation = 200

    func run() async throws {
        let levels = concurrency.split(separator: ",").compactMap { Int($0) }
        let selected = Set(operations.split(separator: ",").map(String.init))
        let directory = dataDir ?? NSTemporaryDirectory() + "registry-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { if dataDir == nil { try? FileManager.default.removeItem(atPath: directory) } }

        let blobs = try FileSystemBlobStore(root: directory + "/blobs")
        let adminSecret = "bench-admin-" + UUID().uuidString
        var logger = Logger(label: "benchmark")
        logger.logLevel = .error
        guard instances >= 1, database != nil || instances == 1 else {
            throw ValidationError("--instances above 1 needs --database: SQLite is one process's store.")
        }
        var stores: [PostgresMetadataStore] = []
        var servers: [RunningRegistryServer] = []
        var storeTasks: [Task<Void, any Error>] = []
        for _ in 0..<instances {
            let server: RunningRegistryServer
            if let database {
                let store = PostgresMetadataStore(
                    configuration: try .init(url: database, poolSize: 16), logger: logger)
                storeTasks.append(Task { try await store.run() })
                try await store.prepare()
                stores.append(store)
                let metadata = CachedMetadataStore(store)
                store.onRemoteChange { model in metadata.invalidate(model: model) }
                _ = try await AdminBootstrap.ensureAdminToken(in: metadata, configuredSecret: adminSecret)
                server = try await RegistryApplication.start(
                    configuration: ServerConfiguration(host: "127.0.0.1", port: 0), metadata: metadata, blobs: blobs,
                    logger: logger)
            } else {
                let metadata = CachedMetadataStore(try SQLiteMetadataStore(path: directory + "/metadata.sqlite"))
                _ = try await AdminBootstrap.ensureAdminToken(in: metadata, configuredSecret: adminSecret)
                server = try await RegistryApplication.start(
                    configuration: ServerConfiguration(host: "127.0.0.1", port: 0), metadata: metadata, blobs: blobs,
                    logger: logger)
            }
            servers.append(server)
        }
        let server = servers[0]
        let baseURLs = servers.map(\.baseURL)
        defer { for task in storeTasks { task.cancel() } }

        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        do {
            let http = BenchmarkHTTP(client: client, baseURL: server.baseURL, token: adminSecret)
            let seed = try await Seed.run(http: http, models: models, versions: versions)
            print(Machine.describe())
            print(
                "store: " + (database == nil ? "SQLite" : "PostgreSQL, \(instances) instance(s)")
                    + ", requests spread over \(baseURLs.count) server(s)")
            print("seeded \(models) models × \(versions) versions in \(String(format: "%.1f", seed.seconds)) s\n")
            if let reportFleet {
                let sizes = reportFleet.split(separator: ",").compactMap { Int($0) }
                try await ReportBenchmark(baseURL: server.baseURL, token: adminSecret, seed: seed)
                    .run(fleetSizes: sizes, samples: reportSamples, http: http)
                try await client.shutdown()
                for server in servers { await server.shutdown() }
                return
            }
            print("| operation | concurrency | requests | p50 ms | p95 ms | p99 ms | req/s |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            for level in levels {
                for operation in Operation.allCases where selected.contains(operation.key) {
                    if warmup > 0 {
                        _ = try await measure(
                            operation, concurrency: level, requests: warmup, baseURLs: baseURLs,
                            token: adminSecret, seed: seed)
                    }
                    let result = try await measure(
                        operation, concurrency: level, requests: requests, baseURLs: baseURLs,
                        token: adminSecret, seed: seed)
                    print(
                        "| \(operation.rawValue) | \(level) | \(requests) | "
                            + String(
                                format: "%.2f | %.2f | %.2f | %.0f |", result.latencies.percentile(0.50),
                                result.latencies.percentile(0.95), result.latencies.percentile(0.99),
                                result.throughput))
                }
            }
            if servers.count > 1, propagation > 0 {
                let times = try await Propagation.measure(
                    samples: propagation, from: servers[0].baseURL, to: servers[1].baseURL, token: adminSecret,
                    seed: seed, client: client)
                print(
                    "\npromotion on instance A → resolve watch on instance B, \(propagation) samples: "
                        + String(
                            format: "p50 %.2f ms, p95 %.2f ms, p99 %.2f ms", times.percentile(0.50),
                            times.percentile(0.95), times.percentile(0.99)))
            }
        } catch {
            try? await client.shutdown()
            for server in servers { await server.shutdown() }
            throw error
        }
        try await client.shutdown()
        for server in servers { await server.shutdown() }
    }

    enum Operation: String, CaseIterable {
        case getVersion = "get version"
        case resolve = "resolve"
        case listVersions = "list versions"
        case createVersion = "create version"
        case promote = "promote (stage PUT + If-Match)"

        var key: String {
            switch self {
            case .getVersion: "get"
            case .resolve: "resolve"
            case .listVersions: "list"
            case .createVersion: "create"
            case .promote: "promote"
            }
        }
    }

    struct Result {
        var latencies: LatencyRecorder
        var throughput: Double
    }

    func measure(
        _ operation: Operation, concurrency: Int, requests: Int, baseURLs: [String], token: String, seed: Seed
    ) async throws -> Result {
        let perWorker = max(1, requests / concurrency)
        let run = UInt32.random(in: 0...UInt32.max)  // warm-up and measured runs promote fresh stages
        let body = Array(#"{"manifestDigest":"\#(seed.manifestDigest)","metadata":{"bench":true}}"#.utf8)
        let start = ContinuousClock.now
        let recorders = try await onThreads(concurrency) { worker -> LatencyRecorder in
            // Workers are spread over the instances, as a load balancer spreads connections.
            let connection = try RawHTTPConnection(baseURL: baseURLs[worker % baseURLs.count])
            var recorder = LatencyRecorder()
            recorder.reserve(requests)
            var generator = SystemRandomNumberGenerator()
            // Promotions: each worker flips its own stage between two approved versions.
            let promoteModel = seed.modelNames[worker % seed.modelNames.count]
            let stage = "bench-\(run)-c\(concurrency)-w\(worker)"
            var stageRevision: Int? = nil
            func expect(_ statuses: Set<Int>, _ response: RawHTTPConnection.Response, _ what: String) throws {
                guard statuses.contains(response.status) else {
                    throw BenchmarkFailure(
                        "\(what) answered \(response.status): \(String(decoding: response.body.prefix(300), as: UTF8.self))"
                    )
                }
            }
            for index in 0..<perWorker {
                let model = seed.modelNames.randomElement(using: &generator)!
                let number = Int.random(in: 1...seed.versionsPerModel, using: &generator)
                let began = ContinuousClock.now
                switch operation {
                case .getVersion:
                    let path = "/v1/models/\(model)/versions/\(number)"
                    try expect([200], try connection.send("GET", path, token: token), path)
                case .resolve:
                    let path = "/v1/resolve/\(model)/production"
                    try expect([200], try connection.send("GET", path, token: token), path)
                case .listVersions:
                    let path = "/v1/models/\(model)/versions?limit=20"
                    try expect([200], try connection.send("GET", path, token: token), path)
                case .createVersion:
                    let path = "/v1/models/\(model)/versions"
                    try expect([201], try connection.send("POST", path, token: token, json: body), path)
                case .promote:
                    let target = index % 2 == 0 ? seed.versionsPerModel - 1 : seed.versionsPerModel
                    let precondition = stageRevision.map { ("If-Match", "\"\($0)\"") } ?? ("If-None-Match", "*")
                    let path = "/v1/models/\(promoteModel)/stages/\(stage)"
                    let response = try connection.send(
                        "PUT", path, token: token, json: Array(#"{"version":\#(target),"reason":"benchmark"}"#.utf8),
                        headers: [precondition])
                    try expect([200, 201], response, path)
                    stageRevision = response.etagRevision
                }
                recorder.record(ContinuousClock.now - began)
            }
            return recorder
        }
        let elapsed = (ContinuousClock.now - start).milliseconds / 1000
        var latencies = LatencyRecorder()
        for recorder in recorders { latencies.merge(recorder) }
        return Result(latencies: latencies, throughput: Double(latencies.samples.count) / elapsed)
    }
}

/// The seeded data set: models with versions, the last two approved, `production` on the last.
struct Seed: Sendable {
    var modelNames: [String]
    var versionsPerModel: Int
    var manifestDigest: String
    var seconds: Double

    static func run(http: BenchmarkHTTP, models: Int, versions: Int) async throws -> Seed {
        let start = ContinuousClock.now
        let reviewer =
            try await http.expect(
                [201], .POST, "/v1/tokens", json: ["subject": "bench-reviewer", "admin": true]
            ).json()["token"] as? String ?? ""
        let chunk = (0..<4096).map { _ in UInt8.random(in: 0...255) }
        let chunkDigest = Digest(of: chunk).description
        try await http.expect([200, 201], .PUT, "/v1/blobs/\(chunkDigest)", bytes: chunk)
        let manifest: [String: Any] = [
            "schemaVersion": 1,
            "files": [
                [
                    "path": "model.bin", "size": chunk.count, "digest": chunkDigest,
                    "chunks": [["digest": chunkDigest, "size": chunk.count]],
                ]
            ],
        ]
        let manifestDigest =
            try await http.expect([200, 201], .PUT, "/v1/manifests", json: manifest).json()["digest"]
            as? String ?? ""
        let names = (0..<models).map { String(format: "bench-model-%04d", $0) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for name in names.enumerated().filter({ $0.offset % 8 == worker }).map(\.element) {
                        try await http.expect(
                            [201], .POST, "/v1/models", json: ["name": name, "tags": ["team": "bench"]])
                        for _ in 1...versions {
                            try await http.expect(
                                [201], .POST, "/v1/models/\(name)/versions",
                                json: ["manifestDigest": manifestDigest, "source": ["runId": "seed"]])
                        }
                        for number in max(1, versions - 1)...versions {
                            try await http.expect(
                                [200, 201], .POST, "/v1/models/\(name)/versions/\(number)/approvals",
                                json: ["decision": "approve"], headers: [("If-Match", "\"1\"")], token: reviewer)
                        }
                        try await http.expect(
                            [200, 201], .PUT, "/v1/models/\(name)/stages/production", json: ["version": versions],
                            headers: [("If-None-Match", "*")])
                    }
                }
            }
            try await group.waitForAll()
        }
        return Seed(
            modelNames: names, versionsPerModel: versions, manifestDigest: manifestDigest,
            seconds: (ContinuousClock.now - start).milliseconds / 1000)
    }
}

enum Machine {
    static func describe() -> String {
        let cpu =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return "machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu), "
            + "\(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
    }
}
