import RegistryAPI
import RegistryCore

extension RegistryClient {
    /// The stage and its revision; throws `STAGE_NOT_FOUND`.
    public func stage(model: String, name: String) async throws -> Stage {
        try await request(Call(.GET, stagePath(model, name)), as: StageResponse.self).stage
    }

    /// Every stage of a model.
    public func stages(model: String) async throws -> [Stage] {
        try await request(Call(.GET, "/v1/models/\(Self.escape(model))/stages"), as: ItemList<StageResponse>.self)
            .items.map(\.stage)
    }

    /// Points a stage at an approved version.
    ///
    /// With `revision` the stage must be at that revision (`If-Match`); without it the stage must not exist yet
    /// (`If-None-Match: *`). Throws `REVISION_MISMATCH` when someone else moved it, `VERSION_NOT_APPROVED`.
    public func promote(
        model: String, stage: String, version: Int, revision: Int?, reason: String? = nil
    ) async throws -> Stage {
        var call = Call(.PUT, stagePath(model, stage))
        if let revision { call.ifMatch(revision) } else { call.headers.append(("If-None-Match", "*")) }
        try call.json(PromotionRequest(version: version, reason: reason))
        return try await request(call, as: StageResponse.self).stage
    }

    /// One page of a stage's moves, oldest first.
    public func stageHistory(
        model: String, stage: String, limit: Int? = nil, pageToken: String? = nil
    ) async throws -> Page<StageHistoryEntry> {
        try await request(
            Call(
                .GET, stagePath(model, stage) + "/history",
                query: [("limit", limit.map(String.init)), ("pageToken", pageToken)]))
    }

    /// Points the stage at its previous version if it is at `revision`; throws `NO_PREVIOUS_VERSION`.
    public func rollback(model: String, stage: String, revision: Int, reason: String? = nil) async throws -> Stage {
        var call = Call(.POST, stagePath(model, stage) + "/rollback")
        call.ifMatch(revision)
        try call.json(ReasonRequest(reason: reason))
        return try await request(call, as: StageResponse.self).stage
    }

    /// What the stage serves now; nil when `ifNoneMatch` is still current (HTTP 304).
    ///
    /// With `wait` (seconds) and a current `ifNoneMatch` this is a watch: the registry answers as soon as the
    /// resolution changes, or with 304 (nil) when the wait runs out.
    public func resolve(
        model: String, stage: String, ifNoneMatch: String? = nil, wait: Int? = nil
    ) async throws -> Resolution? {
        var call = Call(
            .GET, "/v1/resolve/\(Self.escape(model))/\(Self.escape(stage))", query: [("wait", wait.map(String.init))])
        if let ifNoneMatch { call.headers.append(("If-None-Match", ifNoneMatch)) }
        let response = try await send(call)
        if response.status == .notModified {
            _ = try await collect(response)
            return nil
        }
        let etag = response.headers.first(name: "ETag")
        var resolution = try JSONCoding.decode(Resolution.self, from: try await collect(response).readableBytesView)
        resolution.etag = etag
        return resolution
    }

    private func stagePath(_ model: String, _ stage: String) -> String {
        "/v1/models/\(Self.escape(model))/stages/\(Self.escape(stage))"
    }
}
