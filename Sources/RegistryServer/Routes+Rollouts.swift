import Foundation
import Hummingbird
import RegistryAPI
import RegistryCore
import RegistryService

extension RegistryRoutes {
    /// Progressive rollouts on a stage: start, read, move by hand, and the serving fleet's reports.
    func registerRollouts(on router: Router<RegistryRequestContext>) {
        let base = "/v1/models/:model/stages/:stage/rollouts"

        add(router, .post, base) { request, context in
            let (principal, model) = try await authorizedModel(.deploy, request, context)
            let name = try stageName(context)
            let stageRevision = try request.requiredIfMatch()
            let body = try await request.decodeJSON(StartRolloutRequest.self, maxBytes: configuration.maxJSONBodyBytes)
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
                    ReasonRequest.self, maxBytes: configuration.maxJSONBodyBytes, allowEmpty: true)
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
            let body = try await request.decodeJSON(
                InstanceReportRequest.self, maxBytes: configuration.maxJSONBodyBytes)
            try InstanceReport.validateCounts(
                requests: body.requests, errors: body.errors, stableRequests: body.stableRequests,
                stableErrors: body.stableErrors)
            guard (1...128).contains(body.instance.utf8.count), !body.instance.contains(where: \.isNewline) else {
                throw RegistryError.invalidArgument("instance is 1–128 characters on one line.", field: "instance")
            }
            if let region = body.region, region.utf8.count > 128 {
                throw RegistryError.invalidArgument("region is at most 128 characters.", field: "region")
            }
            let report = InstanceReport(
                instance: body.instance, region: body.region, state: body.state, requests: body.requests,
                errors: body.errors, stableRequests: body.stableRequests, stableErrors: body.stableErrors,
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
