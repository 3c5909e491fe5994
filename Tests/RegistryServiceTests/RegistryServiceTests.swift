import Foundation
import RegistryCore
import RegistrySQLite
import RegistryService
import Synchronization
import Testing

/// The rules the service owns, on both embedded stores: trust-policy guards and their retry, signature checks where a
/// version would take traffic, the rollback target found once, manifest completeness, the first rollout decision.
@Suite(.timeLimit(.minutes(10))) struct RegistryServiceTests {
    enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case memory, sqlite

        var testDescription: String { rawValue }

        func store() throws -> any MetadataStore {
            switch self {
            case .memory: return InMemoryMetadataStore()
            case .sqlite:
                let directory = FileManager.default.temporaryDirectory
                    .appendingPathComponent("service-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                return try SQLiteMetadataStore(path: directory.appendingPathComponent("metadata.sqlite").path)
            }
        }
    }

    /// A service over a fresh store, with model `fraud` owned by alice whose versions 1…`versions` are approved
    /// (unsigned, their manifests stored) and whose `production` stage moved through `promotions` in order.
    struct World {
        let service: RegistryService
        let store: any MetadataStore
        let blobs: InMemoryBlobStore
        let alice = Caller(principal: Principal(subject: "alice", admin: false), requestId: "test")

        static func make(_ backend: Backend, versions: Int = 2, promotions: [Int] = []) async throws -> World {
            let store = try backend.store()
            let blobs = InMemoryBlobStore()
            let world = World(service: RegistryService(metadata: store, blobs: blobs), store: store, blobs: blobs)
            _ = try await store.createModel(
                Model(
                    name: "fraud", description: "", tags: [:], createdBy: "alice",
                    grants: [Grant(subject: "alice", role: .owner), Grant(subject: "carol", role: .deployer)],
                    createdAt: Timestamp.now()),
                context: world.context("alice"))
            for number in 1...versions { try await world.approvedVersion(seed: "v\(number)") }
            for version in promotions {
                let current = try await store.stage(model: "fraud", name: "production")
                _ = try await store.promote(
                    model: "fraud", stage: "production",
                    precondition: current.map { .revision($0.revision) } ?? .absent,
                    version: version, reason: nil, context: world.context("alice"))
            }
            return world
        }

        func context(_ actor: String) -> MutationContext {
            MutationContext(actor: actor, requestId: "req-\(UUID().uuidString.prefix(8))")
        }

        /// Stores a one-file manifest of `seed`'s bytes and its chunk; returns the manifest's digest.
        func storedManifest(seed: String, storeChunk: Bool = true) async throws -> Digest {
            let bytes = Array(seed.utf8)
            let chunk = Digest(of: bytes)
            if storeChunk { _ = try await blobs.put(bytes: bytes) }
            let manifest = Manifest(files: [
                .init(
                    path: "model.bin", size: Int64(bytes.count), digest: chunk,
                    chunks: [.init(digest: chunk, size: Int64(bytes.count))])
            ])
            return try await blobs.put(bytes: try JSONCoding.encode(manifest))
        }

        @discardableResult
        func approvedVersion(seed: String) async throws -> ModelVersion {
            let model = try await service.model(named: "fraud")
            let digest = try await storedManifest(seed: seed)
            let created = try await service.createVersion(
                model,
                .init(manifestDigest: digest, signature: nil, metadata: .emptyObject, tags: [:], source: .init()),
                caller: alice)
            return try await service.review(
                model, number: created.version, expectedRevision: created.revision, decision: .approve, comment: nil,
                caller: Caller(principal: Principal(subject: "bob", admin: true), requestId: "review"))
        }

        /// Makes the model require signatures from no trusted key: no version can meet it.
        func requireSignatures(_ required: Bool = true) async throws {
            let model = try await service.model(named: "fraud")
            _ = try await store.updateModel(named: "fraud", expectedRevision: model.revision, context: context("alice"))
            {
                $0.trustPolicy.requireSignature = required
                return .update
            }
        }

        func production() async throws -> Stage {
            try #require(try await store.stage(model: "fraud", name: "production"))
        }

        /// The last event id and the audit chain's head: both unchanged when nothing was written.
        func logLength() async throws -> String {
            let head = try await store.auditHead()
            return "\(try await store.lastEventId()) \(head?.sequence ?? 0) \(head?.hash ?? "")"
        }
    }

    @Test(arguments: Backend.allCases)
    func aRollbackToAVersionTheTrustPolicyRefusesIsAConflictAndChangesNothing(_ backend: Backend) async throws {
        let world = try await World.make(backend, promotions: [1, 2])
        let before = try await world.production()
        try await world.requireSignatures()
        let model = try await world.service.model(named: "fraud")
        let log = try await world.logLength()
        let conflict = await #expect(throws: TrustConflict.self) {
            _ = try await world.service.rollback(
                model, stage: "production", expectedRevision: before.revision, reason: nil, caller: world.alice)
        }
        #expect(conflict?.refusal.code == .signatureRequired)
        #expect(conflict?.refusal.details["version"] == .number(1))
        #expect(try await world.production() == before)
        #expect(try await world.logLength() == log)
        // Without the requirement the same rollback returns to version 1.
        try await world.requireSignatures(false)
        let back = try await world.service.rollback(
            try await world.service.model(named: "fraud"), stage: "production", expectedRevision: before.revision,
            reason: "bad metrics", caller: world.alice)
        #expect(back.version == 1)
        #expect(back.revision == before.revision + 1)
    }

    @Test(arguments: Backend.allCases)
    func theRollbackTargetIsOnlyAppliedAtTheRevisionItWasFoundAt(_ backend: Backend) async throws {
        let world = try await World.make(backend, versions: 3, promotions: [1, 2])
        let stage = try await world.production()
        #expect(
            try await world.store.rollbackTarget(model: "fraud", stage: "production", revision: stage.revision) == 1)
        // A stale revision finds no target, and the store refuses the rollback with the current stage.
        #expect(try await world.store.rollbackTarget(model: "fraud", stage: "production", revision: 1) == nil)
        let log = try await world.logLength()
        let stale = await #expect(throws: RegistryError.self) {
            _ = try await world.service.rollback(
                try await world.service.model(named: "fraud"), stage: "production", expectedRevision: 1, reason: nil,
                caller: world.alice)
        }
        #expect(stale?.code == .revisionMismatch)
        // The store applies the target it is given and computes none itself: without one it refuses the move.
        let missing = await #expect(throws: RegistryError.self) {
            _ = try await world.store.rollback(
                model: "fraud", stage: "production", expectedRevision: stage.revision, target: nil, reason: nil,
                context: world.context("alice"))
        }
        #expect(missing?.code == .revisionMismatch)
        #expect(try await world.production() == stage)
        #expect(try await world.logLength() == log)
        // A stage with nothing below it has no target at all.
        let fresh = try await World.make(backend, promotions: [1])
        let only = try await fresh.production()
        let none = await #expect(throws: RegistryError.self) {
            _ = try await fresh.service.rollback(
                try await fresh.service.model(named: "fraud"), stage: "production", expectedRevision: only.revision,
                reason: nil, caller: fresh.alice)
        }
        #expect(none?.code == .noPreviousVersion)
    }

    @Test(arguments: Backend.allCases)
    func aTrustPolicyChangeRacingAChangeIsRetriedOnTheModelReadAgain(_ backend: Backend) async throws {
        let world = try await World.make(backend, promotions: [1])
        let model = try await world.service.model(named: "fraud")
        let stage = try await world.production()
        let attempts = Mutex<[TrustPolicy]>([])
        let moved = try await world.service.guardedByTrustPolicy(model, .deploy, world.alice) { model, mutation in
            let count = attempts.withLock {
                $0.append(model.trustPolicy)
                return $0.count
            }
            // The first attempt checked the policy as it was; a change commits before its write.
            if count == 1 { try await world.requireSignatures() }
            return try await world.store.promote(
                model: "fraud", stage: "production", precondition: .revision(stage.revision), version: 2, reason: nil,
                context: mutation)
        }
        #expect(moved.version == 2)
        #expect(attempts.withLock { $0.map(\.requireSignature) } == [false, true])
    }

    @Test(arguments: Backend.allCases)
    func aRetryChecksThePermissionAgainAndRecordsTheRefusal(_ backend: Backend) async throws {
        let world = try await World.make(backend, promotions: [1])
        let model = try await world.service.model(named: "fraud")
        let denials = Mutex<[String]>([])
        let carol = Caller(principal: Principal(subject: "carol", admin: false), requestId: "carol") { error, model in
            denials.withLock { $0.append("\(model) \(error.code.rawValue)") }
        }
        let stage = try await world.production()
        let error = await #expect(throws: RegistryError.self) {
            _ = try await world.service.guardedByTrustPolicy(model, .deploy, carol) { model, mutation in
                // Carol loses her role and the policy changes before her first attempt writes.
                if model.grants.contains(where: { $0.subject == "carol" }) {
                    _ = try await world.store.updateModel(
                        named: "fraud", expectedRevision: model.revision, context: world.context("alice")
                    ) {
                        $0.grants.removeAll { $0.subject == "carol" }
                        $0.trustPolicy.requireSignature = true
                        return .update
                    }
                }
                return try await world.store.promote(
                    model: "fraud", stage: "production", precondition: .revision(stage.revision), version: 2,
                    reason: nil, context: mutation)
            }
        }
        #expect(error?.code == .permissionDenied)
        #expect(denials.withLock { $0 } == ["fraud PERMISSION_DENIED"])
        #expect(try await world.production() == stage)
    }

    @Test(arguments: Backend.allCases)
    func aVersionOfAnIncompleteManifestIsRefusedWithWhatIsMissing(_ backend: Backend) async throws {
        let world = try await World.make(backend, versions: 1)
        let model = try await world.service.model(named: "fraud")
        let digest = try await world.storedManifest(seed: "never uploaded", storeChunk: false)
        let log = try await world.logLength()
        let error = await #expect(throws: RegistryError.self) {
            _ = try await world.service.createVersion(
                model,
                .init(manifestDigest: digest, signature: nil, metadata: .emptyObject, tags: [:], source: .init()),
                caller: world.alice)
        }
        #expect(error?.code == .artifactIncomplete)
        #expect(error?.details["missing"] == .array([.string(Digest(of: Array("never uploaded".utf8)).description)]))
        let absent = await #expect(throws: RegistryError.self) {
            _ = try await world.service.createVersion(
                model,
                .init(
                    manifestDigest: Digest(of: [1, 2, 3]), signature: nil, metadata: .emptyObject, tags: [:],
                    source: .init()),
                caller: world.alice)
        }
        #expect(absent?.code == .artifactIncomplete)
        #expect(try await world.logLength() == log)
        #expect(try await world.store.version(model: "fraud", number: 2) == nil)
    }

    @Test(arguments: Backend.allCases)
    func aRolloutThatNeedsNoWarmInstancesExposesItsFirstStepAtOnce(_ backend: Backend) async throws {
        let world = try await World.make(backend, promotions: [1])
        let model = try await world.service.model(named: "fraud")
        let stage = try await world.production()
        let draft = Rollout(
            id: Rollout.newId(), model: "fraud", stage: "production", version: 2, previousVersion: 0, steps: [25, 100],
            policy: RolloutPolicy(autoAdvance: false, minInstances: 0), createdBy: "alice", createdAt: Timestamp.now())
        let started = try await world.service.startRollout(
            model, draft, expectedStageRevision: stage.revision, caller: world.alice)
        #expect(started.state == .progressing)
        #expect(started.weight == 25)
        let resolution = try await world.service.resolve(model: "fraud", stage: "production")
        #expect(resolution.stable.version == 1)
        #expect(resolution.candidate?.version.version == 2)
        #expect(resolution.candidate?.weight == 25)
        #expect(resolution.candidate?.rolloutId == started.id)
        // By hand, the advance to the last step completes it and the stage resolves to the candidate alone.
        let done = try await world.service.act(
            .advance, on: started, expectedRevision: started.revision, reason: nil, caller: world.alice)
        #expect(done.state == .completed)
        let after = try await world.service.resolve(model: "fraud", stage: "production")
        #expect(after.stable.version == 2)
        #expect(after.candidate == nil)
        #expect(after.entityTag != resolution.entityTag)
    }

    @Test(arguments: Backend.allCases)
    func completingARolloutWhoseCandidateIsNoLongerTrustedAbortsIt(_ backend: Backend) async throws {
        let world = try await World.make(backend, promotions: [1])
        let model = try await world.service.model(named: "fraud")
        let stage = try await world.production()
        let draft = Rollout(
            id: Rollout.newId(), model: "fraud", stage: "production", version: 2, previousVersion: 0, steps: [50, 100],
            policy: RolloutPolicy(bakeSeconds: 0, autoAdvance: true, minInstances: 0), createdBy: "alice",
            createdAt: Timestamp.now())
        let started = try await world.service.startRollout(
            model, draft, expectedStageRevision: stage.revision, caller: world.alice)
        try await world.requireSignatures()
        // The supervisor's periodic look: the bake is over, but the candidate is unsigned now.
        #expect(try await world.service.decideActiveRollouts(actor: "registry:rollouts") == 1)
        let ended = try #require(try await world.store.rollout(id: started.id))
        #expect(ended.state == .aborted)
        #expect(try await world.production().version == 1)
    }
}

