import Logging
import RegistryCore
import RegistryTesting
import Synchronization
import Testing

@testable import RegistryServer

/// The server's rendered responses are bounded by the bytes they hold, and denied requests are audited in batches.
/// (The parsed-manifest cache and `ByteBudgetCache` are tested with the service, which owns them.)
@Suite(.timeLimit(.minutes(10))) struct ResourceBudgetTests {
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
