import Hummingbird
import RegistryAPI
import RegistryCore
import RegistryService

extension RegistryRoutes {
    /// Versions of a model and their reviews.
    func registerVersions(on router: Router<RegistryRequestContext>) {
        add(router, .post, "/v1/models/:model/versions") { request, context in
            let (principal, model) = try await authorizedModel(.write, request, context)
            let body = try await request.decodeJSON(CreateVersionRequest.self, maxBytes: configuration.maxJSONBodyBytes)
            try validate(metadata: body.metadata, tags: body.tags)
            try validate(signature: body.signature)
            // The manifest must be one the caller may see (its own upload, or content of a model it can read): a
            // version is otherwise a way to read another model's bytes by guessing their digest.
            guard try await visibleDigests([body.manifestDigest], to: principal).contains(body.manifestDigest) else {
                throw RegistryService.incomplete([body.manifestDigest], what: "The manifest")
            }
            let version = try await service.createVersion(
                model,
                .init(
                    manifestDigest: body.manifestDigest, signature: body.signature,
                    metadata: body.metadata ?? .emptyObject, tags: body.tags ?? [:], source: body.source ?? .init()),
                caller: caller(principal, request, context))
            var headers = HTTPFields()
            headers[.location] = "/v1/models/\(model.name)/versions/\(version.version)"
            return try .json(version, status: .created, revision: version.revision, headers: headers)
        }

        add(router, .get, "/v1/models/:model/versions") { request, context in
            let (_, model) = try await authorizedModel(.read, request, context)
            let before = try PageToken.parseInt(request.query("pageToken")).map { Int($0) }
            let query = VersionQuery(
                model: model.name, status: try request.query("status").map(parseStatus),
                tag: try request.query("tag").map(Tag.init(parsing:)), before: before, limit: try request.pageLimit())
            return .json(rendered: try rendered.versionPages.bytes(query, try await metadata.versions(query)))
        }

        add(router, .get, "/v1/models/:model/versions/:version") { request, context in
            let (_, model) = try await authorizedModel(.read, request, context)
            let number = try intParameter("version", context)
            guard let version = try await metadata.version(model: model.name, number: number) else {
                throw RegistryError.versionNotFound(model.name, number)
            }
            return .json(
                rendered: try rendered.versions.bytes(.init(model: model.name, number: number), version),
                revision: version.revision)
        }

        add(router, .patch, "/v1/models/:model/versions/:version") { request, context in
            let principal = try await authenticate(request)
            let model = try await model(context)
            let number = try intParameter("version", context)
            let body = try await request.decodeJSON(UpdateVersionRequest.self, maxBytes: configuration.maxJSONBodyBytes)
            if let status = body.status, status != .archived {
                throw RegistryError.invalidArgument(
                    "Only status 'archived' can be set here; approvals decide the other states.", field: "status")
            }
            let archive = body.status == .archived
            if archive { try await require(.manage, on: model, principal, request, context) }
            if body.tags != nil || body.metadata != nil || body.signature != nil || !archive {
                try await require(.write, on: model, principal, request, context)
            }
            let revision = try request.requiredIfMatch()
            try validate(metadata: body.metadata, tags: body.tags)
            try validate(signature: body.signature)
            let updated = try await service.updateVersion(
                model, number: number, expectedRevision: revision,
                .init(tags: body.tags, metadata: body.metadata, signature: body.signature, archive: archive),
                caller: caller(principal, request, context))
            return try .json(updated, revision: updated.revision)
        }

        add(router, .post, "/v1/models/:model/versions/:version/approvals") { request, context in
            let (principal, model) = try await authorizedModel(.approve, request, context)
            let number = try intParameter("version", context)
            let revision = try request.requiredIfMatch()
            let body = try await request.decodeJSON(DecisionRequest.self, maxBytes: configuration.maxJSONBodyBytes)
            if let comment = body.comment, comment.utf8.count > 4096 {
                throw RegistryError.invalidArgument("The comment is at most 4096 bytes.", field: "comment")
            }
            let updated = try await service.review(
                model, number: number, expectedRevision: revision, decision: body.decision, comment: body.comment,
                caller: caller(principal, request, context))
            return try .json(updated, revision: updated.revision)
        }
    }

    private func parseStatus(_ text: String) throws -> VersionStatus {
        guard let status = VersionStatus(rawValue: text) else {
            throw RegistryError.invalidArgument(
                "Unknown status '\(text.prefix(40))'; expected pending, approved, rejected or archived.",
                field: "status")
        }
        return status
    }

    private func validate(signature: String?) throws {
        if let signature, signature.utf8.count > 16384 {
            throw RegistryError.invalidArgument("The signature is at most 16384 bytes.", field: "signature")
        }
    }

    private func validate(metadata: JSONValue?, tags: [String: String]?) throws {
        if let metadata, !metadata.isObject {
            throw RegistryError.invalidArgument("metadata must be a JSON object.", field: "metadata")
        }
        if let tags { try Tags.validate(tags) }
    }
}
