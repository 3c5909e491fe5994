import Logging
import Prometheus
import RegistryCore
import RegistryService
import ServiceLifecycle

/// Makes the decisions of active rollouts that no request triggers: advancing when a bake period ends, aborting
/// when error reports cross the limit, exposing once the fleet is warm.
///
/// With several registry instances on one database only the leader checks (`leadership`); should two ever decide
/// at once (a leader that has not yet noticed it lost its lock), each decision is an update at the rollout's
/// revision, so one wins and the other's update is refused and dropped.
struct RolloutSupervisor: Service {
    let service: RegistryService
    let interval: Duration
    let logger: Logger
    /// Counts each finished check.
    var checks: Counter?
    /// Whether this instance runs the checks (nil: always); the others stand by.
    var leadership: (any Leadership)?
    /// 1 while this instance runs the checks.
    var leading: Gauge?

    static let actor = "registry:rollouts"

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    let leads = leadership?.isLeader ?? true
                    leading?.set(to: leads ? 1.0 : 0.0)
                    if leads { await checkOnce() }
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
            try await service.decideActiveRollouts(actor: Self.actor)
        } catch is CancellationError {
            return
        } catch {
            logger.error("Checking rollouts failed", metadata: ["error": "\(error)"])
        }
        checks?.increment()
    }
}
