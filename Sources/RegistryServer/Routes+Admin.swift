import Hummingbird
import RegistryAPI
import RegistryCore
import RegistryService

extension RegistryRoutes {
    /// Operations for administrators: garbage collection of unreferenced blobs.
    func registerAdmin(on router: Router<RegistryRequestContext>) {
        add(router, .post, "/v1/admin/gc") { request, context in
            let principal = try await authenticate(request)
            try await requireAdmin(principal, request, context)
            let body = try await request.decodeJSON(
                CollectGarbageRequest.self, maxBytes: configuration.maxJSONBodyBytes, allowEmpty: true)
            let graceSeconds = body.graceSeconds ?? Int(GarbageCollector.defaultGrace.components.seconds)
            guard graceSeconds >= 0 else {
                throw RegistryError.invalidArgument("graceSeconds cannot be negative.", field: "graceSeconds")
            }
            let report = try await GarbageCollector.collect(
                metadata: metadata, blobs: blobs, grace: .seconds(graceSeconds), dryRun: body.dryRun ?? false)
            context.logger.notice(
                "Garbage collection ran",
                metadata: [
                    "dryRun": "\(report.dryRun)", "deleted": "\(report.deleted.count)",
                    "freedBytes": "\(report.freedBytes)",
                ])
            var summary = AuditSummary(report)
            summary.graceSeconds = graceSeconds
            let after = String(decoding: try JSONCoding.encode(summary), as: UTF8.self)
            try await metadata.recordAudit(
                AuditDraft(action: "gc.run", target: "blobs", model: nil, after: after),
                context: mutation(principal, context))
            return try .json(report)
        }
    }

    /// What the audit log keeps of a run: the counts, not the (possibly long) list of digests.
    private struct AuditSummary: Encodable {
        var scanned: Int
        var referenced: Int
        var deleted: Int
        var freedBytes: Int64
        var keptYoung: Int
        var keptPinned: Int
        var dryRun: Bool
        var graceSeconds = 0

        init(_ report: GarbageCollector.Report) {
            scanned = report.scanned
            referenced = report.referenced
            deleted = report.deleted.count
            freedBytes = report.freedBytes
            keptYoung = report.keptYoung
            keptPinned = report.keptPinned
            dryRun = report.dryRun
        }
    }

    /// Refreshes the modification time of the blobs among `digests` that are present, so that garbage collection
    /// spares them while the upload that checked them completes.
    func touchPresent(_ digests: [Digest], missing: [Digest]) async throws {
        let absent = Set(missing)
        let blobs = self.blobs
        _ = try await RegistryService.concurrently(digests.filter { !absent.contains($0) }) {
            try await blobs.touch($0)
        }
    }
}
