import Foundation
import Logging
import ModelServing
import RegistryClient
import RegistryCore
import RegistryTesting
import ServiceLifecycle
import Synchronization
import Testing

/// A model whose weights are one line of text; it knows which version it was loaded as.
final class TextModel: Sendable {
    let version: Int
    let text: String

    init(directory: URL, version: Int) throws {
        self.version = version
        self.text = try String(contentsOf: directory.appendingPathComponent("model.txt"), encoding: .utf8)
    }
}

/// A real `registry serve` process with model `toy`: versions 1 and 2 approved, `production` at version 1.
struct ToyRegistry {
    static let secret = "mr_runtime-test-admin-0123456789abcdef"
    let server: RegistryProcess
    let directory: String
    let admin: RegistryClient
    /// Hands the runtimes `startRuntime` loads to the task that runs them until the test ends.
    let following: AsyncStream<ModelRuntime<TextModel>>.Continuation

    static func with(_ body: (ToyRegistry) async throws -> Void) async throws {
        let directory = NSTemporaryDirectory() + "registry-runtime-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await RegistryProcess(dataDirectory: directory + "/data", adminToken: secret)
        defer { try? FileManager.default.removeItem(atPath: server.outputPath) }
        try await server.serving {
            let (runtimes, following) = AsyncStream<ModelRuntime<TextModel>>.makeStream()
            let registry = ToyRegistry(
                server: server, directory: directory, admin: RegistryClient(baseURL: server.baseURL, token: secret),
                following: following)
            _ = try await registry.admin.createModel("toy")
            try await registry.publish(1)
            try await registry.publish(2)
            _ = try await registry.admin.promote(model: "toy", stage: "production", version: 1, revision: nil)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                // Every runtime the test starts follows its stage until the test is over, then ends with its work.
                tasks.addTask {
                    await withDiscardingTaskGroup { runs in
                        for await runtime in runtimes { runs.addTask { await runtime.run() } }
                    }
                }
                try await body(registry)
                tasks.cancelAll()
            }
        }
    }

    /// Pushes version `number` (its text is "weights v<number>") and approves it as a second subject.
    func publish(_ number: Int) async throws {
        let source = URL(fileURLWithPath: directory + "/source-\(number)")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        try "weights v\(number)".write(
            to: source.appendingPathComponent("model.txt"), atomically: true, encoding: .utf8)
        let pushed = try await admin.push(
            model: "toy", files: [PushFile(path: "model.txt", url: source.appendingPathComponent("model.txt"))])
        #expect(pushed.version.version == number)
        let reviewer = try await admin.createToken(subject: "reviewer-\(number)", admin: true)
        _ = try await RegistryClient(baseURL: server.baseURL, token: reviewer.token).decide(
            model: "toy", number: number, decision: .approve, comment: nil, revision: pushed.version.revision)
    }

    /// Loads a runtime that follows the stage until the test ends.
    func startRuntime(
        cache: String = UUID().uuidString, instance: String = "pod-1", backoff: Duration = .milliseconds(200),
        watchSeconds: Int = 10, url: String? = nil
    ) async throws -> ModelRuntime<TextModel> {
        let runtime = try await loadRuntime(
            cache: cache, instance: instance, backoff: backoff, watchSeconds: watchSeconds, url: url,
            loader: { directory, version in try TextModel(directory: directory, version: version) })
        following.yield(runtime)
        return runtime
    }

    /// Loads a runtime, for the caller to run.
    func loadRuntime(
        cache: String = UUID().uuidString, instance: String = "pod-1", backoff: Duration = .milliseconds(200),
        watchSeconds: Int = 10, url: String? = nil, loader: @escaping ModelRuntime<TextModel>.Loader
    ) async throws -> ModelRuntime<TextModel> {
        let configuration = RuntimeConfiguration(
            model: "toy", stage: "production", cacheDirectory: URL(fileURLWithPath: directory + "/cache-" + cache),
            watchSeconds: watchSeconds, gracePeriod: .seconds(600), instance: instance,
            reportInterval: .milliseconds(200),
            backoff: (backoff, backoff * 2))
        return try await ModelRuntime.load(
            client: RegistryClient(baseURL: url ?? server.baseURL, token: Self.secret), configuration: configuration,
            loader: loader)
    }

    func stage() async throws -> Stage { try await admin.stage(model: "toy", name: "production") }

    /// The registry's `registry_resolve_watches_open` gauge.
    func openWatches() async throws -> Int? {
        let line = try await admin.metricsText().split(separator: "\n")
            .first { $0.hasPrefix("registry_resolve_watches_open ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "").map { Int($0) } }
    }
}

/// Polls `condition` every 5 ms until it holds or `timeout` passes; returns how long it took, nil on timeout.
func eventually(
    within timeout: Duration = .seconds(15), _ condition: () async throws -> Bool
) async rethrows -> Duration? {
    let start = ContinuousClock.now
    while ContinuousClock.now - start < timeout {
        if try await condition() { return ContinuousClock.now - start }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return nil
}

@Suite(.serialized, .timeLimit(.minutes(10))) struct ModelRuntimeTests {
    @Test func aRuntimeWarmsTheCandidateSplitsTrafficAndFlipsBackOnAbortThroughItsWatch() async throws {
        try await ToyRegistry.with { registry in
            // A watch far longer than any scheduling delay: a flip before it runs out came from the abort waking
            // the watch, not from the next poll. (How fast is measured by ServingBenchmark, not here.)
            let runtime = try await registry.startRuntime(watchSeconds: 60)
            #expect(runtime.route("anyone").model.text == "weights v1")

            // The rollout waits for this instance: it loads the candidate, reports it, and exposure begins.
            let rollout = try await registry.admin.startRollout(
                model: "toy", stage: "production", stageRevision: try await registry.stage().revision,
                .init(version: 2, bakeSeconds: 3600, minInstances: 1))
            #expect(rollout.state == .warming)
            let exposed = await eventually { await runtime.status().weight == 5 }
            #expect(exposed != nil, "the runtime reported the candidate loaded and took the 5 % step")
            let progressing = try await registry.admin.rollout(model: "toy", stage: "production", id: rollout.id)
            #expect(progressing.state == .progressing)
            #expect(progressing.reports["pod-1"] != nil)

            // About 5 % of keys reach the candidate, always the same ones.
            let keys = (0..<100_000).map { "user-\($0)" }
            let routed = keys.map { runtime.route($0).version }
            let share = Double(routed.filter { $0 == 2 }.count) / Double(keys.count)
            #expect(abs(share - 0.05) <= 0.01, "\(share * 100) % on the candidate")
            // Sticky: asked again (in reverse order), each key gets the version it got, and that is the version
            // the rollout's own split picks for it, so every instance of the fleet agrees.
            let split = TrafficSplit(weightBasisPoints: 500, salt: TrafficSplit.salt(forRollout: rollout.id))
            #expect(zip(keys, routed).reversed().allSatisfy { runtime.route($0).version == $1 })
            #expect(zip(keys, routed).allSatisfy { $1 == (split.routesToCandidate($0) ? 2 : 1) })
            for key in keys.prefix(1000) {
                let slot = runtime.route(key)
                #expect(slot.model.text == "weights v\(slot.version)")
            }

            // Abort: every key is back on version 1, woken through the watch.
            let current = try await registry.admin.rollout(model: "toy", stage: "production", id: rollout.id)
            let abortedAt = ContinuousClock.now
            _ = try await registry.admin.moveRollout(
                model: "toy", stage: "production", id: rollout.id, .abort, revision: current.revision)
            let flipped = await eventually(within: .seconds(45)) { runtime.router.state.candidate == nil }
            let delay = ContinuousClock.now - abortedAt
            #expect(flipped != nil)
            #expect(delay < .seconds(30), "abort reached the runtime after \(delay), before its 60 s watch ran out")
            #expect(keys.prefix(10_000).allSatisfy { runtime.route($0).version == 1 })
            #expect(await runtime.status().loaded == [1, 2], "the candidate stays loaded for the grace period")
        }
    }

    @Test func aRegistryShuttingDownAnswersItsOpenWatchesInsteadOfWaitingThemOut() async throws {
        try await ToyRegistry.with { registry in
            let current = try #require(try await registry.admin.resolve(model: "toy", stage: "production"))
            let watch = Task {
                try await registry.admin.resolve(
                    model: "toy", stage: "production", ifNoneMatch: current.etag, wait: 60)
            }
            // Stop the registry only once the watch is waiting inside it.
            let waiting = try await eventually(within: .seconds(60)) {
                try await registry.openWatches() == 1
            }
            #expect(waiting != nil, "the watch reached the registry")
            let clock = ContinuousClock()
            let signalled = clock.now
            registry.server.signalTerminate()
            let answer = try await watch.value
            #expect(answer == nil, "the watch ends as unchanged (304), so the watcher simply asks again")
            let status = await registry.server.waitForExit()
            #expect(status == 0)
            #expect(clock.now - signalled < .seconds(30), "the shutdown did not wait out the 60 s watch")
        }
    }

    @Test func theRuntimeKeepsServingWhileTheRegistryIsDownAndCatchesUpAfter() async throws {
        try await ToyRegistry.with { registry in
            // The runtime keeps the address it was given: a relay holds it while the registry comes back elsewhere.
            let relay = try TCPRelay(to: registry.server.port)
            defer { relay.close() }
            let runtime = try await registry.startRuntime(url: "http://127.0.0.1:\(relay.port)")
            await registry.server.kill()
            // Requests never touch the registry: all of them are answered while it is gone.
            for index in 0..<100_000 { #expect(runtime.route(UInt64(index)).model.text == "weights v1") }
            #expect(runtime.route("after the crash").version == 1)

            let restarted = try await RegistryProcess(
                dataDirectory: registry.directory + "/data", adminToken: ToyRegistry.secret)
            relay.retarget(to: restarted.port)
            try await restarted.serving {
                let admin = RegistryClient(baseURL: restarted.baseURL, token: ToyRegistry.secret)
                let stage = try await admin.stage(model: "toy", name: "production")
                _ = try await admin.promote(model: "toy", stage: "production", version: 2, revision: stage.revision)
                let caughtUp = await eventually { runtime.route("anyone").version == 2 }
                #expect(caughtUp != nil, "the runtime followed the promotion made after the registry came back")
                #expect(runtime.route("anyone").model.text == "weights v2")
            }
        }
    }

    @Test func flipsUnderLoadNeverFailARequestOrShowAHalfLoadedModel() async throws {
        try await ToyRegistry.with { registry in
            let runtime = try await registry.startRuntime()
            let load = Load()
            let readers = DispatchGroup()
            for worker in 0..<3 {
                readers.enter()
                Thread {
                    var key = UInt64(worker) << 40
                    var served = 0
                    while !load.stop.load(ordering: .relaxed) {
                        key &+= 1
                        let slot = runtime.route(key)
                        if slot.model.text != "weights v\(slot.version)" || slot.model.version != slot.version {
                            load.failures.wrappingAdd(1, ordering: .relaxed)
                        }
                        slot.record()
                        served += 1
                    }
                    load.served.wrappingAdd(served, ordering: .relaxed)
                    readers.leave()
                }.start()
            }
            // Two rollouts while the readers run: one aborted midway, one taken to completion.
            for complete in [false, true] {
                let stage = try await registry.stage()
                var rollout = try await registry.admin.startRollout(
                    model: "toy", stage: "production", stageRevision: stage.revision,
                    .init(version: 2, steps: [5, 25, 50, 100], bakeSeconds: 3600, minInstances: 1))
                // Exposure starts once this instance reports the candidate loaded.
                _ = await eventually { await runtime.status().weight == 5 }
                rollout = try await registry.admin.rollout(model: "toy", stage: "production", id: rollout.id)
                for _ in 0..<(complete ? 3 : 1) {
                    rollout = try await registry.admin.moveRollout(
                        model: "toy", stage: "production", id: rollout.id, .advance, revision: rollout.revision)
                    try await Task.sleep(for: .milliseconds(150))
                }
                if !complete {
                    _ = try await registry.admin.moveRollout(
                        model: "toy", stage: "production", id: rollout.id, .abort, revision: rollout.revision)
                    _ = await eventually { runtime.router.state.candidate == nil }
                }
            }
            let promoted = await eventually {
                runtime.route("anyone").version == 2 && runtime.router.state.candidate == nil
            }
            // And a stage rollback: version 1 is still resident, so the flip back needs no download.
            let completed = try await registry.stage()
            _ = try await registry.admin.rollback(model: "toy", stage: "production", revision: completed.revision)
            let rolledBack = await eventually { runtime.route("anyone").version == 1 }
            load.stop.store(true, ordering: .relaxed)
            await withCheckedContinuation { done in readers.notify(queue: .global()) { done.resume() } }
            #expect(promoted != nil)
            #expect(rolledBack != nil)
            #expect(load.failures.load(ordering: .relaxed) == 0)
            #expect(load.served.load(ordering: .relaxed) > 10_000)
            let stage = try await registry.stage()
            #expect(stage.version == 1)
        }
    }
}

/// A runtime is a `Service`: a graceful shutdown of its group ends everything it started, its loads included.
@Suite(.serialized, .timeLimit(.minutes(10))) struct ModelRuntimeLifecycleTests {
    @Test(.timeLimit(.minutes(5)))
    func aGracefulShutdownEndsTheRuntimeOnlyOnceItsLoadInProgressHasEnded() async throws {
        try await ToyRegistry.with { registry in
            let candidateLoad = CandidateLoad()
            let runtime = try await registry.loadRuntime(instance: "pod-lifecycle", watchSeconds: 60) {
                directory, version in
                if version == 2 { try await candidateLoad.park() }
                return try TextModel(directory: directory, version: version)
            }
            let group = ServiceGroup(
                configuration: .init(services: [runtime], logger: Logger(label: "model-runtime-test")))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                // The rollout reaches the runtime through its watch; loading the candidate parks in the loader.
                _ = try await registry.admin.startRollout(
                    model: "toy", stage: "production", stageRevision: try await registry.stage().revision,
                    .init(version: 2, bakeSeconds: 3600, minInstances: 1))
                let parked = await eventually(within: .seconds(60)) {
                    candidateLoad.state.load(ordering: .acquiring) == 1
                }
                try #require(parked != nil, "the runtime began loading the candidate")

                let shutdown = ContinuousClock.now
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                #expect(
                    ContinuousClock.now - shutdown < .seconds(30),
                    "the runtime's 60 s watch ended with the shutdown instead of running out")
            }
            #expect(
                candidateLoad.state.load(ordering: .acquiring) == 2,
                "the load in progress ended before the runtime's run() returned, not after it")
            #expect(runtime.route("anyone").version == 1, "the router keeps serving its last state")
        }
    }
}

/// A candidate load that waits until it is cancelled: 1 while it waits, 2 once it has ended.
final class CandidateLoad: Sendable {
    let state = Atomic<Int>(0)

    func park() async throws {
        state.store(1, ordering: .releasing)
        defer { state.store(2, ordering: .releasing) }
        try await Task.sleep(for: .seconds(3600))
    }
}

final class Load: Sendable {
    let stop = Atomic<Bool>(false)
    let failures = Atomic<Int>(0)
    let served = Atomic<Int>(0)
}
