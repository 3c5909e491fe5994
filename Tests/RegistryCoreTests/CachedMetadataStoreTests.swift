import RegistryTesting
import Testing

@testable import RegistryCore

@Suite(.timeLimit(.minutes(10))) struct CachedMetadataStoreTests {
    let context = MutationContext(actor: "alice", requestId: "req-1")

    @Test(arguments: MetadataStoreConformance.cases)
    func conformance(_ conformanceCase: ConformanceCase) async throws {
        try await conformanceCase.run(CachedMetadataStore(InMemoryMetadataStore()))
    }

    @Test func aWriteThroughTheCacheIsVisibleToTheNextRead() async throws {
        let store = CachedMetadataStore(InMemoryMetadataStore())
        _ = try await store.createModel(Model(name: "m", createdBy: "alice", createdAt: context.time), context: context)
        let before = try #require(try await store.model(named: "m"))
        _ = try await store.updateModel(named: "m", expectedRevision: before.revision, context: context) { model in
            model.description = "changed"
            return .update
        }
        #expect(try await store.model(named: "m")?.description == "changed")
    }

    @Test func aWriteThatBypassesTheCacheIsSeenOnlyAfterTheTTL() async throws {
        let base = InMemoryMetadataStore()
        let store = CachedMetadataStore(base, ttl: .milliseconds(50))
        _ = try await base.createModel(Model(name: "m", createdBy: "alice", createdAt: context.time), context: context)
        _ = try #require(try await store.model(named: "m"))
        _ = try await base.updateModel(named: "m", expectedRevision: 1, context: context) { model in
            model.description = "elsewhere"
            return .update
        }
        #expect(try await store.model(named: "m")?.description == "", "served from the cache within the TTL")
        try await Task.sleep(for: .milliseconds(120))
        #expect(try await store.model(named: "m")?.description == "elsewhere")
    }

    @Test func preconditionsAreCheckedByTheBaseStoreNotTheCache() async throws {
        let base = InMemoryMetadataStore()
        let store = CachedMetadataStore(base)
        _ = try await store.createModel(Model(name: "m", createdBy: "alice", createdAt: context.time), context: context)
        _ = try await store.model(named: "m")
        // Another writer moves the model on; the cached copy is stale but the precondition still fails.
        _ = try await base.updateModel(named: "m", expectedRevision: 1, context: context) { _ in .update }
        let error = await #expect(throws: RegistryError.self) {
            _ = try await store.updateModel(named: "m", expectedRevision: 1, context: context) { _ in .update }
        }
        #expect(error?.code == .revisionMismatch)
    }

    /// A watcher woken by an event waits for the write that may have committed it to drop its stale entries, and is
    /// woken by that write ending, not by a poll or its own timeout.
    @Test(.timeLimit(.minutes(2)))
    func aWatcherWaitsForTheWriteInFlightAndWakesWhenItEnds() async throws {
        let store = CachedMetadataStore(InMemoryMetadataStore())
        _ = try await store.createModel(Model(name: "m", createdBy: "alice", createdAt: context.time), context: context)
        let draft = ModelVersion(
            model: "m", version: 0, manifestDigest: Digest(of: [1]), size: 1, createdBy: "alice",
            createdAt: context.time)
        _ = try await store.createVersion(draft, artifacts: [], context: context)
        let event = try await store.lastEventId()
        try #require(event > 0)
        // A write that has committed in the base store and has yet to drop what it replaced from the cache.
        let write = store.beginWrite()
        let delay = await withTaskGroup(of: ContinuousClock.Instant?.self) { group -> Duration? in
            group.addTask {
                // A timeout far beyond the bound below: only the write ending can wake the watcher in time.
                try? await store.waitForEvents(after: event - 1, timeout: .seconds(600))
                return ContinuousClock.now
            }
            while store.settled.waiting == 0 { try? await Task.sleep(for: .milliseconds(10)) }
            let committed = ContinuousClock.now
            store.endWrite(write)
            group.addTask {
                try? await Task.sleep(for: .seconds(30))
                return nil
            }
            let woke = await group.next() ?? nil
            group.cancelAll()
            return woke.map { $0 - committed }
        }
        #expect(delay != nil, "the watcher slept on for 30 s after the write ended")
    }

    @Test func cachedVersionPagesFollowCreationsAndChanges() async throws {
        let store = CachedMetadataStore(InMemoryMetadataStore())
        _ = try await store.createModel(Model(name: "m", createdBy: "alice", createdAt: context.time), context: context)
        let draft = ModelVersion(
            model: "m", version: 0, manifestDigest: Digest(of: [1]), size: 1, createdBy: "alice",
            createdAt: context.time)
        _ = try await store.createVersion(draft, artifacts: [], context: context)
        let query = VersionQuery(model: "m", limit: 10)
        #expect(try await store.versions(query).items.map(\.version) == [1])
        #expect(try await store.versions(query) == store.versions(query), "a repeated read is served the same page")

        _ = try await store.createVersion(draft, artifacts: [], context: context)
        #expect(try await store.versions(query).items.map(\.version) == [2, 1], "a creation drops the model's pages")

        _ = try await store.updateVersion(model: "m", number: 1, expectedRevision: 1, context: context) { version, _ in
            version.tags = ["stage": "canary"]
            return .update
        }
        #expect(try await store.versions(query).items.last?.tags == ["stage": "canary"], "a change drops them too")
        #expect(
            try await store.versions(VersionQuery(model: "m", tag: Tag(key: "stage", value: "canary"))).items.map(
                \.version)
                == [1])
    }
}
