import AsyncHTTPClient
import Foundation
import ModelServing
import RegistryClient
import RegistryCore
import RegistryTesting

/// The serving side against a real `registry serve` process: how fast an abort reaches a fleet of runtimes holding
/// watches, and how long a rollout takes to expose a 1 GiB model whose files are already in the local cache.
struct FleetBenchmark {
    static let secret = "mr_fleet-bench-admin-0123456789abcdef"
    let runtimes: Int
    let aborts: Int
    let largeGiB: Int

    /// A loaded model: the version, after reading every byte of its weights once (as a real load would).
    struct Weights: Sendable {
        let version: Int
        let bytes: Int
    }

    static func load(_ directory: URL, _ version: Int) throws -> Weights {
        var total = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
            guard let handle = FileHandle(forReadingAtPath: directory.appendingPathComponent(name).path) else {
                continue
            }
            defer { try? handle.close() }
            while let block = try handle.read(upToCount: 8 << 20), !block.isEmpty { total += block.count }
        }
        return Weights(version: version, bytes: total)
    }

    func run() async throws {
        let directory = NSTemporaryDirectory() + "serving-bench-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await RegistryProcess(dataDirectory: directory + "/data", adminToken: Self.secret)
        try await server.serving {
            var configuration = HTTPClient.Configuration()
            // Every runtime holds a watch open: the pool must not queue them behind each other.
            configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 4 * runtimes + 16
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            do {
                try await measure(server: server, directory: directory, http: http)
            } catch {
                try? await http.shutdown()
                throw error
            }
            try await http.shutdown()
        }
    }

    func measure(server: RegistryProcess, directory: String, http: HTTPClient) async throws {
        let admin = RegistryClient(baseURL: server.baseURL, token: Self.secret, httpClient: http)
        let reviewer = RegistryClient(
            baseURL: server.baseURL, token: try await admin.createToken(subject: "reviewer", admin: true).token,
            httpClient: http)

        func publish(_ model: String, _ files: [String: Int]) async throws -> Int {
            let source = URL(fileURLWithPath: directory + "/source-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
            let random = FileHandle(forReadingAtPath: "/dev/urandom")!
            for (name, size) in files {
                _ = FileManager.default.createFile(atPath: source.appendingPathComponent(name).path, contents: nil)
                let out = try FileHandle(forWritingTo: source.appendingPathComponent(name))
                var left = size
                while left > 0 {
                    let block = try random.read(upToCount: min(left, 8 << 20)) ?? Data()
                    try out.write(contentsOf: block)
                    left -= block.count
                }
                try out.close()
            }
            let pushed = try await admin.push(
                model: model, files: files.keys.map { PushFile(path: $0, url: source.appendingPathComponent($0)) })
            _ = try await reviewer.decide(
                model: model, number: pushed.version.version, decision: .approve, comment: nil,
                revision: pushed.version.revision)
            try? FileManager.default.removeItem(at: source)
            return pushed.version.version
        }

        // Each runtime follows its stage until the measurement that uses it is over.
        var following: [Task<Void, Never>] = []
        func start(_ model: String, instance: String, grace: Duration = .seconds(600)) async throws
            -> ModelRuntime<Weights>
        {
            let runtime = try await ModelRuntime.load(
                client: RegistryClient(baseURL: server.baseURL, token: Self.secret, httpClient: http),
                configuration: RuntimeConfiguration(
                    model: model, stage: "production",
                    cacheDirectory: URL(fileURLWithPath: directory + "/cache-\(model)-\(instance)"), watchSeconds: 30,
                    gracePeriod: grace, instance: instance, reportInterval: .milliseconds(250)),
                loader: { directory, version in try Self.load(directory, version) })
            following.append(Task { await runtime.run() })
            return runtime
        }
        func stopFollowing() async {
            for task in following { task.cancel() }
            for task in following { await task.value }
            following.removeAll()
        }

        print("| measurement | runs | p50 ms | max ms | notes |")
        print("|---|---:|---:|---:|---|")

        // 1. Abort → every one of N watching runtimes serves the stable version again.
        _ = try await admin.createModel("fleet")
        _ = try await publish("fleet", ["model.bin": 64 << 10])
        let candidate = try await publish("fleet", ["model.bin": 64 << 10])
        _ = try await admin.promote(model: "fleet", stage: "production", version: 1, revision: nil)
        var fleet: [ModelRuntime<Weights>] = []
        for index in 0..<runtimes { fleet.append(try await start("fleet", instance: "pod-\(index)")) }
        var abortTimes: [Double] = []
        var slowest: [Double] = []
        for _ in 0..<aborts {
            let stage = try await admin.stage(model: "fleet", name: "production")
            var rollout = try await admin.startRollout(
                model: "fleet", stage: "production", stageRevision: stage.revision,
                .init(version: candidate, bakeSeconds: 3600, minInstances: runtimes))
            try await until(seconds: 60) { fleet.allSatisfy { $0.router.state.split.weightBasisPoints == 500 } }
            rollout = try await admin.rollout(model: "fleet", stage: "production", id: rollout.id)
            let began = ContinuousClock.now
            _ = try await admin.moveRollout(
                model: "fleet", stage: "production", id: rollout.id, .abort, revision: rollout.revision)
            var arrivals = [Double?](repeating: nil, count: runtimes)
            try await until(seconds: 10) {
                let now = (ContinuousClock.now - began).milliseconds
                for (index, runtime) in fleet.enumerated() where arrivals[index] == nil {
                    if runtime.router.state.candidate == nil { arrivals[index] = now }
                }
                return arrivals.allSatisfy { $0 != nil }
            }
            let times = arrivals.compactMap { $0 }.sorted()
            abortTimes.append(contentsOf: times)
            slowest.append(times.last ?? 0)
        }
        abortTimes.sort()
        slowest.sort()
        print(
            String(
                format: "| abort → all %d watching runtimes on the stable version | %d | %.1f | %.1f | "
                    + "per-runtime p50 %.1f ms; slowest runtime per abort, median %.1f ms |",
                runtimes, aborts, slowest[slowest.count / 2], slowest.last ?? 0, abortTimes[abortTimes.count / 2],
                slowest[slowest.count / 2]))
        await stopFollowing()
        fleet.removeAll()

        // 2. Rollout start → first exposure of a large model already in the local cache.
        guard largeGiB > 0 else { return }
        _ = try await admin.createModel("large")
        _ = try await publish("large", ["model.bin": 1 << 20])
        let big = try await publish("large", ["weights.bin": largeGiB << 30])
        _ = try await admin.promote(model: "large", stage: "production", version: 1, revision: nil)
        // A runtime that unloads at once, so the second rollout finds the files cached but nothing in memory.
        let runtime = try await start("large", instance: "gpu-0", grace: .zero)
        var exposures: [Double] = []
        for round in 0..<3 {
            let stage = try await admin.stage(model: "large", name: "production")
            let began = ContinuousClock.now
            var rollout = try await admin.startRollout(
                model: "large", stage: "production", stageRevision: stage.revision,
                .init(version: big, bakeSeconds: 3600, minInstances: 1))
            try await until(seconds: 600) { runtime.router.state.split.weightBasisPoints > 0 }
            let elapsed = (ContinuousClock.now - began).milliseconds
            if round > 0 {
                exposures.append(elapsed)
            } else {
                print(
                    "| first rollout (downloads \(largeGiB) GiB) | 1 | \(String(format: "%.0f", elapsed)) | | cold cache, for comparison |"
                )
            }
            rollout = try await admin.rollout(model: "large", stage: "production", id: rollout.id)
            _ = try await admin.moveRollout(
                model: "large", stage: "production", id: rollout.id, .abort, revision: rollout.revision)
            try await until(seconds: 30) { await runtime.status().loaded == [1] }
        }
        exposures.sort()
        print(
            String(
                format: "| rollout start → first exposure, %d GiB model in the local cache | %d | %.0f | %.0f | "
                    + "resolve watch, load (reads every byte), report, warm-up gate, watch |",
                largeGiB, exposures.count, exposures[exposures.count / 2], exposures.last ?? 0))
        await stopFollowing()
    }

    func until(seconds: Double, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while try await !condition() {
            guard ContinuousClock.now < deadline else { throw BenchmarkTimeout() }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    struct BenchmarkTimeout: Error {}
}

extension Duration {
    var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}