/// The parsed-manifest cache and the cache it is built on stay within their byte budgets.
@Suite(.timeLimit(.minutes(10))) struct ManifestCacheTests {
    /// A valid manifest of `files` files with `chunks` chunks each, distinct per `seed`.
    static func manifest(seed: Int, files: Int, chunks: Int) -> Manifest {
        Manifest(
            files: (0..<files).map { file in
                let chunkList = (0..<chunks).map { chunk in
                    Manifest.Chunk(digest: Digest(of: Array("\(seed)/\(file)/\(chunk)".utf8)), size: 1)
                }
                return Manifest.File(
                    path: "dir/file-\(file).bin", size: Int64(chunks),
                    digest: Digest(of: Array("\(seed)/\(file)".utf8)),
                    chunks: chunkList)
            })
    }

    @Test func theManifestCacheNeverHoldsMoreThanItsByteBudget() {
        let budget = 1 << 20
        let cache = RegistryService.ManifestCache(budget: budget)
        var cached: [(Digest, Manifest)] = []
        for seed in 0..<120 {
            // From a few hundred bytes to about 100 KiB each: 120 of them weigh several times the budget.
            let manifest = Self.manifest(seed: seed, files: 1 + seed % 7, chunks: 1 + (seed * 37) % 120)
            let digest = Digest(of: Array("manifest \(seed)".utf8))
            cache.put(digest, manifest)
            cached.append((digest, manifest))
            let held = cached.filter { cache.get($0.0) != nil }
            let bytes = held.reduce(0) { $0 + RegistryService.ManifestCache.estimatedBytes($1.1) }
            #expect(bytes <= budget, "\(held.count) manifests of \(bytes) bytes after \(seed + 1) insertions")
        }
        // The most recent manifests are kept (least recently used go first)…
        #expect(cache.get(cached.last!.0) != nil)
        // …and one larger than an eighth of the budget is never cached.
        let huge = Self.manifest(seed: 9999, files: 10, chunks: 200)
        #expect(RegistryService.ManifestCache.estimatedBytes(huge) > budget / 8)
        let hugeDigest = Digest(of: Array("huge".utf8))
        cache.put(hugeDigest, huge)
        #expect(cache.get(hugeDigest) == nil)
    }

    @Test func leastRecentlyUsedEntriesAreEvictedFirst() {
        let cache = ByteBudgetCache<Int, [UInt8]>(budget: 64 * 1024)
        for key in 0..<10 { cache.put(key, [], cost: 4096) }
        // Key 0 is in use; 30 more entries push the cache past its budget several times.
        for key in 10..<40 {
            _ = cache.get(0)
            cache.put(key, [], cost: 4096)
        }
        #expect(cache.get(0) != nil)
        #expect(cache.get(1) == nil)
        #expect(cache.bytes <= 64 * 1024)
    }

    @Test func aCachedManifestIsNotServedOnceItsBlobIsGone() async throws {
        let blobs = InMemoryBlobStore()
        let service = RegistryService(metadata: InMemoryMetadataStore(), blobs: blobs)
        let manifest = Self.manifest(seed: 1, files: 1, chunks: 1)
        let digest = try await blobs.put(bytes: try JSONCoding.encode(manifest))
        #expect(try await service.parsedManifest(digest) == manifest)
        #expect(service.manifests.get(digest) == manifest)
        try await blobs.delete(digest)
        let error = await #expect(throws: RegistryError.self) { _ = try await service.storedManifest(digest) }
        #expect(error?.code == .manifestNotFound)
    }
}
