import Foundation
import RegistryAPI
import RegistryClient
import RegistryCore
import ServiceLifecycle

/// How a `ModelRuntime` follows a stage.
public struct RuntimeConfiguration: Sendable {
    public var model: String
    public var stage: String
    /// Versions are downloaded to `<cacheDirectory>/<version>/` and kept for the next start.
    public var cacheDirectory: URL
    /// How often the stage is resolved again when no watch answer arrives: 30–300 s (clamped), with `jitter`.
    public var ttl: Duration
    /// ± this share of `ttl`, so a fleet does not resolve in lockstep.
    public var jitter: Double
    /// Whether to hold a watch (`GET /v1/resolve?wait=`) open, so changes arrive at once instead of after a TTL.
    public var watch: Bool
    public var watchSeconds: Int
    /// How long a replaced model stays loaded for an instant rollback (10–30 minutes in production).
    public var gracePeriod: Duration
    /// This instance's name and region in rollout reports.
    public var instance: String
    public var region: String?
    public var reportInterval: Duration
    public var transferConcurrency: Int
    /// Checks each downloaded version before it is loaded; throwing refuses the version. By default the model's
    /// trust policy is applied: when it requires a signature, the version's must verify against its trusted keys.
    public var verify: PullVerification?
    /// Retry delays while the registry is unreachable: doubling from the first to the second.
    public var backoff: (initial: Duration, maximum: Duration)

    public init(
        model: String, stage: String, cacheDirectory: URL, ttl: Duration = .seconds(60), jitter: Double = 0.1,
        watch: Bool = true, watchSeconds: Int = 30, gracePeriod: Duration = .seconds(15 * 60),
        instance: String = RuntimeConfiguration.defaultInstance, region: String? = nil,
        reportInterval: Duration = .seconds(5), transferConcurrency: Int = 8, verify: PullVerification? = nil,
        backoff: (initial: Duration, maximum: Duration) = (.seconds(1), .seconds(30))
    ) {
        self.model = model
        self.stage = stage
        self.cacheDirectory = cacheDirectory
        self.ttl = min(max(ttl, .seconds(30)), .seconds(300))
        self.jitter = min(max(jitter, 0), 0.5)
        self.watch = watch
        self.watchSeconds = max(1, watchSeconds)
        self.gracePeriod = gracePeriod
        self.instance = instance
        self.region = region
        self.reportInterval = reportInterval
        self.transferConcurrency = max(1, transferConcurrency)
        self.verify = verify
        self.backoff = backoff
    }

    /// `<host name>-<process id>`.
    public static var defaultInstance: String {
        "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
    }
}

/// The serving side of the registry, embedded in an inference service: it follows a stage out of band and keeps
/// the right models loaded, while the request path (`route`) never touches the network.
///
/// - `load` resolves the stage, downloads the stable version (verified, resumable) into the cache directory, loads
///   and warms it, and only then returns a runtime serving it.
/// - `run()`, a `Service` to run in the caller's `ServiceGroup`, then holds a watch on the resolution (and
///   re-resolves every TTL with jitter as a safety net). A new version is downloaded, loaded and warmed in the
///   background while the current one serves, then published atomically.
/// - During a rollout it loads the candidate, reports it loaded (which opens the rollout's warm-up gate), and
///   routes each request by its key: `weight` % of keys go to the candidate, always the same ones.
/// - A replaced model stays loaded for `gracePeriod`, so a rollback or an abort flips back without downloading.
/// - If the registry is unreachable it keeps serving what it has and retries with backoff.
public final class ModelRuntime<Model: Sendable>: Service {
    /// Loads a version from its downloaded directory.
    public typealias Loader = @Sendable (_ directory: URL, _ version: Int) async throws -> Model
    /// Runs a loaded model before it takes traffic (a few inferences, JIT compilation, cache warming).
    public typealias WarmUp = @Sendable (Model) async throws -> Void
    /// Releases a model once its grace period is over.
    public typealias Unload = @Sendable (Model) async -> Void
    /// Hears every state the runtime publishes, in order (the previous stable version as the second argument),
    /// before the next one is published.
    public typealias Published = @Sendable (ServingState<Model>, _ previousStable: Int?) -> Void

    public let router: ModelRouter<Model>
    public let configuration: RuntimeConfiguration
    private let coordinator: RuntimeCoordinator<Model>

