import Logging
import RegistryCore
import ServiceLifecycle

/// Makes the decisions of active rollouts that no request triggers: advancing when a bake period ends, aborting
/// when error reports cross the limit, exposing once the fleet is warm.
///
/// Safe with several registry instances: each decision is an update at the rollout's revision, so when two
/// instances decide at once one wins and the other's update is refused and dropped.
struct RolloutSupervisor: Service {
    let metadata: any MetadataStore
    let interval: Duration
    let logger: Logger
    /// Checks a candidate against its model's trust policy before a rollout completes.
    let completion: RolloutDecisions.CompletionCheck

    static let actor = "registry:rollouts"

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    await checkOnce()
                    try await Task.sleep(for: interval)
                }
            }
        } catch is CancellationError {
            // The graceful shutdown cancelled the sleep: a normal end. Thrown on, it would count as a failure of
            // this service and make the service group cancel the HTTP servers instead of letting them drain.
        }
    }

    func checkOnce() async {
        do {
            for rollout in try await metadata.activeRollouts() {
                _ = try await RolloutDecisions.decide(
                    rollout, metadata: metadata, actor: Self.actor, completion: completion)
            }
        } catch is CancellationError {
            return
        } catch {
            logger.error("Checking rollouts failed", metadata: ["error": "\(error)"])
        }
    }
}
