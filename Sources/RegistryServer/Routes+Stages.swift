import Foundation
import Hummingbird
import RegistryAPI
import RegistryCore
import RegistryService

extension RegistryRoutes {
    /// `stage` as the API shows it, its active rollout loaded.
    func stageResponse(_ stage: Stage) async throws -> StageResponse {
        let (stage, rollout) = try await service.stageWithRollout(stage)
        return StageResponse(stage, rollout: rollout)
    }

    /// Stages, their history and rollback.
    func registerStages(on router: Router<RegistryRequestContext>) {
        add(router, .get, "/v1/models/:model/stages") { request, context in
            let (_, model) = try await authorizedModel(.read, request, context)
            var items: [StageResponse] = []
            for stage in try await metadata.stages(model: model.name) { items.append(try await stageResponse(stage)) }
            return try .json(ItemList(items: items))
        }

        add(router, .get, "/v1/models/:model/stages/:stage") { request, context in
            let (_, model) = try await authorizedModel(.read, request, context)
            let name = try stageName(context)
            guard let stage = try await metadata.stage(model: model.name, name: name) else {
                throw RegistryError.stageNotFound(model.name, name)
            }
            return try .json(try await stageResponse(stage), revision: stage.revision)
        }

        add(router, .put, "/v1/models/:model/stages/:stage") { request, context in
            let (principal, model) = try await authorizedModel(.deploy, request, context)
            let name = try stageName(context)
            let precondition: Transitions.StagePrecondition
            if request.headers[.ifNoneMatch]?.trimmingCharacters(in: .whitespaces) == "*",
                request.headers[.ifMatch] == nil
            {
                precondition = .absent
            } else {
                guard request.headers[.ifMatch] != nil else {
                    throw RegistryError(
                        .preconditionRequired,
                        "Promotion needs If-Match with the stage's ETag, or If-None-Match: * to create the stage.")
                }
                precondition = .revision(try request.requiredIfMatch())
            }
            let body = try await request.decodeJSON(PromotionRequest.self, maxBytes: configuration.maxJSONBodyBytes)
            guard body.version > 0 else {
                throw RegistryError.invalidArgument("version must be a positive integer.", field: "version")
            }
            try validate(reason: body.reason)
            let stage = try await service.promote(
                model, stage: name, precondition: precondition, version: body.version, reason: body.reason,
                caller: caller(principal, request, context))
            return try .json(try await stageResponse(stage), revision: stage.revision)
        }

        add(router, .get, "/v1/models/:model/stages/:stage/history") { request, context in
            let (_, model) = try await authorizedModel(.read, request, context)
            let name = try stageName(context)
            let after = try PageToken.parseInt(request.query("pageToken")).map { Int($0) }
            let page = try await metadata.history(
                model: model.name, stage: name, after: after, limit: try request.pageLimit())
            if page.items.isEmpty, after == nil, try await metadata.stage(model: model.name, name: name) == nil {
                throw RegistryError.stageNotFound(model.name, name)
            }
            return try .json(page)
        }

        add(router, .post, "/v1/models/:model/stages/:stage/rollback") { request, context in
            let (principal, model) = try await authorizedModel(.deploy, request, context)
            let name = try stageName(context)
            let revision = try request.requiredIfMatch()
            let body = try await request.decodeJSON(
                ReasonRequest.self, maxBytes: configuration.maxJSONBodyBytes, allowEmpty: true)
            try validate(reason: body.reason)
            let stage = try await service.rollback(
                model, stage: name, expectedRevision: revision, reason: body.reason,
                caller: caller(principal, request, context))
            return try .json(try await stageResponse(stage), revision: stage.revision)
        }
    }

    func stageName(_ context: RegistryRequestContext) throws -> String {
        let name = context.parameters.required("stage")
        try Names.validate(name, kind: "stage")
        return name
    }

    func validate(reason: String?) throws {
        if let reason, reason.utf8.count > 4096 {
            throw RegistryError.invalidArgument("The reason is at most 4096 bytes.", field: "reason")
        }
    }
}