    /// Resolves, downloads, loads and warms the stable version, and returns a runtime serving it; it follows the
    /// stage while `run()` runs.
    public static func load(
        client: RegistryClient, configuration: RuntimeConfiguration, loader: @escaping Loader,
        warmUp: WarmUp? = nil, unload: Unload? = nil, published: Published? = nil
    ) async throws -> ModelRuntime {
        try FileManager.default.createDirectory(at: configuration.cacheDirectory, withIntermediateDirectories: true)
        let coordinator = RuntimeCoordinator(
            client: client, configuration: configuration, loader: loader, warmUp: warmUp, unload: unload,
            published: published)
        let router = try await coordinator.startServing()
        return ModelRuntime(router: router, configuration: configuration, coordinator: coordinator)
    }

    private init(
        router: ModelRouter<Model>, configuration: RuntimeConfiguration, coordinator: RuntimeCoordinator<Model>
    ) {
        self.router = router
        self.configuration = configuration
        self.coordinator = coordinator
    }

    /// Follows the stage (watch, TTL resolves, loads, rollout reports, unloading after the grace period) until a
    /// graceful shutdown or cancellation, then returns once all of that work has ended; the router keeps serving
    /// its last state. A load in progress is cancelled. Run it once.
    public func run() async {
        let coordinator = self.coordinator
        await cancelWhenGracefulShutdown { await coordinator.follow() }
    }

    /// The slot serving `key` now: one atomic load and a hash.
    @inlinable
    public func route(_ key: some StringProtocol) -> ServingSlot<Model> { router.route(key) }

    @inlinable
    public func route(_ key: UInt64) -> ServingSlot<Model> { router.route(key) }

    /// What the runtime follows and has loaded, for status pages and tests.
    public func status() async -> RuntimeStatus { await coordinator.status() }

    /// Applies the current resolution now instead of waiting for the watch or the TTL (what it needs to load is
    /// loaded while `run()` runs).
    public func refresh() async throws { try await coordinator.resolveOnce(wait: nil) }
}

/// A snapshot of what a runtime does.
public struct RuntimeStatus: Sendable, Equatable {
    public var stable: Int
    public var candidate: Int?
    public var weight: Double
    public var rolloutId: String?
    /// Every version loaded in memory, serving or kept for rollback.
    public var loaded: [Int]
    /// When the registry last answered.
    public var lastContact: Date?
}

