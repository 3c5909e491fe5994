import RegistryCore

extension RegistryClient {
    private struct CreateVersionBody: Encodable {
        var manifestDigest: Digest
        var signature: String?
        var metadata: JSONValue?
        var tags: [String: String]?
        var source: VersionSource?
    }

    private struct UpdateVersionBody: Encodable {
        var tags: [String: String]?
        var metadata: JSONValue?
        var status: VersionStatus?
    }

    private struct DecisionBody: Encodable {
        var decision: Decision
        var comment: String?
    }

    /// Registers an uploaded manifest as the model's next version (status `pending`).
    ///
    /// Throws `ARTIFACT_INCOMPLETE` when the manifest or one of its chunks is not uploaded.
    public func createVersion(
        model: String, manifestDigest: Digest, metadata: JSONValue? = nil, tags: [String: String]? = nil,
        source: VersionSource? = nil, signature: String? = nil
    ) async throws -> ModelVersion {
        var call = Call(.POST, "/v1/models/\(Self.escape(model))/versions")
        try call.json(
            CreateVersionBody(
                manifestDigest: manifestDigest, signature: signature, metadata: metadata, tags: tags, source: source))
        return try await request(call)
    }

    /// One version; throws `VERSION_NOT_FOUND`.
    public func version(model: String, number: Int) async throws -> ModelVersion {
        try await request(Call(.GET, "/v1/models/\(Self.escape(model))/versions/\(number)"))
    }

    /// One page of a model's versions, newest first.
    public func versions(
        model: String, status: VersionStatus? = nil, tag: String? = nil, limit: Int? = nil, pageToken: String? = nil
    ) async throws -> Page<ModelVersion> {
        try await request(
            Call(
                .GET, "/v1/models/\(Self.escape(model))/versions",
                query: [
                    ("status", status?.rawValue), ("tag", tag), ("limit", limit.map(String.init)),
                    ("pageToken", pageToken),
                ]))
    }

    /// Replaces a version's tags and/or metadata if it is at `revision`.
    public func updateVersion(
        model: String, number: Int, revision: Int, tags: [String: String]? = nil, metadata: JSONValue? = nil
    ) async throws -> ModelVersion {
        try await patchVersion(model, number, revision, UpdateVersionBody(tags: tags, metadata: metadata))
    }

    /// Archives a version at `revision`; throws `VERSION_IN_USE` while a stage points at it.
    public func archiveVersion(model: String, number: Int, revision: Int) async throws -> ModelVersion {
        try await patchVersion(model, number, revision, UpdateVersionBody(status: .archived))
    }

    /// Records the caller's approval or rejection of a version at `revision`.
    public func decide(
        model: String, number: Int, decision: Decision, comment: String? = nil, revision: Int
    ) async throws -> ModelVersion {
        var call = Call(.POST, "/v1/models/\(Self.escape(model))/versions/\(number)/approvals")
        call.ifMatch(revision)
        try call.json(DecisionBody(decision: decision, comment: comment))
        return try await request(call)
    }

    private func patchVersion(
        _ model: String, _ number: Int, _ revision: Int, _ body: UpdateVersionBody
    ) async throws -> ModelVersion {
        var call = Call(.PATCH, "/v1/models/\(Self.escape(model))/versions/\(number)")
        call.ifMatch(revision)
        try call.json(body)
        return try await request(call)
    }
}
