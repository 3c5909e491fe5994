import Hummingbird
import RegistryAPI
import RegistryCore

extension RegistryRoutes {
    /// Models and their access lists.
    func registerModels(on router: Router<RegistryRequestContext>) {
        add(router, .post, "/v1/models") { request, context in
            let principal = try await authenticate(request)
            if !principal.canCreateModels {
                let error = RegistryError(
                    .permissionDenied,
                    "Creating a model needs an admin token or a token issued with canCreateModels.",
                    details: ["requiredPermission": "canCreateModels"])
                await auditDenial(error, model: nil, principal, request, context)
                throw error
            }
            let body = try await request.decodeJSON(CreateModelRequest.self, maxBytes: configuration.maxJSONBodyBytes)
            try Names.validate(body.name, kind: "model")
            try validate(description: body.description, tags: body.tags, policy: body.approvalPolicy)
            let trustPolicy = try validated(body.trustPolicy) ?? .init()
            let now = Timestamp.now()
            let draft = Model(
                name: body.name, description: body.description ?? "", tags: body.tags ?? [:],
                createdBy: principal.subject, approvalPolicy: body.approvalPolicy ?? .init(), trustPolicy: trustPolicy,
                grants: [Grant(subject: principal.subject, role: .owner)], createdAt: now)
            var mutation = mutation(principal, context)
            mutation.time = now
            let model = try await metadata.createModel(draft, context: mutation)
            authenticator.forgetAccess()
            var headers = HTTPFields()
            headers[.location] = "/v1/models/\(model.name)"
            return try .json(model, status: .created, revision: model.revision, headers: headers)
        }

        add(router, .get, "/v1/models") { request, context in
            let principal = try await authenticate(request)
            if let prefix = request.query("prefix"), prefix.utf8.count > 128 {
                throw RegistryError.invalidArgument("The prefix is at most 128 characters.", field: "prefix")
            }
            let query = ModelQuery(
                prefix: request.query("prefix"), tag: try request.query("tag").map(Tag.init(parsing:)),
                visibleTo: principal.admin ? nil : principal.subject,
                after: try PageToken.parse(request.query("pageToken")), limit: try request.pageLimit())
            return try .json(try await metadata.models(query))
        }

        add(router, .get, "/v1/models/:model") { request, context in
            let (_, model) = try await authorizedModel(.read, request, context)
            return try .json(model, revision: model.revision)
        }

        add(router, .patch, "/v1/models/:model") { request, context in
            let (principal, model) = try await authorizedModel(.manage, request, context)
            let revision = try request.requiredIfMatch()
            let body = try await request.decodeJSON(UpdateModelRequest.self, maxBytes: configuration.maxJSONBodyBytes)
            try validate(description: body.description, tags: body.tags, policy: body.approvalPolicy)
            let trustPolicy = try validated(body.trustPolicy)
            let updated = try await metadata.updateModel(
                named: model.name, expectedRevision: revision, context: mutation(principal, context)
            ) { model in
                if let description = body.description { model.description = description }
                if let tags = body.tags { model.tags = tags }
                if let policy = body.approvalPolicy { model.approvalPolicy = policy }
                if let trustPolicy { model.trustPolicy = trustPolicy }
                return .update
            }
            return try .json(updated, revision: updated.revision)
        }

        add(router, .get, "/v1/models/:model/acl") { request, context in
            let (_, model) = try await authorizedModel(.manage, request, context)
            return try .json(
                AccessList(model: model.name, grants: model.grants, revision: model.revision),
                revision: model.revision)
        }

        add(router, .put, "/v1/models/:model/acl") { request, context in
            let (principal, model) = try await authorizedModel(.manage, request, context)
            let revision = try request.requiredIfMatch()
            let body = try await request.decodeJSON(AccessListRequest.self, maxBytes: configuration.maxJSONBodyBytes)
            guard body.grants.count <= AccessListRequest.maxGrants else {
                throw RegistryError.invalidArgument(
                    "An access list holds at most \(AccessListRequest.maxGrants) grants.", field: "grants")
            }
            for grant in body.grants { try Names.validateSubject(grant.subject) }
            var seen = Set<Grant>()
            let grants = body.grants.filter { seen.insert($0).inserted }
            let updated = try await metadata.updateModel(
                named: model.name, expectedRevision: revision, context: mutation(principal, context)
            ) { model in
                model.grants = grants
                return .accessList
            }
            authenticator.forgetAccess()
            return try .json(
                AccessList(model: updated.name, grants: updated.grants, revision: updated.revision),
                revision: updated.revision)
        }
    }

    private func validate(description: String?, tags: [String: String]?, policy: ApprovalPolicy?) throws {
        if let description, description.utf8.count > 4096 {
            throw RegistryError.invalidArgument("The description is at most 4096 bytes.", field: "description")
        }
        if let tags { try Tags.validate(tags) }
        try policy?.validate()
    }

    /// `policy` with duplicate keys removed, after `TrustPolicy.validate()`.
    private func validated(_ policy: TrustPolicy?) throws -> TrustPolicy? {
        guard let policy = policy?.deduplicated else { return nil }
        try policy.validate()
        return policy
    }
}
