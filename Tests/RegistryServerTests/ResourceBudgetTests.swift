import Logging
import RegistryCore
import Synchronization
import Testing

@testable import RegistryServer

/// The server's caches are bounded by the bytes they hold, and denied requests are audited in batches.
@Suite struct ResourceBudgetTests {
    /// A valid manifest of `files` files with `chunks` chunks each, distinct per `seed`.
    static func manifest(seed: Int, files: Int, chunks: Int) -> Manifest {
        Manifest(
            files: (0..<files).map { file in
                let chunkList = (0..<chunks).map { chunk in
                    Manifest.Chunk(digest: Digest(of: Array("\(seed)/\(file)/\(chunk)".utf8)), size: 1)
                }
                return Manifest.File(
                    path: "dir/file-\(file).bin", size: Int64(chunks), digest: Digest(of: Array("\(seed)/\(file)".utf8)),
                    chunks: chunkList)
            })
    }

    @Test func theManifestCacheNeverHoldsMoreThanItsByteBudget() {
        let budget = 1 << 20
        let cache = RegistryRoutes.ManifestCache(budget: budget)
        var cached: [(Digest, Manifest)] = []
        for seed in 0..<120 {
            // From a few hundred bytes to about 100 KiB each: 120 of them weigh several times the budget.
            let manifest = Self.manifest(seed: seed, files: 1 + seed % 7, chunks: 1 + (seed * 37) % 120)
            let digest = Digest(of: Array("manifest \(seed)".utf8))
            cache.put(digest, manifest)
            cached.append((digest, manifest))
            let held = cached.filter { cache.get($0.0) != nil }
            let bytes = held.reduce(0) { $0 + RegistryRoutes.ManifestCache.estimatedBytes($1.1) }
            #expect(bytes <= budget, "\(held.count) manifests of \(bytes) bytes after \(seed + 1) insertions")
        }
        // The most recent manifests are kept (least recently used go first)…
        #expect(cache.get(cached.last!.0) != nil)
        // …and one larger than an eighth of the budget is never cached.
        let huge = Self.manifest(seed: 9999, files: 10, chunks: 200)
        #expect(RegistryRoutes.ManifestCache.estimatedBytes(huge) > budget / 8)
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

    @Test func renderedResponsesAreBoundedByBytes() throws {
        let budget = 256 * 1024
        let rendered = RenderedResponses<Int, [String: String]>(budget: budget)
        for key in 0..<2_000 {
            _ = try rendered.bytes(key, ["payload": String(repeating: "x", count: 1_000 + key % 500)])
            #expect(rendered.cachedBytes <= budget)
        }
        // A rendering still cached is reused as long as the value is equal.
        let value = ["payload": "small"]
        let first = try rendered.bytes(7, value)
        #expect(try rendered.bytes(7, value) == first)
    }

    @Test func concurrentDenialsAreWrittenInFewStoreCalls() async throws {
        let store = CountingAuditStore(base: InMemoryMetadataStore())
        let auditor = DenialAuditor(store: store, window: .milliseconds(50), metrics: ServerMetrics())
        let denials = 500
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<denials {
                group.addTask {
                    await auditor.record(
                        AuditDraft(action: "access.denied", target: "x/\(index)", model: nil, before: nil, after: nil),
                        context: MutationContext(actor: "attacker", requestId: "r\(index)"),
                        logger: .init(label: "test"))
                }
            }
        }
        let entries = try await store.auditEntries(AuditQuery(limit: 10_000)).items
        #expect(entries.count == denials)
        #expect(Set(entries.map(\.target)).count == denials)
        #expect(store.calls.withLock { $0 } <= 10, "store calls for \(denials) denials")
        #expect(try await store.verifyAudit().ok)
    }

    @Test func eachDenialIsWrittenBeforeItsCallerContinues() async throws {
        let store = CountingAuditStore(base: InMemoryMetadataStore())
        let auditor = DenialAuditor(store: store, window: .milliseconds(20), metrics: ServerMetrics())
        for index in 0..<3 {
            await auditor.record(
                AuditDraft(action: "access.denied", target: "t\(index)", model: nil, before: nil, after: nil),
                context: MutationContext(actor: "someone", requestId: "r\(index)"), logger: .init(label: "test"))
            #expect(try await store.auditEntries(AuditQuery()).items.count == index + 1)
        }
    }
}

/// An audit store that counts the calls that write (one per transaction in a real backend).
final class CountingAuditStore: AuditStore {
    let base: InMemoryMetadataStore
    let calls = Mutex(0)

    init(base: InMemoryMetadataStore) { self.base = base }

    func recordAudit(_ draft: AuditDraft, context: MutationContext) async throws {
        calls.withLock { $0 += 1 }
        try await base.recordAudit(draft, context: context)
    }

    func recordAudits(_ entries: [(draft: AuditDraft, context: MutationContext)]) async throws {
        calls.withLock { $0 += 1 }
        for entry in entries { try await base.recordAudit(entry.draft, context: entry.context) }
    }

    func auditEntries(_ query: AuditQuery) async throws -> Page<AuditEntry> { try await base.auditEntries(query) }

    func auditHead() async throws -> (sequence: Int64, hash: String)? { try await base.auditHead() }
}