/// The runtime's state, changed only here and one step at a time; loads run in their own tasks and call back.
actor RuntimeCoordinator<Model: Sendable> {
    let client: RegistryClient
    let configuration: RuntimeConfiguration
    let loader: ModelRuntime<Model>.Loader
    let warmUp: ModelRuntime<Model>.WarmUp?
    let unload: ModelRuntime<Model>.Unload?
    let published: ModelRuntime<Model>.Published?

    private var router: ModelRouter<Model>?
    private var desired: Resolution?
    private var etag: String?
    private var slots: [Int: ServingSlot<Model>] = [:]
    /// Versions being loaded, by a task of `follow()`.
    private var loading: Set<Int> = []
    /// Loads `reconcile()` asks for, started by `follow()` as its own child tasks.
    private let loads: AsyncStream<(target: Resolution.Target, artifactsURL: String?)>
    private let requestLoad: AsyncStream<(target: Resolution.Target, artifactsURL: String?)>.Continuation
    private var failed: [Int: String] = [:]
    /// When each loaded version stopped serving; unloaded `gracePeriod` later unless it serves again.
    private var retired: [Int: ContinuousClock.Instant] = [:]
    private var lastContact: Date?
    /// The stable version before the current one, while it may still be needed for a rollback.
    private var previousStable: Int?

    init(
        client: RegistryClient, configuration: RuntimeConfiguration, loader: @escaping ModelRuntime<Model>.Loader,
        warmUp: ModelRuntime<Model>.WarmUp?, unload: ModelRuntime<Model>.Unload?,
        published: ModelRuntime<Model>.Published?
    ) {
        self.published = published
        self.client = client
        self.configuration = configuration
        self.loader = loader
        self.warmUp = warmUp
        self.unload = unload
        (loads, requestLoad) = AsyncStream.makeStream()
    }

    // MARK: Running

    /// Runs the watch, the TTL resolves, the reports, the unloading and every load as child tasks, until cancelled.
    func follow() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.pollLoop() }
            group.addTask { await self.reportLoop() }
            group.addTask { await self.sweepLoop() }
            if configuration.watch { group.addTask { await self.watchLoop() } }
            // Ends when the task is cancelled, and the group then waits for the loads it started.
            for await load in loads {
                group.addTask { await self.loadAndPublish(load.target, artifactsURL: load.artifactsURL) }
            }
        }
    }

    // MARK: Start

    /// Loads the stable version the registry names (retrying while it is unreachable) and returns the router.
    func startServing() async throws -> ModelRouter<Model> {
        var delay = configuration.backoff.initial
        while true {
            do {
                guard let resolution = try await client.resolve(model: configuration.model, stage: configuration.stage)
                else { throw RegistryError(.internalError, "The registry answered 304 to an unconditional resolve.") }
                lastContact = Date()
                let slot = try await load(resolution.stable, artifactsURL: resolution.artifactsURL)
                slots[slot.version] = slot
                let first = ServingState(stable: slot)
                let router = ModelRouter(first)
                self.router = router
                published?(first, nil)
                desired = resolution
                etag = resolution.etag
                reconcile()
                return router
            } catch let error as RegistryError where !Self.isTransient(error) {
                throw error
            } catch {
                try await Task.sleep(for: delay)
                delay = min(delay * 2, configuration.backoff.maximum)
            }
        }
    }

    // MARK: Following the stage

    func watchLoop() async {
        var delay = configuration.backoff.initial
        while !Task.isCancelled {
            do {
                try await resolveOnce(wait: configuration.watchSeconds)
                delay = configuration.backoff.initial
            } catch {
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, configuration.backoff.maximum)
            }
        }
    }

    func pollLoop() async {
        var failures = 0
        while !Task.isCancelled {
            let base =
                failures == 0
                ? configuration.ttl
                : min(configuration.backoff.initial * (1 << min(failures, 10)), configuration.backoff.maximum)
            let spread = Double.random(in: -configuration.jitter...configuration.jitter)
            try? await Task.sleep(for: base * (1 + spread))
            do {
                try await resolveOnce(wait: nil)
                failures = 0
            } catch {
                failures += 1
            }
        }
    }

    /// One conditional resolve (a watch with `wait`); applies a changed answer.
    func resolveOnce(wait: Int?) async throws {
        let known = etag
        let answer = try await client.resolve(
            model: configuration.model, stage: configuration.stage, ifNoneMatch: known, wait: wait)
        lastContact = Date()
        guard let answer else { return }
        apply(answer)
    }

    func apply(_ resolution: Resolution) {
        var comparable = resolution
        comparable.etag = desired?.etag
        if let desired, comparable == desired { return }
        desired = resolution
        etag = resolution.etag
        reconcile()
    }

    /// Publishes the best state the loaded models allow for the desired resolution, and starts loading what is
    /// missing. Never waits: an abort or a rollback to a resident version takes effect here, at once.
    private func reconcile() {
        guard let desired, let router else { return }
        let current = router.state
        for target in [desired.stable] + (desired.candidate.map { [$0] } ?? []) where slots[target.version] == nil {
            startLoading(target, artifactsURL: desired.artifactsURL)
        }
        // Until the new stable version is loaded the current one keeps serving.
        let stable = slots[desired.stable.version] ?? current.stable
        var candidate: ServingSlot<Model>?
        var split: TrafficSplit?
        if let target = desired.candidate, target.version != stable.version, let slot = slots[target.version] {
            candidate = slot
            split = TrafficSplit(
                percent: target.weight ?? 0, salt: TrafficSplit.salt(forRollout: desired.rolloutId ?? ""))
        }
        let next = ServingState(stable: stable, candidate: candidate, split: split, rolloutId: desired.rolloutId)
        if next.stable !== current.stable || next.candidate !== current.candidate
            || next.split != current.split || next.rolloutId != current.rolloutId
        {
            router.publish(next)
            if next.stable !== current.stable { previousStable = current.stable.version }
            published?(next, previousStable)
        }
        let serving = Set([next.stable.version] + (next.candidate.map { [$0.version] } ?? []))
        let now = ContinuousClock.now
        for version in slots.keys {
            if serving.contains(version) {
                retired[version] = nil
            } else if retired[version] == nil {
                retired[version] = now
            }
        }
    }

    private func startLoading(_ target: Resolution.Target, artifactsURL: String?) {
        guard loading.insert(target.version).inserted else { return }
        requestLoad.yield((target, artifactsURL))
    }

    /// Loads a version in the background, publishes what it allows and tells the rollout at once.
    private func loadAndPublish(_ target: Resolution.Target, artifactsURL: String?) async {
        do {
            let slot = try await load(target, artifactsURL: artifactsURL)
            loaded(slot)
        } catch {
            loading.remove(target.version)
            // A load cut short by the shutdown did not fail, and the rollout is no longer this runtime's to tell.
            if Task.isCancelled { return }
            failed[target.version] = "\(error)"
        }
        await reportNow()
    }

    private func loaded(_ slot: ServingSlot<Model>) {
        loading.remove(slot.version)
        failed[slot.version] = nil
        slots[slot.version] = slot
        reconcile()
    }

    /// Downloads (unless already in the cache), verifies, loads and warms one version.
    private func load(_ target: Resolution.Target, artifactsURL: String?) async throws -> ServingSlot<Model> {
        let directory = configuration.cacheDirectory.appendingPathComponent("\(target.version)")
        let marker = configuration.cacheDirectory.appendingPathComponent(".\(target.version).manifest")
        let cached = (try? String(contentsOf: marker, encoding: .utf8)) == target.manifestDigest.description
        if !cached {
            // The model's trust policy is enforced here too: a version without a trusted signature is never loaded.
            var verify = configuration.verify
            if verify == nil {
                let policy = try await client.model(configuration.model).trustPolicy
                if policy.requireSignature {
                    verify = client.signatureVerifier(
                        model: configuration.model, version: target.version, stage: nil, trustedKeys: policy.trustedKeys
                    )
                }
            }
            // The same HTTP client (its trust roots: `--ca-cert`) and the same rules on where the token may go.
            let artifacts = try client.artifactClient(for: artifactsURL)
            _ = try await artifacts.pull(
                manifestDigest: target.manifestDigest, version: target.version, to: directory,
                concurrency: configuration.transferConcurrency, verify: verify)
            try target.manifestDigest.description.write(to: marker, atomically: true, encoding: .utf8)
        }
        let model = try await loader(directory, target.version)
        try await warmUp?(model)
        return ServingSlot(version: target.version, model: model)
    }

    // MARK: Reports and unloading

    func reportLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.reportInterval)
            await reportNow()
        }
    }

    /// Tells the rollout in progress where this instance is.
    func reportNow() async {
        guard let desired, let rolloutId = desired.rolloutId, let candidate = desired.candidate, let router else {
            return
        }
        let state = router.state
        let report: RegistryClient.RolloutReport
        if failed[candidate.version] != nil {
            report = .init(instance: configuration.instance, region: configuration.region, state: .failed)
        } else if let slot = state.candidate, slot.version == candidate.version {
            let counts = slot.counts
            let stable = state.stable.counts
            report = .init(
                instance: configuration.instance, region: configuration.region,
                state: state.split.weightBasisPoints > 0 ? .serving : .loaded, requests: counts.requests,
                errors: counts.errors, stableRequests: stable.requests, stableErrors: stable.errors)
        } else if slots[candidate.version] != nil {
            report = .init(instance: configuration.instance, region: configuration.region, state: .loaded)
        } else {
            return
        }
        do {
            _ = try await client.report(
                model: configuration.model, stage: configuration.stage, rolloutId: rolloutId, report)
        } catch {
            // The next report carries the same information; a finished rollout refuses reports.
        }
    }

    func sweepLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: min(configuration.gracePeriod / 4, .seconds(5)) + .milliseconds(10))
            await sweep()
        }
    }

    /// Unloads the models whose grace period is over.
    func sweep() async {
        let now = ContinuousClock.now
        let expired = retired.filter { now - $0.value >= configuration.gracePeriod }.map(\.key)
        for version in expired {
            retired[version] = nil
            guard let slot = slots.removeValue(forKey: version) else { continue }
            await unload?(slot.model)
        }
    }

    func status() -> RuntimeStatus {
        let state = router?.state
        return RuntimeStatus(
            stable: state?.stable.version ?? 0, candidate: state?.candidate?.version,
            weight: state.map { Double($0.split.weightBasisPoints) / 100 } ?? 0, rolloutId: state?.rolloutId,
            loaded: slots.keys.sorted(), lastContact: lastContact)
    }

    /// Errors worth retrying: the registry is unreachable or overloaded.
    static func isTransient(_ error: RegistryError) -> Bool {
        [.unavailable, .internalError].contains(error.code)
    }
}
