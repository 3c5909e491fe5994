import Foundation
import Hummingbird
import RegistryCore
import RegistryService

extension RegistryRoutes {
    struct StartRolloutBody: Decodable, Sendable {
        var version: Int
        var steps: [Double]?
        var bakeSeconds: Int?
        var autoAdvance: Bool?
        var minInstances: Int?
        var quorum: Double?
        var instanceWindowSeconds: Int?
        var maxErrorRateIncrease: Double?
        var minRequests: Int?
    }

    struct RolloutActionBody: Decodable, Sendable {
        var reason: String?
    }

    struct ReportBody: Decodable, Sendable {
        var instance: String
        var region: String?
        var state: InstanceReport.State
        var requests: Int?
        var errors: Int?
        var stableRequests: Int?
        var stableErrors: Int?
    }

    /// Progressive rollouts on a stage: start, read, move by hand, and the serving fleet's reports.
    func registerRollouts(on router: Router<RegistryRequestContext>) {
        let base = "/v1/models/:model/stages/:stage/rollouts"

        add(router, .post, base) { request, context in
            let (principal, model) = try await authorizedModel(.deploy, request, context)
            let name = try stageName(context)
            let stageRevision = try request.requiredIfMatch()
            let body = try await request.decodeJSON(StartRolloutBody.self, maxBytes: configuration.maxJSONBodyBytes)
            guard body.version > 0 else {
                throw RegistryError.invalidArgument("version must be a positive integer.", field: "version")
            }
            let steps = body.steps ?? RolloutRules.defaultSteps
            try RolloutRules.validate(steps: steps)
            let defaults = RolloutPolicy()
            let policy = RolloutPolicy(
                bakeSeconds: body.bakeSeconds ?? defaults.bakeSeconds, autoAdvance: body.autoAdvance ?? true,
                minInstances: body.minInstances ?? defaults.minInstances, quorum: body.quorum ?? defaults.quorum,
                instanceWindowSeconds: body.instanceWindowSeconds ?? defaults.instanceWindowSeconds,
                maxErrorRateIncrease: body.maxErrorRateIncrease ?? defaults.maxErrorRateIncrease,
                minRequests: body.minRequests ?? defaults.minRequests)
            try policy.validate()
            let draft = Rollout(
                id: Rollout.newId(), model: model.name, stage: name, version: body.version, previousVersion: 0,
                steps: steps, policy: policy, createdBy: principal.subject, createdAt: Timestamp.now())
            let rollout = try await service.startRollout(
                model, draft, expectedStageRevision: stageRevision, caller: caller(principal, request, context))
            var headers = HTTPFields()
            headers[.location] = "/v1/models/\(model.name)/stages/\(name)/rollouts/\(rollout.id)"
            return try .json(rollout, status: .created, revision: rollout.revision, headers: headers)
        }

        add(router, .get, base + "/:rollout") { request, context in
            let (_, model) = try await authorizedModel(.read, request, context)
            let rollout = try await rolloutInPath(model: model, context)
            return try .json(rollout, revision: rollout.revision)
        }

        for action in RegistryService.RolloutAction.allCases {
            add(router, .post, base + "/:rollout/\(action.rawValue)") { request, context in
                let (principal, model) = try await authorizedModel(.deploy, request, context)
                let current = try await rolloutInPath(model: model, context)
                let revision = try request.requiredIfMatch()
                let body = try await request.decodeJSON(
                    RolloutActionBody.self, maxBytes: configuration.maxJSONBodyBytes, allowEmpty: true)
                try validate(reason: body.reason)
                let rollout = try await service.act(
                    action, on: current, expectedRevision: revision, reason: body.reason,
                    caller: caller(principal, request, context))
                return try .json(rollout, revision: rollout.revision)
            }
        }

        add(router, .post, base + "/:rollout/reports") { request, context in
            // Reports steer exposure and aborts: they come from serving instances (the `serving` role), not readers.
            let (principal, model) = try await authorizedModel(.report, request, context)
            let stage = try stageName(context)
            let id = context.parameters.required("rollout")
            let body = try await request.decodeJSON(ReportBody.self, maxBytes: configuration.maxJSONBodyBytes)
            try InstanceReport.validateCounts(
                requests: body.requests ?? 0, errors: body.errors ?? 0, stableRequests: body.stableRequests ?? 0,
                stableErrors: body.stableErrors ?? 0)
            guard (1...128).contains(body.instance.utf8.count), !body.instance.contains(where: \.isNewline) else {
                throw RegistryError.invalidArgument("instance is 1–128 characters on one line.", field: "instance")
            }
            if let region = body.region, region.utf8.count > 128 {
                throw RegistryError.invalidArgument("region is at most 128 characters.", field: "region")
            }
            let report = InstanceReport(
                instance: body.instance, region: body.region, state: body.state, requests: body.requests ?? 0,
                errors: body.errors ?? 0, stableRequests: body.stableRequests ?? 0,
                stableErrors: body.stableErrors ?? 0,
                time: Timestamp.now())
            let rollout = try await service.report(
                report, rollout: id, model: model, stage: stage, caller: caller(principal, request, context))
            return try .json(rollout, revision: rollout.revision)
        }
    }

    /// The rollout named in the path, which must belong to the path's model and stage; 404 `ROLLOUT_NOT_FOUND`.
    func rolloutInPath(model: Model, _ context: RegistryRequestContext) async throws -> Rollout {
        try await service.rollout(
            id: context.parameters.required("rollout"), model: model.name, stage: stageName(context))
    }
}
