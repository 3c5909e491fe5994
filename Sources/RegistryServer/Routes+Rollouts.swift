import Foundation
import Hummingbird
import RegistryCore

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
            var rollout = try await guardedByTrustPolicy(model, .deploy, principal, request, context) {
                model, mutation in
                if model.trustPolicy.requireSignature {
                    try await requireTrustedSignature(model: model, number: body.version)
                }
                return try await metadata.startRollout(draft, expectedStageRevision: stageRevision, context: mutation)
            }
            // A rollout that needs no warm instances starts exposing at once.
            rollout = try await RolloutDecisions.decide(rollout, metadata: metadata, actor: principal.subject) ?? rollout
            var headers = HTTPFields()
            headers[.location] = "/v1/models/\(model.name)/stages/\(name)/rollouts/\(rollout.id)"
            return try .json(rollout, status: .created, revision: rollout.revision, headers: headers)
        }

        add(router, .get, base + "/:rollout") { request, context in
            let (_, model) = try await authorizedModel(.read, request, context)
            let rollout = try await rolloutInPath(model: model, context)
            return try .json(rollout, revision: rollout.revision)
        }

        for (action, verb) in [("advance", "advanced"), ("pause", "paused"), ("resume", "resumed"), ("abort", "aborted")] {
            add(router, .post, base + "/:rollout/\(action)") { request, context in
                let (principal, model) = try await authorizedModel(.deploy, request, context)
                let current = try await rolloutInPath(model: model, context)
                let revision = try request.requiredIfMatch()
                let body = try await request.decodeJSON(
                    RolloutActionBody.self, maxBytes: configuration.maxJSONBodyBytes, allowEmpty: true)
                if let reason = body.reason, reason.utf8.count > 4096 {
                    throw RegistryError.invalidArgument("The reason is at most 4096 bytes.", field: "reason")
                }
                let now = Timestamp.now()
                let reason = body.reason ?? "\(verb) by \(principal.subject)"
                let rollout = try await metadata.updateRollout(
                    id: current.id, expectedRevision: revision, context: mutation(principal, context)
                ) { rollout in
                    switch action {
                    case "advance": return try RolloutRules.advance(&rollout, now: now)
                    case "pause": return try RolloutRules.pause(&rollout)
                    case "resume": return try RolloutRules.resume(&rollout, now: now)
                    default: return try RolloutRules.abort(&rollout, reason: reason)
                    }
                }
                return try .json(rollout, revision: rollout.revision)
            }
        }

        add(router, .post, base + "/:rollout/reports") { request, context in
            let (principal, model) = try await authorizedModel(.read, request, context)
            let current = try await rolloutInPath(model: model, context)
            let body = try await request.decodeJSON(ReportBody.self, maxBytes: configuration.maxJSONBodyBytes)
            let counts = [body.requests, body.errors, body.stableRequests, body.stableErrors].compactMap { $0 }
            guard counts.allSatisfy({ $0 >= 0 }) else {
                throw RegistryError.invalidArgument("Request and error counts must not be negative.")
            }
            guard (1...128).contains(body.instance.utf8.count), !body.instance.contains(where: \.isNewline) else {
                throw RegistryError.invalidArgument("instance is 1–128 characters on one line.", field: "instance")
            }
            if let region = body.region, region.utf8.count > 128 {
                throw RegistryError.invalidArgument("region is at most 128 characters.", field: "region")
            }
            let now = Timestamp.now()
            let report = InstanceReport(
                instance: body.instance, region: body.region, state: body.state, requests: body.requests ?? 0,
                errors: body.errors ?? 0, stableRequests: body.stableRequests ?? 0, stableErrors: body.stableErrors ?? 0,
                time: now)
            let rollout = try await metadata.updateRollout(
                id: current.id, expectedRevision: nil, context: mutation(principal, context)
            ) { rollout in
                try RolloutRules.record(report, in: &rollout, now: now)
            }
            return try .json(rollout, revision: rollout.revision)
        }
    }

    /// The rollout named in the path, which must belong to the path's model and stage; 404 `ROLLOUT_NOT_FOUND`.
    func rolloutInPath(model: Model, _ context: RegistryRequestContext) async throws -> Rollout {
        let name = try stageName(context)
        let id = context.parameters.required("rollout")
        guard let rollout = try await metadata.rollout(id: id), rollout.model == model.name, rollout.stage == name
        else { throw RegistryError.rolloutNotFound(id) }
        return rollout
    }
}

/// The decisions a rollout takes on its own (exposure once warm, advancing after a bake, aborting on errors),
/// made by whoever notices first: a report, the start request, or the periodic `RolloutSupervisor`.
enum RolloutDecisions {
    /// Applies `rollout`'s own decision at the current time, if it has one; returns the updated rollout, or nil
    /// when there was nothing to decide (or another instance decided first).
    static func decide(_ rollout: Rollout, metadata: any MetadataStore, actor: String) async throws -> Rollout? {
        let now = Timestamp.now()
        var probe = rollout
        guard RolloutRules.evaluate(&probe, now: now) != .report else { return nil }
        do {
            return try await metadata.updateRollout(
                id: rollout.id, expectedRevision: rollout.revision,
                context: MutationContext(actor: actor, requestId: "rollout-\(rollout.id)-r\(rollout.revision)")
            ) { current in
                RolloutRules.evaluate(&current, now: now)
            }
        } catch let error as RegistryError where error.code == .revisionMismatch {
            return nil
        }
    }
}
