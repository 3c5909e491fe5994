import Foundation
import RegistryCore
import RegistrySQLite
import Testing

/// `recordAudits` appends a batch of audit entries in order, in one transaction, keeping the hash chain intact.
@Suite(.timeLimit(.minutes(10))) struct AuditBatchTests {
    @Test func aBatchIsAppendedInOrderAndTheChainVerifies() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteMetadataStore(path: directory.databasePath)
        try await store.recordAudit(
            AuditDraft(action: "access.denied", target: "first", model: nil),
            context: MutationContext(actor: "a", requestId: "r0"))
        let batch = (1...50).map { index in
            (
                draft: AuditDraft(action: "access.denied", target: "t\(index)", model: index % 2 == 0 ? "m" : nil),
                context: MutationContext(actor: "actor\(index)", requestId: "r\(index)")
            )
        }
        try await store.recordAudits(batch)
        try await store.recordAudits([])
        let entries = try await store.auditEntries(AuditQuery(limit: 1000)).items
        #expect(entries.map(\.target) == ["first"] + (1...50).map { "t\($0)" })
        #expect(entries.map(\.sequence) == Array(1...51))
        #expect(entries.last?.actor == "actor50")
        #expect(entries.last?.requestId == "r50")
        #expect(try await store.verifyAudit().ok)
        try store.close()
    }
}
