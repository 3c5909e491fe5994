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
            rollout =
                try await RolloutDecisions.decide(
                    rollout, metadata: metadata, actor: principal.subject, completion: completionCheck) ?? rollout
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
                var change = mutation(principal, context)
                // An advance that completes the rollout promotes the candidate: it must still meet the trust policy.
                var probe = current
                let completes = action == "advance" && (try? RolloutRules.advance(&probe, now: now)) == .complete
                if completes {
                    let (guarded, refusal) = try await completionCheck(current, change)
                    if let refusal { return HTTPErrorMapping.response(for: refusal, status: .conflict) }
                    change = guarded
                }
                let rollout = try await metadata.updateRollout(
                    id: current.id, expectedRevision: revision, context: change
                ) { rollout in
                    switch action {
                    case "advance":
                        var next = rollout
                        let step = try RolloutRules.advance(&next, now: now)
                        guard step != .complete || completes else {
                            throw RegistryError(.revisionMismatch, "The rollout changed while it was advanced; retry.")
                        }
                        rollout = next
                        return step
                    case "pause": return try RolloutRules.pause(&rollout)
                    case "resume": return try RolloutRules.resume(&rollout, now: now)
                    default: return try RolloutRules.abort(&rollout, reason: reason)
                    }
                }
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
            let change = mutation(principal, context)
            let report = InstanceReport(
                instance: body.instance, region: body.region, state: body.state, requests: body.requests ?? 0,
                errors: body.errors ?? 0, stableRequests: body.stableRequests ?? 0, stableErrors: body.stableErrors ?? 0,
                time: change.time)
            // One row and one aggregate, whatever the fleet's size; a report may decide a step or an abort at once.
            let outcome = try await metadata.recordReport(
                report, rollout: id, model: model.name, stage: stage,
                maxInstances: configuration.maxInstancesPerRollout, context: change)
            var rollout = outcome.rollout
            if outcome.completionPending {
                // Completing promotes the candidate: decided like the supervisor does, after checking that the
                // candidate is still trusted (or aborting when it is not).
                let full = try await metadata.rollout(id: id) ?? rollout
                if let decided = try await RolloutDecisions.decide(
                    full, metadata: metadata, actor: principal.subject, completion: completionCheck)
                {
                    rollout = decided
                    rollout.reports = outcome.rollout.reports
                }
            }
            return try .json(rollout, revision: rollout.revision)
        }
    }

    /// `RolloutDecisions.CompletionCheck` against this registry's stores.
    var completionCheck: RolloutDecisions.CompletionCheck {
        { rollout, context in
            guard let model = try await metadata.model(named: rollout.model) else {
                throw RegistryError.modelNotFound(rollout.model)
            }
            let guarded = context.checking(model.trustPolicy, of: model.name)
            guard model.trustPolicy.requireSignature else { return (guarded, nil) }
            do {
                try await requireTrustedSignature(model: model, number: rollout.version)
                return (guarded, nil)
            } catch let error as RegistryError where error.code == .signatureRequired || error.code == .signatureInvalid {
                return (guarded, error)
            }
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
    ///
    /// A decision to complete first checks the candidate against the model's trust policy as it is now; when a
    /// key was revoked or signatures became required since the rollout started, the rollout is aborted instead,
    /// so traffic returns to the stable version rather than promoting a version nobody vouches for.
    static func decide(
        _ rollout: Rollout, metadata: any MetadataStore, actor: String, completion: CompletionCheck
    ) async throws -> Rollout? {
        let now = Timestamp.now()
        var probe = rollout
        // The summary of the reports, not the reports: the periodic check costs the same at any fleet size.
        let summary = try await metadata.reportSummary(rollout: rollout.id, now: now)
        let decision = RolloutRules.evaluate(&probe, summary: summary, now: now)
        guard decision != .report else { return nil }
        var context = MutationContext(actor: actor, requestId: "rollout-\(rollout.id)-r\(rollout.revision)")
        var refusal: RegistryError?
        if decision == .complete { (context, refusal) = try await completion(rollout, context) }
        do {
            return try await metadata.updateRollout(
                id: rollout.id, expectedRevision: rollout.revision, context: context
            ) { [refusal] current in
                if let refusal { return try RolloutRules.abort(&current, reason: untrusted(refusal)) }
                return RolloutRules.evaluate(&current, now: now)
            }
        } catch let error as RegistryError where error.code == .revisionMismatch || error.code == .trustPolicyChanged {
            // Another instance decided first, or the policy changed under the check: the next look decides again.
            return nil
        }
    }

    /// Checks a rollout's candidate against its model's trust policy as it is now: returns the change's context
    /// guarded by the policy it checked, and the refusal when the candidate no longer meets it (nil when it does).
    typealias CompletionCheck =
        @Sendable (Rollout, MutationContext) async throws -> (context: MutationContext, refusal: RegistryError?)

    /// The abort reason of a rollout whose candidate is no longer trusted.
    static func untrusted(_ refusal: RegistryError) -> String {
        "not completed: \(refusal.message)"
    }
}
