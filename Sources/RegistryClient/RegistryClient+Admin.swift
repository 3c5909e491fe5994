import RegistryAPI
import RegistryCore

extension RegistryClient {
    /// Deletes the blobs no version references and nobody touched within `graceSeconds` (server default: one hour);
    /// with `dryRun` only reports them (admins).
    public func collectGarbage(dryRun: Bool = false, graceSeconds: Int? = nil) async throws -> GarbageCollector.Report {
        var call = Call(.POST, "/v1/admin/gc")
        try call.json(CollectGarbageRequest(dryRun: dryRun, graceSeconds: graceSeconds))
        return try await request(call)
    }
}
