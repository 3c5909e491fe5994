import RegistryAPI
import RegistryCore

extension RegistryClient {
    /// Creates a model; the caller becomes its owner. Throws `MODEL_EXISTS` when the name is taken.
    public func createModel(
        _ name: String, description: String? = nil, tags: [String: String]? = nil,
        approvalPolicy: ApprovalPolicy? = nil, trustPolicy: TrustPolicy? = nil
    ) async throws -> Model {
        var call = Call(.POST, "/v1/models")
        try call.json(
            CreateModelRequest(
                name: name, description: description, tags: tags, approvalPolicy: approvalPolicy,
                trustPolicy: trustPolicy))
        return try await request(call)
    }

    /// The model named `name`; throws `MODEL_NOT_FOUND`.
    public func model(_ name: String) async throws -> Model {
        try await request(Call(.GET, "/v1/models/\(Self.escape(name))"))
    }

    /// One page of the models the caller can see, in name order; `tag` filters by `key:value`.
    public func models(
        prefix: String? = nil, tag: String? = nil, limit: Int? = nil, pageToken: String? = nil
    ) async throws -> Page<Model> {
        try await request(
            Call(
                .GET, "/v1/models",
                query: [("prefix", prefix), ("tag", tag), ("limit", limit.map(String.init)), ("pageToken", pageToken)]))
    }

    /// Changes the given fields of a model at `revision`; throws `REVISION_MISMATCH` when it moved on.
    public func updateModel(
        _ name: String, revision: Int, description: String? = nil, tags: [String: String]? = nil,
        approvalPolicy: ApprovalPolicy? = nil, trustPolicy: TrustPolicy? = nil
    ) async throws -> Model {
        var call = Call(.PATCH, "/v1/models/\(Self.escape(name))")
        call.ifMatch(revision)
        try call.json(
            UpdateModelRequest(
                description: description, tags: tags, approvalPolicy: approvalPolicy, trustPolicy: trustPolicy))
        return try await request(call)
    }

    /// The model's access list and revision.
    public func accessList(model: String) async throws -> AccessList {
        try await request(Call(.GET, "/v1/models/\(Self.escape(model))/acl"))
    }

    /// Replaces the model's access list if the model is at `revision`.
    public func setAccessList(model: String, grants: [Grant], revision: Int) async throws -> AccessList {
        var call = Call(.PUT, "/v1/models/\(Self.escape(model))/acl")
        call.ifMatch(revision)
        try call.json(AccessListRequest(grants: grants))
        return try await request(call)
    }
}
